"""npe2 reader: .mat and .png files, .zarr stores -> napari layers; errors as notifications."""

from __future__ import annotations

import warnings
from pathlib import Path

from napari.utils.notifications import show_error, show_warning

from ..io import ImageData, ReadError, read_mat, read_png
from ..io.png import read_png_stack
from ..io.zarr import read_zarr
from ._colors import label_colormap

_READERS = {".mat": read_mat, ".png": lambda path: [read_png(path)], ".zarr": read_zarr}

#: napari's "handled, but no layers" answer: no traceback dialog, no other reader tried.
_NO_LAYERS = [(None,)]


def get_reader(path):
    """Return a reader function when every path is a ``.mat``/``.png`` file or a ``.zarr``
    store, else None."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or any(Path(p).suffix.lower() not in _READERS for p in paths):
        return None
    return read_files


def read_files(path):
    """Read the files; a file that cannot be read is reported and skipped.

    Several PNGs at once (napari passes a list when asked to stack) become one stack: one
    band per file for greyscale files.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    if len(paths) > 1 and all(Path(p).suffix.lower() == ".png" for p in paths):
        jobs = [(f"{len(paths)} PNG files", lambda: [read_png_stack(paths)])]
    else:
        jobs = [(Path(p).name, lambda p=p: _READERS[Path(p).suffix.lower()](p)) for p in paths]
    layers = []
    for what, read in jobs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                images = read()
            except (ReadError, OSError) as exc:
                show_error(f"Cannot open {what}: {exc}")
                continue
        for w in caught:
            show_warning(str(w.message))
        layers.extend(layer_data(img) for img in images)
    return layers or _NO_LAYERS


def layer_data(img: ImageData) -> tuple:
    """An :class:`ImageData` as a napari ``(data, kwargs, layer_type)`` tuple."""
    kwargs = {"name": img.name, "metadata": dict(img.metadata)}
    if img.axis_labels:
        kwargs["axis_labels"] = img.axis_labels
    if img.kind == "image":
        kwargs["rgb"] = img.rgb
    elif "colors" in img.metadata:  # a clustering we saved: its colours come back
        kwargs["colormap"] = label_colormap(img.metadata["colors"])
    return (img.data, kwargs, img.kind)
