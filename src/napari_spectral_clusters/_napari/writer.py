"""npe2 writers: cluster labels and RGB(A) images -> PNG."""

from __future__ import annotations

import numpy as np

from ..io import write_png


def write_labels_png(path: str, data, meta: dict) -> list[str]:
    """Save a 2-D labels layer as a PNG of label values (8-bit, or 16-bit above 255)."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"only 2-D labels can be saved as PNG, not shape {data.shape}")
    return [str(write_png(path, data))]


def write_rgb_png(path: str, data, meta: dict) -> list[str]:
    """Save an RGB(A) image layer as PNG, alpha kept. Other images are refused."""
    data = np.asarray(data)
    if not meta.get("rgb") or data.ndim != 3:
        raise ValueError("only RGB(A) image layers can be saved as PNG by this writer")
    if data.dtype != np.uint8:
        raise ValueError(f"RGB(A) PNGs are written from uint8 images, not {data.dtype}")
    return [str(write_png(path, data))]
