"""MATLAB ``.mat`` files -> spectral cubes, images and ground-truth labels.

Which variables become layers, and how a cube is oriented:

* Arrays inside structs and cells are found too, named ``struct.field`` and ``cell[i]``
  (``i`` counts from 1 in MATLAB's column-major order, as MATLAB's ``c{i}`` does).
* v7.3 (HDF5) files are read with h5py and transposed back to MATLAB's axis order, so a cube
  opens the same from every MATLAB version; big variables open lazily (dask).
* A numeric array with 3 or more axes is a cube. Its spectral (band) axis is the axis whose
  length matches a wavelength vector in the file; without one, it is the **first** axis when the
  last two axes have the same length and the first differs, and the **last** axis otherwise
  (MATLAB's rows x cols x bands convention). The cube is returned band axis first.
* A band x pixels matrix with the image size in scalars (``lines``/``cols``,
  ``nRow``/``nCol``, ...), as unmixing datasets store cubes, is reshaped to the cube using
  MATLAB's column-major pixel order.
* A 2-D integer-valued array is a labels layer (ground truth) when its name or the file's says
  so (gt, label, class, mask, truth, ...) or when it is integer-typed with a cube's y x x shape;
  logical arrays are labels too. Other 2-D arrays are images.
* Scalars, strings, vectors and spectra matrices (one axis as long as a cube's bands) are not
  layers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from scipy import sparse

from .._arrays import is_lazy
from ._image_data import (
    ImageData,
    ReadError,
    metadata_from_json,
    metadata_to_json,
    store_blocks,
)
from .files import written_whole

__all__ = ["LAZY_BYTES", "layer_variables", "read_mat", "write_mat", "write_mat73"]

_WAVELENGTH_NAME = re.compile(r"wave|lambda|^wl|wl$|^bands?$|wavenumber|^nm$|freq", re.I)
_LABELS_NAME = re.compile(r"gt|label|class|mask|truth|seg|roi", re.I)
_ROWS_NAME = re.compile(r"^(lines|n_?rows?|rows|height)$", re.I)
_COLS_NAME = re.compile(r"^(cols|n_?cols?|columns|samples|width)$", re.I)


#: v7.3 variables larger than this many bytes open lazily (dask over the HDF5 dataset);
#: the environment variable SPECTRAL_CLUSTERS_LAZY_BYTES overrides it.
LAZY_BYTES = 512 * 2**20


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
    if not path.is_file():
        raise FileNotFoundError(path)
    if h5py.is_hdf5(path):
        arrays, strings, description = _read_v73(path, lazy_bytes)
    else:
        variables = _load(path)
        arrays, description = dict(_walk(variables)), _describe(variables)
        strings = {k: str(v[0]) for k, v in variables.items() if _is_string(v)}
    images = _images(path, arrays, _saved_layers(path, arrays, strings))
    if not images:
        raise ReadError(f"{path.name} holds no image: {description}")
    return images


def lazy_threshold(lazy_bytes: int | None = None) -> int:
    """``lazy_bytes`` as given, else SPECTRAL_CLUSTERS_LAZY_BYTES, else :data:`LAZY_BYTES`."""
    if lazy_bytes is not None:
        return lazy_bytes
    return int(os.environ.get("SPECTRAL_CLUSTERS_LAZY_BYTES", LAZY_BYTES))


def _images(path: Path, arrays: dict, saved: dict, bands_first=frozenset()) -> list[ImageData]:
    """Decide which arrays are cubes, images and labels (rules in the module docstring).

    ``saved`` holds what our own writer recorded about its variables (kind, metadata); they
    are opened as written. Cubes named in ``bands_first`` have their band axis first unless a
    wavelength vector says otherwise.
    """
    wavelengths = {n: a for n, a in arrays.items() if _is_wavelength_vector(n, a)}
    arrays, reshaped = _unflatten_pixel_matrices(arrays)
    bands_first = set(bands_first) | reshaped
    cubes, planes, labels = [], [], []
    for name in [n for n in arrays if n in saved]:
        record = saved[name]
        img = _saved_image(record.get("name", name), arrays.pop(name), record)
        if img.kind == "labels":
            labels.append(img)
        elif img.channel_axis == 0:
            cubes.append(img)
        else:
            planes.append(img)
    for name, arr in arrays.items():
        if arr.ndim >= 3 and arr.dtype != bool:
            arr = _magnitude(path, name, arr)
            cubes.append(_cube(name, arr, wavelengths, bands_first=name in bands_first))
    cubes.sort(key=lambda c: c.data.size)
    cube_yx = {c.data.shape[-2:] for c in cubes}
    cube_bands = {c.data.shape[0] for c in cubes}
    for name, arr in arrays.items():
        if arr.ndim != 2 or min(arr.shape) < 2 or name in wavelengths:
            continue
        if cube_bands.intersection(arr.shape) and arr.shape not in cube_yx:
            continue  # spectra (e.g. endmembers): one row or column per material
        arr = _magnitude(path, name, np.asarray(arr))
        if _is_labels(name, path.stem, arr, cube_yx):
            labels.append(_labels(name, arr))
        else:
            planes.append(ImageData(name, arr, axis_labels=("y", "x")))
    return [
        dataclasses.replace(
            img, metadata={"source": str(path), "variable": img.name, **img.metadata}
        )
        for img in cubes + planes + labels
    ]


#: Companion variables our writer stores beside a layer ``x``: ``x_colors``, ``x_centers``...
_COMPANIONS = ("colors", "centers", "std", "counts", "wavelengths")


def _is_string(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.size == 1


def _saved_layers(path: Path, arrays: dict, strings: dict) -> dict:
    """What our writer recorded: ``x_metadata`` JSON and companion arrays, by layer ``x``.

    The companions are taken out of ``arrays`` so they do not open as layers of their own.
    """
    saved = {}
    for key, text in strings.items():
        base = key.removesuffix("_metadata")
        if base == key or base not in arrays:
            continue
        try:
            record = json.loads(text)
            record["metadata"] = metadata_from_json(json.dumps(record.get("metadata", {})))
        except (ValueError, AttributeError):
            continue  # someone else's string: the variable opens by the usual rules
        for suffix in _COMPANIONS:
            if f"{base}_{suffix}" in arrays:
                value = np.asarray(arrays.pop(f"{base}_{suffix}"))
                if suffix in ("wavelengths", "counts"):
                    value = value.ravel()
                record["metadata"][suffix] = value
        saved[base] = record
    return saved


def _saved_image(name: str, arr: np.ndarray, record: dict) -> ImageData:
    img = _saved_array(name, arr, record)
    state = record.get("layer_state", {})
    return dataclasses.replace(img, layer_state=state if isinstance(state, dict) else {})


def _saved_array(name: str, arr: np.ndarray, record: dict) -> ImageData:
    meta = record.get("metadata", {})
    if record.get("layer") == "labels":
        img = _labels(name, arr)
        return ImageData(name, img.data, kind="labels", axis_labels=img.axis_labels, metadata=meta)
    if record.get("rgb"):
        return ImageData(
            name,
            arr,
            rgb=True,
            channel_axis=arr.ndim - 1,
            axis_labels=("y", "x", "channel"),
            metadata=meta,
        )
    if arr.ndim >= 3:  # written as MATLAB stores cubes: rows x cols x bands
        data = np.moveaxis(arr, -1, 0)
        return ImageData(
            name,
            data,
            channel_axis=0,
            axis_labels=_cube_axis_labels(data.ndim),
            metadata={**meta, "channel_axis": 0},
        )
    return ImageData(name, arr, axis_labels=("y", "x"), metadata=meta)


def _magnitude(path: Path, name: str, arr):
    if not np.iscomplexobj(arr):
        return arr
    warnings.warn(f"{path.name}: {name} is complex; opening its magnitude", stacklevel=3)
    return abs(arr)


def _load(path: Path) -> dict:
    """All variables of a v4-v7 file, with structs as record arrays and cells as object arrays."""
    try:
        return scipy.io.loadmat(path, squeeze_me=False, mat_dtype=False)
    except Exception as exc:  # scipy raises ValueError, TypeError, zlib.error, ... on bad files
        raise ReadError(
            f"{path.name} could not be read as a MATLAB file (corrupt or truncated?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _read_v73(path: Path, lazy_bytes: int) -> tuple[dict, dict, str]:
    """Numeric arrays and strings of a v7.3 (HDF5) file in MATLAB's orientation, and what the
    file holds.

    HDF5 stores MATLAB's column-major arrays with their axes reversed, so every array is
    transposed back. Large ones become dask arrays chunked as the file stores them; they keep
    the file open for as long as they live.
    """
    try:
        f = h5py.File(path, "r")
        arrays = dict(_walk_h5(f, f, "", lazy_bytes))
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
    """Yield (name, array) for numeric arrays in a v7.3 group, struct or cell, recursively."""
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
        import dask.array as da

        return da.from_array(ds, chunks=ds.chunks or "auto").T
    data = ds[()].T
    return data.astype(bool) if cls == "logical" else data


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


def _is_wavelength_vector(name: str, arr: np.ndarray) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return (
        arr.ndim <= 2
        and arr.size > 1
        and arr.size == max(arr.shape)
        and np.issubdtype(arr.dtype, np.number)
        and not np.iscomplexobj(arr)
        and bool(_WAVELENGTH_NAME.search(leaf))
    )


def _wavelength_unit(name: str, values: np.ndarray) -> str | None:
    """Unit from the name (wavenumbers) or the range (wavelengths in nm or micrometres)."""
    if "wavenumber" in name.lower():
        return "cm⁻¹"
    lo, hi = float(np.min(values)), float(np.max(values))
    if 200 <= lo and hi <= 20_000:
        return "nm"
    if 0.2 <= lo and hi <= 20:
        return "µm"
    return None


def _scalar(arrays: dict, pattern: re.Pattern) -> int | None:
    for name, arr in arrays.items():
        if arr.size == 1 and pattern.match(name.rsplit(".", 1)[-1]):
            return int(arr.ravel()[0])
    return None


def _unflatten_pixel_matrices(arrays: dict) -> tuple[dict, set]:
    """Reshape band x pixels matrices to (bands, rows, cols) using size scalars in the file.

    Returns the arrays and the names of those reshaped (their band axis is the first).
    """
    rows, cols = _scalar(arrays, _ROWS_NAME), _scalar(arrays, _COLS_NAME)
    if not rows or not cols:
        return arrays, set()
    out, reshaped = {}, set()
    for name, arr in arrays.items():
        if arr.ndim == 2 and rows * cols in arr.shape and min(arr.shape) > 1:
            bands_first = arr if arr.shape[1] == rows * cols else arr.T
            # MATLAB numbers pixels down the columns: pixel p is at (p % rows, p // rows).
            arr = bands_first.reshape(-1, cols, rows).transpose(0, 2, 1)
            reshaped.add(name)
        out[name] = arr
    return out, reshaped


def _cube(name: str, arr: np.ndarray, wavelengths: dict, *, bands_first: bool) -> ImageData:
    axis, wl_name = _spectral_axis(arr, wavelengths)
    if bands_first and wl_name is None:
        axis = 0
    data = np.moveaxis(arr, axis, 0)
    metadata: dict = {"channel_axis": 0}
    if wl_name is not None:
        wl = np.asarray(wavelengths[wl_name], dtype=np.float64).ravel()
        metadata.update(wavelengths=wl, wavelength_variable=wl_name)
        unit = _wavelength_unit(wl_name, wl)
        if unit:
            metadata["wavelength_unit"] = unit
    return ImageData(
        name, data, channel_axis=0, axis_labels=_cube_axis_labels(data.ndim), metadata=metadata
    )


def _cube_axis_labels(ndim: int) -> tuple[str, ...]:
    """Axis names of a band-first cube: band, then (..., z,) y, x."""
    n_spatial = ndim - 1
    spatial = (*(f"axis{i}" for i in range(n_spatial - 3)), "z", "y", "x")[-n_spatial:]
    return ("band", *spatial)


def _spectral_axis(arr: np.ndarray, wavelengths: dict) -> tuple[int, str | None]:
    for wl_name, wl in wavelengths.items():
        matches = [i for i, n in enumerate(arr.shape) if n == wl.size]
        if len(matches) == 1:
            return matches[0], wl_name
    if arr.shape[-1] == arr.shape[-2] != arr.shape[0]:
        return 0, None
    return arr.ndim - 1, None


def _is_labels(name: str, stem: str, arr: np.ndarray, cube_yx: set) -> bool:
    if arr.dtype == bool:
        return True
    integral = np.issubdtype(arr.dtype, np.integer) or bool(
        np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    )
    if not integral or np.min(arr) < 0:
        return False
    named = bool(_LABELS_NAME.search(name.rsplit(".", 1)[-1]) or _LABELS_NAME.search(stem))
    return named or (np.issubdtype(arr.dtype, np.integer) and arr.shape in cube_yx)


def _labels(name: str, arr: np.ndarray) -> ImageData:
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        top = int(np.max(arr))
        arr = arr.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
    return ImageData(name, arr, kind="labels", axis_labels=("y", "x"))


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


def layer_variables(images: list[ImageData]) -> dict:
    """Layers as named arrays and strings, as :func:`write_mat` stores them (dask stays lazy).

    A layer ``x`` gives ``x`` (cubes rows x cols x bands), its companions and ``x_metadata``.
    """
    variables: dict = {}
    for img in images:
        var = _matlab_name(img.name, variables)
        data = img.data if is_lazy(img.data) else np.asarray(img.data)
        if data.dtype == np.float16:
            data = data.astype(np.float32)
        if img.kind == "image" and not img.rgb and img.channel_axis is not None:
            data = np.moveaxis(data, img.channel_axis, -1)
        variables[var] = data if is_lazy(data) else np.ascontiguousarray(data)
        meta = dict(img.metadata)
        for suffix in _COMPANIONS:
            if suffix in meta and (suffix == "wavelengths" or img.kind == "labels"):
                variables[f"{var}_{suffix}"] = np.asarray(meta.pop(suffix))
        meta.pop("channel_axis", None)
        record = {
            "layer": img.kind,
            "rgb": bool(img.rgb),
            "name": img.name,
            "metadata": meta,
            "layer_state": img.layer_state,
        }
        variables[f"{var}_metadata"] = metadata_to_json(record)
    return variables


def _matlab_name(name: str, taken: dict) -> str:
    """A valid, unused MATLAB variable name made from a layer name."""
    var = re.sub(r"\W+", "_", name).strip("_") or "layer"
    if not var[0].isalpha():
        var = f"x{var}"
    var = var[:50]
    unique, n = var, 2
    while unique in taken:
        unique, n = f"{var}_{n}", n + 1
    return unique
