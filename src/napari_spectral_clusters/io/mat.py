"""MATLAB ``.mat`` files (v4 to v7.3) <-> named arrays, which become layers by the rules of
:mod:`napari_spectral_clusters.io.layers`.

* Arrays inside structs and cells are found too, named ``struct.field`` and ``cell[i]``
  (``i`` counts from 1 in MATLAB's column-major order, as MATLAB's ``c{i}`` does).
* v7.3 (HDF5) files are read with h5py and transposed back to MATLAB's axis order, so a cube
  opens the same from every MATLAB version; big variables open lazily (dask).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from scipy import sparse

from .._arrays import is_lazy
from ._image_data import ImageData, ReadError, store_blocks, what_went_wrong
from .blocks import block_chunks
from .contained import parse_contained
from .files import written_whole
from .inputs import check_file, eager_bytes, misnamed
from .layers import (
    LAZY_BYTES,
    cube_band_axis,
    images_from_arrays,
    layer_variables,
    lazy_threshold,
)
from .mat5 import dense_sparse

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

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.io import read_mat, write_mat
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_spectral_clusters.io import ImageData
    >>> cube = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # bands, rows, columns
    >>> wavelengths = {"wavelengths": np.array([500.0, 600.0])}
    >>> img = ImageData("cube", cube, channel_axis=0, metadata=wavelengths)
    >>> path = write_mat(Path(tempfile.mkdtemp()) / "cube.mat", [img])
    >>> [(back.name, back.data.shape, back.channel_axis) for back in read_mat(path)]
    [('cube', (2, 3, 4), 0)]
    >>> read_mat(path)[0].metadata["wavelengths"].tolist()
    [500.0, 600.0]
    """
    path = Path(path)
    lazy_bytes = lazy_threshold(lazy_bytes)
    if path.is_dir():
        raise ReadError(f"{path.name} is a folder, not a MATLAB file")
    check_file(path)
    string_lists = {}  # cells of strings: names of a stack's planes (v7.3 keeps references)
    if h5py.is_hdf5(path):
        arrays, strings, description = _read_v73(path, lazy_bytes)
    elif (wrong := misnamed(path, "MATLAB file")) is not None:
        raise ReadError(wrong)
    else:  # scipy's compiled reader can crash on a damaged file: it runs in a child process
        arrays, extras = parse_contained("mat-v5", path)
        strings, description = extras["strings"], extras["description"]
        string_lists = extras["string_lists"]
    images = images_from_arrays(path, arrays, strings, string_lists=string_lists)
    if not images:
        raise ReadError(f"{path.name} holds no image: {description}")
    return images


def _read_v73(path: Path, lazy_bytes: int) -> tuple[dict, dict, str]:
    """Numeric arrays and strings of a v7.3 (HDF5) file in MATLAB's orientation, and what the
    file holds.

    HDF5 stores MATLAB's column-major arrays with their axes reversed, so every array is
    transposed back. Large ones become dask arrays of blocks coalesced from the file's chunks
    (see :func:`~napari_spectral_clusters.io.blocks.block_chunks`); they keep the file open
    for as long as they live. Only what is inside the file is read: external and soft links
    are skipped with a warning, and so are cycles and nesting deeper than MAX_DEPTH.
    """
    try:
        f = h5py.File(path, "r")
        walk = _H5Walk(f, lazy_bytes, eager_bytes())
        found = dict(walk(f, ""))
        read = {k: v for k, v in found.items() if not isinstance(v, h5py.Dataset)}
        arrays = {k: read[k] if k in read else _h5_lazy(v, read) for k, v in found.items()}
        strings = {}
        members = list(walk.members(f))  # the file's variables, once
        for key, obj in members:
            if isinstance(obj, h5py.Dataset) and _matlab_class(obj) == "char":
                if obj.dtype.kind in "iu" and obj.size <= 2**20 and not _outside(obj):
                    codes = np.asarray(obj[()]).T.ravel()
                    strings[key] = "".join(map(chr, np.clip(codes, 0, 0x10FFFF)))
        description = ", ".join(_describe_h5(obj, key) for key, obj in members)
    except ReadError as exc:
        raise ReadError(f"{path.name}: {exc}") from None
    except (
        OSError,
        KeyError,
        ValueError,
        TypeError,
        RuntimeError,
        RecursionError,
        MemoryError,
    ) as exc:
        raise ReadError(
            f"{path.name} could not be read as a MATLAB v7.3 (HDF5) file: {what_went_wrong(exc)}"
        ) from None
    for warning in walk.skipped:
        warnings.warn(f"{path.name}: {warning}", stacklevel=2)
    return arrays, strings, description or "no variables"


#: Structs and cells nested deeper than this are not read (MATLAB files rarely nest 5 deep).
MAX_DEPTH = 32


class _H5Walk:
    """The numeric arrays of a v7.3 file's groups, structs and cells, without leaving it."""

    def __init__(self, f, lazy_bytes: int, limit: int):
        self.f, self.lazy_bytes, self.limit = f, lazy_bytes, limit
        self.seen: set = set()
        self.skipped: list[str] = []

    def members(self, group):
        """(name, object) of a group's members, links that leave the file skipped."""
        for key in group:
            if key == "#refs#":
                continue
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                self._skip(f"did not follow external link {key} to {link.filename}")
                continue
            if isinstance(link, h5py.SoftLink):
                self._skip(f"did not follow soft link {key} to {link.path}")
                continue
            yield _h5_name(key), group[key]

    def _skip(self, what: str) -> None:
        if what not in self.skipped:
            self.skipped.append(what)

    def __call__(self, obj, name: str, depth: int = 0):
        """Yield (name, array) for numeric arrays in a group, struct or cell, recursively;
        arrays larger than ``lazy_bytes`` as their unread h5py dataset."""
        addr = h5py.h5o.get_info(obj.id).addr
        if addr in self.seen:  # a reference cycle, or an object reached twice
            return
        self.seen.add(addr)
        if depth > MAX_DEPTH:
            self._skip(f"did not read {name}: nested more than {MAX_DEPTH} deep")
            return
        if isinstance(obj, h5py.Group):
            if "MATLAB_sparse" in obj.attrs:
                yield name, _h5_sparse(obj, name, self.limit)
                return
            for key, member in self.members(obj):
                yield from self(member, f"{name}.{key}" if name else key, depth + 1)
            return
        if _outside(obj):
            self._skip(f"did not read {name}: its data is stored in another file")
            return
        cls = _matlab_class(obj)
        if obj.attrs.get("MATLAB_empty", 0):
            return
        if cls == "cell":
            if obj.dtype != h5py.ref_dtype:
                raise ReadError(f"cell {name} holds no references")
            if obj.size > MAX_CELL_ITEMS:
                raise ReadError(
                    f"cell {name} holds {obj.size:,} items; at most {MAX_CELL_ITEMS:,}"
                )
            refs = obj[()].T.ravel(order="F")  # MATLAB's linear (column-major) order
            for i, ref in enumerate(refs):
                if not ref:
                    continue
                target = self.f[ref]
                if target.file.filename != self.f.filename:
                    self._skip(f"did not follow {name}[{i + 1}] out of the file")
                    continue
                yield from self(target, f"{name}[{i + 1}]", depth + 1)
        elif cls in _H5_NUMERIC:
            array = _h5_array(obj, cls, self.lazy_bytes, self.limit, name)
            if array is not None:
                yield name, array


#: Items of a cell read at most (each may hold an array); a damaged file declaring billions
#: would keep the reader busy for hours.
MAX_CELL_ITEMS = 100_000


def _outside(ds) -> bool:
    """Whether a dataset's bytes live outside this file (external raw storage, or a virtual
    dataset mapping other files): they are not read."""
    if not isinstance(ds, h5py.Dataset):
        return False
    return bool(ds.external) or bool(getattr(ds, "is_virtual", False))


def _h5_name(key: str) -> str:
    """A member's name as text (HDF5 names are bytes; a damaged file's need not be UTF-8)."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _h5_array(ds, cls: str, lazy_bytes: int, limit: int, name: str):
    """A numeric dataset: read, or (above ``lazy_bytes``) left unread to open lazily; None
    for a dataset whose values are not numbers (a damaged file's string "double")."""
    dtype = ds.dtype
    if dtype.names and {"real", "imag"} <= set(dtype.names):  # complex
        if ds.nbytes > limit:
            raise ReadError(f"complex variable {name} is larger than a file may take whole")
        raw = ds[()]
        return (raw["real"] + 1j * raw["imag"]).T
    if dtype.kind not in "biuf":
        return None
    if ds.nbytes > lazy_bytes:
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
    lazy = da.from_array(ds, chunks=chunks).T
    return lazy.astype(bool) if _matlab_class(ds) == "logical" else lazy


def _h5_sparse(group, name: str, limit: int) -> np.ndarray:
    parts = {}
    for key in ("ir", "jc", "data"):
        if key not in group:
            continue
        if not isinstance(group.get(key, getlink=True), h5py.HardLink):
            raise ReadError(f"sparse variable {name} links outside itself; not read")
        part = group[key]
        if not isinstance(part, h5py.Dataset) or _outside(part) or part.nbytes > limit:
            raise ReadError(f"sparse variable {name} is damaged or stored outside the file")
        parts[key] = part
    if "ir" not in parts or "jc" not in parts:
        raise ReadError(f"sparse variable {name} is damaged: its index arrays are missing")
    rows = int(np.asarray(group.attrs["MATLAB_sparse"]).ravel()[0])
    shape = (rows, len(parts["jc"]) - 1)
    ir = parts["ir"]
    data = parts["data"][()] if "data" in parts else np.ones(len(ir), bool)
    if len(data) != len(ir) or rows < 0:
        raise ReadError(f"sparse variable {name} is damaged: its parts do not agree")
    matrix = sparse.csc_matrix((data, ir[()], parts["jc"][()]), shape=shape)
    return dense_sparse(matrix, name, limit)


def _describe_h5(obj, name: str) -> str:
    cls = _matlab_class(obj) or ("struct" if isinstance(obj, h5py.Group) else "?")
    shape = "x".join(map(str, getattr(obj, "shape", ())[::-1]))
    return f"{name} ({shape} {cls})" if shape else f"{name} ({cls})"


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
