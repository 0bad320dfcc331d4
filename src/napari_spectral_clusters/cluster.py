"""The clustering engine: image pixels -> cluster labels, centres, colours and statistics.

Pure numpy/scikit-learn; no napari, no Qt. Cost is "fit on a sample + a few chunked passes
over all pixels", in float32, without a Python loop over pixels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from .color import center_colors

__all__ = ["Cancelled", "ClusterResult", "ClusteringError", "cluster_image"]

#: Pixels per chunk in the labelling passes: large enough for BLAS, small enough that the
#: float32 copy of a chunk and its distance matrix stay a few tens of MB.
CHUNK_PIXELS = 65_536

Progress = Callable[[str, int, int], None]


class ClusteringError(ValueError):
    """The image cannot be clustered as asked (nothing to cluster, too few distinct pixels)."""


class Cancelled(Exception):
    """Raised by a progress callback to stop a run; :func:`cluster_image` lets it through."""


@dataclass(frozen=True)
class ClusterResult:
    """What :func:`cluster_image` found.

    Attributes
    ----------
    labels : (M, N[, ...]) ndarray of unsigned int
        Cluster of every pixel, 1..k numbered by cluster size (1 = largest); 0 = excluded.
    centers : (k, C) ndarray of float64
        Mean of each cluster's pixels, in the input's units (row ``i`` is label ``i + 1``).
    colors : (k, 3) ndarray of uint8
        Display colour of each cluster (row ``i`` is label ``i + 1``).
    recolored : (M, N[, ...], 3 or 4) ndarray of uint8
        Every pixel in its cluster's colour; RGBA when the input had alpha (alpha 0 kept).
    inertia : float
        Sum of squared distances of the pixels to their cluster centre, in input units.
    counts : (k,) ndarray of int64
        Pixels in each cluster.
    params : dict
        The parameters that produced this result, to reproduce it.
    """

    labels: np.ndarray
    centers: np.ndarray
    colors: np.ndarray
    recolored: np.ndarray
    inertia: float
    counts: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(self.centers)


def cluster_image(
    image: np.ndarray,
    n_clusters: int = 8,
    *,
    channel_axis: int | None = -1,
    mask: np.ndarray | None = None,
    alpha: bool | None = None,
    random_state: int = 0,
    max_samples: int = 100_000,
    n_init: int = 3,
    max_refine: int = 3,
    progress: Progress | None = None,
) -> ClusterResult:
    """Cluster the pixels of an image with KMeans.

    Parameters
    ----------
    image : (M, N[, ...], C) ndarray
        Greyscale image (``channel_axis=None``), RGB(A) picture or spectral cube. The
        channel axis holds each pixel's features (colour or spectrum).
    n_clusters : int
        Number of clusters k.
    channel_axis : int or None
        Axis of ``image`` holding the features; None for a greyscale image.
    mask : (M, N[, ...]) ndarray, optional
        Pixels to cluster: True or non-zero. Others get label 0.
    alpha : bool, optional
        Whether the last of 4 channels is alpha (not a feature; alpha = 0 pixels are excluded
        and stay transparent). Default: True for 4-channel integer images, as PNGs are.
    random_state : int
        Seed; the same seed gives the same result.
    max_samples : int
        KMeans is fitted on at most this many randomly drawn pixels, then refined on all.
    n_init : int
        k-means++ initialisations tried on the sample; the best is kept.
    max_refine : int
        At most this many Lloyd iterations over all pixels after the sample fit.
    progress : callable, optional
        Called as ``progress(stage, done, total)``; raise :class:`Cancelled` in it to stop.

    Returns
    -------
    ClusterResult

    Raises
    ------
    ClusteringError
        When there is no pixel to cluster, or fewer distinct pixels than clusters.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = np.where(np.arange(8)[:, None, None] < 4, 0.2, 0.8) + rng.normal(0, .01, (8, 8, 5))
    >>> res = cluster_image(img, 2)
    >>> res.labels.shape, res.recolored.shape, res.centers.shape
    ((8, 8), (8, 8, 3), (2, 5))
    """
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.view(np.uint8)
    n_clusters = int(n_clusters)
    if n_clusters < 1:
        raise ClusteringError(f"the number of clusters must be at least 1, not {n_clusters}")
    if not np.issubdtype(image.dtype, np.number):
        raise ClusteringError(f"cannot cluster an image of dtype {image.dtype}")
    if np.iscomplexobj(image):
        raise ClusteringError("cannot cluster complex values; take their magnitude first")
    if channel_axis is None:
        view = image[..., np.newaxis]
    else:
        view = np.moveaxis(image, channel_axis, -1)
    if view.ndim < 2 or view.shape[-1] == 0:
        raise ClusteringError(f"cannot cluster an image of shape {image.shape}")
    if alpha is None:
        alpha = view.shape[-1] == 4 and np.issubdtype(view.dtype, np.integer)
    spatial = view.shape[:-1]
    report = progress or (lambda stage, done, total: None)

    valid = np.ones(spatial, dtype=bool)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != spatial:
            raise ClusteringError(f"mask shape {mask.shape} does not match image {spatial}")
        valid &= mask.astype(bool)
    if alpha:
        valid &= view[..., -1] > 0
        view = view[..., :-1]
    if np.issubdtype(view.dtype, np.floating):
        valid &= np.isfinite(view).all(axis=-1)
    n_valid = int(np.count_nonzero(valid))
    if n_valid == 0:
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")

    params = {
        "n_clusters": n_clusters,
        "random_state": int(random_state),
        "channel_axis": channel_axis,
        "alpha": bool(alpha),
        "max_samples": int(max_samples),
        "n_init": int(n_init),
        "max_refine": int(max_refine),
    }
    if view.dtype == np.uint8 and view.shape[-1] <= 4:
        labels, centers, counts, inertia = _cluster_by_unique_colors(
            view, valid, n_clusters, random_state, n_init, report
        )
    else:
        labels, centers, counts, inertia = _cluster_by_sample(
            view, valid, n_clusters, random_state, max_samples, n_init, max_refine, report
        )

    labels, centers, counts = _number_by_size(labels, centers, counts)
    colors = center_colors(centers, image.dtype, rgb=view.shape[-1] == 3)
    recolored = _recolor(labels, colors, alpha=alpha)
    report("done", 1, 1)
    return ClusterResult(
        labels=labels,
        centers=centers,
        colors=colors,
        recolored=recolored,
        inertia=float(inertia),
        counts=counts,
        params=params,
    )


def _label_dtype(n_clusters: int) -> np.dtype:
    return np.dtype(
        np.uint8 if n_clusters < 256 else np.uint16 if n_clusters < 65536 else np.uint32
    )


def _fit_kmeans(
    x: np.ndarray, n_clusters: int, random_state: int, n_init: int, weight=None
) -> np.ndarray:
    """k-means++ and Lloyd on ``x`` (float32), best of ``n_init``; returns the centres."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
    with warnings.catch_warnings():
        # Fewer distinct points than clusters: detected and reported by the caller instead.
        warnings.simplefilter("ignore", ConvergenceWarning)
        km.fit(x, sample_weight=weight)
    return km.cluster_centers_.astype(np.float32)


def _too_few_distinct(n_distinct: int, n_clusters: int) -> ClusteringError:
    return ClusteringError(
        f"the image has only {n_distinct} distinct pixel value(s), fewer than the "
        f"{n_clusters} clusters asked for; ask for at most {n_distinct}"
    )


def _cluster_by_unique_colors(view, valid, n_clusters, random_state, n_init, report):
    """8-bit colour: cluster the distinct colours weighted by their pixel counts.

    A photo has far fewer distinct colours than pixels, so this is exact KMeans on all pixels
    at the cost of KMeans on the distinct colours.
    """
    n_ch = view.shape[-1]
    codes = np.zeros(view.shape[:-1], dtype=np.uint32)
    for c in range(n_ch):
        codes |= view[..., c].astype(np.uint32) << np.uint32(8 * c)
    uniq, inverse, weight = np.unique(codes[valid], return_inverse=True, return_counts=True)
    if len(uniq) < n_clusters:
        raise _too_few_distinct(len(uniq), n_clusters)
    colors = np.stack([(uniq >> np.uint32(8 * c)) & 0xFF for c in range(n_ch)], axis=1)
    colors = colors.astype(np.float32)
    report("fit", 0, 1)
    centers = _fit_kmeans(colors, n_clusters, random_state, n_init, weight=weight)
    report("fit", 1, 1)
    ulabels, sums, counts, sq = _assign(colors, centers, weight)
    centers, inertia = _means_and_inertia(sums, counts, sq)
    labels = np.zeros(view.shape[:-1], dtype=_label_dtype(n_clusters))
    labels[valid] = ulabels[inverse] + 1
    return labels, centers, counts, inertia


def _cluster_by_sample(
    view, valid, n_clusters, random_state, max_samples, n_init, max_refine, report
):
    """Fit on a random sample of valid pixels, then refine with Lloyd passes over all pixels."""
    rng = np.random.default_rng(random_state)
    flat_valid = np.flatnonzero(valid)
    if len(flat_valid) > max_samples:
        flat_valid = np.sort(rng.choice(flat_valid, max_samples, replace=False))
    sample = view[np.unravel_index(flat_valid, valid.shape)]
    # Centre the data on the sample mean: float32 distances then lose no precision to a
    # large common offset (e.g. uint16 counts around 30000 differing by tens).
    offset = sample.mean(axis=0, dtype=np.float64)
    sample = (sample - offset).astype(np.float32)
    if len(sample) < n_clusters:
        raise _too_few_distinct(len(np.unique(sample, axis=0)), n_clusters)
    max_refine = max(1, max_refine)
    report("fit", 0, max_refine + 1)
    centers = _fit_kmeans(sample, n_clusters, random_state, n_init)

    labels = np.zeros(valid.shape, dtype=_label_dtype(n_clusters))
    inertia = np.inf
    for it in range(max_refine):
        report("refine", it + 1, max_refine + 1)
        sums = np.zeros((n_clusters, view.shape[-1]), dtype=np.float64)
        counts = np.zeros(n_clusters, dtype=np.int64)
        sq = 0.0
        for rows, block, ok in _chunks(view, valid, offset):
            lab, s, n, q = _assign(block, centers)
            out = np.zeros(ok.shape, dtype=labels.dtype)
            out[ok] = lab + 1
            labels[rows] = out.reshape(labels[rows].shape)
            sums += s
            counts += n
            sq += q
        if np.any(counts == 0):
            n_distinct = len(np.unique(sample, axis=0))
            if n_distinct < n_clusters:
                raise _too_few_distinct(n_distinct, n_clusters)
        new_centers, new_inertia = _means_and_inertia(sums, counts, sq, fallback=centers)
        converged = inertia - new_inertia <= 1e-4 * new_inertia
        centers, inertia = new_centers.astype(np.float32), new_inertia
        if converged:
            break
    return labels, centers.astype(np.float64) + offset, counts, inertia


def _chunks(view, valid, offset):
    """Yield (index, float32 pixels - offset, valid flags) over chunks of the first axis."""
    flat_per_row = int(np.prod(view.shape[1:-1], dtype=np.int64)) or 1
    step = max(1, CHUNK_PIXELS // flat_per_row)
    offset32 = offset.astype(np.float32)
    for start in range(0, view.shape[0], step):
        rows = slice(start, min(start + step, view.shape[0]))
        ok = valid[rows].reshape(-1)
        block = view[rows].reshape(-1, view.shape[-1])[ok].astype(np.float32)
        block -= offset32
        yield rows, block, ok


def _assign(x, centers, weight=None):
    """Nearest centre of every row of ``x``; per-cluster sums, counts and sum of squares.

    Squared distances as ||x||^2 - 2 x.c + ||c||^2: one float32 matrix product (BLAS, all
    cores) instead of a (n, k, C) difference array.
    """
    k = len(centers)
    d = x @ (-2 * centers.T)
    d += np.einsum("ij,ij->i", centers, centers)
    lab = np.argmin(d, axis=1)
    w = np.ones(len(x)) if weight is None else np.asarray(weight, dtype=np.float64)
    onehot = sparse.csr_matrix((w, (lab, np.arange(len(x)))), shape=(k, len(x)))
    sums = np.asarray(onehot @ x.astype(np.float64))
    counts = np.bincount(lab, weights=w, minlength=k).astype(np.int64)
    sq = float(np.dot(w, np.einsum("ij,ij->i", x, x, dtype=np.float64)))
    return lab, sums, counts, sq


def _means_and_inertia(sums, counts, sq, fallback=None):
    """Cluster means from sums, and the inertia about those means (sum |x|^2 - n |mean|^2)."""
    safe = np.maximum(counts, 1)[:, None]
    means = sums / safe
    if fallback is not None:
        empty = counts == 0
        means[empty] = fallback[empty]
    inertia = sq - float(np.sum(counts * np.einsum("ij,ij->i", means, means)))
    return means, max(inertia, 0.0)


def _number_by_size(labels, centers, counts):
    """Renumber clusters 1..k by decreasing pixel count (ties by centre order)."""
    order = np.argsort(-counts, kind="stable")
    lut = np.zeros(len(counts) + 1, dtype=labels.dtype)
    lut[order + 1] = np.arange(1, len(counts) + 1, dtype=labels.dtype)
    return lut[labels], np.asarray(centers, dtype=np.float64)[order], counts[order]


def _recolor(labels, colors, *, alpha):
    """Each pixel in its cluster's colour; label 0 is black (transparent with alpha)."""
    lut = np.zeros((len(colors) + 1, 4 if alpha else 3), dtype=np.uint8)
    lut[1:, :3] = colors
    if alpha:
        lut[1:, 3] = 255
    return lut[labels]
