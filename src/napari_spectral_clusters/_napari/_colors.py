"""Cluster colours <-> napari labels colormaps (shared by the widget, reader and writers)."""

from __future__ import annotations

import numpy as np

from ..saved_summary import MAX_LABEL

TRANSPARENT = (0.0, 0.0, 0.0, 0.0)
#: Labels above this cannot carry a colour table (one row per label) in a saved file.
MAX_COLORED_LABEL = MAX_LABEL


def label_colormap(colors: np.ndarray) -> dict:
    """A napari direct labels colormap: label ``i`` wears ``colors[i - 1]``, 0 is clear.

    Raises
    ------
    ValueError
        ``colors`` is not a (k, 3) table of values 0..255 (a damaged file's metadata).
    """
    colors = np.asarray(colors)
    if (
        colors.ndim != 2
        or colors.shape[1] != 3
        or not np.issubdtype(colors.dtype, np.number)
        or not np.isfinite(colors).all()
        or (colors.size and (colors.min() < 0 or colors.max() > 255))
    ):
        raise ValueError(f"cluster colours must be a k x 3 table of 0..255, not {colors.shape}")
    cmap = {0: TRANSPARENT, None: TRANSPARENT}
    cmap.update({i + 1: (*(np.asarray(c) / 255), 1.0) for i, c in enumerate(colors)})
    return cmap


def labels_colors(data: np.ndarray, meta: dict) -> np.ndarray:
    """(k, 3) uint8 colours of labels 1..k of a labels layer being saved.

    Our cluster layers carry them in metadata; any other labels layer is asked its colormap.
    """
    colors = meta.get("metadata", {}).get("colors")
    if colors is not None:
        return np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    top = int(data.max()) if data.size else 0  # dask: one streaming pass
    if top > MAX_COLORED_LABEL:
        raise ValueError(
            f"labels go up to {top:,}; colours are kept for labels up to {MAX_COLORED_LABEL:,}"
        )
    cmap = meta.get("colormap")
    if hasattr(cmap, "map") and top > 0:
        rgba = np.asarray(cmap.map(np.arange(1, top + 1)))
        return np.round(rgba[:, :3] * 255).astype(np.uint8)
    from ..color import categorical_colors  # colorcet takes a second to import: only here

    return categorical_colors(top)
