"""MATLAB ``.mat`` files -> spectral cubes, images and ground-truth labels.

Which variables become layers, and how a cube is oriented:

* Arrays inside structs and cells are found too, named ``struct.field`` and ``cell[i]``
  (``i`` counts from 1 in MATLAB's column-major order, as MATLAB's ``c{i}`` does).
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

import re
import warnings
from pathlib import Path

import numpy as np
import scipy.io
from scipy import sparse

from ._image_data import ImageData, ReadError

__all__ = ["read_mat"]

_WAVELENGTH_NAME = re.compile(r"wave|lambda|^wl|wl$|^bands?$|wavenumber|^nm$|freq", re.I)
_LABELS_NAME = re.compile(r"gt|label|class|mask|truth|seg|roi", re.I)
_ROWS_NAME = re.compile(r"^(lines|n_?rows?|rows|height)$", re.I)
_COLS_NAME = re.compile(r"^(cols|n_?cols?|columns|samples|width)$", re.I)


def read_mat(path: str | Path) -> list[ImageData]:
    """Read the images in a MATLAB ``.mat`` file.

    Parameters
    ----------
    path : str or Path
        A MATLAB v4, v5, v6 or v7 file.

    Returns
    -------
    list of ImageData
        Cubes first (band axis first), then 2-D images, then labels.

    Raises
    ------
    ReadError
        The file is not a readable MATLAB file, or holds no image; the message says what it
        holds.
    """
    path = Path(path)
    variables = _load(path)
    arrays = dict(_walk(variables))
    if not arrays:
        raise ReadError(f"{path.name} holds no image: {_describe(variables)}")

    wavelengths = {n: a for n, a in arrays.items() if _is_wavelength_vector(n, a)}
    arrays, bands_first = _unflatten_pixel_matrices(arrays)

    cubes, planes, labels = [], [], []
    for name, arr in arrays.items():
        if np.iscomplexobj(arr):
            warnings.warn(f"{path.name}: {name} is complex; opening its magnitude", stacklevel=2)
            arr = np.abs(arr)
        if arr.ndim >= 3 and min(arr.shape) >= 1 and arr.dtype != bool:
            cubes.append(_cube(name, arr, wavelengths, bands_first=name in bands_first))
    cube_yx = {c.data.shape[-2:] for c in cubes}
    cube_bands = {c.data.shape[0] for c in cubes}
    for name, arr in arrays.items():
        if arr.ndim != 2 or min(arr.shape) < 2 or name in wavelengths:
            continue
        if cube_bands.intersection(arr.shape) and arr.shape not in cube_yx:
            continue  # spectra (e.g. endmembers): one row or column per material
        if _is_labels(name, path.stem, arr, cube_yx):
            labels.append(_labels(name, arr))
        elif not np.iscomplexobj(arr):
            planes.append(ImageData(name, arr, axis_labels=("y", "x")))
    found = cubes + planes + labels
    if not found:
        raise ReadError(f"{path.name} holds no image: {_describe(variables)}")
    return [
        ImageData(
            name=img.name,
            data=img.data,
            kind=img.kind,
            rgb=img.rgb,
            channel_axis=img.channel_axis,
            axis_labels=img.axis_labels,
            metadata={"source": str(path), "variable": img.name, **img.metadata},
        )
        for img in found
    ]


def _load(path: Path) -> dict:
    """All variables of the file, with structs as record arrays and cells as object arrays."""
    try:
        return scipy.io.loadmat(path, squeeze_me=False, mat_dtype=False)
    except NotImplementedError as exc:  # v7.3: HDF5 inside
        raise ReadError(f"{path.name} is a MATLAB v7.3 (HDF5) file: {exc}") from exc
    except FileNotFoundError:
        raise
    except Exception as exc:  # scipy raises ValueError, TypeError, zlib.error, ... on bad files
        raise ReadError(
            f"{path.name} could not be read as a MATLAB file (corrupt or truncated?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


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
            yield name, value


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


def _wavelength_unit(values: np.ndarray) -> str | None:
    """Unit guessed from the range: visible/IR wavelengths in nm or micrometres."""
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
    n_spatial = data.ndim - 1
    spatial = (*(f"axis{i}" for i in range(n_spatial - 3)), "z", "y", "x")[-n_spatial:]
    metadata: dict = {"channel_axis": 0}
    if wl_name is not None:
        wl = np.asarray(wavelengths[wl_name], dtype=np.float64).ravel()
        metadata.update(wavelengths=wl, wavelength_variable=wl_name)
        unit = _wavelength_unit(wl)
        if unit:
            metadata["wavelength_unit"] = unit
    return ImageData(name, data, channel_axis=0, axis_labels=("band", *spatial), metadata=metadata)


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
