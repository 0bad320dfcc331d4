"""Colours of clusters: centre colours for pictures, a categorical palette for everything else."""

from __future__ import annotations

import numpy as np

__all__ = ["categorical_colors", "center_colors"]


def categorical_colors(n: int) -> np.ndarray:
    """``n`` well-separated colours as an (n, 3) uint8 array.

    From colorcet's Glasbey palette (category10 first), so neighbouring labels differ clearly;
    past its 256 colours the palette repeats.
    """
    import colorcet

    palette = np.asarray(colorcet.glasbey_category10, dtype=np.float64)
    return np.round(palette[np.arange(n) % len(palette)] * 255).astype(np.uint8)


def center_colors(centers: np.ndarray, dtype: np.dtype, *, rgb: bool) -> np.ndarray:
    """Display colour of each cluster centre, (k, 3) uint8.

    Parameters
    ----------
    centers : (k, C) ndarray
        Cluster centres in the input's units.
    dtype : dtype
        The input image's dtype, which fixes its value range: integers span the dtype,
        floats span 0..1 (as napari shows RGB floats).
    rgb : bool
        Whether the centres are colours (C == 3); otherwise a categorical palette is used.
    """
    centers = np.asarray(centers, dtype=np.float64)
    if not rgb:
        return categorical_colors(len(centers))
    dtype = np.dtype(dtype)
    top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
    return np.round(np.clip(centers / top, 0, 1) * 255).astype(np.uint8)
