"""PNG pictures <-> arrays: colour as RGB(A) with alpha kept, greyscale as a plain image.

Every colour type and bit depth opens: 1-8-bit greyscale as uint8, 16-bit greyscale as uint16,
palette as RGB (RGBA when it has transparency), greyscale + alpha as RGBA, 16-bit images kept
at 16 bits (Pillow reduces 16-bit colour to 8, so 16-bit files are decoded with pypng); a
tRNS transparent colour becomes an alpha channel. Animated PNGs open
as a stack of frames; several same-sized files as one stack (one band per file).
"""

from __future__ import annotations

import io
import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence
from PIL.PngImagePlugin import PngInfo

from ._image_data import (
    ImageData,
    ReadError,
    metadata_from_json,
    metadata_to_json,
    what_went_wrong,
)
from .files import written_whole
from .inputs import check_file, eager_bytes, misnamed

__all__ = ["read_png", "read_png_stack", "write_labels_png", "write_png"]

#: tEXt key under which our writers keep a layer's kind and metadata (JSON), so our reader
#: reopens a saved labels layer as labels with its colours, parameters and centres.
TEXT_KEY = "napari-spectral-clusters"

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path: str | Path) -> ImageData:
    """Read a PNG file.

    Returns
    -------
    ImageData
        ``(M, N)`` greyscale or ``(M, N, 3|4)`` RGB(A) (``rgb=True``); animated PNGs gain a
        leading frame axis.

    Raises
    ------
    ReadError
        The file is not a readable PNG image, or is too large to decode (more pixels than
        Pillow's ``Image.MAX_IMAGE_PIXELS``): the message gives its size.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.io import read_png, write_png
    >>> import tempfile
    >>> from pathlib import Path
    >>> rgba = np.zeros((2, 3, 4), np.uint8)
    >>> rgba[0, 0] = (255, 0, 0, 128)  # a half-transparent red pixel
    >>> path = write_png(Path(tempfile.mkdtemp()) / "tiny.png", rgba)
    >>> img = read_png(path)
    >>> img.rgb, img.data.shape, img.data[0, 0].tolist()
    (True, (2, 3, 4), [255, 0, 0, 128])
    """
    path = check_file(path)
    width, height, bit_depth, color_type = _header(path)
    _check_size(path, width, height, bit_depth, color_type)
    try:
        try:
            saved = _saved_layer(path)
        except ReadError:
            raise
        except Exception:  # damaged chunks: decoding below says what is wrong
            saved = None
        if saved is not None and saved.get("layer") == "labels":
            return _read_saved_labels(path, saved)  # Pillow decodes these fast, at 16 bits too
        if bit_depth == 16:
            _check_16bit_size(path, width, height)
            frames, mode = _read_16bit(path)
        else:
            frames, mode = _read_pillow(path, bit_depth)
    except ReadError:
        raise
    except Exception as exc:  # Pillow/pypng/zlib each raise their own on damaged data
        raise ReadError(
            f"{path.name} could not be read as a PNG image (corrupt or truncated?): "
            f"{what_went_wrong(exc)}"
        ) from exc
    data = frames[0] if len(frames) == 1 else np.stack(frames)
    rgb = frames[0].ndim == 3
    frame_axis = ("frame",) if len(frames) > 1 else ()
    restored = (saved or {}).get("metadata", {})
    return ImageData(
        name=path.stem,
        data=data,
        rgb=rgb,
        channel_axis=data.ndim - 1 if rgb else None,
        axis_labels=(*frame_axis, "y", "x", "channel") if rgb else (*frame_axis, "y", "x"),
        metadata={**restored, "source": str(path), "png_mode": mode, "bit_depth": bit_depth},
        layer_state=_layer_state(saved),
    )


def _layer_state(saved: dict | None) -> dict:
    state = (saved or {}).get("layer_state", {})
    return state if isinstance(state, dict) else {}


def _saved_layer(path: Path) -> dict | None:
    """The kind and metadata our writers stored in the file, if they wrote it."""
    with Image.open(path) as im:
        text = getattr(im, "text", {}).get(TEXT_KEY)
    if text is None:
        return None
    try:
        saved = metadata_from_json(text)
        saved["metadata"] = metadata_from_json(json.dumps(saved.get("metadata", {})))
    except ValueError as exc:
        raise ReadError(f"{path.name}: its {TEXT_KEY} metadata is damaged: {exc}") from exc
    return saved


def _read_saved_labels(path: Path, saved: dict) -> ImageData:
    """A labels PNG we wrote: palette indices (or 16-bit values) are the labels."""
    with Image.open(path) as im:
        im.load()
        data = np.asarray(im)
    data = data.astype(np.uint8 if data.max(initial=0) < 256 else np.uint16)
    return ImageData(
        name=path.stem,
        data=data,
        kind="labels",
        axis_labels=("y", "x"),
        metadata={**saved["metadata"], "source": str(path)},
        layer_state=_layer_state(saved),
    )


def read_png_stack(paths: list[str | Path]) -> ImageData:
    """Read several same-sized PNGs as one stack along a new first axis.

    Greyscale files become a spectral cube, one band per file (``channel_axis=0``), ready
    to cluster; colour files become a stack of RGB(A) images.

    Raises
    ------
    ReadError
        A file cannot be read, or the files differ in size, colour type or bit depth.
    """
    images = [read_png(p) for p in paths]
    first = images[0]
    for img in images[1:]:
        if (img.data.shape, img.data.dtype) != (first.data.shape, first.data.dtype):
            raise ReadError(
                f"cannot stack {Path(paths[0]).name} ({_shape(first)}) with "
                f"{Path(img.metadata['source']).name} ({_shape(img)}): sizes or types differ"
            )
    data = np.stack([img.data for img in images])
    # the shared start of the file names ("scene_band0", "scene_band1" -> "scene_band")
    name = os.path.commonprefix([img.name for img in images]).rstrip("_-. ") or first.name  # noqa: RUF071
    meta = {"sources": [img.metadata["source"] for img in images]}
    if first.rgb:
        return ImageData(
            name,
            data,
            rgb=True,
            channel_axis=data.ndim - 1,
            axis_labels=("file", *first.axis_labels),
            metadata=meta,
        )
    return ImageData(
        name,
        data,
        channel_axis=0,
        axis_labels=("band", *first.axis_labels),
        metadata={**meta, "channel_axis": 0},
    )


def _shape(img: ImageData) -> str:
    return f"{'x'.join(map(str, img.data.shape))} {img.data.dtype}"


def _header(path: Path) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type from the IHDR chunk, without decoding."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != _SIGNATURE or head[12:16] != b"IHDR":
        wrong = misnamed(path, "PNG file")
        if wrong is not None:
            raise ReadError(wrong)
        raise ReadError(f"{path.name} is not a PNG file (no PNG signature and header)")
    width, height, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
    return width, height, bit_depth, color_type


def _check_size(path: Path, width: int, height: int, bit_depth: int, color_type: int):
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color_type, 4)
        decoded = width * height * channels * max(bit_depth, 8) // 8
        raise ReadError(
            f"{path.name} is {width} x {height} pixels ({decoded / 2**30:.1f} GiB decoded), "
            f"more than the {limit:,} pixels allowed (PIL.Image.MAX_IMAGE_PIXELS); "
            "refusing to decode it"
        )


def _read_pillow(path: Path, bit_depth: int) -> tuple[list[np.ndarray], str]:
    """The frames of a PNG (one unless animated) and its Pillow mode."""
    with warnings.catch_warnings():
        # sizes are checked above against the same limit, with a clearer message
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            if im.format != "PNG":
                raise ReadError(f"{path.name} is not a PNG file (it is {im.format})")
            mode = im.mode
            n_frames = getattr(im, "n_frames", 1)
            decoded = n_frames * im.width * im.height * 4 * max(bit_depth, 8) // 8
            if decoded > eager_bytes():  # an APNG of 3,000 tiny frames on a 2000^2 canvas
                raise ReadError(
                    f"{path.name} has {n_frames} frames of {im.width} x {im.height} "
                    f"({decoded / 2**30:.1f} GiB decoded), more than the "
                    f"{eager_bytes() / 2**30:.1f} GiB a file may take when read whole"
                )
            frames = [_normalise(frame.copy(), bit_depth) for frame in ImageSequence.Iterator(im)]
    if len({(f.shape, f.dtype) for f in frames}) > 1:
        raise ReadError(f"{path.name}: its frames decode to different sizes or modes")
    return frames, mode


def _normalise(im: Image.Image, bit_depth: int) -> np.ndarray:
    """One frame as an array: palette -> RGB(A), grey + alpha -> RGBA, 1-bit -> 0/255."""
    if im.mode in ("1", "L") and "transparency" in im.info:
        # Pillow compares the tRNS grey level with pixels already scaled to 8 bits, so
        # for 1-4-bit files it misses the transparent pixels: scale the level too.
        grey = np.asarray(im.convert("L"))
        level = im.info["transparency"] * 255 // (2**bit_depth - 1)
        alpha = np.where(grey == level, 0, 255).astype(np.uint8)
        return np.dstack([grey, grey, grey, alpha])
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("LA", "PA") or (im.mode == "RGB" and "transparency" in im.info):
        im = im.convert("RGBA")
    elif im.mode == "1":
        im = im.convert("L")
    return np.asarray(im)


#: 16-bit PNGs are decoded by pypng, in pure Python (~4 million pixels a second here, on
#: napari's main thread): larger ones are refused rather than freezing napari for minutes.
PNG16_PIXELS = 16 * 2**20


def _check_16bit_size(path: Path, width: int, height: int) -> None:
    if width * height > PNG16_PIXELS:
        raise ReadError(
            f"{path.name} is a 16-bit PNG of {width} x {height} pixels, more than the "
            f"{PNG16_PIXELS:,} this reader decodes at 16 bits (it would take minutes); "
            "convert it to TIFF or zarr, or to 8 bits"
        )


def _read_16bit(path: Path) -> tuple[list[np.ndarray], str]:
    """A 16-bit PNG at full depth: grey as uint16 2-D, colour or any alpha as RGB(A) uint16.

    pypng, because Pillow has no 16-bit colour modes (it reduces them to 8 bits); its
    ``asDirect`` also turns a tRNS transparent colour into an alpha channel.
    """
    import png

    with open(path, "rb") as f:  # pypng's filename= leaves the file open
        width, height, rows, info = png.Reader(file=f).asDirect()
        data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    data = data.reshape(height, width, info["planes"])
    if info["greyscale"] and info["alpha"]:  # RGBA, so an RGB layer keeps the alpha
        data = data[..., [0, 0, 0, 1]]
    elif info["greyscale"]:
        data = data[..., 0]
    mode = {2: "I;16", 3: "RGB", 4: "RGBA"}.get(data.ndim if data.ndim == 2 else data.shape[2])
    return [data], mode


def write_png(
    path: str | Path,
    data: np.ndarray,
    *,
    metadata: dict | None = None,
    layer_state: dict | None = None,
) -> Path:
    """Write a 2-D greyscale array or an (M, N, 3|4) uint8 or uint16 RGB(A) image as PNG.

    ``metadata`` (JSON-able parts) and ``layer_state`` (scale, translate, units, features) are
    kept in a text chunk and restored by :func:`read_png`; a pixel size in a length unit also
    goes into the standard ``pHYs`` chunk for other programs. 16-bit images stay 16-bit.
    The file appears only when complete (written beside it, then renamed), so a failed write
    leaves no half-written file.
    """
    data = np.asarray(data)
    saved = {"layer": "image", "metadata": metadata or {}, "layer_state": layer_state or {}}
    if data.ndim == 3 and data.shape[2] in (3, 4):
        if data.dtype == np.uint16:
            return _save_16bit_colour(path, data, saved)
        if data.dtype != np.uint8:
            raise ValueError(f"RGB(A) PNGs are written from 8- or 16-bit arrays, not {data.dtype}")
        image = Image.fromarray(data, "RGBA" if data.shape[2] == 4 else "RGB")
    elif data.ndim == 2:
        image = _grey_image(data)
    else:
        raise ValueError(f"cannot write an array of shape {data.shape} as PNG")
    return _save(path, image, saved)


def write_labels_png(
    path: str | Path,
    labels: np.ndarray,
    colors: np.ndarray,
    *,
    metadata: dict | None = None,
    layer_state: dict | None = None,
) -> Path:
    """Write 2-D labels as an indexed PNG whose palette is the cluster colours.

    Label ``i`` is palette entry ``i`` with colour ``colors[i - 1]``; 0 is transparent black.
    Labels above ``len(colors)`` (painted by hand) get well-separated palette colours. More
    than 255 labels are written as 16-bit greyscale. Colours, metadata and ``layer_state``
    (scale, translate, units, features such as cluster names) are also kept in a text chunk,
    so :func:`read_png` reopens the file as labels as they were.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.io.png import read_png, write_labels_png
    >>> import tempfile
    >>> from pathlib import Path
    >>> labels = np.array([[0, 1], [2, 2]], np.uint8)
    >>> colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    >>> path = write_labels_png(Path(tempfile.mkdtemp()) / "labels.png", labels, colors)
    >>> back = read_png(path)
    >>> back.kind, back.data.tolist()
    ('labels', [[0, 1], [2, 2]])
    """
    labels = np.asarray(labels)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels PNGs hold 2-D integer labels, not {labels.dtype} {labels.shape}")
    top = int(labels.max(initial=0))
    if labels.min(initial=0) < 0 or top > 65535:
        raise ValueError("labels PNGs hold labels 0..65535 only")
    if top < 256:
        from ..color import categorical_colors

        palette = np.zeros((256, 3), np.uint8)
        palette[1 : len(colors) + 1] = colors[:255]
        extra = np.arange(len(colors) + 1, 256)
        palette[extra] = categorical_colors(256)[extra - 1]
        image = Image.fromarray(labels.astype(np.uint8), "P")
        image.putpalette(palette.ravel().tolist())
        image.info["transparency"] = 0
    else:
        image = _grey_image(labels)
    saved = {
        "layer": "labels",
        "metadata": {**(metadata or {}), "colors": colors},
        "layer_state": layer_state or {},
    }
    return _save(path, image, saved)


def _grey_image(data: np.ndarray) -> Image.Image:
    if data.min(initial=0) < 0 or data.max(initial=0) > 65535:
        raise ValueError("PNG holds values 0..65535 only")
    if data.max(initial=0) < 256:
        return Image.fromarray(data.astype(np.uint8), "L")
    return Image.fromarray(data.astype(np.uint16))  # mode I;16


#: Metres per unit, for the pHYs chunk (pixels per metre).
_METRES = {
    "meter": 1.0,
    "centimeter": 1e-2,
    "millimeter": 1e-3,
    "micrometer": 1e-6,
    "nanometer": 1e-9,
}


def _pixels_per_metre(layer_state: dict) -> tuple[int, int] | None:
    """Pixels per metre along x and y (what ``pHYs`` holds) for a pixel size in a length
    unit, else None."""
    units, scale = layer_state.get("units"), layer_state.get("scale")
    if not units or not scale or len(units) < 2 or len(scale) < 2:
        return None
    if units[-1] != units[-2] or units[-1] not in _METRES:
        return None
    per_metre = [round(1 / (float(s) * _METRES[units[-1]])) for s in (scale[-1], scale[-2])]
    if not all(0 < p < 2**31 for p in per_metre):
        return None
    return per_metre[0], per_metre[1]


def _text_chunk(saved: dict) -> bytes:
    """A zTXt chunk's data: our key, compression method 0, the zlib-compressed JSON."""
    text = metadata_to_json(saved).encode("latin-1", "backslashreplace")
    return TEXT_KEY.encode() + b"\0\0" + zlib.compress(text)


def _save(path: str | Path, image: Image.Image, saved: dict) -> Path:
    info = PngInfo()
    info.add_text(TEXT_KEY, metadata_to_json(saved), zip=True)
    extra = {k: v for k, v in image.info.items() if k == "transparency"}
    per_metre = _pixels_per_metre(saved["layer_state"])
    if per_metre is not None:  # Pillow writes pHYs from dots per inch only
        extra["dpi"] = tuple(p * 0.0254 for p in per_metre)
    with written_whole(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info, **extra)
    return Path(path)


def _save_16bit_colour(path: str | Path, data: np.ndarray, saved: dict) -> Path:
    """16-bit RGB(A) with pypng (Pillow cannot write 16-bit colour); our chunks are added
    before the image data, where readers look for them."""
    import png

    height, width, planes = data.shape
    buffer = io.BytesIO()
    writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
    writer.write(buffer, data.reshape(height, width * planes))
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    ours = [(b"zTXt", _text_chunk(saved))]
    per_metre = _pixels_per_metre(saved["layer_state"])
    if per_metre is not None:
        ours.append((b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    chunks[1:1] = ours  # right after IHDR
    with written_whole(path) as tmp, open(tmp, "wb") as f:
        png.write_chunks(f, chunks)
    return Path(path)
