"""How a file's layers first appear (pure rules, no Qt): names that say the file, the band
a cube opens on, and contrast limits that ignore a few extreme values."""

from __future__ import annotations

import warnings

import numpy as np

from .._arrays import is_lazy

__all__ = ["layer_name", "representative_band", "robust_contrast"]

#: What may join a file's stem and the rest of a variable's name already named after it.
_JOINS = " _-."


def layer_name(variable: str, file_stem: str) -> str:
    """A layer's name for a file's variable: "jasperRidge2_R198 Y", so the layer list says
    which file each layer comes from; a variable already named after the file (SamSon in
    Samson.mat, samson_gt) is left as it is."""
    name, stem = variable.casefold(), file_stem.casefold()
    if name == stem or (name.startswith(stem) and name[len(stem)] in _JOINS):
        return variable
    return f"{file_stem} {variable}"


#: Values a cube's first contrast is taken from, and the percentiles it spans.
CONTRAST_SAMPLE = 1_000_000
CONTRAST_PERCENTILES = (0.5, 99.5)


def robust_contrast(data, channel_axis: int | None = None) -> tuple[float, float] | None:
    """Contrast limits for a cube's first view: the 0.5th-99.5th percentiles of up to a
    million of its values, evenly spread over it (a few hot pixels or a bright band no
    longer make every other band look black). For a lazy cube, of its middle band (the one
    napari shows first) on a strided grid: one plane read, never the cube. None when the
    values give no range."""
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        return None
    if data.dtype == bool or data.size == 0:
        return None
    if is_lazy(data):
        if channel_axis is None:
            return None
        axis = channel_axis % data.ndim
        plane = data[(slice(None),) * axis + (data.shape[axis] // 2,)]
        step = max(1, int(np.ceil((plane.size / CONTRAST_SAMPLE) ** (1 / plane.ndim))))
        values = np.asarray(plane[(slice(None, None, step),) * plane.ndim], dtype=np.float64)
        return _percentiles(values.ravel())
    at = np.linspace(0, data.size - 1, min(CONTRAST_SAMPLE, data.size)).astype(np.int64)
    return _percentiles(np.asarray(data[np.unravel_index(at, data.shape)], dtype=np.float64))


def _percentiles(values: np.ndarray) -> tuple[float, float] | None:
    """The finite values' contrast percentiles (their range when those coincide)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, CONTRAST_PERCENTILES)
    if not hi > lo:
        lo, hi = values.min(), values.max()
    return (float(lo), float(hi)) if hi > lo else None


#: Pixels a cube's representative band is chosen on.
BAND_SAMPLE = 4096


def representative_band(data, channel_axis: int) -> int | None:
    """The band a cube is first shown on: the one whose values vary most across a sample of
    pixels (robust spread, 5th-95th percentile), so the first view shows structure rather
    than a dark or noisy band. None for lazy cubes (a sample would read whole blocks) and
    when no band varies."""
    if is_lazy(data) or data.ndim < 3 or not np.issubdtype(data.dtype, np.number):
        return None
    if np.iscomplexobj(data) or data.size == 0:
        return None
    last = np.moveaxis(data, channel_axis, -1)  # a view: the cube is not copied
    n = int(np.prod(last.shape[:-1]))
    at = np.linspace(0, n - 1, min(BAND_SAMPLE, n)).astype(np.int64)
    sample = np.asarray(last[np.unravel_index(at, last.shape[:-1])], dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bands: no spread
        lo, hi = np.nanpercentile(sample, (5, 95), axis=0)
    spread = np.nan_to_num(hi - lo, nan=0.0, posinf=0.0, neginf=0.0)
    return int(np.argmax(spread)) if spread.max(initial=0) > 0 else None
