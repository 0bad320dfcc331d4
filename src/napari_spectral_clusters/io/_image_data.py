"""What a reader hands on: arrays with the facts napari and the engine need about them."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np


class ReadError(ValueError):
    """A file could not be opened as images; the message names the file and the reason."""


def reason_without_name(reason: str, name: str) -> str:
    """A read error's reason for a line or notification that names the file ``name``
    already: "x.mat: not a ..." -> "not a ...", "x.mat could not be read ..." -> "it could
    not be read ..."; a reason whose name is followed by more than a verb is kept whole
    ("x.mat (v7.3) holds ...")."""
    if reason.startswith(f"{name}: "):
        return reason[len(name) + 2 :]
    rest = reason[len(name) + 1 :]
    if reason.startswith(f"{name} ") and rest[:1].islower():
        return "it " + rest
    return reason


def what_went_wrong(exc: BaseException) -> str:
    """What a library's exception says, for a message to a user: its text without Python's
    class name ("could not read bytes", not "OSError: could not read bytes"; pypng puts its
    own in the text: "ChunkError: ChunkError: Chunk b'IDAT' too short" was shown), except
    where the text says nothing without it (none, or a KeyError's bare key); on one line.

    >>> from napari_spectral_clusters.io import what_went_wrong
    >>> what_went_wrong(OSError("could not read bytes"))
    'could not read bytes'
    >>> what_went_wrong(ValueError("ValueError: bad chunk"))
    'bad chunk'
    >>> what_went_wrong(ValueError("2 errors:\\n  shape\\n  dtype"))
    '2 errors: shape dtype'
    >>> what_went_wrong(KeyError("data")), what_went_wrong(MemoryError())
    ("KeyError: 'data'", 'MemoryError')
    """
    text, name = " ".join(str(exc).split()), type(exc).__name__  # one line
    text = text.removeprefix(f"{name}: ")
    if not text:
        return name
    return f"{name}: {text}" if isinstance(exc, KeyError) else text


@dataclass(frozen=True)
class ImageData:
    """One array read from a file, ready to become a napari layer.

    Attributes
    ----------
    name : str
        Variable name (``struct.field``, ``cell[2]``) or file stem.
    data : ndarray
        The array, band axis first for spectral cubes.
    kind : {"image", "labels"}
        Intensities, or integer classes such as a ground truth.
    rgb : bool
        Last axis is RGB(A) colour.
    channel_axis : int or None
        Axis of ``data`` holding each pixel's features (bands or colours), None for greyscale
        images and labels.
    axis_labels : tuple of str
        One name per axis of ``data``.
    metadata : dict
        Source path, wavelengths (``wavelengths``, ``wavelength_unit``) and similar facts.
    layer_state : dict
        How the layer was shown when our writers saved it, restored on reading: ``scale``,
        ``translate``, ``units`` (one per axis napari shows, RGB colour axis excluded) and
        ``features`` (a table as a dict of equal-length columns, e.g. cluster names); or
        ``visible`` False for a layer that opens hidden.
    named_after_variable : bool
        ``name`` is a variable of a named-array file (MATLAB, zarr), so a layer should also
        name the file; False for pictures (named after their file) and for layers our
        writers saved, which keep the name they were saved with.
    """

    name: str
    data: np.ndarray
    kind: Literal["image", "labels"] = "image"
    rgb: bool = False
    channel_axis: int | None = None
    axis_labels: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict)
    layer_state: dict = field(default_factory=dict)
    named_after_variable: bool = False


def store_blocks(data, put, *, batch: int | None = None) -> None:
    """Compute a dask array a few blocks at a time; ``put(slices, block)`` stores each.

    Peak memory is ``batch`` blocks (default: two per core), whatever the array's size; the
    blocks are computed on the active dask scheduler (a ``dask.distributed`` cluster too).
    """
    import dask
    from dask.array.core import slices_from_chunks

    batch = batch or 2 * (os.cpu_count() or 1)
    where = slices_from_chunks(data.chunks)
    blocks = data.to_delayed().ravel()
    for i in range(0, len(blocks), batch):
        computed = dask.compute(*blocks[i : i + batch])
        for slices, block in zip(where[i : i + batch], computed, strict=True):
            put(slices, block)


#: Metadata entries that are arrays; JSON stores them as lists and they come back as arrays.
_ARRAY_KEYS = ("centers", "std", "colors", "counts", "wavelengths")


def metadata_to_json(metadata: dict) -> str:
    """Layer metadata as JSON text (arrays as lists; what JSON cannot hold is dropped)."""
    return json.dumps(_plain(metadata))


def metadata_from_json(text: str) -> dict:
    """Metadata written by :func:`metadata_to_json`, with its arrays as arrays again."""
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError("metadata is not a mapping")
    for key in _ARRAY_KEYS:
        if key in meta:
            value = _array_entry(key, meta[key])
            if value is None:  # a damaged file's entry: dropped, not trusted
                what = "cluster colours" if key == "colors" else f"saved {key}"
                shown = json.dumps(meta.pop(key))[:40]
                warnings.warn(
                    f"the file's {what} are damaged ({shown}); opening it without them",
                    stacklevel=2,
                )
            else:
                meta[key] = value
    return meta


def _array_entry(key: str, value) -> np.ndarray | None:
    """A metadata list as the array it was, or None if it cannot be one (numbers only,
    finite but for an empty cluster's NaN centre and spread, and for ``colors`` a k x 3
    table of 0..255)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.ndim == 0:
        return None
    if key not in ("centers", "std") and not np.isfinite(arr).all():  # NaN: an empty cluster
        return None
    if key == "colors":
        if (
            arr.ndim != 2
            or arr.shape[1] != 3
            or (arr.size and not 0 <= arr.min() <= arr.max() <= 255)
        ):
            return None
        return arr.astype(np.uint8)
    if key == "counts":
        return arr.astype(np.int64) if np.all(arr == np.round(arr)) else None
    return arr


def _plain(value):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            plain = _plain(v)
            if plain is not _DROP:
                out[str(k)] = plain
        return out
    if isinstance(value, list | tuple):
        return [p for p in map(_plain, value) if p is not _DROP]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.dtype.kind in "biuf" else _DROP
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _DROP


_DROP = object()
