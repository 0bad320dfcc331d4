"""Putting edited cluster labels back into the viewer (a selection made a cluster, a cluster
split): the Labels layer, its colours, and the recoloured layer beside it follow. No Qt."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image

from ..recolor import recolor
from ._colors import label_colormap, labels_colors
from .layer_rules import colors_for

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

__all__ = ["cluster_colors", "put_edited_labels", "recolored_layer"]


def cluster_colors(layer: Labels) -> np.ndarray:
    """(k, 3) uint8 colours of the layer's labels 1..k (the writers' rule: those our results
    carry, else what its colormap paints)."""
    meta = {"metadata": layer.metadata, "colormap": layer.colormap}
    return labels_colors(layer.data, meta)  # a lazy layer's data is read only if needed


def recolored_layer(viewer: napari.viewer.Viewer, layer: Labels) -> Image | None:
    """The recoloured RGB layer shown with the cluster labels ``layer``, if it is still
    there."""
    name = layer.metadata.get("spectral_clusters_recolored")
    if name is None and " clusters" in layer.name:
        name = layer.name.replace(" clusters", " recolored")
    found = viewer.layers[name] if name in viewer.layers else None
    return found if isinstance(found, Image) and found.rgb else None


def put_edited_labels(viewer, layer: Labels, data: np.ndarray, *, alpha=None) -> np.ndarray:
    """Show the edited ``data`` in ``layer``: new ids get well-separated colours (the others
    keep theirs), the recoloured layer is redrawn (with ``alpha``, the source's alpha plane),
    and the layer is marked as edited so no later run overwrites it. Returns the colours."""
    colors = cluster_colors(layer)
    top = int(np.max(data, initial=0))
    if top > len(colors):
        colors = colors_for(np.arange(1, top + 1), colors).astype(np.uint8)
    # colours first: whoever listens to the data change (the cluster table) reads them
    layer.metadata = {**layer.metadata, "colors": colors, "hand_edited": True}
    layer.colormap = label_colormap(colors)
    layer.data = data
    recolored = recolored_layer(viewer, layer)
    if recolored is not None and recolored.data.shape[:-1] == data.shape:
        # RGBA while some pixel has no label (left out, or erased): see-through there
        recolored.data = recolor(data, colors, alpha, transparent=None)
        recolored.metadata = {**recolored.metadata, "colors": colors}
    return colors
