"""Zarr stores -> lazy cubes, labels and images; layers -> a zarr store, block by block.

Zarr is what big spectral cubes are usually converted to (chunked, compressed, readable in
parallel by a cluster of machines). A store holding one array opens as one layer named after
the store; a group opens every array in it (``group.array`` for nested ones) by the same rules
as a MATLAB file (see :mod:`napari_spectral_clusters.io.layers`), except that a cube's band axis,
without a wavelength vector to match, is the first or last axis: the odd one out when the
image is square, else the shorter (zarr cubes come bands-first as often as bands-last). Big
arrays open as dask arrays, in blocks coalesced from the store's chunks (see
:func:`~napari_spectral_clusters.io.blocks.block_chunks`).

:func:`write_zarr` stores layers as :func:`~napari_spectral_clusters.io.mat.write_mat` does
(same variables, ``x_metadata`` as a group attribute), so what it writes opens as it was saved;
lazy layers are computed and written block by block, on the active dask scheduler.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from .._arrays import is_lazy
from ._image_data import ImageData, ReadError, store_blocks, what_went_wrong
from .blocks import block_chunks
from .files import written_whole
from .inputs import check_store
from .layers import cube_band_axis, images_from_arrays, layer_variables, lazy_threshold

__all__ = ["is_zarr_store", "read_zarr", "write_zarr"]


def is_zarr_store(path: str | Path) -> bool:
    """A directory holding a zarr array or group (v2 or v3 layout)."""
    path = Path(path)
    return path.is_dir() and any(
        (path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup")
    )


def read_zarr(path: str | Path, *, lazy_bytes: int | None = None) -> list[ImageData]:
    """Read the images in a zarr store (an array, or a group of arrays).

    Arrays larger than ``lazy_bytes`` (default
    :data:`~napari_spectral_clusters.io.layers.LAZY_BYTES`) open as dask arrays, in blocks of
    whole store chunks, read only as napari or the engine needs them.

    Raises
    ------
    ReadError
        ``path`` is not a zarr store, or holds no image; the message says what it holds.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.io import read_zarr, write_zarr
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_spectral_clusters.io import ImageData
    >>> cube = np.ones((3, 8, 8), np.float32)
    >>> store = Path(tempfile.mkdtemp()) / "cube.zarr"
    >>> path = write_zarr(store, [ImageData("cube", cube, channel_axis=0)])
    >>> [(img.name, img.data.shape) for img in read_zarr(path)]
    [('cube', (3, 8, 8))]
    """
    path = Path(path)
    lazy_bytes = lazy_threshold(lazy_bytes)
    if not path.exists():
        raise FileNotFoundError(path)
    if not is_zarr_store(path):
        raise ReadError(f"{path.name} is not a zarr store (no zarr.json, .zarray or .zgroup)")
    check_store(path)
    try:
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array):
            stored, strings = {path.stem: node}, {}
        else:
            stored = dict(_walk(node, ""))
            strings = {k: v for k, v in node.attrs.items() if isinstance(v, str)}
        for name, a in stored.items():
            _check_codecs(name, a)
        read = {k: a[...] for k, a in stored.items() if a.nbytes <= lazy_bytes}
        arrays = {k: read[k] if k in read else _lazy(a, read) for k, a in stored.items()}
    except ReadError:
        raise
    except Exception as exc:  # zarr, numcodecs and their codecs each raise their own
        raise ReadError(
            f"{path.name} could not be read as a zarr store: {what_went_wrong(exc)}"
        ) from exc
    description = ", ".join(
        f"{name} ({'x'.join(map(str, a.shape))} {a.dtype})" for name, a in arrays.items()
    )
    bands_first = {n for n, a in arrays.items() if a.ndim >= 3 and _bands_first(a.shape)}
    images = images_from_arrays(path, arrays, strings, bands_first=bands_first)
    if not images:
        raise ReadError(f"{path.name} holds no image: {description or 'no arrays'}")
    return images


#: Codecs a store's arrays may use: compression, checksums and byte rearrangements. Any other
#: is refused before a chunk is decoded — numcodecs' "pickle" filter would run code from the
#: store (zarr 2 decodes it; zarr 3 refuses it itself).
SAFE_CODECS = (
    "adler32", "astype", "bitround", "blosc", "bytes", "bz2", "crc32", "delta",
    "fixedscaleoffset", "fletcher32", "gzip", "jenkins", "lz4", "lzma", "packbits",
    "quantize", "sharding", "shuffle", "transpose", "zlib", "zstd",
)  # fmt: skip


def _codec_names(arr) -> list[str]:
    """The names of the codecs an array's chunks pass through (zarr 2 and 3)."""
    found = []
    for attr in ("compressor", "compressors", "filters", "serializer"):
        try:
            with warnings.catch_warnings():  # zarr 3 deprecates zarr 2's names
                warnings.simplefilter("ignore")
                value = getattr(arr, attr, None)
        except Exception:  # zarr 3 raises for attributes of the other format
            continue
        for codec in value if isinstance(value, list | tuple) else [value]:
            if codec is not None:
                name = getattr(codec, "codec_id", None) or type(codec).__name__
                found.append(str(name).lower())
    metadata = getattr(arr, "metadata", None)
    for codec in getattr(metadata, "codecs", None) or ():
        found.append(str(getattr(codec, "name", None) or type(codec).__name__).lower())
    return found


def _check_codecs(name: str, arr) -> None:
    for codec in _codec_names(arr):
        if not any(safe in codec for safe in SAFE_CODECS):
            raise ReadError(f"{name} is stored with the codec {codec!r}, which is not read")


def _bands_first(shape: tuple) -> bool:
    """Band axis first or last: the odd one out of a square image, else the shorter."""
    if shape[-1] == shape[-2] != shape[0]:
        return True
    if shape[0] == shape[1] != shape[-1]:
        return False
    return shape[0] < shape[-1]


def _walk(group, prefix: str):
    """Yield (name, zarr array) for the numeric arrays of a group, at every level."""
    for name, arr in group.arrays():
        if np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
            yield f"{prefix}{name}", arr
    for name, sub in group.groups():
        yield from _walk(sub, f"{prefix}{name}.")


def _lazy(arr, arrays: dict) -> da.Array:
    """A big zarr array as a dask array, in blocks of whole spectra when the band axis the
    layer rules will give it (from ``arrays``, the store's read arrays) fits."""
    band = None
    if arr.ndim >= 3:
        band = cube_band_axis(arr.shape, arrays, bands_first=_bands_first(arr.shape))
    chunks = block_chunks(arr.shape, arr.dtype.itemsize, arr.chunks, band_axis=band)
    return da.from_zarr(arr, chunks=chunks)


def write_zarr(path: str | Path, images: list[ImageData]) -> Path:
    """Write layers to a zarr store (a group, one array per layer, metadata as attributes).

    The store appears under ``path`` only when complete; an interrupted write leaves the old
    store (if any) in place and no partial one under ``path``.
    """
    path = Path(path)
    with written_whole(path, directory=True) as tmp:
        variables = layer_variables(images)
        group = zarr.open_group(str(tmp), mode="w")
        group.attrs.update({k: v for k, v in variables.items() if isinstance(v, str)})
        for name, value in variables.items():
            if isinstance(value, str):
                continue
            arr = _regular(value if is_lazy(value) else da.from_array(value, chunks="auto"))
            z = zarr.open_array(
                str(tmp),
                path=name,
                mode="w",
                shape=arr.shape,
                dtype=arr.dtype,
                chunks=tuple(c[0] for c in arr.chunks),
            )
            # computed on the active dask scheduler a few blocks at a time and written here,
            # in this process: nothing is still writing once an error has been raised
            store_blocks(arr, z.__setitem__)
    return path


def _regular(arr: da.Array) -> da.Array:
    """Zarr stores equal chunks (the last may be shorter); rechunk the odd dask array."""
    regular = all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in arr.chunks)
    return arr if regular else arr.rechunk(arr.chunksize)
