"""Pixels as points in a feature space: the walkthrough's plot of a photo's pixels in RGB space,
for pictures and cubes, and the pixels whose points fall in a region drawn on that plot.

An axis is named by text: a channel (``"R"``, ``"G"``, ``"B"``, ``"A"`` for pictures, or
``"band 12"``, counting from 0), a principal component (``"PC1"``), a band ratio
(``"ratio(40, 12)"``: band 40 over band 12) or a normalised difference (``"nd(40, 12)"``:
(b40 - b12) / (b40 + b12)). :meth:`FeatureAxes.fit` fixes them for one image (the principal
axes come from a sample of its pixels), so the plotted sample and a selection over every pixel
use one map.

>>> from napari_spectral_clusters.feature_space import feature_points, select_polygon
>>> import numpy as np
>>> img = np.zeros((4, 5, 3)); img[:2, :, 0] = 1.0            # top half red
>>> axes, points = feature_points(img, ["R", "G"])
>>> points.coords.shape, points.index.shape, float(points.weight.sum())
((20, 2), (20,), 20.0)
>>> mask = select_polygon(img, axes, [(0.5, -1), (2, -1), (2, 1), (0.5, 1)])
>>> mask.shape, int(mask.sum())
((4, 5), 10)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
from matplotlib.path import Path

from .lazy import LazyPixels, lazy_view
from .model import principal_axes, weighted_mean

__all__ = ["FeatureAxes", "FeaturePoints", "axis_choices", "feature_points", "select_polygon"]

PICTURE_CHANNELS = ("R", "G", "B", "A")
_PAIR = re.compile(r"^(ratio|nd)\(\s*(\d+)\s*,\s*(\d+)\s*\)$", re.IGNORECASE)


def axis_choices(n_channels: int, *, picture: bool = False, n_components: int = 3) -> list:
    """The axes offered for an image of ``n_channels`` channels: its channels (R/G/B/A for a
    picture, bands for a cube) and, with more than one channel, its principal components."""
    if picture and n_channels <= len(PICTURE_CHANNELS):
        channels = list(PICTURE_CHANNELS[:n_channels])
    else:
        channels = [f"band {i}" for i in range(n_channels)]
    pcs = [f"PC{i + 1}" for i in range(min(n_components, n_channels))] if n_channels > 1 else []
    return pcs + channels if not picture else channels + pcs


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class FeatureAxes:
    """The map from (n, C) pixels to (n, d) coordinates along ``names`` (see the module)."""

    names: tuple[str, ...]
    kinds: tuple  # per axis: ("channel", i), ("pc", i), ("ratio", a, b) or ("nd", a, b)
    mean: np.ndarray | None = None  # for principal components: the sample's mean ...
    components: np.ndarray | None = None  # ... and its principal axes (rows)

    @classmethod
    def fit(cls, names: Sequence[str], sample: np.ndarray, weights=None) -> FeatureAxes:
        """Axes ``names`` for pixels like the (n, C) ``sample`` (principal components are
        those of the sample, weighted by ``weights``).

        Raises
        ------
        ValueError
            An axis name is not one of the kinds above, or names a band the pixels lack.
        """
        sample = np.asarray(sample, dtype=np.float64)
        n_channels = sample.shape[1]
        kinds = tuple(_kind(str(name), n_channels) for name in names)
        if not kinds:
            raise ValueError("a feature space needs at least one axis")
        mean = components = None
        n_pc = max((k[1] + 1 for k in kinds if k[0] == "pc"), default=0)
        if n_pc:
            w = np.ones(len(sample)) if weights is None else np.asarray(weights, np.float64)
            mean = weighted_mean(sample, w)
            components = principal_axes(sample - mean, w, n_pc, at_least=n_pc)
        return cls(tuple(str(n) for n in names), kinds, mean, components)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """(n, d) float64 coordinates of the (n, C) ``pixels`` (NaN where a ratio's or a
        normalised difference's denominator is 0)."""
        x = np.asarray(pixels, dtype=np.float64)
        out = np.empty((len(x), len(self.kinds)))
        pcs = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, kind in enumerate(self.kinds):
                if kind[0] == "channel":
                    out[:, j] = x[:, kind[1]]
                elif kind[0] == "pc":
                    if pcs is None:
                        pcs = (x - self.mean) @ self.components.T
                    out[:, j] = pcs[:, kind[1]]
                else:
                    a, b = x[:, kind[1]], x[:, kind[2]]
                    out[:, j] = a / b if kind[0] == "ratio" else (a - b) / (a + b)
        return np.where(np.isfinite(out), out, np.nan)


def _kind(name: str, n_channels: int) -> tuple:
    text = name.strip()
    if text.upper() in PICTURE_CHANNELS[:n_channels] and n_channels <= 4:
        return ("channel", PICTURE_CHANNELS.index(text.upper()))
    found = re.fullmatch(r"band\s*(\d+)", text, re.IGNORECASE)
    if found:
        return ("channel", _band(int(found[1]), n_channels, name))
    found = re.fullmatch(r"PC\s*(\d+)", text, re.IGNORECASE)
    if found and 1 <= int(found[1]) <= n_channels:
        return ("pc", int(found[1]) - 1)
    found = _PAIR.fullmatch(text)
    if found:
        return (
            found[1],
            _band(int(found[2]), n_channels, name),
            _band(int(found[3]), n_channels, name),
        )
    raise ValueError(
        f"unknown feature axis {name!r}: use a channel (R, G, B, 'band 3'), a principal "
        "component ('PC1'), 'ratio(a, b)' or 'nd(a, b)' with band numbers a, b"
    )


def _band(i: int, n_channels: int, name: str) -> int:
    if not 0 <= i < n_channels:
        raise ValueError(f"{name!r}: the image has bands 0 to {n_channels - 1}")
    return i


@dataclass(frozen=True, eq=False)
class FeaturePoints:
    """A sample of an image's pixels in a feature space: ``coords`` (n, d), the flat index of
    each point's pixel in the image's spatial shape ``index`` (n,), and ``weight`` (n,): the
    pixels each point stands for (they sum to the number of pixels with finite values)."""

    coords: np.ndarray
    index: np.ndarray
    weight: np.ndarray
    shape: tuple


def feature_points(
    image,
    axes,
    *,
    channel_axis: int = -1,
    alpha: bool | None = None,
    mask=None,
    max_points: int = 200_000,
    seed: int = 0,
) -> tuple[FeatureAxes, FeaturePoints]:
    """Up to ``max_points`` pixels of ``image`` (numpy or dask, channels along
    ``channel_axis``), drawn uniformly among those the engine clusters (finite, inside
    ``mask``, not transparent), at their coordinates along ``axes`` (names, fitted on this
    sample, or a fitted :class:`FeatureAxes`).

    ``alpha``: the last channel is an alpha plane (default: four integer channels, as the
    engine decides); it is not an axis, and transparent pixels are left out. A dask image
    gives the engine's block sample (a few random blocks read, each pixel weighted by the
    pixels it stands for)."""
    rng = np.random.default_rng(seed)
    if isinstance(image, da.Array):
        # the engine's own block sample: a few random blocks read whole, not a pixel of
        # nearly every block (each point's weight: the pixels it stands for)
        source = LazyPixels(image, channel_axis, _has_alpha(image, channel_axis, alpha), mask)
        view = source.view
        pixels, weight, pick = source.sample(int(max_points), rng, with_index=True)
        if weight.sum() > 0:  # the blocks read stand for all of them
            weight = weight * (source.total_weight / weight.sum())
    else:
        view, allowed = _view(image, channel_axis, alpha, mask)
        n = int(np.prod(view.shape[:-1]))
        if n <= max_points:  # every pixel: no draw (a permutation of 1 M costs 10x the copy)
            pick = np.arange(n)
        else:
            pick = np.sort(rng.choice(n, int(max_points), replace=False))
        pixels = np.asarray(view.reshape(n, -1)[pick], dtype=np.float64)
        ok = allowed.reshape(n)[pick] & np.isfinite(pixels).all(axis=1)
        # every drawn pixel kept stands for the same share of those the engine clusters
        # (exact when all pixels were drawn, estimated from the draw otherwise)
        n_kept = n * ok.mean() if len(ok) else 0.0
        pixels, pick = pixels[ok], pick[ok]
        weight = np.full(len(pick), n_kept / max(len(pick), 1))
    if not isinstance(axes, FeatureAxes):
        axes = FeatureAxes.fit(axes, pixels if len(pixels) else np.zeros((1, view.shape[-1])))
    return axes, FeaturePoints(axes(pixels), pick, weight, tuple(view.shape[:-1]))


def select_polygon(
    image, axes: FeatureAxes, vertices, *, channel_axis: int = -1, alpha=None, mask=None
):
    """The pixels of ``image`` (every one the engine clusters, not a sample) whose
    coordinates along the first two ``axes`` fall inside the polygon ``vertices`` ((m, 2), in
    those coordinates): a boolean mask of the image's spatial shape (numpy for numpy input;
    for dask computed block by block). ``alpha`` and ``mask`` as for :func:`feature_points`."""
    polygon = Path(np.asarray(vertices, dtype=np.float64).reshape(-1, 2))
    view, allowed = _view(image, channel_axis, alpha, mask)
    if isinstance(view, da.Array):
        inside = da.map_blocks(
            _inside_block, view, axes=axes, polygon=polygon, drop_axis=view.ndim - 1, dtype=bool
        )
        return (inside & allowed).compute()
    return _inside_block(view, axes=axes, polygon=polygon) & allowed


def _inside_block(block: np.ndarray, *, axes: FeatureAxes, polygon: Path) -> np.ndarray:
    spatial = block.shape[:-1]
    inside = np.zeros(int(np.prod(spatial)), dtype=bool)
    pixels = block.reshape(len(inside), -1)
    for start in range(0, len(inside), 65536):  # bounded float64 temporaries
        xy = axes(pixels[start : start + 65536])[:, :2]
        ok = np.isfinite(xy).all(axis=1)
        part = np.zeros(len(xy), dtype=bool)
        if ok.any():
            part[ok] = polygon.contains_points(xy[ok] if xy.shape[1] == 2 else _pad(xy[ok]))
        inside[start : start + len(xy)] = part
    return inside.reshape(spatial)


def _pad(xy: np.ndarray) -> np.ndarray:
    """One axis: the polygon is drawn over (value, 0)."""
    return np.column_stack([xy[:, 0], np.zeros(len(xy))])


def _has_alpha(image, channel_axis, alpha) -> bool:
    """The last channel is alpha: as given, else the engine's rule (four integer channels)."""
    if alpha is not None:
        return bool(alpha)
    n_channels = image.shape[channel_axis] if channel_axis is not None else 1
    return n_channels == 4 and np.issubdtype(image.dtype, np.integer)


def _view(image, channel_axis, alpha, mask):
    """(spatial..., C) view of the image's colour or spectral channels, and which pixels the
    engine clusters (not transparent, inside ``mask``); a dask image gives dask arrays."""
    alpha = _has_alpha(image, channel_axis, alpha)
    if isinstance(image, da.Array):
        return lazy_view(image, channel_axis, bool(alpha), mask)
    image = np.asarray(image)
    view = image[..., None] if channel_axis is None else np.moveaxis(image, channel_axis, -1)
    allowed = np.ones(view.shape[:-1], dtype=bool)
    if alpha:
        allowed, view = view[..., -1] > 0, view[..., :-1]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != allowed.shape:
            raise ValueError(f"mask shape {mask.shape} does not match image {allowed.shape}")
        allowed = allowed & mask
    return view, allowed
