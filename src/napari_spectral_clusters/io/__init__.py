"""Files -> arrays plus the metadata napari and the engine need (no napari import here)."""

from ._image_data import ImageData, ReadError
from .mat import read_mat
from .png import read_png, write_png
from .zarr import read_zarr, write_zarr

__all__ = [
    "ImageData",
    "ReadError",
    "read_mat",
    "read_png",
    "read_zarr",
    "write_png",
    "write_zarr",
]
