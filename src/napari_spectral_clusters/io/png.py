"""PNG pictures <-> arrays: colour as RGB(A) with alpha kept, greyscale as a plain image."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._image_data import ImageData, ReadError

__all__ = ["read_png", "write_png"]


def read_png(path: str | Path) -> ImageData:
    """Read a PNG file.

    Colour and palette images open as RGB, or RGBA when they carry transparency; greyscale
    opens as a 2-D image (greyscale with alpha as RGBA, so the alpha is kept).

    Raises
    ------
    ReadError
        The file is not a readable PNG image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise ReadError(f"{path.name} is not a PNG file (it is {im.format})")
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("LA", "PA") or (mode == "L" and "transparency" in im.info):
                im = im.convert("RGBA")
            elif mode == "1":
                im = im.convert("L")
            data = np.asarray(im)
    except ReadError:
        raise
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ReadError(
            f"{path.name} could not be read as a PNG image (corrupt or truncated?): {exc}"
        ) from exc
    rgb = data.ndim == 3
    return ImageData(
        name=path.stem,
        data=data,
        rgb=rgb,
        channel_axis=2 if rgb else None,
        axis_labels=("y", "x", "channel") if rgb else ("y", "x"),
        metadata={"source": str(path), "png_mode": mode},
    )


def write_png(path: str | Path, data: np.ndarray) -> Path:
    """Write a 2-D labels/greyscale array or an (M, N, 3|4) uint8 RGB(A) image as PNG.

    The file appears only when complete (written beside it, then renamed), so a failed write
    leaves no half-written file.
    """
    path = Path(path)
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[2] in (3, 4):
        if data.dtype != np.uint8:
            raise ValueError(f"RGB(A) PNGs are written from uint8 arrays, not {data.dtype}")
        image = Image.fromarray(data, "RGBA" if data.shape[2] == 4 else "RGB")
    elif data.ndim == 2:
        if data.min(initial=0) < 0 or data.max(initial=0) > 65535:
            raise ValueError("PNG holds values 0..65535 only")
        if data.max(initial=0) < 256:
            image = Image.fromarray(data.astype(np.uint8), "L")
        else:
            image = Image.fromarray(data.astype(np.uint16))  # mode I;16
    else:
        raise ValueError(f"cannot write an array of shape {data.shape} as PNG")
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
