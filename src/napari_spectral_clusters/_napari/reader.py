"""npe2 reader: .mat and .png files, .zarr stores -> napari layers; errors as notifications.

A format's library is imported only when a file of that format is opened: napari imports this
module to offer the reader, and a PNG should not wait for h5py, scipy.io, zarr and dask.
"""

from __future__ import annotations

import inspect
import warnings
from functools import cache
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_warning

from ..io import ImageData, ReadError, reason_without_name, what_went_wrong
from ._colors import label_colormap
from .band_readout import follow_current_viewer
from .opening import layer_name, representative_band, robust_contrast

_SUFFIXES = (".mat", ".png", ".zarr")

#: napari's "handled, but no layers" answer: no traceback dialog, no other reader tried.
_NO_LAYERS = [(None,)]


def get_reader(path):
    """Return a reader function when every path is a ``.mat``/``.png`` file or a ``.zarr``
    store, else None."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or any(Path(p).suffix.lower() not in _SUFFIXES for p in paths):
        return None
    return read_files


def _read_one(path) -> list[ImageData]:
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        from ..io.png import read_png

        return [read_png(path)]
    if suffix == ".mat":
        from ..io.mat import read_mat

        return read_mat(path)
    from ..io.zarr import read_zarr

    return read_zarr(path)


def _read_stack(paths) -> list[ImageData]:
    from ..io.png import read_png_stack

    return [read_png_stack(paths)]


def read_files(path):
    """Read the files; a file that cannot be read is reported and skipped, and so is a layer
    napari would refuse (the file's other layers still open).

    Several PNGs at once (napari passes a list when asked to stack) become one stack: one
    band per file for greyscale files.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    if len(paths) > 1 and all(Path(p).suffix.lower() == ".png" for p in paths):
        jobs = [(f"{len(paths)} PNG files", None, lambda: _read_stack(paths))]
    else:
        jobs = [(Path(p).name, Path(p), lambda p=p: _read_one(p)) for p in paths]
    follow_current_viewer()  # its band slider will say the wavelength shown
    layers = []
    for what, path, read in jobs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                images = read()
            except (ReadError, OSError) as exc:
                show_error(f"Cannot open {what}: {reason_without_name(str(exc), what)}")
                continue
        for w in caught:
            show_warning(str(w.message))
        for img in images:
            layer = layer_data(img, path)
            problem = _refused_by_napari(layer)
            if problem:
                show_error(f"Cannot open {img.name} of {what} as a napari layer: {problem}")
            else:
                layers.append(layer)
    _activate_shown_later([data for data, kwargs, _ in layers if kwargs.get("visible", True)])
    return layers or _NO_LAYERS


def _activate_shown_later(shown: list) -> None:
    """Once napari has added the layers (the next turn of the event loop), make the top-most
    layer shown of those opened the active one, when napari made a hidden one active: a
    file's abundance maps go above its cube, hidden, and the layer controls showed a hidden
    map's contrast, not the cube's. The layers are found by their data (napari may rename
    them); a layer the user picked meanwhile stays active."""
    from napari import current_viewer

    viewer = current_viewer()
    if viewer is None or not shown:
        return

    def activate():
        active = viewer.layers.selection.active
        if active is None or active.visible:
            return
        found = [layer for layer in viewer.layers if any(layer.data is d for d in shown)]
        if found:
            viewer.layers.selection.active = found[-1]

    from qtpy.QtCore import QTimer

    # (no parent to tie the timer to: the viewer may close first; napari's layer list of a
    # closed viewer is still a plain list, where this changes nothing anyone sees)
    QTimer.singleShot(0, activate)


def layer_data(img: ImageData, path: Path | None = None) -> tuple:
    """An :class:`ImageData` as a napari ``(data, kwargs, layer_type)`` tuple; a layer of a
    file's variable also names the file ``path``."""
    name = layer_name(img.name, path.stem) if path and img.named_after_variable else img.name
    kwargs = {"name": name, "metadata": dict(img.metadata)}
    if img.axis_labels:
        # napari counts an RGB(A) layer's dimensions without its colour axis
        kwargs["axis_labels"] = tuple(img.axis_labels[:-1] if img.rgb else img.axis_labels)
    if img.kind == "image":
        kwargs["rgb"] = img.rgb
        if not img.rgb and img.channel_axis is not None:  # a cube: contrast for every band
            limits = robust_contrast(img.data, img.channel_axis)
            if limits is not None:
                kwargs["contrast_limits"] = limits
            band = representative_band(img.data, img.channel_axis)
            if band is not None:  # band_readout opens the cube on it
                kwargs["metadata"]["representative_band"] = band
    elif "colors" in img.metadata:  # a clustering we saved: its colours come back
        try:
            kwargs["colormap"] = label_colormap(img.metadata["colors"])
        except (ValueError, TypeError) as exc:  # damaged metadata: default colours
            show_warning(f"{img.name}: {exc}; opening it with napari's own colours")
            del kwargs["metadata"]["colors"]
    accepted = _layer_keywords(img.kind)
    kwargs.update({k: v for k, v in img.layer_state.items() if k in accepted})
    return (img.data, kwargs, img.kind)


@cache
def _layer_keywords(kind: str) -> frozenset:
    """The keywords this napari's layer class takes (``units`` came with napari 0.6)."""
    from napari.layers import Image, Labels

    cls = Labels if kind == "labels" else Image
    return frozenset(inspect.signature(cls.__init__).parameters)


def _refused_by_napari(layer: tuple) -> str | None:
    """Why napari would refuse to make this layer, or None.

    The keywords are tried on a one-pixel stand-in of the same dimensions and type, so the
    check costs the same for a 3 GB cube as for a thumbnail, and never reads lazy data.
    """
    from napari.layers import Layer

    data, kwargs, kind = layer
    stand_in = np.zeros((1,) * data.ndim, dtype=data.dtype)
    if kwargs.get("rgb"):
        stand_in = np.zeros((1,) * (data.ndim - 1) + (data.shape[-1],), dtype=data.dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Layer.create(stand_in, dict(kwargs, metadata={}), kind)
    except Exception as exc:  # napari raises ValueError, TypeError, KeyError... on bad keywords
        return what_went_wrong(exc)
    return None
