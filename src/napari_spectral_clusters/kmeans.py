"""The k-means engine, over any source of pixels: sampling, starts, passes, accumulation,
convergence and the recovery of lost clusters — written once for images in memory
(:mod:`.pixels`) and dask arrays (:mod:`.lazy`).

Cost is "fit on a sample + a few passes over all pixels", in float32, without a Python loop
over pixels:

1. draw a random sample of the pixels;
2. on the sample, in its leading principal components, run ``n_init`` k-means++ starts with
   a few Lloyd iterations each, and iterate the best of them to convergence;
3. refine with Lloyd passes over all pixels in full feature space until the centres stop
   moving or no pixel can change cluster; every pass also draws a coreset of all pixels by
   their distance to its centres (:class:`CoresetRates`) — for an image of at most
   ``ALL_ROWS`` pixels held in memory, every pixel, after a single pass;
4. on that coreset, in its leading principal components, search for a better clustering:
   swap moves, split-merge moves (a material lumped in with another while a third is split,
   :func:`_split_merge`), swaps judged after Lloyd, and one fresh k-means++ start; refine
   the best over all pixels when it is better (:func:`recover`). An image searched whole is
   settled on every pixel there, in the components and then in full feature space, so its
   refinement over all pixels takes a pass or two.

A source (:class:`PixelSource`) hands out the sample and runs one pass: label every pixel
with its nearest centre and sum up the clusters (:class:`Accumulator`). The last pass's sums
are the result's counts, centres and spreads, for the labels its centres give.

The iterations are our own rather than :class:`sklearn.cluster.KMeans`: it can neither report
progress per iteration nor be cancelled, and its per-call set-up (validation, thread-pool
inspection) costs more than the whole fit of a typical cube; nor does it stream over blocks.
BLAS does the heavy lifting either way (one float32 matrix product per chunk).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from scipy import sparse

from .model import Features, principal_axes, weighted_mean

__all__ = [
    "Accumulator",
    "Cancelled",
    "ClusteringError",
    "CoresetRates",
    "Fit",
    "PixelSource",
    "ProgressEvent",
    "TooFewDistinct",
    "fit",
    "label_dtype",
    "nearest",
    "one_blas_thread",
]

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
RECOVER_GAIN = 1e-3
#: Images in memory of at most this many rows (pixels, or distinct colours) and float32
#: features of at most WHOLE_BYTES are searched whole: the coreset is every row (a copy of
#: the features, so not for lazy cubes, whose memory must stay a few blocks).
ALL_ROWS = 65_536
WHOLE_BYTES = 32 * 2**20
#: Refinement stops when moving the centres to their clusters' means would lower the
#: inertia by less than this share of it (``tol=None``): tightly for images searched whole,
#: whose passes cost milliseconds (at 1e-3 the engine's median ended 0.02-0.13% above
#: scikit-learn's, which converges fully, on continuous mixtures, Samson and Jasper Ridge),
#: loosely for larger ones, where every pass reads every pixel.
WHOLE_TOL = 1e-6
TOL = 1e-3
#: At most this many such refinements (each may reveal what the previous still lumped).
RECOVER_ROUNDS = 3
#: Searches of an image searched whole: a second search from the first's result found the
#: partition of 17 materials into 4 clusters that one missed for a seed (Indian Pines
#: layout, scene seed 0, noise-free and noisy: the worst of 10 seeds 1.019 and 1.017 of the
#: best of 10 scikit-learn runs, 1.0000 with two).
WHOLE_ROUNDS = 2
#: ...the second only when the first lowered the inertia by more than this share: a first
#: search that only settled the same clustering further leaves nothing for a second to find
#: (quality suite: every case's worst seed and median unchanged; Samson k = 3 97 -> 63 ms).
WHOLE_ROUND_GAIN = 1e-4
#: Rows the search's moves are tried on (a D²-weighted coreset of the coreset, when it has
#: more): on the quality suite 4,000 keep every result of 8,000 at 40-60% of the work;
#: 3,000 lost the photo at k = 16 (worst seed 1.0141).
SEARCH_ROWS = 4_000
#: A swap trial still this share above the cost to beat after 3 Lloyd iterations is given
#: up (0.01 gave up the slow trials that find Indian Pines' 4-cluster partition for a seed).
GIVE_UP = 0.05
#: Swap moves tried per search: 2k + 10, at most this many. Every case of the quality suite
#: (k <= 20) tries 2k + 10; above, each trial costs O(k) more and there were O(k) more of
#: them (Samson at k = 255: 44 s, against 0.45 s for scikit-learn's default).
MAX_TRIALS = 50
#: Lloyd iterations over at least this many (row, centre) pairs keep bounds and label again
#: only the rows that may have moved (:func:`_lloyd_bounded`).
BOUNDED_WORK = 2**19


class ProgressEvent(NamedTuple):
    """One progress report: ``done`` of ``total`` steps of ``stage``, inertia so far."""

    stage: str
    done: int
    total: int
    inertia: float = float("nan")


Report = Callable[[ProgressEvent], None]


class ClusteringError(ValueError):
    """The image cannot be clustered as asked (nothing to cluster, too few distinct pixels)."""


class Cancelled(Exception):
    """Raised by a progress callback to stop a run; the engine lets it through."""


class TooFewDistinct(ClusteringError):
    """Fewer distinct pixel values than clusters asked for (``n_distinct`` of them)."""

    def __init__(self, n_distinct: int, n_clusters: int, *, after: str | None = None):
        self.n_distinct = n_distinct
        point = "point" if n_distinct == 1 else "points"
        what = f"distinct {point} after {after}" if after else "distinct pixel value(s)"
        super().__init__(
            f"the pixels to cluster (not masked out, transparent or NaN) have only "
            f"{n_distinct} {what}, fewer than the {n_clusters} clusters asked for; ask for "
            f"at most {n_distinct}"
        )


NO_PIXELS = "no pixel left to cluster: all are masked, transparent or NaN"
#: Largest pixel value the engine clusters: it computes in float32, where squared distances
#: of values above this, summed over many bands, would overflow.
FLOAT32_SAFE = 1e15


def check_range(x: np.ndarray) -> None:
    """Refuse (clearly) pixels (rows of ``x``) whose values the engine's float32 arithmetic
    cannot hold; pixels holding NaN or inf are not checked (the passes leave them out)."""
    x = x[np.isfinite(x).all(axis=1)]
    top = float(np.max(np.abs(x), initial=0.0))
    if top > FLOAT32_SAFE:
        raise ClusteringError(
            f"pixel values reach {top:.3g}, too large for the engine's float32 arithmetic "
            f"(at most {FLOAT32_SAFE:.0e}); divide the image by a constant first"
        )


class PixelSource(Protocol):
    """What the engine needs of the pixels: in memory (:class:`~.pixels.Pixels`) or a dask
    array (:class:`~.lazy.LazyPixels`)."""

    n_features: int
    #: rows a pass goes over (pixels, or distinct colours): k above it needs a distinct count
    n_rows: int
    #: whether every pixel is held in memory (a small image may then be searched whole)
    in_memory: bool

    def sample(
        self, n: int, rng: np.random.Generator, report: Report = ...
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` finite pixels drawn at random, and the pixels each stands for."""

    @property
    def total_weight(self) -> float:
        """Pixels to cluster (known, or estimated by :meth:`sample`)."""

    def one_pass(
        self, features: Features, centers, rates: CoresetRates | None, rng, report: Report
    ) -> Accumulator:
        """Label every pixel with its nearest centre; the clusters' sums (and coreset)."""

    def distinct(self, limit: int, report: Report) -> np.ndarray:
        """The distinct finite pixel values, or at least ``limit`` of them (``report`` may
        stop a long scan: :class:`Cancelled`)."""

    def snapshot(self):
        """What :meth:`restore` needs to bring back the last pass's labels."""

    def restore(self, state) -> None: ...


class Fit(NamedTuple):
    acc: Accumulator  # the last pass: its centres gave the labels, its sums the statistics
    inertia: float
    features: Features


def fit(source: PixelSource, k: int, params: dict, report: Report, *, steps=None) -> Fit:
    """Sample fit, Lloyd passes over all pixels, recovery of lost clusters (in fit order);
    ``steps``: a bound spectral pipeline applied to every pixel first."""
    rng = np.random.default_rng(params["random_state"])
    sample, weights = source.sample(params["max_samples"], rng, report)
    total_weight = source.total_weight
    if total_weight == 0 or len(sample) == 0:
        raise ClusteringError(NO_PIXELS)
    check_range(sample)
    if k > source.n_rows or k > total_weight:  # more clusters than pixels: count exactly
        _check_distinct(source, k, report=report)
    features = Features.fit(sample, weights, params, steps)
    xs = features(sample)
    with one_blas_thread():  # small products on the sample (see recover)
        centers = _best_start(xs, weights, k, params, rng, report)
    if centers is None:  # the sample has fewer distinct pixels than k: does the image?
        distinct = _check_distinct(source, k, features, report)
        with one_blas_thread():
            centers = _best_start(features(distinct), None, k, params, rng, report)
        if centers is None:  # distinct, but closer than float32 distances resolve: any k
            pick = np.sort(rng.choice(len(distinct), k, replace=False))
            centers = features(distinct[pick]).astype(np.float32)

    # every pass draws its coreset with chances planned from what is known before it: the
    # sample for the first, the previous pass for the others (any chances keep it unbiased).
    # A small image is searched whole after one pass (every pixel in its coreset), then
    # refined from what the search found: refining before the search would be passes spent
    # on a start the search replaces
    whole = (
        source.in_memory
        and source.n_rows <= ALL_ROWS
        and 4 * source.n_rows * source.n_features <= WHOLE_BYTES
    )
    if whole:
        plan = [CoresetRates.every_row(k)]
    else:
        lab, dist = nearest(xs, centers)
        scale = total_weight / weights.sum()
        plan = [CoresetRates.plan(np.bincount(lab, weights, k) * scale, scale * (weights @ dist))]

    def one_pass(centers):
        acc = source.one_pass(features, centers, plan[0], rng, report)
        if not whole:
            plan[0] = CoresetRates.plan(acc.counts, acc.dist)
        return acc

    def check(acc):
        if np.any(acc.counts == 0):
            _check_distinct(source, k, features, report)

    if params["tol"] is None:
        params = dict(params, tol=WHOLE_TOL if whole else TOL)
    acc, inertia = refine(
        one_pass, centers, dict(params, max_refine=1) if whole else params, report, check
    )
    if not acc.counts.any():
        raise ClusteringError(NO_PIXELS)
    gain = 0.0 if whole else RECOVER_GAIN
    for _ in range(WHOLE_ROUNDS if whole else RECOVER_ROUNDS):
        found = recover(acc, inertia, source, k, params, rng, report, one_pass, check, gain)
        if found is None:
            break
        settled_only = whole and found[1] >= (1 - WHOLE_ROUND_GAIN) * inertia
        acc, inertia = found
        if settled_only:
            break
    return Fit(acc, inertia, features)


#: Distinct input pixels looked at for ``k`` distinct features (spectral steps or PCA can map
#: different pixels to one point: scaled copies of a spectrum after a normalisation).
DISTINCT_SCAN = 100_000


def _check_distinct(
    source: PixelSource, k: int, features: Features | None = None, report: Report | None = None
):
    """At least ``k`` input pixels whose features differ (all of them when fewer), or
    :class:`TooFewDistinct`."""
    report = report or (lambda event: None)
    if features is None:
        distinct = source.distinct(k, report)
    else:
        # look at k distinct pixels first (they usually are k distinct points too), more only
        # while the features keep collapsing: a lazy cube is scanned block by block
        limit = k
        while True:
            rows = source.distinct(limit, report)
            distinct = _distinct_features(rows, features, k)
            if len(distinct) >= k or len(rows) < limit:
                break  # enough, or every distinct pixel was looked at
            if limit >= DISTINCT_SCAN:
                return rows  # a partial scan (a lazy cube's first blocks) proves nothing
            # past what came back: a source that gives all its rows is asked once more only
            limit = min(max(16 * limit, len(rows) + 1), DISTINCT_SCAN)
    if len(distinct) < k:
        after = None if features is None else features.describe()
        raise TooFewDistinct(len(distinct), k, after=after)
    return distinct


def _distinct_features(rows: np.ndarray, features: Features, k: int) -> np.ndarray:
    """One row of ``rows`` per distinct point in feature space, until ``k`` are found
    (transformed a chunk at a time: the steps can be slow, and k is usually met at once).

    Points a millionth of the features' scale apart count as one: a normalisation leaves
    scaled copies of a spectrum a rounding error apart, which no clustering can separate."""
    keep, seen = [], np.zeros((0, 0), np.float64)
    for start in range(0, len(rows), 4096):
        points = features(rows[start : start + 4096]).astype(np.float64)
        seen = points if not seen.size else np.concatenate([seen, points])
        tol = 1e-6 * max(float(np.abs(seen).max()), np.finfo(np.float32).tiny)
        # candidates on a grid of that step, then those within a step of a kept one merged:
        # two points a rounding error apart can fall either side of a grid line (which one
        # depended on the CPU's rounding: numpy 1.24 on one machine found 3 points of 2)
        _, first = np.unique(np.round(seen / tol), axis=0, return_index=True)
        keep = []
        for i in np.sort(first):
            if not keep or np.abs(seen[keep] - seen[i]).max(axis=1).min() > tol:
                keep.append(i)
                if len(keep) >= k:
                    break
        if len(keep) >= k:
            break
    return rows[:0] if not len(rows) else rows[np.asarray(keep, dtype=np.intp)]


def refine(one_pass, centers, params: dict, report, check=lambda acc: None):
    """Lloyd passes over all pixels until the centres stop moving (or ``max_refine``).

    ``one_pass(centers)`` labels every pixel with its nearest centre and returns the cluster
    sums (an in-memory pass, or dask tasks over blocks). Returns the last pass's sums (its
    centres are ``acc.centers``) and the inertia of its labels about their means.

    A pass converges when moving the centres to their clusters' means lowers the inertia by
    less than ``tol`` of it (the count-weighted squared shift of the centres, scikit-learn's
    criterion in inertia units), or when no pixel is near enough to another centre to change
    cluster in another pass (:meth:`Accumulator.settled`). Unlike comparing two passes'
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


@dataclass(frozen=True)
class CoresetRates:
    """How a pass draws a lightweight coreset of all pixels (Bachem, Lucic & Krause, KDD 2018).

    Each pixel is drawn with a chance that is half uniform (by its weight) and half by its
    weight times its squared distance to the pass's nearest centre, and weighted by the
    inverse of that chance, so the coreset's cost for *any* centres estimates the cost over
    all pixels without bias. A material of a few dozen pixels that the clustering lumped in
    with another — which a uniform sample of thousands holds once or twice, if at all — is far
    from every centre, so it is drawn in proportion to the cost it adds, and a start search on
    the coreset can give it a cluster. Pixels are drawn independently (Poisson sampling, with
    Horvitz-Thompson weights): each chunk or block draws its own rows, in one streaming pass,
    with memory for the drawn rows only. The chances are planned from estimates of the
    clusters' weights and total cost (any chances keep the weights unbiased; good estimates
    keep the size near ``n_rows``).
    """

    uniform: np.ndarray  # (k,) float32: chance per unit weight of a pixel of each cluster
    per_cost: float  # chance per unit of weighted squared distance

    @classmethod
    def plan(cls, cluster_weight, cost: float, n_rows: int = CORESET_ROWS) -> CoresetRates:
        cluster_weight = np.asarray(cluster_weight, dtype=np.float64)
        total = max(float(cluster_weight.sum()), 1e-300)
        # the uniform half, with at least CORESET_ROWS_PER_CLUSTER rows expected from every
        # cluster: a small cluster's cost must be estimated well too, or a swap that merges
        # it away looks cheap
        per_cluster = CORESET_ROWS_PER_CLUSTER / np.maximum(cluster_weight, 1e-12)
        uniform = np.maximum(0.5 * n_rows / total, per_cluster).astype(np.float32)
        return cls(uniform, 0.5 * n_rows / cost if cost > 0 else 0.0)

    @classmethod
    def every_row(cls, k: int) -> CoresetRates:
        """Every row, with its own weight: for images small enough to search on whole."""
        return cls(np.full(k, np.inf, dtype=np.float32), 0.0)

    @property
    def takes_every_row(self) -> bool:
        """Every row is drawn (:meth:`every_row`): no random numbers are used."""
        return bool(np.isinf(self.uniform[0]))

    def draw(self, feats, weights, dist, lab, rng) -> tuple[np.ndarray, np.ndarray]:
        """The rows of one chunk drawn into the coreset, and their weights. ``rng``: a
        generator, or the chunk's uniform draws already made (float32, one a row)."""
        if self.takes_every_row:
            w = np.ones(len(feats)) if weights is None else np.asarray(weights, np.float64)
            return feats.astype(np.float32, copy=False), w  # kept as they are: not modified
        # float32 and scalar weights where pixels are unweighted: this runs in every pass,
        # over every pixel, so it is kept to a few vector operations
        w = np.float32(1) if weights is None else np.asarray(weights, dtype=np.float32)
        chance = self.uniform[lab] * w
        if self.per_cost > 0:
            chance += np.float32(self.per_cost) * (dist if weights is None else w * dist)
        u = rng if isinstance(rng, np.ndarray) else rng.random(len(feats), dtype=np.float32)
        take = np.flatnonzero(u < chance)
        p = np.minimum(chance[take], 1).astype(np.float64)
        wt = 1.0 if weights is None else w[take].astype(np.float64)
        return feats[take].astype(np.float32), wt / p


def recover(acc, inertia, source: PixelSource, k, params, rng, report, one_pass, check, gain):
    """Look for a better clustering than the refined one, on the coreset its last pass drew.

    Swap moves (:func:`_swap_search`) start from the refined centres: a centre moves to a far
    pixel — a material lumped in with another, or missing altogether — where that lowers the
    coreset's cost most; then split-merge moves (:func:`_split_merge`), swaps judged after
    Lloyd (:func:`_swap_lloyd`) and a fresh k-means++ start compete. When the result beats the
    refined clustering's cost there by more than ``gain``, it is refined over all pixels as
    well, and kept (labels included) if its inertia is lower by ``gain`` too. Returns the
    better clustering, or None (nothing more read). ``gain`` is 0 for an image searched
    whole: its coreset is every pixel, so the search's cost is the true one.
    """
    xs, w = acc.coreset()
    if acc.dist <= 0 or k < 2 or len(xs) <= k:
        return None
    # hundreds of small products: BLAS threads cost more than they give (and far more
    # when other processes share the cores)
    with one_blas_thread():
        centers = acc.centers.astype(np.float32)
        reduced, project = xs, centers
        if xs.shape[1] > 8:  # swaps and Lloyd in the coreset's leading principal components
            mean = weighted_mean(xs, w).astype(np.float32)
            # the axes of a few rows: as good, 4x cheaper
            few = rng.choice(len(xs), min(len(xs), SCREEN_ROWS), replace=False)
            axes = principal_axes(xs[few] - mean, w[few], None, at_least=k - 1)
            axes = axes.T.astype(np.float32)
            reduced, project = (xs - mean) @ axes, (centers - mean) @ axes
        lab, dist = nearest(reduced, project)
        now = float(w @ dist)
        # the moves are searched on a coreset of the rows (all of a small image's pixels,
        # which are settled on whole afterwards)
        search, sw = reduced, w
        if len(reduced) > SEARCH_ROWS:
            rates = CoresetRates.plan(np.bincount(lab, w, k), now, SEARCH_ROWS)
            search, sw = rates.draw(reduced, w, dist, lab, rng)
        trials = min(2 * k + 10, MAX_TRIALS)
        swapped = _swap_search(search, sw, project, rng, n_candidates=trials)
        swapped, found = _lloyd(search, sw, swapped)
        swapped, found = _split_merge(search, sw, swapped, found)
        swapped, found = _swap_lloyd(search, sw, swapped, found, rng, n_trials=trials)
        # and one fresh greedy k-means++ start on the coreset, which sees every pixel's
        # distance: a partition whose basin the moves above do not reach (photo, k = 16: the
        # worst of 10 seeds 1.0104 -> 1.0001 of the best of 10 scikit-learn runs)
        fresh = _kmeans_plusplus(search, sw, k, rng)
        if fresh is not None:
            fresh, cost = _lloyd(search, sw, fresh)
            fresh, cost = _split_merge(search, sw, fresh, cost)
            if cost < found:
                swapped, found = fresh, cost
        if gain == 0:  # a whole image: settled on every row, where iterations are cheap
            swapped, found = _lloyd(reduced, w, swapped, max_iter=200, tol=1e-7)
            # so are the pass's own centres: what wins on the search's rows can lose on all,
            # and the image must still end converged
            kept, cost = _lloyd(reduced, w, project, max_iter=200, tol=1e-7)
            if cost < found:
                swapped, found = kept, cost
        start = _full_means(xs, w, nearest(reduced, swapped)[0], centers)
        if gain == 0:
            # and then in full feature space, where the refinement's fixed point lies: the
            # leading components can leave out what separates some clusters (the sample
            # cube at k = 8: 21 passes over all pixels, still 126-174 pixels short of a fixed
            # point, when settled in 32 components only)
            start, found = _lloyd(xs, w, start, max_iter=100, tol=1e-7)
            lab, dist = nearest(xs, centers)
            now = float(w @ dist)
            if acc.settled() and _same_partition(lab, nearest(xs, start)[0]):
                # the pass's labels stay as they are for its clusters' means, and the search
                # found them again: a pass would change nothing (its cost, computed another
                # way, can differ by float32 rounding: numpy versions disagreed at 1e-9)
                return None
        elif search is not reduced:  # judged on the rows ``now`` was measured on
            found = float(w @ nearest(reduced, swapped)[1])
    if found >= (1 - gain) * now:
        return None
    kept = source.snapshot()
    acc2, inertia2 = refine(one_pass, start, params, report, check)
    if inertia2 < (1 - gain) * inertia:
        return acc2, inertia2
    source.restore(kept)
    return None


def _full_means(xs, w, lab, centers) -> np.ndarray:
    """The clusters' means in full feature space (float32); a cluster without rows keeps its
    centre."""
    counts, sums = _weighted_sums(lab, w, xs, len(centers))
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1e-12)[:, None], centers)
    return means.astype(np.float32)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings group the rows alike (whatever their cluster numbers)."""
    pairs = np.unique(a.astype(np.int64) * (int(b.max(initial=0)) + 1) + b)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # inspects the loaded libraries once, not per limit


def one_blas_thread():
    """A context in which BLAS runs on one thread (process-wide, through threadpoolctl):
    for many small products, and for passes whose blocks run in parallel dask threads, where
    BLAS's own threads on top of dask's spin against each other."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _split_merge(x, weights, centers, cost: float, *, tries: int = 3):
    """Split one cluster in two and merge two others, while that lowers the cost.

    The move a local optimum of k-means most often needs: two distinct materials share a
    cluster while one material is split between two. For every cluster at once,
    :func:`_split_gains` measures what splitting it would save; merging clusters ``a`` and
    ``b`` costs at most ``n_a n_b / (n_a + n_b) |c_a - c_b|^2``. The moves with the largest
    net gain (up to ``tries`` of them a round) are settled by Lloyd iterations and the first
    that lowers the cost is kept; rounds repeat until none does. A move whose net gain is
    positive always lowers the cost (Lloyd only lowers it further), so only a handful of
    Lloyd runs are needed, not one per random trial.
    """
    k = len(centers)
    if k < 3:
        return centers, cost
    for _ in range(k):
        lab, dist = nearest(x, centers)
        counts, sums = _weighted_sums(lab, weights, x, k)
        means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1e-12)[:, None], centers)
        gain, halves = _split_gains(x, weights, lab, dist, means)
        sq = np.einsum("ij,ij->i", means, means)
        between = np.maximum(sq[:, None] + sq[None, :] - 2 * means @ means.T, 0)
        pair = counts[:, None] * counts[None, :] / np.maximum(counts[:, None] + counts, 1e-12)
        merge = pair * between
        merge[np.diag_indices(k)] = np.inf
        # net gain of (split j, merge a and b), j not a or b: best merge for each j
        a, b = np.triu_indices(k, 1)
        order = np.argsort(merge[a, b])
        net = []
        for j in np.argsort(-gain)[:tries]:
            m = next(m for m in order if a[m] != j and b[m] != j)
            net.append((gain[j] - merge[a[m], b[m]], j, a[m], b[m]))
        improved = False
        net = sorted(net, reverse=True)
        # a move that does not pay before Lloyd seldom pays after: try one such at most
        net = [move for move in net if move[0] > 0] or net[:1]
        for _, j, ia, ib in net:
            trial = means.copy()
            na, nb = counts[ia], counts[ib]
            trial[ia] = (na * means[ia] + nb * means[ib]) / max(na + nb, 1e-12)
            trial[ib], trial[j] = halves[j]
            trial = trial.astype(np.float32)
            trial, trial_cost = _lloyd(x, weights, trial, max_iter=10, tol=1e-3)
            if trial_cost < cost * (1 - 1e-6):
                centers, cost, improved = trial, trial_cost, True
                break
        if not improved:
            break
    return centers, cost


def _split_gains(x, weights, lab, dist, means, iters: int = 5):
    """What splitting each cluster in two would save, and the two halves' centres.

    2-means inside every cluster at once (vectorised over clusters: each row only ever
    compares its own cluster's two halves), started from the cluster's mean and its farthest
    row: a small material lumped in with a large one is what lies farthest from their mean.
    Returns the gains (k,) and the halves (k, 2, F).
    """
    k, f = means.shape
    order = np.lexsort((dist, lab))
    ends = np.searchsorted(lab[order], np.arange(k), side="right") - 1
    halves = np.stack([means, means], axis=1).astype(np.float32)
    has = np.bincount(lab, minlength=k) > 0
    halves[has, 1] = x[order[ends[has]]]
    for _ in range(iters):
        d0 = np.einsum("ij,ij->i", *(2 * [x - halves[lab, 0]]))
        d1 = np.einsum("ij,ij->i", *(2 * [x - halves[lab, 1]]))
        side = 2 * lab + (d1 < d0)
        cnt, sums = _weighted_sums(side, weights, x, 2 * k)
        new = sums / np.maximum(cnt, 1e-12)[:, None]
        flat = halves.reshape(2 * k, f)
        flat[cnt > 0] = new[cnt > 0]
    d0 = np.einsum("ij,ij->i", *(2 * [x - halves[lab, 0]]))
    d1 = np.einsum("ij,ij->i", *(2 * [x - halves[lab, 1]]))
    split = np.bincount(lab, weights * np.minimum(d0, d1), minlength=k)
    now = np.bincount(lab, weights * dist, minlength=k)
    return now - split, halves


def _swap_lloyd(x, weights, centers, cost: float, rng, *, n_trials: int):
    """Swaps judged after Lloyd iterations (Kanungo et al., 2004): a centre moves to a row
    drawn by its weighted squared distance, Lloyd re-settles all centres, and the move is
    kept if the cost fell. It finds what single swaps judged before re-settling cannot — a
    cluster split in two elsewhere while two materials share one — which on Jasper Ridge
    left the worst of 10 seeds 1.5% (k = 10) and 2.4% (k = 16) above the best of 10
    scikit-learn runs; with it, 0.07% for both. Cheap: the rows are the coreset, in its
    leading principal components.
    """
    dist = nearest(x, centers)[1]
    for _ in range(n_trials):
        pot = weights * dist
        total = float(pot.sum())
        if total <= 0:
            break
        p = min(int(np.searchsorted(np.cumsum(pot), rng.random() * total)), len(x) - 1)
        trial = centers.copy()
        trial[rng.integers(len(centers))] = x[p]
        # most trials lose, and one far above the cost to beat after 3 iterations does not
        # win in the 7 left
        give_up = (3, cost * (1 + GIVE_UP))
        trial, trial_cost = _lloyd(x, weights, trial, max_iter=10, give_up=give_up)
        if trial_cost < cost:
            centers, cost = trial, trial_cost
            dist = nearest(x, centers)[1]
    return centers, cost


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
    lab, _ = nearest(reduced, best)
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


def _lloyd(x, weights, centers, max_iter: int = 30, tol: float = 1e-4, give_up=None):
    """Lloyd iterations on an in-memory sample; returns the centres and weighted inertia.

    The sample is small (thousands of rows, a few principal features), so per-call overhead
    dominates: the weighted features are computed once, not per iteration. ``give_up``:
    (iterations, cost) -- stop when after that many iterations the cost is still above it
    (a trial that will not win; returned as it is, worse than the cost to beat).
    """
    k = len(centers)
    if len(x) * k >= BOUNDED_WORK:
        return _lloyd_bounded(x, weights, centers, max_iter, tol, give_up)
    wx = (x * weights[:, None]).T.copy() if x.shape[1] <= FEW else None  # once, not per pass
    norms = np.einsum("ij,ij->i", x, x)
    prev = np.inf
    for it in range(max_iter):
        lab, dist = nearest(x, centers, norms=norms)
        inertia = float(np.dot(weights, dist))
        if give_up is not None and it == give_up[0] and inertia > give_up[1]:
            return centers, inertia
        counts, sums = _weighted_sums(lab, weights, x, k, wx)
        empty = counts == 0
        if empty.any():  # restart empty clusters on the points farthest from their centre
            far = np.argsort(-dist)[: int(empty.sum())]
            sums[empty], counts[empty] = x[far], 1
        centers = (sums / counts[:, None]).astype(np.float32)
        if prev - inertia <= tol * inertia:
            break
        prev = inertia
    _, dist = nearest(x, centers, norms=norms)
    return centers, float(np.dot(weights, dist))


def _lloyd_bounded(x, weights, centers, max_iter: int, tol: float, give_up=None):
    """:func:`_lloyd` for many rows and clusters, where most iterations move few rows: each
    row keeps a lower bound on how much nearer its centre is than any other (Hamerly's
    k-means, 2010, in one number), lowered by the centres' shifts, and only rows whose bound
    goes below zero are labelled again; the clusters' sums follow the rows that moved, and
    the inertia comes from the sums. The same iterations as :func:`_lloyd` (up to float32
    rounding at the bounds), at a fraction of the cost once few rows move: settling a
    65,536-pixel image at k = 32 spent 2.7 s of 3.6 s in full Lloyd iterations.

    Written here: scikit-learn's Elkan k-means has neither weights on our terms nor the
    ``give_up`` rule, and runs its own initialisation checks on every call.
    """
    k = len(centers)
    w = np.asarray(weights, dtype=np.float64)
    norms = np.einsum("ij,ij->i", x, x)
    total_sq = float(w @ norms)  # sum w |x|^2: inertia = total_sq - 2 sum c.S + sum n |c|^2
    lab, dist, gap = nearest(x, centers, margin=True, norms=norms)
    counts, sums = _weighted_sums(lab, w, x, k)
    prev = np.inf
    for it in range(max_iter):
        if (counts <= 1e-9 * counts.sum()).any():  # nearly empty: exact sums, not updated ones
            counts, sums = _weighted_sums(lab, w, x, k)
        c = centers.astype(np.float64)
        inertia = total_sq - 2 * float(np.einsum("ij,ij->", c, sums)) + counts @ (c * c).sum(1)
        if give_up is not None and it == give_up[0] and inertia > give_up[1]:
            return centers, inertia
        means = sums / np.maximum(counts, 1e-300)[:, None]
        empty = counts == 0
        if empty.any():  # restart empty clusters on the rows farthest from their centre
            _, dist = nearest(x, centers, norms=norms)
            means[empty] = x[np.argsort(-dist)[: int(empty.sum())]]
        new = means.astype(np.float32)
        if prev - inertia <= tol * inertia:
            centers = new
            break
        prev = inertia
        shift = np.sqrt(np.einsum("ij,ij->i", *(2 * [(new - centers).astype(np.float64)])))
        centers = new
        # a row's own centre comes at most its shift nearer, any other at most the largest
        # other shift: the margin to the second nearest shrinks by at most their sum
        order = np.argsort(shift)
        other = np.full(k, shift[order[-1]])
        other[order[-1]] = shift[order[-2]] if k > 1 else 0.0
        gap -= (shift + other)[lab].astype(np.float32)
        again = np.flatnonzero(gap < 0) if not empty.any() else np.arange(len(x))
        if len(again):
            old = lab[again]
            new_lab, _, gap[again] = nearest(x[again], centers, margin=True, norms=norms[again])
            moved = new_lab != old
            if moved.any():
                rows, a, b = again[moved], old[moved], new_lab[moved]
                wm = w[rows]
                counts += np.bincount(b, wm, k) - np.bincount(a, wm, k)
                sums += _cluster_sums(b, wm, x[rows], k) - _cluster_sums(a, wm, x[rows], k)
                lab[rows] = b
            if empty.any():  # the sums of every row again: the restarts moved centres far
                counts, sums = _weighted_sums(lab, w, x, k)
    _, dist = nearest(x, centers, norms=norms)
    return centers, float(np.dot(weights, dist))


def _weighted_sums(lab, weights, x, k, wx=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster weight totals (k,) and weighted sums (k, F) of the rows of ``x``, float64."""
    return np.bincount(lab, weights=weights, minlength=k), _cluster_sums(lab, weights, x, k, wx)


def _cluster_sums(lab, weights, x, k, wx=None) -> np.ndarray:
    """Per-cluster weighted sums (k, F) of the rows of ``x``, float64.

    Few columns: one float64 bincount each (``wx``: the weighted columns, if already made).
    More: float32 one-hot products over at most ``ACC_ROWS`` rows at a time, added up in
    float64, so no float64 copy of ``x`` is made and rounding stays small. Rows laid out
    column by column (a block of a bands-first cube) are multiplied as ``(x.T @ onehot.T).T``:
    the same sums, 2x faster there than ``onehot @ x`` (and 1.5x slower for C-ordered rows).
    """
    if x.shape[1] <= FEW:
        wx = (x * weights[:, None]).T if wx is None else wx
        return np.stack([np.bincount(lab, weights=col, minlength=k) for col in wx], 1)
    sums = np.zeros((k, x.shape[1]))
    w = np.asarray(weights, dtype=np.float32)
    by_column = x.flags.f_contiguous and not x.flags.c_contiguous
    for start in range(0, len(lab), ACC_ROWS):
        rows = slice(start, start + ACC_ROWS)
        onehot, part = _onehot(lab[rows], w[rows], k), x[rows].astype(np.float32, copy=False)
        dense = isinstance(onehot, np.ndarray)  # a sparse one is multiplied as it is
        sums += (part.T @ onehot.T).T if by_column and dense else onehot @ part
    return sums


def nearest(x: np.ndarray, centers: np.ndarray, *, margin: bool = False, norms=None):
    """Nearest centre of every row and its squared distance; with ``margin``, also how much
    farther the second nearest centre is (Euclidean distance; inf with one centre).
    ``norms``: the rows' squared norms, when already known.

    ||x||^2 - 2 x.c + ||c||^2 as one float32 matrix product (BLAS, all cores) instead of a
    (n, k, C) difference array. For a few centres the products come as k rows and a running
    maximum over them: numpy's argmin along short rows costs more than the product itself.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.kmeans import nearest
    >>> x = np.array([[0.0, 0.0], [1.0, 1.0], [9.0, 9.0]], np.float32)
    >>> centers = np.array([[0.0, 0.0], [10.0, 10.0]], np.float32)
    >>> lab, dist = nearest(x, centers)
    >>> lab.tolist(), dist.tolist()
    ([0, 0, 1], [0.0, 2.0, 2.0])
    """
    absent = ~np.isfinite(centers).all(axis=1)
    if absent.any():  # a free id (stable_ids): a cluster with no centre is never the nearest
        centers = np.where(absent[:, None], 0, centers).astype(centers.dtype, copy=False)
    half = 0.5 * np.einsum("ij,ij->i", centers, centers)
    if absent.any():
        half[absent] = np.inf
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
        # (k, n): c_j.x - |c_j|^2 / 2 is largest for the nearest c_j. Rows of many features
        # stored pixel by pixel are multiplied as x @ c.T and transposed into a copy: BLAS
        # is 1.3-2x faster that way round for them (9,025 x 156 at k = 3: 0.84 -> 0.42 ms),
        # and 1.5-2x slower for a few features, or for rows stored band after band
        if x.flags.c_contiguous and x.shape[1] > 2 * FEW:
            d = np.ascontiguousarray((x @ centers.T).T)
        else:
            d = centers @ x.T
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


#: Up to this many clusters, one-hot matrices are dense (:func:`_onehot`).
DENSE_K = 32


def _onehot(lab, weights, k):
    """(k, n) matrix of each row's weight in its cluster's row: dense for a few clusters (a
    BLAS product, 2-4x faster), sparse for many (a dense one would be mostly zeros)."""
    if k <= DENSE_K:
        onehot = np.zeros((k, len(lab)), dtype=weights.dtype)
        onehot[lab, np.arange(len(lab))] = weights
        return onehot
    return sparse.csr_matrix((weights, (lab, np.arange(len(lab)))), shape=(k, len(lab)))


class Accumulator:
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
        self.drawn: list[tuple[np.ndarray, np.ndarray]] = []  # coreset rows and weights
        # a dense 0/1 matrix of the rows' clusters can give each row its centre (with
        # finite centres only: 0 x inf is NaN)
        self._dense = k <= DENSE_K and bool(np.isfinite(centers).all())

    def add_chunk(self, feats, weights, raw, rates: CoresetRates | None, rng) -> np.ndarray:
        """Label a chunk of pixels (0-based, nearest centre), add it to the sums and draw its
        coreset rows (with ``rates``); returns the labels."""
        lab, dist, margin = nearest(feats, self.centers, margin=True)
        self.add(lab, weights, feats, dist, raw, margin)
        if rates is not None:
            rows = rates.draw(feats, weights, dist, lab, rng)
            if len(rows[0]):
                self.drawn.append(rows)
        return lab

    def merge(self, other: Accumulator) -> Accumulator:
        """These sums and ``other``'s (another chunk's or block's, same centres) together."""
        for name in ("counts", "sums", "sq", "raw", "raw_sq"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name) + getattr(other, name))
        self.dist += other.dist
        self.margin = np.minimum(self.margin, other.margin)
        self.drawn += other.drawn
        return self

    def coreset(self) -> tuple[np.ndarray, np.ndarray]:
        """The coreset the pass drew: rows and weights (summing to about the pixels' weight)."""
        if not self.drawn:
            return np.zeros((0, self.centers.shape[1]), np.float32), np.zeros(0)
        rows, weights = zip(*self.drawn, strict=True)
        return np.concatenate(rows), np.concatenate(weights)

    def add(self, lab, weights, feats, dist, raw, margin=None):
        k = len(self.counts)
        if margin is not None:
            np.minimum.at(self.margin, lab, margin.astype(np.float32, copy=False))
        w = np.ones(len(lab), np.float32) if weights is None else weights
        self.dist += float(np.dot(w, dist.astype(np.float64)))
        self.counts += np.bincount(lab, weights=w, minlength=k)
        by_column = feats.flags.f_contiguous and not feats.flags.c_contiguous
        if weights is None and self._dense and by_column and feats.shape[1] > FEW:
            self._add_by_column(lab, w, feats)
        else:
            self._add_gathered(lab, w, feats)
        if self.raw is not None:
            self.raw += _cluster_sums(lab, w, raw, k)
            self.raw_sq += _cluster_sums(lab, w, raw * raw, k)

    def _add_by_column(self, lab, w, feats) -> None:
        """Feature sums and squared deviations of unweighted rows laid out band after band
        (a chunk of a bands-first cube, as the readers deliver cubes): one 0/1 matrix of the
        rows' clusters a block serves three BLAS products -- the clusters' sums, each row's
        own centre (``centres.T @ onehot``, exact: one term is the centre, the others zero)
        and the squared deviations' sums: 2.0-2.5 ms for a chunk of 8,192 x 128 at k = 4-32,
        where gathering each row's centre by label across that layout took 2.25-2.7 ms. Rows
        stored pixel by pixel gather theirs faster (:meth:`_add_gathered`: 5% less)."""
        k = len(self.counts)
        for start in range(0, len(lab), ACC_ROWS):
            rows = slice(start, start + ACC_ROWS)
            onehot, part = _onehot(lab[rows], w[rows], k), feats[rows]
            dev = (self.centers.T @ onehot).T  # laid out as the chunk is (see _cluster_sums)
            self.sums += (part.T @ onehot.T).T
            np.subtract(part, dev, out=dev)
            self.sq += (np.square(dev, out=dev).T @ onehot.T).T

    def _add_gathered(self, lab, w, feats) -> None:
        k = len(self.counts)
        # one buffer: gather, subtract, square -- laid out as the chunk is (a chunk of a
        # bands-first cube is a transposed view): mixing layouts costs 10x the subtraction
        if feats.flags.f_contiguous and not feats.flags.c_contiguous:
            dev = np.take(self.centers.T, lab, axis=1).T
        else:
            dev = np.take(self.centers, lab, axis=0)
        np.subtract(feats, dev, out=dev)
        self.sums += _cluster_sums(lab, w, feats, k)
        self.sq += _cluster_sums(lab, w, np.square(dev, out=dev), k)

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
        """``sum n |mean - c|^2``: how much moving the centres to their means lowers inertia."""
        shift = self.feature_means() - self.centers
        return float(np.sum(self.counts * np.einsum("ij,ij->i", shift, shift)))

    def inertia_about_means(self) -> float:
        """``sum |x - mean|^2 = sum |x - c|^2 - sum n |mean - c|^2``, with no second pass.

        ``sum |x - c|^2`` from the squared deviations, not from the distances the labelling
        used: those are ``|x|^2 - 2 x.c + |c|^2`` in float32, which loses most digits for tight
        clusters far from the origin (unit-length spectra: 0.1% of the inertia).
        """
        return max(float(self.sq.sum()) - self.shift_gain(), 0)

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


def label_dtype(n_clusters: int) -> np.dtype:
    """The smallest unsigned integer type that holds labels 0..n_clusters.

    Examples
    --------
    >>> from napari_spectral_clusters.kmeans import label_dtype
    >>> label_dtype(8), label_dtype(300)
    (dtype('uint8'), dtype('uint16'))
    """
    return np.dtype(
        np.uint8 if n_clusters < 256 else np.uint16 if n_clusters < 65536 else np.uint32
    )
