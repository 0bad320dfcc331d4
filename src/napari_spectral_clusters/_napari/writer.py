"""npe2 writers: labels and RGB(A) images -> PNG, any layers -> one MATLAB file or zarr store.

Each writes the file completely or not at all, and returns the paths it wrote. Lazy (dask)
layers are written to ``.mat`` (v7.3) and ``.zarr`` block by block, never loaded whole.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error

from .._arrays import is_lazy
from ..io import ImageData, png
from ..io.mat import write_mat
from ..io.zarr import write_zarr
from ..recolor import recolor
from ..saved_summary import PER_CLUSTER, follow_labels
from ._colors import labels_colors
from .layer_rules import clusters_table


def _reported(write):
    """A writer whose refusals and failures (a layer it cannot hold, a folder that does not
    exist) are a notification naming the file and the reason, not a traceback; nothing is
    written then (napari adds its own "save failed")."""

    @functools.wraps(write)
    def wrapper(path, *args):
        try:
            # (data, meta) for one layer, or a list of (data, meta, type)
            one = len(args) == 2
            names = [args[1].get("name")] if one else [m.get("name") for _, m, _ in args[0]]
            _keeps_its_layers(path, names)
            return write(path, *args)
        except (ValueError, OSError, MemoryError) as exc:
            show_error(f"Cannot save {Path(path).name}: {exc}")
            return []

    return wrapper


def _keeps_its_layers(path, names: list) -> None:
    """Refuse to write over a file a layer of the viewer napari saves from was opened from,
    unless that layer is among those written (a saved result opened, edited and saved
    again): saving a result onto its cube's own file replaced the cube (the command line
    refuses to write over its inputs, too). Variables of the file that opened as no layer,
    and layers of other viewers, are not looked at."""
    from napari import current_viewer

    target, viewer = Path(path), current_viewer()
    if viewer is None or not target.exists():
        return
    for layer in viewer.layers:
        source = getattr(getattr(layer, "source", None), "path", None)
        if not isinstance(source, str | os.PathLike) or layer.name in names:
            continue
        if Path(source).exists() and Path(source).samefile(target):
            raise ValueError(
                f"{layer.name} was opened from it and is not among the layers saved; saving "
                "there would replace the file it came from (choose another name)"
            )


@_reported
def write_labels_png(path: str, data, meta: dict) -> list[str]:
    """A 2-D labels layer as an indexed PNG whose palette is the layer's colours."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"only 2-D labels can be saved as PNG, not shape {data.shape}")
    ((_, meta, _),) = _following_their_labels([(data, meta, "labels")])
    colors = labels_colors(data, meta)
    written = png.write_labels_png(
        path, data, colors, metadata=meta.get("metadata", {}), layer_state=layer_state(meta)
    )
    return [str(written)]


@_reported
def write_rgb_png(path: str, data, meta: dict) -> list[str]:
    """An RGB(A) uint8 image layer as PNG, alpha and metadata kept. Other images: refused."""
    data = np.asarray(data)
    if not meta.get("rgb") or data.ndim != 3:
        raise ValueError("only RGB(A) image layers can be saved as PNG by this writer")
    if data.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"RGB(A) PNGs are written from 8- or 16-bit images, not {data.dtype}")
    written = png.write_png(
        path, data, metadata=meta.get("metadata", {}), layer_state=layer_state(meta)
    )
    return [str(written)]


@_reported
def write_mat_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Image and labels layers into one ``.mat`` file, one variable per layer."""
    return [str(write_mat(path, _images(layer_data)))]


@_reported
def write_zarr_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Image and labels layers into one zarr store, one array per layer."""
    return [str(write_zarr(path, _images(layer_data)))]


def _images(layer_data: list[tuple]) -> list[ImageData]:
    """The layers as the files hold them; a clusters layer painted since its last count says
    of its clusters what its labels say now (:func:`follow_labels`), and a recoloured layer
    saved beside it wears its colours (napari's *Save Selected Layers* writes the layers as
    they are, where the widget's *Save…* refreshes them first)."""
    layer_data = _following_their_labels(layer_data)
    images = []
    for data, meta, layer_type in layer_data:
        data = data if is_lazy(data) else np.asarray(data)
        metadata = dict(meta.get("metadata", {}))
        if layer_type == "labels":
            metadata["colors"] = labels_colors(data, meta)
        images.append(
            ImageData(
                name=meta.get("name", layer_type),
                data=data,
                kind=layer_type,
                rgb=bool(meta.get("rgb", False)),
                channel_axis=metadata.get("channel_axis"),
                metadata=metadata,
                layer_state=layer_state(meta),
            )
        )
    return images


def _following_their_labels(layer_data: list[tuple]) -> list[tuple]:
    out = list(layer_data)
    for i, (data, meta, layer_type) in enumerate(layer_data):
        if layer_type != "labels" or is_lazy(data):  # lazy labels: counted by Refresh only
            continue
        labels = np.asarray(data)
        metadata, changed = follow_labels(labels, dict(meta.get("metadata", {})))
        if not changed:
            continue
        out[i] = (data, {**meta, "metadata": metadata}, layer_type)
        colors = np.asarray(metadata.get("colors", np.zeros((0, 3))), dtype=np.uint8)
        if len(metadata["counts"]) < labels.max(initial=0) or len(colors) < len(
            metadata["counts"]
        ):
            continue  # ids past MAX_LABEL, without a row: the table and image as they are
        features = _recounted_features(meta.get("features"), metadata["counts"])
        out[i] = (data, {**meta, "metadata": metadata, "features": features}, layer_type)
        name = metadata.get("spectral_clusters_recolored")
        for j, (rgb, rgb_meta, rgb_type) in enumerate(layer_data):
            shape = np.shape(rgb)
            mine = rgb_type == "image" and rgb_meta.get("name") == name and rgb_meta.get("rgb")
            if mine and shape[:-1] == labels.shape and not is_lazy(rgb):
                rgb = np.asarray(rgb)
                # the picture's alpha as the recoloured image kept it: a pixel painted where
                # the clustering left none stays as transparent as it was there. A cube has
                # none: its RGBA only makes pixels without a label see-through
                params = rgb_meta.get("metadata", {}).get("params", {})
                picture = shape[-1] == 4 and params.get("alpha", True) is not False
                alpha = rgb[..., 3] if picture else None
                summary = {key: metadata[key] for key in ("colors", "counts", *PER_CLUSTER)}
                kept = {k: v for k, v in rgb_meta.get("metadata", {}).items() if k != "inertia"}
                rgb_meta = {**rgb_meta, "metadata": {**kept, **summary}}
                out[j] = (
                    recolor(labels, colors, alpha, transparent=None),
                    rgb_meta,
                    rgb_type,
                )
    return out


def _recounted_features(features, counts: np.ndarray):
    """The clusters layer's table for ``counts``: the names given and a user's own columns
    kept, a painted id named as the widget names it."""
    if features is None or "index" not in getattr(features, "columns", ()):
        return features
    names = dict(zip(features["index"], features.get("name", features["index"]), strict=True))
    present = np.flatnonzero(counts) + 1
    given = [names.get(v, f"cluster {v}") for v in present]
    return clusters_table(present, given, counts[present - 1], features)


def layer_state(meta: dict) -> dict:
    """What a layer's state holds that a user set and expects back from a saved file: scale,
    translate and units (when not napari's defaults) and its features table, all as plain
    JSON-able values (units as names, features as a dict of columns)."""
    state: dict = {}
    scale = [float(v) for v in meta.get("scale", ())]
    translate = [float(v) for v in meta.get("translate", ())]
    if any(v != 1 for v in scale):
        state["scale"] = scale
    if any(v != 0 for v in translate):
        state["translate"] = translate
    units = [str(u) for u in meta.get("units", None) or ()]
    if any(u != "pixel" for u in units):
        state["units"] = units
    features = meta.get("features")
    if features is not None and len(features.columns):
        state["features"] = {
            str(col): [v.item() if isinstance(v, np.generic) else v for v in features[col]]
            for col in features.columns
        }
    return state
