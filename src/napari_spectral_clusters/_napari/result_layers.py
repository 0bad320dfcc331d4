"""Where a result goes in the viewer: the names of its two layers (never a layer holding the
user's edits), putting them above their source, and finding them again (no Qt)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_warning

from .layer_rules import has_hand_edits

if TYPE_CHECKING:
    import napari

    from .shown import ShownResult

__all__ = ["find_layers", "made_by_us", "put_layer", "result_names", "top_result"]


def made_by_us(layer) -> bool:
    """A result or view this plugin made of another layer (clusters, recoloured image,
    true-colour view): never chosen as the image to cluster by itself, nor offered as a
    mask or to cluster together with (a true-colour view can still be chosen by hand)."""
    return layer is not None and bool(layer.metadata.get("spectral_clusters_source"))


def result_names(viewer: napari.viewer.Viewer, source: str) -> tuple[str, str]:
    """Names of the labels and recoloured layers a new result of ``source`` goes to: the
    usual ones, updated in place, unless those hold hand edits (painting, merges, names,
    colours), which are never overwritten: then new names, and a notification."""
    layers = viewer.layers

    def kept(name: str, kind) -> str | None:  # why not to reuse it (absent, or ours unedited)
        if name not in layers:
            return None
        layer = layers[name]
        if not isinstance(layer, kind) or layer.metadata.get("spectral_clusters_source") != source:
            return "not ours"
        if kind is Labels and has_hand_edits(layer):  # the recoloured image follows
            return "edited"
        return None

    n = 1
    while True:
        suffix = "" if n == 1 else f" ({n})"
        names = (f"{source} clusters{suffix}", f"{source} recolored{suffix}")
        if kept(names[0], Labels) is None and kept(names[1], Image) is None:
            break
        n += 1
    if n > 1 and names[0] not in layers:  # said once, as the new layers are made
        usual = {f"{source} clusters": Labels, f"{source} recolored": Image}
        why = {f"'{name}'": kept(name, kind) for name, kind in usual.items()}
        edited = [name for name, reason in why.items() if reason == "edited"]
        others = [name for name, reason in why.items() if reason == "not ours"]
        said = [f"{name} holds your edits" for name in edited]
        if others:
            are = "is not a result" if len(others) == 1 else "are not results"
            said.append(f"{' and '.join(others)} {are} of this widget")
        show_warning(f"{'; '.join(said)}, so the new result is in '{names[0]}' and '{names[1]}'.")
    return names


def top_result(viewer: napari.viewer.Viewer, source: Image, *, besides=()) -> Image | Labels:
    """The top-most of ``source``, the layers of its earlier results (other than those
    named in ``besides``) and the mask Feature space made of it: a new result goes above
    them all, so it is what shows, not a result kept below it for its hand edits, nor the
    mask it was clustered inside."""
    layers = viewer.layers
    ours = [
        layer
        for layer in layers
        if source.name
        in (
            layer.metadata.get("spectral_clusters_source"),
            layer.metadata.get("spectral_clusters_mask_for"),
        )
        and layer.name not in besides
        and isinstance(layer, Image | Labels)
    ]
    return max([source, *ours], key=layers.index)


def put_layer(viewer: napari.viewer.Viewer, name: str, layer_type: str, data, kwargs, *, above):
    """Add the layer ``name`` just above ``above``, or update it in place when it exists
    (its opacity stays the user's)."""
    layers = viewer.layers
    kind = Labels if layer_type == "labels" else Image
    if name in layers and isinstance(layers[name], kind):
        layer = layers[name]
        layer.data = data
        for key, value in kwargs.items():
            if key not in ("rgb", "opacity"):  # opacity is the user's to keep
                setattr(layer, key, value)
    else:
        if name in layers:
            layers.remove(name)
        add = viewer.add_labels if layer_type == "labels" else viewer.add_image
        layer = add(data, name=name, **kwargs)
    here, target = layers.index(layer), layers.index(above) + 1
    if here != target:  # napari's move inserts before ``target`` counted before the move
        layers.move(here, target)
    return layer


def find_layers(viewer: napari.viewer.Viewer, shown: ShownResult | None, *, quiet=False):
    """The result's labels, recoloured (None once the user removed it) and source layers, or
    None (after saying so, unless ``quiet``) when the labels or the source were removed or
    replaced by another kind of layer."""
    if shown is None:
        return None
    layers = viewer.layers

    def get(name, kind):
        return layers[name] if name in layers and isinstance(layers[name], kind) else None

    labels, source = get(shown.labels, Labels), get(shown.source, Image)
    if labels is None or source is None:
        if not quiet:
            show_error("The clustered layers are gone; run the clustering again.")
        return None
    return labels, get(shown.recolored, Image), source
