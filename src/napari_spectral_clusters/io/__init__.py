"""Files -> arrays plus the metadata napari and the engine need (no napari import here).

Each format's module, and the library it needs (h5py and scipy.io for .mat, zarr and dask
for .zarr, Pillow and pypng for .png), is imported on first use (PEP 562): opening a PNG
does not wait for h5py.
"""

from .._lazy import lazy_exports
from ._image_data import ImageData, ReadError, reason_without_name, what_went_wrong

_LAZY = {
    "read_mat": ".mat",
    "write_mat": ".mat",
    "read_png": ".png",
    "write_png": ".png",
    "read_zarr": ".zarr",
    "write_zarr": ".zarr",
}

__all__ = [
    "ImageData",
    "ReadError",
    "read_mat",
    "read_png",
    "read_zarr",
    "reason_without_name",
    "what_went_wrong",
    "write_mat",
    "write_png",
    "write_zarr",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
