"""MATLAB ``.mat`` files (v4 to v7.3) <-> named arrays, which become layers by the rules of
:mod:`napari_spectral_clusters.io.layers`.

* Arrays inside structs and cells are found too, named ``struct.field`` and ``cell[i]``
  (``i`` counts from 1 in MATLAB's column-major order, as MATLAB's ``c{i}`` does).
* v7.3 (HDF5) files are read with h5py and transposed back to MATLAB's axis order, so a cube
  opens the same from every MATLAB version; big variables open lazily (dask).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from scipy import sparse

from .._arrays import is_lazy
from ._image_data import ImageData, ReadError, store_blocks
from .blocks import block_chunks
from .files import written_whole
from .layers import (
    LAZY_BYTES,
    cube_band_axis,
    images_from_arrays,
    layer_variables,
    lazy_threshold,
)

__all__ = ["LAZY_BYTES", "read_mat", "write_mat", "write_mat73"]


def read_mat(path: str | Path, *, lazy_bytes: int | None = None) -> list[ImageData]:
    """Read the images in a MATLAB ``.mat`` file.

    Parameters
    ----------
    path : str or Path
        A MATLAB v4, v5, v6, v7 or v7.3 (HDF5) file.
    lazy_bytes : int, optional
        v7.3 variables larger than this open as dask arrays over the file, read only as
        napari or the engine needs them. Default :data:`LAZY_BYTES`.

    Returns
    -------
    list of ImageData
        Cubes first (band axis first, largest last), then 2-D images, then labels; every
        array in the orientation MATLAB shows it, whatever the file version.

    Raises
    ------
    ReadError
        The file is not a readable MATLAB file, or holds no image; the message says what it
        holds.
    """
    path = Path(path)
    lazy_bytes = lazy_threshold(lazy_bytes)
    if path.is_dir():
        raise ReadError(f"{path.name} is a folder, not a MATLAB file")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if h5py.is_hdf5(path):
        arrays, strings, description = _read_v73(path, lazy_bytes)
    else:
        variables = _load(path)
        arrays, description = dict(_walk(variables)), _describe(variables)
        strings = {k: str(v[0]) for k, v in variables.items() if _is_string(v)}
    images = images_from_arrays(path, arrays, strings)
    if not images:
        raise ReadError(f"{path.name} holds no image: {description}")
    return images


def _is_string(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.size == 1


def _load(path: Path) -> dict:
    """All variables of a v4-v7 file, with structs as record arrays and cells as object arrays."""
    # scipy 1.18 warns that spmatrix= (absent from older scipy) defaults to False from 1.20
    has_spmatrix = "spmatrix" in inspect.signature(scipy.io.loadmat).parameters
    kw = {"spmatrix": False} if has_spmatrix else {}
    try:
        return scipy.io.loadmat(path, squeeze_me=False, mat_dtype=False, **kw)
    except Exception as exc:  # scipy raises ValueError, TypeError, zlib.error, ... on bad files
        raise ReadError(
            f"{path.name} could not be read as a MATLAB file (corrupt or truncated?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _read_v73(path: Path, lazy_bytes: int) -> tuple[dict, dict, str]:
    """Numeric arrays and strings of a v7.3 (HDF5) file in MATLAB's orientation, and what the
    file holds.

    HDF5 stores MATLAB's column-major arrays with their axes reversed, so every array is
    transposed back. Large ones become dask arrays of blocks coalesced from the file's chunks
    (see :func:`~napari_spectral_clusters.io.blocks.block_chunks`); they keep the file open
    for as long as they live.
    """
    try:
        f = h5py.File(path, "r")
        found = dict(_walk_h5(f, f, "", lazy_bytes))
        read = {k: v for k, v in found.items() if not isinstance(v, h5py.Dataset)}
        arrays = {k: read[k] if k in read else _h5_lazy(v, read) for k, v in found.items()}
        strings = {
            key: "".join(map(chr, np.asarray(f[key][()]).T.ravel()))
            for key in f
            if isinstance(f[key], h5py.Dataset) and _matlab_class(f[key]) == "char"
        }
        description = ", ".join(_describe_h5(f[key], key) for key in f if key != "#refs#")
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ReadError(
            f"{path.name} could not be read as a MATLAB v7.3 (HDF5) file: {exc}"
        ) from exc
    return arrays, strings, description or "no variables"


_H5_NUMERIC = {
    "double",
    "single",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "logical",
}


def _matlab_class(obj) -> str:
    value = obj.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _walk_h5(f, obj, name: str, lazy_bytes: int):
    """Yield (name, array) for numeric arrays in a v7.3 group, struct or cell, recursively;
    arrays larger than ``lazy_bytes`` as their unread h5py dataset."""
    if isinstance(obj, h5py.Group):
        if "MATLAB_sparse" in obj.attrs:
            yield name, _h5_sparse(obj)
            return
        for key in obj:
            if key != "#refs#":
                yield from _walk_h5(f, obj[key], f"{name}.{key}" if name else key, lazy_bytes)
        return
    cls = _matlab_class(obj)
    if obj.attrs.get("MATLAB_empty", 0):
        return
    if cls == "cell":
        refs = obj[()].T.ravel(order="F")  # MATLAB's linear (column-major) order
        for i, ref in enumerate(refs):
            yield from _walk_h5(f, f[ref], f"{name}[{i + 1}]", lazy_bytes)
    elif cls in _H5_NUMERIC:
        yield name, _h5_array(obj, cls, lazy_bytes)


def _h5_array(ds, cls: str, lazy_bytes: int):
    if ds.dtype.names and {"real", "imag"} <= set(ds.dtype.names):  # complex
        raw = ds[()]
        return (raw["real"] + 1j * raw["imag"]).T
    if ds.nbytes > lazy_bytes and cls != "logical":
        return ds  # opened lazily once the file's small arrays (wavelengths) are known
    data = ds[()].T
    return data.astype(bool) if cls == "logical" else data


def _h5_lazy(ds, arrays: dict):
    """A big dataset as a dask array in MATLAB's orientation, in blocks of whole spectra when
    the band axis the layer rules will give it (from ``arrays``, the file's read arrays) fits."""
    import dask.array as da

    shape = ds.shape[::-1]  # as MATLAB shows it
    band = ds.ndim - 1 - cube_band_axis(shape, arrays) if ds.ndim >= 3 else None
    chunks = block_chunks(ds.shape, ds.dtype.itemsize, ds.chunks, band_axis=band)
    return da.from_array(ds, chunks=chunks).T


def _h5_sparse(group) -> np.ndarray:
    shape = (int(group.attrs["MATLAB_sparse"]), len(group["jc"]) - 1)
    data = group["data"][()] if "data" in group else np.ones(len(group["ir"]), bool)
    matrix = sparse.csc_matrix((data, group["ir"][()], group["jc"][()]), shape=shape)
    return matrix.toarray()


def _describe_h5(obj, name: str) -> str:
    cls = _matlab_class(obj) or ("struct" if isinstance(obj, h5py.Group) else "?")
    shape = "x".join(map(str, getattr(obj, "shape", ())[::-1]))
    return f"{name} ({shape} {cls})" if shape else f"{name} ({cls})"


def _walk(value, name: str = ""):
    """Yield (name, numeric ndarray) for every numeric array inside dicts, structs and cells."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not key.startswith("__"):
                yield from _walk(item, f"{name}.{key}" if name else key)
    elif sparse.issparse(value):
        yield name, value.toarray()
    elif isinstance(value, np.ndarray) and value.dtype.names:  # struct (array)
        for i, element in enumerate(value.ravel(order="F")):
            base = name if value.size == 1 else f"{name}[{i + 1}]"
            for key in value.dtype.names:
                yield from _walk(element[key], f"{base}.{key}")
    elif isinstance(value, np.ndarray) and value.dtype == object:  # cell
        for i, element in enumerate(value.ravel(order="F")):
            yield from _walk(element, f"{name}[{i + 1}]")
    elif isinstance(value, np.ndarray) and (
        np.issubdtype(value.dtype, np.number) or value.dtype == bool
    ):
        if value.size:
            # napari and vispy want native byte order (v4/v5 files may be big-endian)
            yield name, value.astype(value.dtype.newbyteorder("="), copy=False)


def _describe(variables: dict) -> str:
    """One line listing what the file holds: name (shape type) for each variable."""
    parts = []
    for key, value in variables.items():
        if key.startswith("__"):
            continue
        shape = "x".join(map(str, getattr(value, "shape", ())))
        kind = getattr(getattr(value, "dtype", None), "name", type(value).__name__)
        if isinstance(value, np.ndarray) and value.dtype.names:
            kind = "struct"
        elif isinstance(value, np.ndarray) and value.dtype == object:
            kind = "cell"
        parts.append(f"{key} ({shape} {kind})")
    return ", ".join(parts) or "no variables"


_MATLAB_CLASS = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    **{
        np.dtype(t): np.dtype(t).name
        for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)
    },
}


def write_mat73(path: str | Path, variables: dict[str, np.ndarray | str]) -> Path:
    """Write numeric arrays to a MATLAB v7.3 (HDF5) file that MATLAB and :func:`read_mat` open.

    Arrays are stored as MATLAB stores them (axes reversed in HDF5, a ``MATLAB_class``
    attribute, the 128-byte MATLAB header in the HDF5 user block), chunked and compressed.
    Dask arrays are computed and written a few blocks at a time, so a cube larger than memory
    is saved with memory for a few of its blocks. The file appears only when complete: an
    interrupted write leaves no file under ``path``.
    """
    path = Path(path)
    with written_whole(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as f:
            for name, arr in variables.items():
                if isinstance(arr, str):  # MATLAB char: UTF-16 code units, a row
                    codes = np.frombuffer(arr.encode("utf-16-le"), dtype=np.uint16)
                    ds = f.create_dataset(name, data=codes.reshape(-1, 1))
                    ds.attrs["MATLAB_class"] = np.bytes_("char")
                    ds.attrs["MATLAB_int_decode"] = np.int32(2)
                    continue
                arr = arr if is_lazy(arr) else np.asarray(arr)
                cls = "logical" if arr.dtype == bool else _MATLAB_CLASS.get(arr.dtype)
                if cls is None:
                    raise ValueError(f"cannot store {name} of dtype {arr.dtype} in a .mat file")
                data = arr.astype(np.uint8) if arr.dtype == bool else arr
                big = data.size > 1
                ds = f.create_dataset(
                    name,
                    shape=data.shape[::-1],
                    dtype=data.dtype,
                    chunks=True if big else None,
                    compression="gzip" if big else None,
                )
                if is_lazy(data):  # block by block, each block transposed as HDF5 stores it
                    store_blocks(
                        data, lambda where, block, ds=ds: ds.__setitem__(where[::-1], block.T)
                    )
                else:
                    ds[...] = data.T
                ds.attrs["MATLAB_class"] = np.bytes_(cls)
                if arr.dtype == bool:
                    ds.attrs["MATLAB_int_decode"] = np.int32(1)
        header = b"MATLAB 7.3 MAT-file, written by napari-spectral-clusters, HDF5 schema 1.00 ."
        with open(tmp, "r+b") as fh:
            fh.write(header.ljust(116, b" ") + bytes(8) + b"\x00\x02" + b"IM")
    return path


#: scipy writes MATLAB v5 files, whose arrays must stay under 2 GiB; larger go to v7.3.
V5_LIMIT = 2**31 - 1


def write_mat(path: str | Path, images: list[ImageData]) -> Path:
    """Write layers to one MATLAB file, one variable per layer, as MATLAB users expect them.

    Cubes are stored rows x cols x bands (MATLAB's convention), RGB images rows x cols x 3,
    labels as integers. Beside a layer ``x`` go ``x_wavelengths``, for labels ``x_colors``
    (k x 3 uint8), ``x_centers``, ``x_std``, ``x_counts``, and ``x_metadata``: a JSON string of
    the kind and parameters (MATLAB's ``jsondecode`` reads it) that :func:`read_mat` uses to
    reopen every layer as it was. MATLAB v5 (compressed) unless an array needs v7.3.
    The file appears only when complete.
    """
    path = Path(path)
    variables = layer_variables(images)
    big = any(is_lazy(v) or getattr(v, "nbytes", 0) > V5_LIMIT for v in variables.values())
    if big:  # lazy layers stream into HDF5, block by block
        return write_mat73(path, variables)
    with written_whole(path) as tmp:
        scipy.io.savemat(tmp, variables, appendmat=False, do_compression=True, oned_as="column")
    return path
