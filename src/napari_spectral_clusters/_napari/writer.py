"""npe2 writers: labels and RGB(A) images -> PNG, any layers -> one MATLAB file or zarr store.

Each writes the file completely or not at all, and returns the paths it wrote. Lazy (dask)
layers are written to ``.mat`` (v7.3) and ``.zarr`` block by block, never loaded whole.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error

from .._arrays import is_lazy
from ..io import ImageData, png
from ..io.mat import write_mat
from ..io.zarr import write_zarr
from ._colors import labels_colors


def _reported(write):
    """A writer whose refusals and failures (a layer it cannot hold, a folder that does not
    exist) are a notification naming the file and the reason, not a traceback; nothing is
    written then (napari adds its own "save failed")."""

    @functools.wraps(write)
    def wrapper(path, *args):
        try:
            return write(path, *args)
        except (ValueError, OSError, MemoryError) as exc:
            show_error(f"Cannot save {Path(path).name}: {exc}")
            return []

    return wrapper


@_reported
def write_labels_png(path: str, data, meta: dict) -> list[str]:
    """A 2-D labels layer as an indexed PNG whose palette is the layer's colours."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"only 2-D labels can be saved as PNG, not shape {data.shape}")
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
