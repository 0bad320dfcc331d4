"""MATLAB v4-v7 (not HDF5) files -> named numeric arrays, with scipy.io.

Run in a child process by :mod:`.contained`: scipy's compiled reader can crash on a damaged
file, and this module imports only numpy and scipy (what the child needs, quickly).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import scipy.io
from scipy import sparse

from ._image_data import ReadError, what_went_wrong

__all__ = ["dense_sparse", "parse_v5"]


def parse_v5(path: Path, *, limit: int) -> tuple[dict[str, np.ndarray], dict]:
    """The numeric arrays of a v4-v7 file, and its strings and description (run by
    :func:`~napari_spectral_clusters.io.contained.parse_contained` in a child process)."""
    variables = _load(path)
    arrays = dict(_walk(variables, limit=limit))
    strings = {k: str(v[0]) for k, v in variables.items() if _is_string(v)}
    # cells of strings (material or class names), in MATLAB's column-major order
    string_lists = {
        k: [str(item[0]) for item in v.ravel(order="F")]
        for k, v in variables.items()
        if _is_cell(v) and v.size and all(map(_is_string, v.flat))
    }
    description = _describe(variables)
    extras = {"strings": strings, "string_lists": string_lists, "description": description}
    return arrays, extras


def _is_cell(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == object


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
            f"{what_went_wrong(exc)}"
        ) from exc


def dense_sparse(matrix, name: str, limit: int) -> np.ndarray:
    """A sparse matrix made dense, after checking its indices (a damaged file's row index
    past the end would make ``toarray()`` write outside its buffer) and its dense size."""
    rows, cols = matrix.shape
    if rows * cols * matrix.dtype.itemsize > limit:
        raise ReadError(
            f"sparse variable {name} of {rows}x{cols} would take "
            f"{rows * cols * matrix.dtype.itemsize / 2**30:.1f} GiB as an image, more than the "
            f"{limit / 2**30:.1f} GiB a file may take when read whole"
        )
    try:
        matrix.check_format(full_check=True)  # scipy's own bounds and order checks
    except ValueError as exc:
        raise ReadError(f"sparse variable {name} is damaged: {exc}") from None
    return matrix.toarray()


def _walk(value, name: str = "", *, limit: int):
    """Yield (name, numeric ndarray) for every numeric array inside dicts, structs and cells;
    sparse matrices checked and made dense only if that takes at most ``limit`` bytes."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not key.startswith("__"):
                yield from _walk(item, f"{name}.{key}" if name else key, limit=limit)
    elif sparse.issparse(value):
        yield name, dense_sparse(value, name, limit)
    elif isinstance(value, np.ndarray) and value.dtype.names:  # struct (array)
        for i, element in enumerate(value.ravel(order="F")):
            base = name if value.size == 1 else f"{name}[{i + 1}]"
            for key in value.dtype.names:
                yield from _walk(element[key], f"{base}.{key}", limit=limit)
    elif _is_cell(value):
        for i, element in enumerate(value.ravel(order="F")):
            yield from _walk(element, f"{name}[{i + 1}]", limit=limit)
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
        elif _is_cell(value):
            kind = "cell"
        parts.append(f"{key} ({shape} {kind})")
    return ", ".join(parts) or "no variables"
