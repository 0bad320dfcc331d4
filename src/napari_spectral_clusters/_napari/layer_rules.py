"""Pure rules about napari layers the widget clusters (no Qt): which axis holds the bands,
which axes and transform a result keeps, the wavelengths of a layer, and whether a result
layer holds the user's hand edits."""

from __future__ import annotations

import zlib

import numpy as np
from napari.layers import Image, Labels

from .._arrays import is_lazy

__all__ = [
    "colors_for",
    "features_of",
    "has_hand_edits",
    "labels_checksum",
    "robust_contrast",
    "spatial_axes",
    "sub_transform",
    "wavelengths_of",
]


def features_of(layer: Image, choice="auto") -> tuple[int | None, bool]:
    """The layer's feature (band/colour) axis in its data, and whether it carries alpha.

    RGB(A) layers: the colour axis. Otherwise the user's ``choice`` (an axis, or "none" for
    greyscale); for "auto", the axis the reader recorded in metadata, else the first axis
    (napari's channel-first convention) for 3-D and larger, none for 2-D images.
    """
    if layer.rgb:
        return -1, layer.data.shape[-1] == 4
    if choice == "none":
        return None, False
    if isinstance(choice, int):
        return choice, False
    recorded = layer.metadata.get("channel_axis")
    if isinstance(recorded, int | np.integer) and -layer.ndim <= recorded < layer.ndim:
        return int(recorded), False  # anything else (a damaged file's) falls back below
    return (0 if layer.ndim >= 3 else None), False


def labels_checksum(labels) -> int | None:
    """A fingerprint of labels as a clustering wrote them, to notice painting later (None for
    lazy labels, which napari cannot paint)."""
    if is_lazy(labels):
        return None
    return zlib.crc32(np.ascontiguousarray(labels).view(np.uint8))


def has_hand_edits(layer: Labels) -> bool:
    """The user changed this result layer: painted it, or merged, renamed or recoloured its
    clusters. A labels layer without the fingerprint we record (not ours, or its metadata
    lost) counts as edited: it is not ours to overwrite."""
    meta = layer.metadata
    if meta.get("hand_edited"):
        return True
    if "labels_checksum" not in meta:
        return not is_lazy(layer.data)  # lazy results carry None: napari cannot paint them
    recorded = meta["labels_checksum"]
    return recorded is not None and labels_checksum(layer.data) != recorded


def colors_for(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Colours of ``labels``: the clustering's for its own, well-separated ones for labels
    painted beyond them."""
    from ..color import categorical_colors  # colorcet takes a second: not for the reader

    extra = categorical_colors(int(max(labels.max(initial=0), len(colors))))
    table = np.concatenate([colors, extra[len(colors) :]])
    return table[np.asarray(labels) - 1]


def wavelengths_of(layer: Image, data, channel_axis):
    """The layer's wavelengths when they describe the chosen band axis, else None."""
    wl = layer.metadata.get("wavelengths")
    if wl is None or layer.rgb or channel_axis is None:
        return None
    try:
        wl = np.asarray(wl, dtype=np.float64).ravel()
    except (TypeError, ValueError):  # a damaged file's metadata: no wavelengths
        return None
    ok = len(wl) == data.shape[channel_axis] and np.isfinite(wl).all()
    return wl if ok else None


def spatial_axes(layer: Image, channel_axis: int | None) -> list[int]:
    """Layer dimensions that remain in the result (all but the band axis)."""
    if layer.rgb or channel_axis is None:
        return list(range(layer.ndim))
    drop = channel_axis % layer.ndim
    return [d for d in range(layer.ndim) if d != drop]


def sub_transform(layer: Image, keep: list[int]) -> dict:
    """The layer's scale, translate, rotate, shear, affine (and units, on a napari that has
    them) restricted to ``keep`` axes."""
    n = layer.ndim
    shear = np.eye(n)
    shear[np.triu_indices(n, 1)] = layer.shear
    affine = layer.affine.affine_matrix
    homog = [*keep, n]
    units = {"units": tuple(layer.units[i] for i in keep)} if hasattr(layer, "units") else {}
    return {
        **units,
        "scale": np.asarray(layer.scale)[keep],
        "translate": np.asarray(layer.translate)[keep],
        "rotate": np.asarray(layer.rotate)[np.ix_(keep, keep)],
        "shear": shear[np.ix_(keep, keep)],
        "affine": affine[np.ix_(homog, homog)],
    }


#: Values a cube's first contrast is taken from, and the percentiles it spans.
CONTRAST_SAMPLE = 1_000_000
CONTRAST_PERCENTILES = (0.5, 99.5)


def robust_contrast(data) -> tuple[float, float] | None:
    """Contrast limits for a cube's first view: the 0.5th-99.5th percentiles of up to a
    million of its values, evenly spread over it (a few hot pixels or a bright band no
    longer make every other band look black). None for lazy cubes (reading a sample would
    read whole blocks) and when the values give no range."""
    if is_lazy(data) or not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        return None
    if data.dtype == bool or data.size == 0:
        return None
    at = np.linspace(0, data.size - 1, min(CONTRAST_SAMPLE, data.size)).astype(np.int64)
    values = np.asarray(data[np.unravel_index(at, data.shape)], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, CONTRAST_PERCENTILES)
    if not hi > lo:
        lo, hi = values.min(), values.max()
    return (float(lo), float(hi)) if hi > lo else None
