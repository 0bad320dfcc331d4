"""Cluster the pixels of an image: the public front end of the engine.

:func:`cluster_image` and :func:`apply_model` take numpy or dask arrays alike: the pixels
become a source (:class:`~.pixels.Pixels` in memory, :class:`~.lazy.LazyPixels` block by
block), the engine (:mod:`.kmeans`) fits it, and the result is assembled here, once for
both: labels numbered by cluster size, centres and spreads in the input's units, colours,
the recoloured image and the model. Pure numpy and dask; no napari, no Qt.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from . import __version__
from ._arrays import is_lazy
from .color import center_colors
from .kmeans import (
    Cancelled,
    ClusteringError,
    Fit,
    ProgressEvent,
    TooFewDistinct,
    fit,
)
from .model import ClusterModel
from .pixels import Pixels, prepare_image
from .recolor import color_lut, recolor
from .spectral import Pipeline, PreprocessingError

__all__ = [
    "Cancelled",
    "ClusterResult",
    "ClusteringError",
    "ProgressEvent",
    "apply_model",
    "cluster_image",
    "color_lut",
    "label_statistics",
    "merged_statistics",
    "pooled_statistics",
    "recolor",
    "summary_by_label",
    "sweep_k",
]

#: Today's four spaces, or a spectral pipeline (its text, e.g. "savgol(11, 2) | snv | pca",
#: or a :class:`~.spectral.Pipeline`).
Preprocessing = Literal["none", "standardize", "unit", "pca"] | str | Pipeline


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
    tol: float | None = None,
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
    preprocessing : {"none", "standardize", "unit", "pca"}, str or Pipeline
        Features clustered: as given; each band scaled to zero mean and unit variance; each
        spectrum scaled to unit length (clusters by spectral shape, whatever the brightness);
        the leading ``n_components`` principal components. Or a spectral pipeline applied to
        every spectrum first, ending in one of those (:mod:`.spectral`), e.g.
        ``"range(450, 900) | savgol(11, 2, deriv=1) | snv"``; centres and statistics stay in
        the input's units and bands.
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
    tol : float, optional
        Refinement stops when moving the centres to their clusters' means lowers the inertia
        by less than this fraction of it. Default: 1e-6 for an image in memory of up to
        65,536 pixels (or distinct colours) and 32 MiB of float32 features, which is searched
        and settled whole; 1e-3 otherwise (larger images, and dask arrays not read into
        memory), where every refinement pass reads every pixel.
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
    >>> import numpy as np
    >>> from napari_spectral_clusters import cluster_image
    >>> rng = np.random.default_rng(0)
    >>> img = np.where(np.arange(8)[:, None, None] < 4, 0.2, 0.8) + rng.normal(0, .01, (8, 8, 5))
    >>> res = cluster_image(img, 2)
    >>> res.labels.shape, res.recolored.shape, res.centers.shape, res.counts.tolist()
    ((8, 8), (8, 8, 3), (2, 5), [32, 32])
    """
    if int(n_clusters) < 1:
        raise ClusteringError(f"the number of clusters must be at least 1, not {n_clusters}")
    pipeline = _parse_preprocessing(preprocessing)
    report = progress or (lambda event: None)
    with _engine_errors(image):
        source = _pixels(image, channel_axis, mask, alpha, read_once=True, report=report)
        steps = bind_steps(pipeline, source.n_features, wavelengths)
        params = {
            "n_clusters": int(n_clusters),
            "channel_axis": channel_axis,
            "alpha": source.has_alpha,
            "preprocessing": pipeline.space,
            # the spectral steps before it, replayed by apply_model (None: none)
            "steps": Pipeline(pipeline.steps).spec if pipeline.steps else None,
            "n_components": n_components,
            "palette": palette,
            "random_state": int(random_state),
            "max_samples": int(max_samples),
            "n_init": int(n_init),
            "max_refine": int(max_refine),
            "tol": None if tol is None else float(tol),
            # a seed reproduces its labels with the same engine: say which one made them
            "version": __version__,
        }
        k = int(n_clusters)
        while True:
            try:
                found = fit(source, k, params, report, steps=steps)
                break
            except TooFewDistinct as exc:
                # distinct pixels can still meet in feature space: count again at the new k
                if not reduce_k or exc.n_distinct < 1:
                    raise
                warnings.warn(
                    f"{exc}: clustering into {exc.n_distinct} clusters instead",
                    UserWarning,
                    stacklevel=3,
                )
                k = params["n_clusters_used"] = exc.n_distinct
        return _assemble(source, found, params, wavelengths, palette, report)


def _parse_preprocessing(preprocessing) -> Pipeline:
    """``preprocessing`` as a pipeline; ValueError (a programming error) when unreadable."""
    try:
        return Pipeline.parse(preprocessing)
    except PreprocessingError as exc:
        raise ValueError(f"unknown preprocessing {preprocessing!r}: {exc}") from None


def bind_steps(pipeline: Pipeline, n_bands: int, wavelengths):
    """The pipeline's spectral steps ready for these spectra (None without steps).

    Raises
    ------
    ClusteringError
        A step does not fit them (the message names the step).
    """
    if not pipeline.steps:
        return None
    try:
        return pipeline.bind(n_bands, wavelengths)
    except PreprocessingError as exc:
        raise ClusteringError(f"preprocessing: {exc}") from None


def apply_model(
    image: np.ndarray,
    model: ClusterModel,
    *,
    channel_axis: int | None = -1,
    mask: np.ndarray | None = None,
    alpha: bool | None = None,
    wavelengths: np.ndarray | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
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
    progress : callable, optional
        As for :func:`cluster_image`: called after each chunk or block; raise
        :class:`Cancelled` in it to stop.

    Raises
    ------
    ClusteringError
        The image has another number of channels or other wavelengths than the model, or no
        pixel to label.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters import apply_model, cluster_image
    >>> import numpy as np
    >>> from napari_spectral_clusters.samples import synthetic_cube
    >>> cube, truth, wl = synthetic_cube((48, 48), seed=1)
    >>> first = cluster_image(cube, 4, channel_axis=0, random_state=0)
    >>> other, other_truth, _ = synthetic_cube((48, 48), seed=2)  # same materials, other noise
    >>> res = apply_model(other, first.model, channel_axis=0)
    >>> res.labels.shape, res.n_clusters
    ((48, 48), 4)
    >>> def cluster_of(labels, truth, material):  # the cluster most of a material's pixels are in
    ...     return int(np.bincount(labels[truth == material]).argmax())
    >>> [cluster_of(res.labels, other_truth, m) == cluster_of(first.labels, truth, m)
    ...  for m in np.unique(truth)]
    [True, True, True, True]
    """
    report = progress or (lambda event: None)
    with _engine_errors(image):
        source = _pixels(image, channel_axis, mask, alpha, read_once=False, report=report)
        if source.n_features != model.n_features:
            raise ClusteringError(
                f"the model was fitted on {model.n_features} channels (bands); "
                f"this image has {source.n_features}"
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
        steps = model.features.steps
        if steps is not None and steps.needs_wavelengths and wavelengths is None:
            raise ClusteringError(
                f"the model's preprocessing ({steps.pipeline.spec}) selects bands by "
                "wavelength, and this image has no wavelengths: give them first"
            )
        acc = source.one_pass(model.features, model.centers, None, None, report)
        if not acc.counts.any():
            raise ClusteringError("no pixel left to label: all are masked, transparent or NaN")
        means, std = acc.input_mean_std(model.features.offset)
        empty = acc.counts == 0
        means[empty], std[empty] = np.nan, np.nan
        labels = source.labels(np.arange(model.n_clusters))
        return ClusterResult(
            labels=labels,
            centers=means,
            std=std,
            colors=model.colors,
            recolored=source.recolored(
                labels, model.colors, transparent=_left_out(acc.counts, labels)
            ),
            inertia=float(acc.inertia_about_means()),
            counts=np.round(acc.counts).astype(np.int64),
            model=model,
            params=model.params,
        )


def _left_out(counts, labels) -> bool:
    """Whether some pixel was left out (masked, NaN or transparent: label 0), from how many
    the clusters hold; its recoloured image then shows it see-through (RGBA), not black."""
    return round(float(np.sum(counts))) < int(np.prod(np.shape(labels)))


def _pixels(image, channel_axis, mask, alpha, *, read_once: bool, report):
    """The engine's source for ``image``: in memory, or block by block for a dask array."""
    if is_lazy(image):
        from .lazy import lazy_pixels  # dask only when it is used

        return lazy_pixels(image, channel_axis, mask, alpha, read_once=read_once, report=report)
    return Pixels.from_image(image, channel_axis, mask, alpha)


def _engine_errors(image):
    """For dask input: workers that keep dying become a clear :class:`ClusteringError`."""
    if not is_lazy(image):
        return contextlib.nullcontext()
    from .lazy import worker_deaths_reported

    return worker_deaths_reported()


def _assemble(source, found: Fit, params, wavelengths, palette, report) -> ClusterResult:
    """The result of a fit, the same for every source: clusters numbered by size (1 = the
    largest), centres and spreads in the input's units, colours, labels, the recoloured image
    and the model (which keeps the centres the last pass labelled with: applied to this image
    it gives exactly these labels)."""
    acc = found.acc
    order = np.argsort(-np.round(acc.counts), kind="stable")
    means, std = acc.input_mean_std(found.features.offset)
    centers = means[order]
    colors, params["colors"] = center_colors(
        centers,
        source.dtype,
        rgb=source.n_features == 3,
        wavelengths=wavelengths,
        palette=palette,
    )
    wl = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64).ravel()
    if wl is not None and len(wl) != source.n_features:
        wl = None
    model = ClusterModel(found.features, acc.centers[order], colors, params, wavelengths=wl)
    labels = source.labels(order)
    report(ProgressEvent("done", 1, 1, found.inertia))
    return ClusterResult(
        labels=labels,
        centers=centers,
        std=std[order],
        colors=colors,
        recolored=source.recolored(labels, colors, transparent=_left_out(acc.counts, labels)),
        inertia=float(found.inertia),
        counts=np.round(acc.counts[order]).astype(np.int64),
        model=model,
        params=params,
    )


def label_statistics(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    channel_axis: int | None = -1,
    alpha: bool | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> dict[str, np.ndarray]:
    """Per-label pixel counts, fractions, mean and standard deviation of each feature.

    For a labels image edited by hand (painted, merged): the cluster table recomputed from
    what the labels now say. Label 0 and excluded pixels (alpha = 0, NaN) are left out.

    Returns
    -------
    dict
        ``label`` (present labels, ascending), ``count``, ``fraction``, ``mean`` (n, C) and
        ``std`` (n, C), in the input's units.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters import label_statistics
    >>> img = np.array([[[0.0], [1.0]], [[3.0], [5.0]]])  # 2 x 2 pixels, one band
    >>> stats = label_statistics(img, np.array([[1, 1], [2, 2]]))
    >>> stats['label'].tolist(), stats['count'].tolist(), stats['mean'].ravel().tolist()
    ([1, 2], [2, 2], [0.5, 4.0])
    >>> stats['std'].ravel().tolist()
    [0.5, 1.0]

    A dask image is read block by block (all its bands at once), never whole; ``progress``
    is then called with a :class:`ProgressEvent` as the blocks are counted (raise
    :class:`Cancelled` in it to stop).
    """
    if is_lazy(image):
        report = progress or (lambda event: None)
        return _label_statistics_by_block(image, labels, channel_axis, alpha, report)
    _, view, allowed, _ = prepare_image(image, channel_axis, None, alpha)
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
        "mean": mean.reshape(n, view.shape[-1]),  # (0, C) when no pixel has a label
        "std": np.sqrt(var / np.maximum(counts, 1)[:, None]).reshape(n, view.shape[-1]),
    }


#: Blocks a recount computes at once (on dask's scheduler, in parallel) between two
#: progress reports, where Cancel can stop it.
RECOUNT_BATCH = 8


def _label_statistics_by_block(image, labels, channel_axis, alpha, report):
    """:func:`label_statistics` of a dask image, block by block (each with all its bands) on
    dask's scheduler: a few blocks in memory at a time, never the whole image."""
    import dask

    labels = np.asarray(labels)
    if channel_axis is not None and not -image.ndim <= channel_axis < image.ndim:
        raise ClusteringError(f"channel_axis {channel_axis} is not an axis of {image.shape}")
    axis = None if channel_axis is None else channel_axis % image.ndim
    spatial = [a for a in range(image.ndim) if a != axis]
    if labels.shape != tuple(image.shape[a] for a in spatial):
        raise ClusteringError(
            f"labels shape {labels.shape} does not match image "
            f"{tuple(image.shape[a] for a in spatial)}"
        )
    if axis is not None:
        image = image.rechunk({axis: -1})
    starts = [np.cumsum((0, *chunks)) for chunks in image.chunks]
    blocks = image.to_delayed()
    count = dask.delayed(label_statistics, pure=True)
    parts = []
    for index in np.ndindex(*image.numblocks):
        where = tuple(slice(starts[a][index[a]], starts[a][index[a] + 1]) for a in spatial)
        parts.append(count(blocks[index], labels[where], channel_axis=axis, alpha=alpha))
    done: list = []
    report(ProgressEvent("blocks", 0, len(parts)))
    for start in range(0, len(parts), RECOUNT_BATCH):
        done += dask.compute(*parts[start : start + RECOUNT_BATCH])
        report(ProgressEvent("blocks", len(done), len(parts)))
    return pooled_statistics(done)


def pooled_statistics(parts: list[dict]) -> dict[str, np.ndarray]:
    """:func:`label_statistics` of the pixels of several disjoint sets (blocks of an image,
    say) together, from each set's statistics: counts add up, the mean is the count-weighted
    mean, and squared deviations add up about the pooled mean (the pairwise update of Chan,
    Golub & LeVeque, 1979, for all sets at once). ``parts`` must not be empty."""
    label = np.concatenate([np.asarray(p["label"]) for p in parts])
    count = np.concatenate([np.asarray(p["count"]) for p in parts])
    mean = np.concatenate([np.asarray(p["mean"], np.float64) for p in parts])
    var = np.concatenate([np.asarray(p["std"], np.float64) for p in parts]) ** 2
    present, inverse = np.unique(label, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = len(present)
    counts = np.bincount(inverse, count, n).astype(np.int64)
    weight = count.astype(np.float64)[:, None]
    pooled = np.zeros((n, mean.shape[1]))
    np.add.at(pooled, inverse, weight * mean)
    pooled /= np.maximum(counts, 1)[:, None]
    deviations = np.zeros_like(pooled)
    np.add.at(deviations, inverse, weight * (var + (mean - pooled[inverse]) ** 2))
    return {
        "label": present,
        "count": counts,
        "fraction": counts / max(int(counts.sum()), 1),
        "mean": pooled,
        "std": np.sqrt(deviations / np.maximum(counts, 1)[:, None]),
    }


def merged_statistics(stats: dict, labels) -> dict[str, np.ndarray]:
    """:func:`label_statistics` after the pixels of ``labels`` are given the smallest of
    them, from ``stats`` alone (:func:`pooled_statistics`): the image is not read again, so
    a merge in a cube bigger than memory costs nothing. Labels not in ``stats`` are ignored.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.cluster import label_statistics, merged_statistics
    >>> img = np.array([[[0.0], [1.0]], [[3.0], [5.0]]])
    >>> merged = merged_statistics(label_statistics(img, np.array([[1, 1], [2, 2]])), [1, 2])
    >>> merged["label"].tolist(), merged["count"].tolist(), merged["mean"].ravel().tolist()
    ([1], [4], [2.25])
    >>> float(merged["std"][0, 0]) == float(np.std([0.0, 1.0, 3.0, 5.0]))
    True
    """
    label = np.asarray(stats["label"])
    if not len(label):
        return stats
    renamed = np.where(np.isin(label, np.asarray(labels)), min(labels), label)
    return pooled_statistics([{**stats, "label": renamed}])


def summary_by_label(stats: dict, n_labels: int) -> dict[str, np.ndarray]:
    """``counts``, ``centers`` and ``std`` for labels 1..n_labels from
    :func:`label_statistics`, as :meth:`ClusterResult.summary` holds them (row ``i`` is label
    ``i + 1``; a label no pixel has: 0 pixels, NaN mean and spread): what a saved file says
    of labels edited by hand.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.cluster import label_statistics, summary_by_label
    >>> img = np.array([[[0.0], [1.0]], [[3.0], [5.0]]])
    >>> summary = summary_by_label(label_statistics(img, np.array([[1, 1], [3, 3]])), 3)
    >>> summary["counts"].tolist(), summary["centers"].ravel().tolist()
    ([2, 0, 2], [0.5, nan, 4.0])
    """
    rows = np.asarray(stats["label"]) - 1
    counts = np.zeros(n_labels, np.int64)
    centers = np.full((n_labels, stats["mean"].shape[1]), np.nan)
    std = np.full_like(centers, np.nan)
    counts[rows], centers[rows], std[rows] = stats["count"], stats["mean"], stats["std"]
    return {"counts": counts, "centers": centers, "std": std}


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
    wavelengths: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Help choose k: inertia (for an elbow) and silhouette score for each k, on a sample,
    and the suggested k: the elbow of the inertia curve (:func:`elbow`).

    A random sample of at most ``max_samples`` valid pixels is clustered for every k; the
    silhouette (-1..1, higher = better separated) is measured on up to SILHOUETTE_ROWS of it.

    Returns
    -------
    dict
        ``k``, ``inertia`` and ``silhouette`` arrays (the silhouette NaN where undefined), and
        ``suggested``: the elbow's k (None with fewer than three k).

    Examples
    --------
    >>> from napari_spectral_clusters import sweep_k
    >>> import numpy as np
    >>> from napari_spectral_clusters.samples import synthetic_cube
    >>> cube, truth, wl = synthetic_cube((48, 48))  # four materials
    >>> sweep = sweep_k(cube, range(2, 9), channel_axis=0)
    >>> sweep['k'].tolist()
    [2, 3, 4, 5, 6, 7, 8]
    >>> int(sweep['suggested'])
    4
    """
    rng = np.random.default_rng(random_state)
    report = progress or (lambda event: None)
    pipeline = _parse_preprocessing(preprocessing)
    if is_lazy(image):  # sample blocks; never load the cube
        source = _pixels(image, channel_axis, mask, alpha, read_once=False, report=report)
    else:  # every pixel drawn alike (not distinct colours by weight)
        _, view, allowed, _ = prepare_image(image, channel_axis, mask, alpha)
        source = Pixels(view, allowed)
    sample, weights = source.sample(max_samples, rng)
    if len(sample) and weights.min() != weights.max():
        # drawn again in proportion to the pixels each stands for
        pick = rng.choice(len(sample), len(sample), p=weights / weights.sum())
        sample = sample[np.sort(pick)]
    if len(sample) == 0:
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
    # steps that do not fit are an error, not an empty sweep (the loop below ends the sweep
    # quietly where there are fewer distinct pixels than k)
    bind_steps(pipeline, sample.shape[1], wavelengths)
    ks = [int(k) for k in ks if 1 <= int(k) <= len(sample)]
    inertia, scores = [], []
    for i, k in enumerate(ks):
        try:
            res = cluster_image(
                sample[:, None, :],
                k,
                preprocessing=pipeline,  # parsed once, not once per k
                random_state=random_state,
                alpha=False,
                wavelengths=wavelengths,
            )
        except ClusteringError:  # fewer distinct pixels than k: the sweep ends here
            ks = ks[:i]
            break
        inertia.append(res.inertia)
        rows = rng.permutation(len(sample))[:SILHOUETTE_ROWS]
        scores.append(silhouette(res.model.features(sample[rows]), res.labels.ravel()[rows]))
        report(ProgressEvent("sweep", i + 1, len(ks), res.inertia))
    return {
        "k": np.array(ks),
        "inertia": np.array(inertia),
        "silhouette": np.array(scores),
        "suggested": elbow(ks, inertia),
    }


#: Rows the sweep's silhouette is measured on (its cost grows with their square).
SILHOUETTE_ROWS = 1500


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of rows ``x`` clustered as ``labels`` (Rousseeuw 1987); NaN with one
    cluster, or as many clusters as rows.

    Written here rather than taken from scikit-learn: importing scikit-learn costs seconds on
    first use in a napari session, more than the whole sweep; this is one distance matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.cluster import silhouette
    >>> x = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> round(silhouette(x, np.array([1, 1, 2, 2])), 3)
    0.98
    """
    uniq, lab = np.unique(labels, return_inverse=True)
    n, k = len(x), len(uniq)
    if not 1 < k < n:
        return float("nan")
    x = np.asarray(x, dtype=np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))
    onehot = np.zeros((n, k))
    onehot[np.arange(n), lab] = 1
    counts = onehot.sum(axis=0)
    sums = dist @ onehot  # (n, k): each row's summed distance to every cluster
    own = counts[lab]
    a = sums[np.arange(n), lab] / np.maximum(own - 1, 1)
    means = sums / counts
    means[np.arange(n), lab] = np.inf
    b = means.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(s.mean())


def elbow(ks, inertia) -> int | None:
    """The k at the elbow of a decreasing inertia curve: the point farthest below the
    straight line from its first to its last point, both axes scaled to 0..1 (Kneedle,
    Satopää et al. 2011). Not the best-separated k (the silhouette often prefers k = 2),
    but where adding clusters stops paying. None with fewer than three k, or when the curve
    is nearly straight (no k stands out).

    Examples
    --------
    >>> from napari_spectral_clusters.cluster import elbow
    >>> elbow([1, 2, 3, 4, 5, 6], [100, 40, 12, 10, 9, 8])
    3
    """
    ks, inertia = np.asarray(ks, dtype=float), np.asarray(inertia, dtype=float)
    if len(ks) < 3 or not np.all(np.isfinite(inertia)) or inertia[0] <= inertia[-1]:
        return None
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (inertia - inertia[-1]) / (inertia[0] - inertia[-1])
    below = 1 - x - y
    if below.max() < ELBOW_DEPTH:  # nearly a straight line: no k stands out
        return None
    return int(ks[int(np.argmax(below))])


#: How far (in the scaled units of :func:`elbow`) the curve must sag below its chord for an
#: elbow to count.
ELBOW_DEPTH = 0.05
