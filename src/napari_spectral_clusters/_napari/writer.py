"""npe2 writers: labels and RGB(A) images -> PNG, any layers -> one MATLAB file or zarr store.

Each writes the file completely or not at all, and returns the paths it wrote. Lazy (dask)
layers are written to ``.mat`` (v7.3) and ``.zarr`` block by block, never loaded whole.
"""

from __future__ import annotations

import numpy as np

from .._arrays import is_lazy
from ..io import ImageData, png
from ..io.mat import write_mat
from ..io.zarr import write_zarr
from ._colors import labels_colors


def write_labels_png(path: str, data, meta: dict) -> list[str]:
    """A 2-D labels layer as an indexed PNG whose palette is the layer's colours."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"only 2-D labels can be saved as PNG, not shape {data.shape}")
    colors = labels_colors(data, meta)
    return [str(png.write_labels_png(path, data, colors, metadata=meta.get("metadata", {})))]


def write_rgb_png(path: str, data, meta: dict) -> list[str]:
    """An RGB(A) uint8 image layer as PNG, alpha and metadata kept. Other images: refused."""
    data = np.asarray(data)
    if not meta.get("rgb") or data.ndim != 3:
        raise ValueError("only RGB(A) image layers can be saved as PNG by this writer")
    if data.dtype != np.uint8:
        raise ValueError(f"RGB(A) PNGs are written from uint8 images, not {data.dtype}")
    return [str(png.write_png(path, data, metadata=meta.get("metadata", {})))]


def write_mat_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Image and labels layers into one ``.mat`` file, one variable per layer."""
    return [str(write_mat(path, _images(layer_data)))]


def write_zarr_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Image and labels layers into one zarr store, one array per layer."""
    return [str(write_zarr(path, _images(layer_data)))]


def _images(layer_data: list[tuple]) -> list[ImageData]:
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
            )
        )
    return images
