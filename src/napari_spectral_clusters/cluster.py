"""The clustering engine: image pixels -> cluster labels, centres, colours and statistics.

Pure numpy; no napari, no Qt. Cost is "fit on a sample + a few chunked passes over all
pixels", in float32, without a Python loop over pixels:

1. draw a random sample of the pixels (8-bit colour: of the distinct colours, weighted by how
   many pixels wear each — exact, and far fewer than the pixels);
2. on the sample, in its leading principal components, run ``n_init`` k-means++ starts with
   a few Lloyd iterations each, and iterate the best of them to convergence;
3. refine with Lloyd passes over all pixels in full feature space, chunk by chunk, until the
   centres stop moving or no pixel can change cluster; the last pass gives the labels, the
   centres (means, in the input's units), per-cluster standard deviations and the inertia.

The iterations are our own rather than :class:`sklearn.cluster.KMeans`: it can neither report
progress per iteration nor be cancelled, and its per-call set-up (validation, thread-pool
inspection) costs more than the whole fit of a typical cube. BLAS does the heavy lifting
either way (one float32 matrix product per chunk).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
from scipy import sparse

from . import __version__
from ._arrays import is_lazy
from .color import center_colors
from .model import ClusterModel, Features, principal_axes, weighted_mean

__all__ = [
    "Cancelled",
    "ClusterResult",
    "ClusteringError",
    "ProgressEvent",
    "apply_model",
    "cluster_image",
    "label_statistics",
    "sweep_k",
]

#: float32 bytes per chunk in the passes over all pixels: large enough for BLAS, small enough
#: that a chunk, its distances and its per-cluster sums stay a few tens of MB.
CHUNK_BYTES = 8 * 2**20
#: Images whose float32 features fit in this many bytes are converted once and kept for all
#: passes; larger ones are converted chunk by chunk in every pass, so memory stays flat.
CACHE_BYTES = 32 * 2**20
#: Rows summed in float32 before the sum is added to float64 totals.
ACC_ROWS = 16_384
#: Rows of the sample the k-means++ starts are seeded and screened on (at least, and per
#: cluster: a screening with too few rows per cluster picks poor starts for large k), and the
#: relative inertia gain at which their screening Lloyd iterations stop.
SCREEN_ROWS = 2_000
SCREEN_ROWS_PER_CLUSTER = 100
SCREEN_TOL = 1e-2
#: Up to this many features, per-cluster sums are float64 bincounts, one per feature.
FEW = 8
#: Rows of the coreset drawn from all pixels in every pass (half uniform, half by squared
#: distance), and the share by which a start found on it must beat the refined clustering's
#: cost on it to be refined over all pixels too.
CORESET_ROWS = 8_000
CORESET_ROWS_PER_CLUSTER = 50
RECOVER_GAIN = 5e-3
#: At most this many such refinements (each may reveal what the previous still lumped).
RECOVER_ROUNDS = 3

Preprocessing = Literal["none", "standardize", "unit", "pca"]


class ProgressEvent(NamedTuple):
    """One progress report: ``done`` of ``total`` steps of ``stage``, inertia so far."""

    stage: str
    done: int
    total: int
    inertia: float = float("nan")


class ClusteringError(ValueError):
    """The image cannot be clustered as asked (nothing to cluster, too few distinct pixels)."""


class Cancelled(Exception):
    """Raised by a progress callback to stop a run; :func:`cluster_image` lets it through."""


class _TooFewDistinct(ClusteringError):
    def __init__(self, n_distinct: int, n_clusters: int):
        self.n_distinct = n_distinct
        super().__init__(
            f"the image has only {n_distinct} distinct pixel value(s), fewer than the "
            f"{n_clusters} clusters asked for; ask for at most {n_distinct}"
        )


@dataclass(frozen=True)
class ClusterResult:
    """What :func:`cluster_image` found.

    Attributes
    ----------
    labels : (M, N[, ...]) ndarray of unsigned int
        Cluster of every pixel, 1..k numbered by cluster size (1 = largest); 0 = excluded.
    centers : (k, C) ndarray of float64
        Mean of each cluster's pixels, in the input's units (row ``i`` is label ``i + 1``):
        the cluster's mean spectrum or colour.
    std : (k, C) ndarray of float64
        Standard deviation of each feature within each cluster, in the input's units.
    colors : (k, 3) ndarray of uint8
        Display colour of each cluster (row ``i`` is label ``i + 1``).
    recolored : (M, N[, ...], 3 or 4) ndarray of uint8 (uint16 for 16-bit RGBA input)
        Every pixel in its cluster's colour; RGBA with the input's own alpha plane when the
        input had alpha (partial transparency kept; excluded pixels transparent).
    inertia : float
        Sum of squared distances of the pixels to their cluster centre, in the space that was
        clustered (the input's units unless preprocessed).
    counts : (k,) ndarray of int64
        Pixels in each cluster.
    model : ClusterModel
        The fitted clustering, to label other images the same way (:func:`apply_model`) or
        save (:meth:`ClusterModel.save`).
    params : dict
        The parameters that produced this result, to reproduce it.
    """

    labels: np.ndarray
    centers: np.ndarray
    std: np.ndarray
    colors: np.ndarray
    recolored: np.ndarray
    inertia: float
    counts: np.ndarray
    model: ClusterModel
    params: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(self.centers)

    def summary(self) -> dict:
        """What a saved or displayed result carries as metadata: parameters and statistics."""
        meta = {
            "params": dict(self.params),
            "centers": self.centers,
            "std": self.std,
            "colors": self.colors,
            "counts": self.counts,
            "inertia": self.inertia,
        }
        if self.model.wavelengths is not None:
            meta["wavelengths"] = np.asarray(self.model.wavelengths)
        return meta

    @property
    def fractions(self) -> np.ndarray:
        """Share of the clustered pixels in each cluster."""
        return self.counts / max(int(self.counts.sum()), 1)


def cluster_image(
    image: np.ndarray,
    n_clusters: int = 8,
    *,
    channel_axis: int | None = -1,
    mask: np.ndarray | None = None,
    alpha: bool | None = None,
    preprocessing: Preprocessing = "none",
    n_components: int | None = None,
    wavelengths: np.ndarray | None = None,
    palette: Literal["auto", "categorical"] = "auto",
    random_state: int = 0,
    reduce_k: bool = False,
    max_samples: int = 8_000,
    n_init: int = 6,
    max_refine: int = 10,
    tol: float = 1e-3,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> ClusterResult:
    """Cluster the pixels of an image with KMeans.

    Parameters
    ----------
    image : (M, N[, ...], C) ndarray
        Greyscale image (``channel_axis=None``), RGB(A) picture or spectral cube, with any
        number of extra axes (z, time): all pixels are clustered together, so a label means
        the same in every plane.
    n_clusters : int
        Number of clusters k.
    channel_axis : int or None
        Axis of ``image`` holding each pixel's features (colour or spectrum); None for a
        greyscale image.
    mask : (M, N[, ...]) ndarray, optional
        Pixels to cluster: True or non-zero (a boolean mask or a labels image).
    alpha : bool, optional
        Whether the last of 4 channels is alpha (not a feature; alpha = 0 pixels are excluded
        and stay transparent). Default: True for 4-channel integer images, as PNGs are.
    preprocessing : {"none", "standardize", "unit", "pca"}
        Features clustered: as given; each band scaled to zero mean and unit variance; each
        spectrum scaled to unit length (clusters by spectral shape, whatever the brightness);
        the leading ``n_components`` principal components.
    n_components : int, optional
        For ``preprocessing="pca"``: components kept (default: enough for 99.9% of the
        variance, at most 32).
    wavelengths : (C,) ndarray, optional
        Band centres in nm: clusters of a cube then wear the true colour of their centre
        spectrum (see :func:`~napari_spectral_clusters.color.center_colors`).
    palette : {"auto", "categorical"}
        "categorical" gives well-separated colours whatever the data; "auto" uses centre
        colours (pictures) or true colours (cubes with visible wavelengths) unless two are too
        alike.
    random_state : int
        Seed; the same seed gives the same result.
    reduce_k : bool
        With fewer distinct pixels than ``n_clusters``, cluster into that many with a warning
        instead of raising :class:`ClusteringError`.
    max_samples : int
        Pixels drawn for the initial fit.
    n_init : int
        k-means++ starts tried on the sample; the best is refined on all pixels. The
        defaults are what it takes to land within 1% of the best clustering whatever the
        seed: on the sample photo and the Samson cube (k = 8, 20 seeds each), 2 starts on
        5,000 pixels ended over 1% above it for 3 and 4 seeds, 6 starts on 8,000 for none.
    max_refine : int
        At most this many Lloyd passes over all pixels.
    tol : float
        Refinement stops when moving the centres to their clusters' means lowers the inertia
        by less than this fraction of it.
    progress : callable, optional
        Called with a :class:`ProgressEvent` after each step; raise :class:`Cancelled` in it
        to stop the run promptly.

    Returns
    -------
    ClusterResult

    Raises
    ------
    ClusteringError
        No pixel to cluster, or fewer distinct pixels than clusters (unless ``reduce_k``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = np.where(np.arange(8)[:, None, None] < 4, 0.2, 0.8) + rng.normal(0, .01, (8, 8, 5))
    >>> res = cluster_image(img, 2)
    >>> res.labels.shape, res.recolored.shape, res.centers.shape, res.counts.tolist()
    ((8, 8), (8, 8, 3), (2, 5), [32, 32])
    """
    if int(n_clusters) < 1:
        raise ClusteringError(f"the number of clusters must be at least 1, not {n_clusters}")
    if preprocessing not in ("none", "standardize", "unit", "pca"):
        raise ValueError(f"unknown preprocessing {preprocessing!r}")
    lazy = is_lazy(image)
    if lazy:  # a dask array: fitted on a sample of blocks, labelled block by block
        n_channels = image.shape[channel_axis] if channel_axis is not None else 1
        if alpha is None:
            alpha = n_channels == 4 and np.issubdtype(image.dtype, np.integer)
    else:
        image, view, allowed, alpha_plane = _prepare(image, channel_axis, mask, alpha)
        alpha = alpha_plane is not None

    params = {
        "n_clusters": int(n_clusters),
        "channel_axis": channel_axis,
        "alpha": bool(alpha),
        "preprocessing": preprocessing,
        "n_components": n_components,
        "palette": palette,
        "random_state": int(random_state),
        "max_samples": int(max_samples),
        "n_init": int(n_init),
        "max_refine": int(max_refine),
        "tol": float(tol),
        # a seed reproduces its labels with the same engine: say which one made them
        "version": __version__,
    }
    report = progress or (lambda event: None)
    if lazy:
        from .lazy import cluster_lazy

        return cluster_lazy(
            image,
            int(n_clusters),
            channel_axis=channel_axis,
            alpha=bool(alpha),
            mask=mask,
            params=params,
            wavelengths=wavelengths,
            palette=palette,
            report=report,
        )
    data = _Pixels.from_image(view, allowed)
    try:
        fit = _fit(data, int(n_clusters), params, report)
    except _TooFewDistinct as exc:
        if not reduce_k:
            raise
        warnings.warn(
            f"{exc}: clustering into {exc.n_distinct} clusters instead", UserWarning, stacklevel=2
        )
        params["n_clusters_used"] = exc.n_distinct
        fit = _fit(data, exc.n_distinct, params, report)

    order = np.argsort(-np.round(fit.counts), kind="stable")  # 1 = largest cluster
    lut = np.zeros(len(order) + 1, dtype=fit.labels.dtype)
    lut[order + 1] = np.arange(1, len(order) + 1, dtype=fit.labels.dtype)
    centers = fit.means[order]
    colors, params["colors"] = center_colors(
        centers, image.dtype, rgb=view.shape[-1] == 3, wavelengths=wavelengths, palette=palette
    )
    wl = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64).ravel()
    if wl is not None and len(wl) != view.shape[-1]:
        wl = None
    model = ClusterModel(fit.features, fit.centers[order], colors, params, wavelengths=wl)
    report(ProgressEvent("done", 1, 1, fit.inertia))
    return _result(
        lut[fit.labels],
        centers,
        fit.std[order],
        fit.counts[order],
        fit.inertia,
        model,
        alpha_plane,
    )


def apply_model(
    image: np.ndarray,
    model: ClusterModel,
    *,
    channel_axis: int | None = -1,
    mask: np.ndarray | None = None,
    alpha: bool | None = None,
    wavelengths: np.ndarray | None = None,
) -> ClusterResult:
    """Label an image with a fitted clustering, so a cluster means the same across images.

    One pass over the pixels: each goes to the nearest of the model's centres (in the model's
    feature space). Centres and statistics in the result are this image's own cluster means;
    clusters no pixel falls into have NaN centres.

    Parameters
    ----------
    image, channel_axis, mask, alpha
        As for :func:`cluster_image`.
    model : ClusterModel
        From ``cluster_image(...).model`` or :meth:`ClusterModel.load`.
    wavelengths : (C,) ndarray, optional
        The image's band wavelengths, checked against the model's when both are known.

    Raises
    ------
    ClusteringError
        The image has another number of channels or other wavelengths than the model, or no
        pixel to label.
    """
    image, view, allowed, alpha_plane = _prepare(image, channel_axis, mask, alpha)
    if view.shape[-1] != model.n_features:
        raise ClusteringError(
            f"the model was fitted on {model.n_features} channels (bands); "
            f"this image has {view.shape[-1]}"
        )
    if wavelengths is not None and model.wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64).ravel()
        if wl.shape != model.wavelengths.shape or not np.allclose(
            wl, model.wavelengths, rtol=1e-4
        ):
            raise ClusteringError(
                "the image's wavelengths differ from the model's "
                f"({wl.min():g}-{wl.max():g} vs "
                f"{model.wavelengths.min():g}-{model.wavelengths.max():g}, {len(wl)} vs "
                f"{len(model.wavelengths)} bands)"
            )
    data = _Pixels.from_image(view, allowed)
    labels = data.empty_labels(model.n_clusters)
    features = model.features
    acc = _pass(data, _feature_chunks(data, features), features, model.centers, labels)
    if not acc.counts.any():
        raise ClusteringError("no pixel left to label: all are masked, transparent or NaN")
    data.finish(labels)
    means, std = acc.input_mean_std(model.features.offset)
    empty = acc.counts == 0
    means[empty], std[empty] = np.nan, np.nan
    inertia = acc.inertia_about_means()
    return _result(labels, means, std, acc.counts, inertia, model, alpha_plane)


def _prepare(image, channel_axis, mask, alpha):
    """Check the image; return it, its (spatial..., C) feature view without alpha, the pixels
    allowed by mask and alpha, and its alpha plane (None without alpha)."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.view(np.uint8)
    if not np.issubdtype(image.dtype, np.number):
        raise ClusteringError(f"cannot cluster an image of dtype {image.dtype}")
    if np.iscomplexobj(image):
        raise ClusteringError("cannot cluster complex values; take their magnitude first")
    view = image[..., np.newaxis] if channel_axis is None else np.moveaxis(image, channel_axis, -1)
    if view.ndim < 2 or view.shape[-1] == 0 or view.size == 0:
        raise ClusteringError(f"cannot cluster an image of shape {image.shape}")
    if alpha is None:
        alpha = view.shape[-1] == 4 and np.issubdtype(view.dtype, np.integer)
    spatial = view.shape[:-1]
    allowed = np.ones(spatial, dtype=bool)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != spatial:
            raise ClusteringError(f"mask shape {mask.shape} does not match image {spatial}")
        allowed &= mask.astype(bool)
    alpha_plane = None
    if alpha:
        alpha_plane = view[..., -1]
        allowed &= alpha_plane > 0
        view = view[..., :-1]
    return image, view, allowed, alpha_plane


def _result(labels, centers, std, counts, inertia, model, alpha_plane) -> ClusterResult:
    return ClusterResult(
        labels=labels,
        centers=centers,
        std=std,
        colors=model.colors,
        recolored=recolor(labels, model.colors, alpha_plane),
        inertia=float(inertia),
        counts=np.round(counts).astype(np.int64),
        model=model,
        params=model.params,
    )


# --- the pixels, chunk by chunk ----------------------------------------------------------------


@dataclass
class _Pixels:
    """The pixels to cluster, handed out in float32 chunks.

    Either an image view (spatial..., C) with the ``allowed`` mask — read once and kept as
    float32 chunks when small (``cache``), read chunk by chunk in every pass otherwise — or,
    for 8-bit colour, its distinct colours with pixel counts as weights and each pixel's
    colour code, to give every pixel its colour's label at the end.
    """

    view: np.ndarray
    allowed: np.ndarray
    uniques: np.ndarray | None = None
    weights: np.ndarray | None = None
    codes: np.ndarray | None = None  # uint32 colour code of every pixel (distinct colours)
    unique_codes: np.ndarray | None = None
    unique_labels: np.ndarray | None = None  # the last pass's label of each distinct colour
    finite_checked: bool = False
    cache: list | None = None  # the finite allowed pixels as float32 chunks, when small

    @classmethod
    def from_image(cls, view: np.ndarray, allowed: np.ndarray) -> _Pixels:
        if view.dtype != np.uint8 or view.shape[-1] > 4:
            data = cls(view, allowed)
            if data.nbytes_float32 <= CACHE_BYTES:  # small: read and convert once, not per pass
                data.cache = list(data.chunks())
            return data
        codes = np.zeros(view.shape[:-1], dtype=np.uint32)
        for c in range(view.shape[-1]):
            codes |= view[..., c].astype(np.uint32) << np.uint32(8 * c)
        # Sorted codes, not np.unique(return_inverse=True): its argsort costs 4x this sort,
        # and the map back to pixels is a lookup table on the codes at the end (finish).
        ordered = np.sort(codes[allowed])
        first = np.ones(len(ordered), dtype=bool)
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        uniq = ordered[first]
        weights = np.diff(np.append(np.flatnonzero(first), len(ordered))).astype(np.float64)
        colors = np.stack([(uniq >> np.uint32(8 * c)) & 0xFF for c in range(view.shape[-1])], 1)
        return cls(view, allowed, colors.astype(np.float32), weights, codes, uniq)

    @property
    def n_features(self) -> int:
        return self.view.shape[-1]

    @property
    def total_weight(self) -> float:
        """Pixels to cluster (the distinct colours' counts added up)."""
        if self.uniques is not None:
            return float(self.weights.sum())
        return float(np.count_nonzero(self.allowed))

    @property
    def nbytes_float32(self) -> int:
        n = len(self.uniques) if self.uniques is not None else self.allowed.size
        return 4 * n * self.n_features

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` finite pixels drawn at random (float32 or float64), with their weights."""
        if self.uniques is not None:
            if len(self.uniques) <= n:
                return self.uniques.astype(np.float64), self.weights
            # n pixels drawn at random (with replacement): their colours, weighted by how
            # often each was drawn.
            cdf = np.cumsum(self.weights)
            pick = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
            pick, drawn = np.unique(pick, return_counts=True)
            return self.uniques[pick].astype(np.float64), drawn.astype(np.float64)
        if self.cache is not None:  # finite already: draw rows of the float32 chunks
            blocks = [block for block, _, _ in self.cache]
            bounds = np.cumsum([0] + [len(block) for block in blocks])
            if bounds[-1] > n:
                pick = np.sort(rng.choice(bounds[-1], n, replace=False))
                cut = np.searchsorted(pick, bounds)
                blocks = [b[pick[cut[i] : cut[i + 1]] - bounds[i]] for i, b in enumerate(blocks)]
            x = np.concatenate(blocks)
            return x, np.ones(len(x))
        flat = np.flatnonzero(self.allowed)
        if len(flat) > n:
            flat = np.sort(rng.choice(flat, n, replace=False))
        x = self.view[np.unravel_index(flat, self.allowed.shape)].astype(np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        return x, np.ones(len(x))

    def chunks(self):
        """Yield (float32 pixels, weights or None, where the rows go) over all finite pixels.

        The first full read also drops non-finite pixels from ``allowed``, so later reads
        need not look again.
        """
        if self.uniques is not None:
            yield self.uniques, self.weights, None
            return
        if self.cache is not None:
            yield from self.cache
            return
        view, allowed = self.view, self.allowed
        check = np.issubdtype(view.dtype, np.floating) and not self.finite_checked
        per_row = int(np.prod(view.shape[1:-1], dtype=np.int64)) or 1
        step = max(1, CHUNK_BYTES // (4 * view.shape[-1] * per_row))
        for start in range(0, view.shape[0], step):
            rows = slice(start, min(start + step, view.shape[0]))
            ok = allowed[rows].reshape(-1)
            # one converting copy whatever the input's dtype and memory order (none for
            # C-ordered float32), rather than a reshape copy and then a float32 copy
            block = np.asarray(view[rows], dtype=np.float32, order="C").reshape(ok.size, -1)
            if not ok.all():
                block = block[ok]
            # the sum is finite only if every value is (and a sum that overflows is checked
            # row by row): 4x cheaper than isfinite(...).all(axis=1) when all are finite
            if check and not np.isfinite(block.sum()):
                finite = np.isfinite(block).all(axis=1)
                if not finite.all():
                    ok = ok.copy()
                    ok[np.flatnonzero(ok)[~finite]] = False
                    allowed[rows] = ok.reshape(allowed[rows].shape)
                    block = block[finite]
            yield block, None, (rows, ok)
        self.finite_checked = True

    def empty_labels(self, n_clusters: int) -> np.ndarray:
        return np.zeros(self.allowed.shape, dtype=_label_dtype(n_clusters))

    def put(self, labels: np.ndarray, where, lab: np.ndarray) -> None:
        """Store a chunk's labels (0-based); distinct colours wait for :meth:`finish`."""
        if where is None:
            self.unique_labels = lab
            return
        rows, ok = where
        out = np.zeros(ok.shape, dtype=labels.dtype)
        out[ok] = lab + 1
        labels[rows] = out.reshape(labels[rows].shape)

    def finish(self, labels: np.ndarray) -> None:
        """Give every pixel its distinct colour's label from the last pass."""
        if self.uniques is None:
            return
        lab = self.unique_labels.astype(labels.dtype) + 1
        if self.n_features <= 3:  # a table over all codes (up to 2**24): one gather
            # not zeroed (2x faster): only codes of excluded pixels read unset entries, and
            # those pixels are set to 0 below
            table = np.empty(1 << (8 * self.n_features), dtype=labels.dtype)
            table[self.unique_codes] = lab
            labels[...] = table[self.codes]
        else:  # four 8-bit features: 2**32 codes, too many for a table
            at = np.minimum(np.searchsorted(self.unique_codes, self.codes), len(lab) - 1)
            labels[...] = lab[at]
        labels[~self.allowed] = 0

    def distinct(self) -> np.ndarray:
        """The distinct finite pixel values (only needed in degenerate cases)."""
        if self.uniques is not None:
            return self.uniques
        return np.unique(np.concatenate([b for b, _, _ in self.chunks()]), axis=0).astype(
            np.float32
        )


# --- fitting ---------------------------------------------------------------------------------


class _Fit(NamedTuple):
    labels: np.ndarray  # 1..k in fit order
    means: np.ndarray  # input units
    std: np.ndarray
    counts: np.ndarray
    inertia: float
    features: Features
    centers: np.ndarray  # feature space: the centres the labels are nearest to


def _fit(data: _Pixels, k: int, params: dict, report) -> _Fit:
    """Sample fit, then Lloyd passes over all pixels (clusters in fit order)."""
    rng = np.random.default_rng(params["random_state"])
    total_weight = data.total_weight  # counted once: every pass's coreset needs it
    if total_weight == 0:
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
    if k > total_weight or (data.uniques is not None and k > len(data.uniques)):
        distinct = data.distinct()  # more clusters than pixels: cheap to count exactly
        if len(distinct) < k:
            raise _TooFewDistinct(len(distinct), k)
    sample, weights = data.sample(params["max_samples"], rng)
    if len(sample) == 0:
        if not data.allowed.any() or data.uniques is not None:
            raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
        sample, weights = _finite_sample(data, params["max_samples"], rng)
    features = Features.fit(sample, weights, params)
    xs = features(sample)
    centers = _best_start(xs, weights, k, params, rng, report)
    if centers is None:  # the sample has fewer distinct pixels than k: does the image?
        distinct = data.distinct()
        if len(distinct) < k:
            raise _TooFewDistinct(len(distinct), k)
        centers = _best_start(features(distinct), None, k, params, rng, report)

    labels = data.empty_labels(k)
    chunks = None
    if data.nbytes_float32 <= CACHE_BYTES:  # small: convert once, not once per pass
        chunks = list(_feature_chunks(data, features))

    def one_pass(centers):
        blocks = chunks if chunks is not None else _feature_chunks(data, features)
        coreset = Coreset(CORESET_ROWS, total_weight, rng)
        return _pass(data, blocks, features, centers, labels, coreset)

    def check(acc):
        if np.any(acc.counts == 0):
            n_distinct = len(data.distinct())
            if n_distinct < k:
                raise _TooFewDistinct(n_distinct, k)

    acc, inertia = refine(one_pass, centers, params, report, check)
    if not acc.counts.any():
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
    for _ in range(RECOVER_ROUNDS):
        found = _recover(acc, inertia, data, labels, k, params, rng, report, one_pass, check)
        if found is None:
            break
        acc, inertia = found
    data.finish(labels)
    means, std = acc.input_mean_std(features.offset)
    # the model keeps the centres the last pass labelled with, not their means: applied to
    # this image it then gives exactly these labels
    return _Fit(labels, means, std, acc.counts, inertia, features, acc.centers)


def refine(one_pass, centers, params: dict, report, check=lambda acc: None):
    """Lloyd passes over all pixels until the centres stop moving (or ``max_refine``).

    ``one_pass(centers)`` labels every pixel with its nearest centre and returns the cluster
    sums (an in-memory pass, or dask tasks over blocks). Returns the last pass's sums (its
    centres are ``acc.centers``) and the inertia of its labels about their means.

    A pass converges when moving the centres to their clusters' means lowers the inertia by
    less than ``tol`` of it (the count-weighted squared shift of the centres, scikit-learn's
    criterion in inertia units), or when no pixel is near enough to another centre to change
    cluster in another pass (:meth:`_Accumulator.settled`). Unlike comparing two passes'
    inertias, both can stop after one pass, which is what a good sample fit needs: every pass
    saved is a read of every pixel.
    """
    n_passes = max(1, params["max_refine"])
    for it in range(n_passes):
        acc = one_pass(centers)
        check(acc)
        inertia = acc.inertia_about_means()
        report(ProgressEvent("refine", it + 1, n_passes, inertia))
        if acc.shift_gain() <= params["tol"] * inertia or acc.settled():
            break
        centers = acc.feature_means().astype(np.float32)
    return acc, inertia


def _pass(
    data: _Pixels, chunks, features: Features, centers, labels, coreset: Coreset | None = None
) -> _Accumulator:
    """One pass over all pixels: label each with its nearest centre, sum up the clusters,
    and (with ``coreset``) draw a coreset of the pixels by their distances."""
    acc = _Accumulator(centers, data.n_features, features.identity)
    for feats, w, where, raw in chunks:
        lab, dist, margin = _nearest(feats, centers, margin=True)
        data.put(labels, where, lab)
        acc.add(lab, w, feats, dist, raw, margin)
        if coreset is not None:
            coreset.add(feats, w, dist, lab, len(centers))
    acc.coreset = coreset
    return acc


class Coreset:
    """A lightweight coreset of all pixels (Bachem, Lucic & Krause, KDD 2018), drawn in a pass.

    Each pixel is drawn with a chance that is half uniform (by its weight) and half by its
    weight times its squared distance to the pass's nearest centre, and weighted by the
    inverse of that chance, so the coreset's cost for *any* centres estimates the cost over
    all pixels without bias. A material of a few dozen pixels that the clustering lumped in
    with another — which a uniform sample of thousands holds once or twice, if at all — is far
    from every centre, so it is drawn in proportion to the cost it adds, and a start search on
    the coreset can give it a cluster. Pixels are drawn independently (Poisson sampling, with
    Horvitz-Thompson weights): one streaming pass, memory for the drawn rows only. The total
    cost is not known until the pass ends, so each chunk's chances use the cost per pixel seen
    so far (any chances keep the weights unbiased; these keep the size near ``n_rows``).
    """

    def __init__(self, n_rows: int, total_weight: float, rng: np.random.Generator):
        self.n_rows = n_rows
        self.total_weight = max(float(total_weight), 1e-300)
        self.rng = rng
        self.seen_weight = 0.0
        self.seen_cost = 0.0
        self.cluster_weight: np.ndarray | None = None
        self.drawn: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, feats: np.ndarray, weights, dist: np.ndarray, lab: np.ndarray, k: int) -> None:
        # float32 and scalar weights where pixels are unweighted: this runs in every pass,
        # over every pixel, so it is kept to a few vector operations
        n = len(feats)
        w = np.float32(1) if weights is None else np.asarray(weights, dtype=np.float32)
        cost = dist if weights is None else w * dist
        self.seen_weight += float(n if weights is None else w.sum())
        self.seen_cost += float(cost.sum(dtype=np.float64))
        if self.cluster_weight is None:
            self.cluster_weight = np.zeros(k)
        self.cluster_weight += np.bincount(lab, None if weights is None else w, minlength=k)
        # the uniform half, with at least CORESET_ROWS_PER_CLUSTER rows expected from every
        # cluster (by its weight so far): a small cluster's cost must be estimated well too,
        # or a swap that merges it away looks cheap
        scale = self.total_weight / self.seen_weight
        per_cluster = CORESET_ROWS_PER_CLUSTER / np.maximum(self.cluster_weight * scale, 1e-12)
        uniform = np.maximum(0.5 * self.n_rows / self.total_weight, per_cluster).astype(np.float32)
        chance = uniform[lab] * w
        if self.seen_cost > 0:
            per_cost = 0.5 * self.n_rows / (self.seen_cost * scale)
            chance += np.float32(per_cost) * cost
        take = np.flatnonzero(self.rng.random(n, dtype=np.float32) < chance)
        if len(take):
            p = np.minimum(chance[take], 1).astype(np.float64)
            wt = 1.0 if weights is None else w[take].astype(np.float64)
            self.drawn.append((feats[take].astype(np.float32), wt / p))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The coreset's rows and their weights (summing to about the pixels' total weight)."""
        if not self.drawn:
            return np.zeros((0, 0), np.float32), np.zeros(0)
        return (
            np.concatenate([x for x, _ in self.drawn]),
            np.concatenate([w for _, w in self.drawn]),
        )


def _recover(acc, inertia, data: _Pixels, labels, k, params, rng, report, one_pass, check):
    """Look for a better clustering than the refined one, on the coreset its last pass drew.

    Swap moves (:func:`_swap_search`) start from the refined centres: a centre moves to a far
    pixel — a material lumped in with another, or missing altogether — where that lowers the
    coreset's cost most. When the result beats the refined clustering's cost there by more
    than RECOVER_GAIN, it is refined over all pixels as well, and kept (labels included) if
    its inertia is lower by RECOVER_GAIN too. Returns the better clustering, or None (usually:
    nothing more read).
    """
    coreset = acc.coreset
    if coreset is None or acc.dist <= 0 or k < 2:
        return None
    xs, w = coreset.rows()
    if len(xs) <= k:
        return None
    centers = acc.centers.astype(np.float32)
    reduced, project = xs, centers
    if xs.shape[1] > 8:  # swaps and Lloyd in the coreset's leading principal components
        mean = weighted_mean(xs, w).astype(np.float32)
        few = rng.choice(len(xs), min(len(xs), SCREEN_ROWS), replace=False)  # as good, 4x cheaper
        axes = principal_axes(xs[few] - mean, w[few], None, at_least=k - 1)
        axes = axes.T.astype(np.float32)
        reduced, project = (xs - mean) @ axes, (centers - mean) @ axes
    now = float(w @ _nearest(reduced, project)[1])
    swapped = _swap_search(reduced, w, project, rng, n_candidates=2 * k + 10)
    swapped, found = _lloyd(reduced, w, swapped)
    if found >= (1 - RECOVER_GAIN) * now:
        return None
    lab, _ = _nearest(reduced, swapped)
    counts, sums = _weighted_sums(lab, w, xs, k)
    start = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1e-12)[:, None], centers)
    kept_labels = labels.copy()
    kept_unique = None if data.unique_labels is None else data.unique_labels.copy()
    acc2, inertia2 = refine(one_pass, start.astype(np.float32), params, report, check)
    if inertia2 < (1 - RECOVER_GAIN) * inertia:
        return acc2, inertia2
    labels[...] = kept_labels
    data.unique_labels = kept_unique
    return None


def _swap_search(x, weights, centers, rng, *, n_candidates: int) -> np.ndarray:
    """LocalSearch++ (Lattanzi & Sohler, ICML 2019): draw a row by its weighted squared
    distance to the centres, and swap it for the centre whose replacement lowers the cost
    most, if any does; ``n_candidates`` draws. Rows that no centre explains well hold most of
    the cost, so they are what gets drawn.

    Written here rather than taken from a library: scikit-learn has no local search, and the
    swap's cost for every centre at once is one bincount over the rows' two nearest centres.
    """
    c = np.array(centers, dtype=np.float32)
    k = len(c)
    norms = np.einsum("ij,ij->i", x, x)
    d = np.maximum(norms[:, None] - 2 * (x @ c.T) + np.einsum("ij,ij->i", c, c), 0)
    rows = np.arange(len(x))

    def nearest_two():  # only after a swap: most draws are refused and change nothing
        two = np.argpartition(d, 1, axis=1)[:, :2] if k > 2 else np.argsort(d, axis=1)[:, :2]
        d_two = d[rows[:, None], two]
        first = d_two[:, 0] <= d_two[:, 1]
        lab = np.where(first, two[:, 0], two[:, 1])
        d1, d2 = d_two.min(axis=1), d_two.max(axis=1)
        cdf = np.cumsum(weights * d1)
        return lab, d1, d2, cdf

    lab, d1, d2, cdf = nearest_two()
    for _ in range(n_candidates):
        total = float(cdf[-1])
        if total <= 0:
            break
        p = min(int(np.searchsorted(cdf, rng.random() * total)), len(x) - 1)
        dp = np.maximum(norms - 2 * (x @ x[p]) + norms[p], 0)
        m1 = np.minimum(dp, d1)
        delta = np.bincount(lab, weights * (np.minimum(dp, d2) - m1), minlength=k)
        j = int(np.argmin(delta))
        if float(weights @ m1) + delta[j] < total * (1 - 1e-6):
            c[j] = x[p]
            d[:, j] = dp
            lab, d1, d2, cdf = nearest_two()
    return c


def _feature_chunks(data: _Pixels, features: Features):
    """(features, weights, where, input pixels - offset or None) for every chunk."""
    for block, w, where in data.chunks():
        raw = None if features.identity else block - features.offset.astype(np.float32)
        yield features(block), w, where, raw


def _finite_sample(data: _Pixels, n: int, rng: np.random.Generator):
    """Sample among finite pixels only, when a random draw found none (mostly-NaN images)."""
    rows = np.concatenate([b for b, _, _ in data.chunks()]) if data.allowed.any() else []
    if len(rows) == 0:
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
    pick = rng.choice(len(rows), min(n, len(rows)), replace=False)
    return rows[np.sort(pick)].astype(np.float64), np.ones(len(pick))


def _best_start(xs, weights, k, params, rng, report) -> np.ndarray | None:
    """Best of ``n_init`` k-means++ + Lloyd runs on the sample, in full feature space.

    The starts are searched in the sample's leading principal components (cheap, and what
    separates clusters) and screened on SCREEN_ROWS of its rows (more for many clusters) with
    a few Lloyd iterations each; the best is iterated to convergence on the whole sample, and
    its clusters give centres in full feature space. Screening on a subset costs a third of
    screening on the whole sample and, measured over 20 seeds on the photo, Samson and a
    16-material scene, picks starts as good. None when the sample has fewer distinct points
    than k.
    """
    weights = np.ones(len(xs)) if weights is None else weights
    n_init = max(1, params["n_init"])
    rows = np.arange(len(xs))
    n_rows = max(SCREEN_ROWS, SCREEN_ROWS_PER_CLUSTER * k)
    if len(xs) > n_rows:
        rows = np.sort(rng.choice(len(xs), n_rows, replace=False))
    reduced = xs
    if xs.shape[1] > 8:  # the principal axes of the screening rows (4x cheaper, as good)
        few, w = xs[rows], weights[rows]
        # at least k - 1 axes: k centres span that many, and a small cluster's own direction
        # holds a tiny share of the variance (a 20-pixel material in 21,025 was merged away)
        centred = few - weighted_mean(few, w).astype(xs.dtype)
        axes = principal_axes(centred, w, None, at_least=k - 1)
        reduced = xs @ axes.T.astype(np.float32)
    best, best_inertia = None, np.inf
    for i in range(n_init):
        start = _kmeans_plusplus(reduced[rows], weights[rows], k, rng)
        if start is None and len(rows) < len(reduced):  # too few distinct rows there
            rows = np.arange(len(reduced))
            start = _kmeans_plusplus(reduced, weights, k, rng)
        if start is None:
            return None
        centers, inertia = _lloyd(reduced[rows], weights[rows], start, tol=SCREEN_TOL)
        report(ProgressEvent("fit", i + 1, n_init, inertia))
        if inertia < best_inertia:
            best, best_inertia = centers, inertia
    best, _ = _lloyd(reduced, weights, best)  # the winner, to convergence
    lab, _ = _nearest(reduced, best)
    counts, sums = _weighted_sums(lab, weights, xs, k)
    return (sums / np.maximum(counts, 1e-12)[:, None]).astype(np.float32)


def _kmeans_plusplus(x, weights, k, rng) -> np.ndarray | None:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, with 2 + log k trials per centre, as
    scikit-learn does), weighted. None when ``x`` has fewer than k distinct points."""
    n = len(x)
    trials = 2 + int(np.log(k))
    norms = np.einsum("ij,ij->i", x, x)

    def sq_dist(rows):  # (n, len(rows)) squared distances of all points to points ``rows``
        d = x @ (-2 * x[rows].T)
        d += norms[rows]
        d += norms[:, None]
        return np.maximum(d, 0, out=d)

    p = weights / weights.sum()
    first = rng.choice(n, p=p)
    rows = [first]
    closest = sq_dist([first])[:, 0]
    for _ in range(1, k):
        pot = closest * weights
        cdf = np.cumsum(pot)
        if cdf[-1] <= 0:  # every point sits on a centre: fewer distinct points than k
            return None
        cand = np.minimum(np.searchsorted(cdf, rng.random(trials) * cdf[-1]), n - 1)
        d = np.minimum(closest[:, None], sq_dist(cand))
        best = int(np.argmin(weights @ d))
        rows.append(cand[best])
        closest = d[:, best]
    return x[rows].astype(np.float32)


def _lloyd(x, weights, centers, max_iter: int = 30, tol: float = 1e-4):
    """Lloyd iterations on an in-memory sample; returns the centres and weighted inertia.

    The sample is small (thousands of rows, a few principal features), so per-call overhead
    dominates: the weighted features are computed once, not per iteration.
    """
    k = len(centers)
    wx = (x * weights[:, None]).T.copy() if x.shape[1] <= FEW else None  # once, not per pass
    norms = np.einsum("ij,ij->i", x, x)
    prev = np.inf
    for _ in range(max_iter):
        lab, dist = _nearest(x, centers, norms=norms)
        inertia = float(np.dot(weights, dist))
        counts, sums = _weighted_sums(lab, weights, x, k, wx)
        empty = counts == 0
        if empty.any():  # restart empty clusters on the points farthest from their centre
            far = np.argsort(-dist)[: int(empty.sum())]
            sums[empty], counts[empty] = x[far], 1
        centers = (sums / counts[:, None]).astype(np.float32)
        if prev - inertia <= tol * inertia:
            break
        prev = inertia
    _, dist = _nearest(x, centers, norms=norms)
    return centers, float(np.dot(weights, dist))


def _weighted_sums(lab, weights, x, k, wx=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster weight totals (k,) and weighted sums (k, F) of the rows of ``x``, float64."""
    return np.bincount(lab, weights=weights, minlength=k), _cluster_sums(lab, weights, x, k, wx)


def _cluster_sums(lab, weights, x, k, wx=None) -> np.ndarray:
    """Per-cluster weighted sums (k, F) of the rows of ``x``, float64.

    Few columns: one float64 bincount each (``wx``: the weighted columns, if already made).
    More: float32 one-hot products over at most ``ACC_ROWS`` rows at a time, added up in
    float64, so no float64 copy of ``x`` is made and rounding stays small.
    """
    if x.shape[1] <= FEW:
        wx = (x * weights[:, None]).T if wx is None else wx
        return np.stack([np.bincount(lab, weights=col, minlength=k) for col in wx], 1)
    sums = np.zeros((k, x.shape[1]))
    w = np.asarray(weights, dtype=np.float32)
    for start in range(0, len(lab), ACC_ROWS):
        rows = slice(start, start + ACC_ROWS)
        sums += _onehot(lab[rows], w[rows], k) @ x[rows].astype(np.float32, copy=False)
    return sums


def _nearest(x: np.ndarray, centers: np.ndarray, *, margin: bool = False, norms=None):
    """Nearest centre of every row and its squared distance; with ``margin``, also how much
    farther the second nearest centre is (Euclidean distance; inf with one centre).
    ``norms``: the rows' squared norms, when already known.

    ||x||^2 - 2 x.c + ||c||^2 as one float32 matrix product (BLAS, all cores) instead of a
    (n, k, C) difference array. For a few centres the products come as k rows and a running
    maximum over them: numpy's argmin along short rows costs more than the product itself.
    """
    half = 0.5 * np.einsum("ij,ij->i", centers, centers)
    norms = np.einsum("ij,ij->i", x, x) if norms is None else norms
    second = np.full(len(x), -np.inf, dtype=np.float32) if margin else None
    if len(centers) > 16:
        d = x @ centers.T
        d -= half
        lab = np.argmax(d, axis=1)
        best = d[np.arange(len(x)), lab]
        if margin:
            d[np.arange(len(x)), lab] = -np.inf
            second = d.max(axis=1)
    else:
        d = centers @ x.T  # (k, n): c_j.x - |c_j|^2 / 2 is largest for the nearest c_j
        d -= half[:, None]
        best, lab = d[0].copy(), np.zeros(len(x), dtype=np.intp)
        for j in range(1, len(centers)):
            if margin:  # the second largest so far: the larger of the old second and new loser
                np.maximum(second, np.minimum(best, d[j]), out=second)
            lab[d[j] > best] = j
            np.maximum(best, d[j], out=best)
    dist = np.maximum(norms - 2 * best, 0)
    if not margin:
        return lab, dist
    with np.errstate(invalid="ignore"):  # -inf second (one centre): an infinite margin
        gap = np.sqrt(np.maximum(norms - 2 * second, 0)) - np.sqrt(dist)
    return lab, dist, gap


def _onehot(lab, weights, k):
    """(k, n) matrix of each row's weight in its cluster's row: dense for a few clusters (a
    BLAS product, 2-4x faster), sparse for many (a dense one would be mostly zeros)."""
    if k <= 32:
        onehot = np.zeros((k, len(lab)), dtype=weights.dtype)
        onehot[lab, np.arange(len(lab))] = weights
        return onehot
    return sparse.csr_matrix((weights, (lab, np.arange(len(lab)))), shape=(k, len(lab)))


class _Accumulator:
    """Per-cluster sums over one pass against the pass's centres ``c``: counts, squared
    distances, feature sums, and per-feature sums of squared deviations from ``c`` (small
    numbers, so no precision is lost to cancellation); likewise for the input pixels when the
    features are not just the input minus an offset; and how close each cluster's pixels come
    to a second centre (:meth:`settled`)."""

    def __init__(self, centers: np.ndarray, n_input: int, identity: bool):
        k, n_features = centers.shape
        self.centers = centers
        self.counts = np.zeros(k)
        self.dist = 0.0
        self.sums = np.zeros((k, n_features))
        self.sq = np.zeros((k, n_features))
        self.raw = None if identity else np.zeros((k, n_input))
        self.raw_sq = None if identity else np.zeros((k, n_input))
        # smallest second-nearest margin in each cluster; float32 like the margins, which
        # keeps np.minimum.at on its fast path (30x faster than with a cast)
        self.margin = np.full(k, np.inf, dtype=np.float32)
        self.coreset: Coreset | None = None  # drawn by the pass, when it draws one

    def add(self, lab, weights, feats, dist, raw, margin=None):
        k = len(self.counts)
        if margin is not None:
            np.minimum.at(self.margin, lab, margin.astype(np.float32, copy=False))
        w = np.ones(len(lab), np.float32) if weights is None else weights
        self.dist += float(np.dot(w, dist.astype(np.float64)))
        dev = np.take(self.centers, lab, axis=0)  # one buffer: gather, subtract, square
        np.subtract(feats, dev, out=dev)
        self.counts += np.bincount(lab, weights=w, minlength=k)
        self.sums += _cluster_sums(lab, w, feats, k)
        self.sq += _cluster_sums(lab, w, np.square(dev, out=dev), k)
        if self.raw is not None:
            self.raw += _cluster_sums(lab, w, raw, k)
            self.raw_sq += _cluster_sums(lab, w, raw * raw, k)

    def feature_means(self) -> np.ndarray:
        means = self.sums / np.maximum(self.counts, 1)[:, None]
        empty = self.counts == 0
        means[empty] = self.centers[empty]
        return means

    def settled(self) -> bool:
        """Whether another pass would give every pixel the same cluster.

        When the centres move to their clusters' means, a pixel's distance to its own centre
        grows by at most that centre's shift, and its distance to any other shrinks by at
        most the largest other shift (triangle inequality, as in Hamerly's k-means): a pixel
        whose margin to its second nearest centre is at least the two shifts together cannot
        change cluster (up to float32 rounding).
        """
        moved = self.feature_means() - self.centers
        shift = np.sqrt(np.einsum("ij,ij->i", moved, moved))
        order = np.argsort(shift)
        largest_other = np.full(len(shift), shift[order[-1]])
        largest_other[order[-1]] = shift[order[-2]] if len(shift) > 1 else 0.0
        return bool(np.all(self.margin >= shift + largest_other))

    def shift_gain(self) -> float:
        """sum n |mean - c|^2: how much moving the centres to their means lowers the inertia."""
        shift = self.feature_means() - self.centers
        return float(np.sum(self.counts * np.einsum("ij,ij->i", shift, shift)))

    def inertia_about_means(self) -> float:
        """sum |x - mean|^2 = sum |x - c|^2 - sum n |mean - c|^2 (no second pass)."""
        return max(self.dist - self.shift_gain(), 0)

    def input_mean_std(self, offset) -> tuple[np.ndarray, np.ndarray]:
        n = np.maximum(self.counts, 1)[:, None]
        if self.raw is None:  # features = input - offset
            mean = self.feature_means()
            var = self.sq / n - (mean - self.centers) ** 2
            return mean + offset, np.sqrt(np.maximum(var, 0))
        mean = self.raw / n
        return mean + offset, np.sqrt(_spread(self.raw, self.raw_sq, self.counts) / n)


def _spread(sums, sq, counts) -> np.ndarray:
    """Per-cluster, per-feature sum of squared deviations from the mean, from running sums."""
    return np.maximum(sq - sums**2 / np.maximum(counts, 1)[:, None], 0)


def _label_dtype(n_clusters: int) -> np.dtype:
    return np.dtype(
        np.uint8 if n_clusters < 256 else np.uint16 if n_clusters < 65536 else np.uint32
    )


def recolor(labels: np.ndarray, colors: np.ndarray, alpha=None) -> np.ndarray:
    """Every pixel in its cluster's colour, with the picture's own alpha plane.

    Parameters
    ----------
    labels : (M, N[, ...]) ndarray of int
        Labels 1..k; 0 (excluded pixels) is black, and transparent when there is alpha.
    colors : (k, 3) ndarray of uint8
        Colour of label ``i`` in row ``i - 1``.
    alpha : (M, N[, ...]) ndarray, optional
        The input's alpha plane, carried over unchanged wherever a pixel has a label (soft,
        anti-aliased edges stay soft, as the walkthrough restores them); 16-bit alpha gives
        a 16-bit RGBA image (colours times 257), float alpha (0..1) is scaled to 0..255.

    Returns
    -------
    (M, N[, ...], 3 or 4) ndarray of uint8 (uint16 for 16-bit alpha)
    """
    labels = np.asarray(labels)
    lut = color_lut(colors, alpha=alpha is not None)
    if alpha is None:
        return lut[labels]
    alpha = np.asarray(alpha)
    if alpha.dtype == np.uint16:
        out = (lut.astype(np.uint16) * 257)[labels]
    else:
        # RGBA rows as one uint32 each: a 1-D gather, ~10x faster than gathering (k + 1, 4)
        # rows
        out = np.take(lut.view(np.uint32).ravel(), labels).view(np.uint8)
        out = out.reshape(*labels.shape, 4)
        if np.issubdtype(alpha.dtype, np.floating):  # napari's float RGBA: alpha 0..1
            alpha = np.round(np.clip(np.nan_to_num(alpha), 0, 1) * 255)
        alpha = np.clip(alpha, 0, 255).astype(np.uint8, copy=False)
    # label 0 has alpha 0 in the table, every cluster the maximum: the minimum is 0 or the
    # picture's own alpha
    np.minimum(out[..., 3], alpha, out=out[..., 3])
    return out


def color_lut(colors, *, alpha: bool) -> np.ndarray:
    """(k + 1, 3|4) uint8 colours by label: 0 black (transparent with alpha), i colors[i - 1]."""
    lut = np.zeros((len(colors) + 1, 4 if alpha else 3), dtype=np.uint8)
    lut[1:, :3] = colors
    if alpha:
        lut[1:, 3] = 255
    return lut


def label_statistics(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    channel_axis: int | None = -1,
    alpha: bool | None = None,
) -> dict[str, np.ndarray]:
    """Per-label pixel counts, fractions, mean and standard deviation of each feature.

    For a labels image edited by hand (painted, merged): the cluster table recomputed from
    what the labels now say. Label 0 and excluded pixels (alpha = 0, NaN) are left out.

    Returns
    -------
    dict
        ``label`` (present labels, ascending), ``count``, ``fraction``, ``mean`` (n, C) and
        ``std`` (n, C), in the input's units.
    """
    _, view, allowed, _ = _prepare(image, channel_axis, None, alpha)
    labels = np.asarray(labels)
    if labels.shape != allowed.shape:
        raise ClusteringError(f"labels shape {labels.shape} does not match image {allowed.shape}")
    x = view[allowed & (labels > 0)].astype(np.float64)
    lab = labels[allowed & (labels > 0)].astype(np.int64)
    finite = np.isfinite(x).all(axis=1)
    x, lab = x[finite], lab[finite]
    present, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    n = len(present)
    sums = np.stack([np.bincount(inverse, x[:, j], n) for j in range(x.shape[1])], 1)
    mean = sums / np.maximum(counts, 1)[:, None]
    dev = x - mean[inverse]
    var = np.stack([np.bincount(inverse, dev[:, j] ** 2, n) for j in range(x.shape[1])], 1)
    return {
        "label": present,
        "count": counts,
        "fraction": counts / max(int(counts.sum()), 1),
        "mean": mean.reshape(n, -1),
        "std": np.sqrt(var / np.maximum(counts, 1)[:, None]).reshape(n, -1),
    }


def sweep_k(
    image: np.ndarray,
    ks=range(2, 13),
    *,
    channel_axis: int | None = -1,
    mask: np.ndarray | None = None,
    alpha: bool | None = None,
    preprocessing: Preprocessing = "none",
    max_samples: int = 3000,
    random_state: int = 0,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> dict[str, np.ndarray]:
    """Help choose k: inertia (for an elbow) and silhouette score for each k, on a sample.

    A random sample of at most ``max_samples`` valid pixels is clustered for every k; the
    silhouette (scikit-learn's, -1..1, higher = better separated) is measured on it.

    Returns
    -------
    dict
        ``k``, ``inertia`` and ``silhouette`` arrays; the silhouette is NaN where undefined.
    """
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(random_state)
    if is_lazy(image):  # sample blocks; never load the cube
        from .lazy import lazy_sample, lazy_view

        if alpha is None:
            n_channels = image.shape[channel_axis] if channel_axis is not None else 1
            alpha = n_channels == 4 and np.issubdtype(image.dtype, np.integer)
        sample, weights = lazy_sample(
            *lazy_view(image, channel_axis, alpha, mask), max_samples, rng
        )
        if len(sample):  # drawn again in proportion to the pixels each stands for
            pick = rng.choice(len(sample), len(sample), p=weights / weights.sum())
            sample = sample[np.sort(pick)]
    else:
        _, view, allowed, _ = _prepare(image, channel_axis, mask, alpha)
        sample, _ = _Pixels(view, allowed).sample(max_samples, rng)
    if len(sample) == 0:
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
    report = progress or (lambda event: None)
    ks = [int(k) for k in ks if 1 <= int(k) <= len(sample)]
    inertia, silhouette = [], []
    for i, k in enumerate(ks):
        try:
            res = cluster_image(
                sample[:, None, :],
                k,
                preprocessing=preprocessing,
                random_state=random_state,
                alpha=False,
            )
        except ClusteringError:  # fewer distinct pixels than k: the sweep ends here
            ks = ks[:i]
            break
        inertia.append(res.inertia)
        feats = res.model.features(sample)
        labels = res.labels.ravel()
        ok = 1 < len(np.unique(labels)) < len(sample)
        silhouette.append(float(silhouette_score(feats, labels)) if ok else np.nan)
        report(ProgressEvent("sweep", i + 1, len(ks), res.inertia))
    return {"k": np.array(ks), "inertia": np.array(inertia), "silhouette": np.array(silhouette)}
