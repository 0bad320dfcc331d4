"""Clustering cubes larger than memory: the dask front end of the engine (:mod:`.kmeans`).

A :class:`LazyPixels` is a dask array as the engine reads it, block by block:

1. the sample is drawn from up to ``SAMPLE_BLOCKS`` randomly chosen blocks (reading whole
   blocks is how chunked HDF5/zarr storage is read efficiently; many blocks keep the sample
   spread over the image), so the cube is never read whole to fit;
2. each pass computes per-block cluster sums (and coreset rows) as dask tasks and adds them
   up, on whatever scheduler is active (threads by default, a ``dask.distributed`` cluster
   when a client exists). Every finished block is reported as progress (on a cluster: as its
   future completes), and a cancel raised from the progress callback stops the pass (on a
   cluster: cancels the futures left);
3. the last pass keeps its labels (a small integer a pixel) when they fit KEEP_LABELS_SHARE
   of free memory and no ``dask.distributed`` client computes them: the labels and the
   recoloured image are then dask arrays over them, which read no block again (but a cube's
   alpha plane); otherwise they are ``map_blocks`` over the cube, computed as napari shows
   them or as a writer stores them, block by block.

Peak memory is a few blocks, the sample (and its blocks, until the first pass, when they fit
SAMPLE_KEEP_SHARE of free memory) and the kept labels, whatever the cube's size. A cube that
fits comfortably in free memory (READ_ONCE_SHARE of it) is read once instead
(:func:`lazy_pixels`): every pass would otherwise read it again. A small one is read whole
and clustered as a numpy image; a bigger one keeps every block as the sample and the first
pass read it, so reading and the first pass are one sweep, and its labels are computed with
the clustering.
"""

from __future__ import annotations

import os
import sys
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import reduce

import dask
import dask.array as da
import numpy as np
from dask.callbacks import Callback

from .kmeans import (
    Accumulator,
    ClusteringError,
    CoresetRates,
    ProgressEvent,
    check_range,
    label_dtype,
    nearest,
    one_blas_thread,
)
from .model import Features
from .pixels import CHUNK_BYTES, Pixels, memory_order
from .recolor import color_lut, recolor

__all__ = [
    "LazyPixels",
    "compute_each",
    "lazy_pixels",
    "lazy_view",
    "worker_deaths_reported",
]

#: Blocks read to draw the fitting sample.
SAMPLE_BLOCKS = 32
#: A lazy cube is read into memory once when it takes at most this share of the memory
#: available now (leaving room for the labels, the recoloured image and the user's session);
#: the environment variable SPECTRAL_CLUSTERS_READ_ONCE_SHARE overrides it (0: never).
READ_ONCE_SHARE = 0.25
#: A pass keeps its labels (a small integer a pixel) when they take at most this share of the
#: memory available now: the result's labels and recoloured image, and ``apply_model``, then
#: need no other read of the cube (making the labels again read the 3.2 GB cube of
#: benchmarks/bench_lazy_read.py a second time: 2.9 of its 7.6 s, block by block).
KEEP_LABELS_SHARE = 1 / 16
#: A cube read once of at most this many bytes is read whole before clustering and clustered
#: as a numpy image (a small image is searched whole: :mod:`.kmeans`); a bigger one keeps its
#: blocks as they are first read: reading it whole first took as long as the clustering
#: (benchmarks/bench_lazy_read.py).
READ_WHOLE_BYTES = 64 * 2**20
#: Block by block, the sample's blocks are kept for the first pass when together they take at
#: most this share of the memory available now: that pass then reads only the other blocks
#: (the 3.2 GB cube of benchmarks/bench_lazy_read.py: 32 of its 80 blocks, 1.3 GB, were read
#: twice). They are let go as the pass ends.
SAMPLE_KEEP_SHARE = 1 / 8


def lazy_pixels(
    image: da.Array, channel_axis, mask=None, alpha=None, *, read_once=True, report=None
):
    """The pixels of a dask array: read once into memory when it fits comfortably (and no
    dask.distributed client is active, which the user chose to compute on, nor the processes
    scheduler: :func:`_may_keep_blocks`), else lazy. ``read_once``: for a clustering (whose
    passes follow its sample), which lazily keeps its sample's blocks for the first pass too;
    False for a source that only samples or only labels."""
    n_channels = image.shape[channel_axis] if channel_axis is not None else 1
    if alpha is None:
        alpha = n_channels == 4 and np.issubdtype(image.dtype, np.integer)
    share = float(os.environ.get("SPECTRAL_CLUSTERS_READ_ONCE_SHARE", READ_ONCE_SHARE))
    if read_once and _may_keep_blocks() and image.nbytes <= share * _available():
        # 8-bit colour is clustered by its distinct colours, which needs every pixel at once
        colour = image.dtype == np.uint8 and n_channels <= 4
        if image.nbytes > READ_WHOLE_BYTES and not alpha and not colour:
            return LazyPixels(image, channel_axis, False, mask, keep_blocks=True)
        whole = _read_whole(image, report or (lambda event: None))
        mask = None if mask is None else np.asarray(mask)
        return Pixels.from_image(whole, channel_axis, mask, alpha)
    return LazyPixels(image, channel_axis, bool(alpha), mask, keep_sample=read_once)


def _read_whole(image: da.Array, report) -> np.ndarray:
    """All of ``image`` in one array laid out in memory as its blocks come (progress: stage
    "read", a step per block).

    A reader's blocks are often not in C order (an HDF5 cube is read through its transposed
    view: Fortran order); copying them into a C-ordered array is a transposing copy, which
    made reading the 3.2 GB cube of benchmarks/bench_lazy_read.py 4x one h5py read of it.
    The first block is read alone, to see its layout."""
    pieces = _each_block(image)
    grid = list(np.ndindex(*image.numblocks))
    (first,) = dask.compute(pieces[grid[0]])
    first = np.asarray(first)
    order = sorted(range(image.ndim), key=lambda a: -abs(first.strides[a]))  # outermost first
    whole = np.empty([image.shape[a] for a in order], image.dtype).transpose(np.argsort(order))
    _put_block(whole, first, grid[0], image.chunks)
    report(ProgressEvent("read", 1, len(grid)))
    tasks = [dask.delayed(_put_block)(whole, pieces[b], b, image.chunks) for b in grid[1:]]
    compute_each(tasks, lambda event: report(event._replace(done=event.done + 1)), "read")
    return whole


def _available() -> int:
    """Bytes of memory available now (page cache counts as available, as Linux sees it)."""
    try:
        import psutil  # napari and distributed need it; not a requirement of the engine

        return int(psutil.virtual_memory().available)
    except ImportError:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _may_keep_blocks() -> bool:
    """Whether blocks read may be kept in this process and handed to later tasks: only on
    dask's threads, not when a dask.distributed client computes (they would travel in every
    graph), nor on the processes scheduler or another executor, whose workers get copies (a
    cube read once into ``np.empty`` by them stayed unset in this process)."""
    import dask.multiprocessing

    chosen = dask.config.get("scheduler", None)
    if isinstance(chosen, Executor) and not isinstance(chosen, ThreadPoolExecutor):
        return False
    return dask.base.get_scheduler() is not dask.multiprocessing.get and _active_client() is None


def _each_block(array: da.Array) -> np.ndarray:
    """Every block of ``array`` as a delayed value, in an object array of its block grid.

    The graph is optimised once for all blocks: ``array.blocks[i]`` per block builds and
    culls the whole graph each time, which on the graph of several reshaped and joined images
    (joint clustering) costs the square of the block count (21 s and 766 MiB a pass for 512
    blocks, against 0.1 s here; benchmarks/bench_joint.py)."""
    return array.to_delayed(optimize_graph=True)


def _put_block(whole: np.ndarray, block, index, chunks) -> None:
    where = tuple(slice(sum(c[:i]), sum(c[: i + 1])) for c, i in zip(chunks, index, strict=True))
    whole[where] = block


@contextmanager
def worker_deaths_reported():
    """A dask.distributed KilledWorker becomes a :class:`ClusteringError` that says why."""
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ != "KilledWorker":
            raise
        # dask.distributed already re-ran the tasks of each dead worker elsewhere; this is
        # raised only when the same task killed ``allowed-failures`` workers in a row
        raise ClusteringError(
            f"dask workers kept dying while computing {exc.args[0] if exc.args else 'a task'}; "
            "nothing was kept. Workers usually die when they run out of memory: give them more "
            "memory or use smaller chunks."
        ) from exc


class LazyPixels:
    """The pixels of a dask array, read block by block (a :class:`~.kmeans.PixelSource`).

    With ``keep_blocks`` (a cube read once), every block is kept in memory as it is first
    read -- by the sample, the first pass, or a scan for distinct pixels -- and read from
    there afterwards; the labels, kept by every pass, are then given as numpy arrays, as for
    an image in memory (and can be painted on in napari). Without, ``keep_sample`` (a source
    that passes follow: a clustering's) keeps the sample's blocks until the first pass has
    used them, when they fit :data:`SAMPLE_KEEP_SHARE` of free memory.
    """

    in_memory = False

    def __init__(
        self,
        image: da.Array,
        channel_axis,
        alpha: bool,
        mask=None,
        *,
        keep_blocks=False,
        keep_sample=False,
    ):
        self.image, self.channel_axis, self.has_alpha = image, channel_axis, alpha
        # block index -> (block, allowed) as first read: every block when keeping them all,
        # else the sample's until the first pass (None: none kept)
        self._keep_all, self._keep_sample = keep_blocks, keep_sample
        self._kept_blocks: dict | None = {} if keep_blocks else None
        self.view, self.allowed = lazy_view(image, channel_axis, alpha, mask)
        self.n_features = self.view.shape[-1]
        self.dtype = self.view.dtype
        self.n_rows = int(np.prod(self.view.shape[:-1]))
        self._total_weight: float | None = None
        # (features, centres, labels or None) of the last pass; its labels (spatial, 0 =
        # excluded, else 1 + the pass's cluster) when small enough to keep
        self._last: tuple | None = None
        self._pieces: tuple | None = None  # each block of view and allowed, as delayed

    def _block_pieces(self):
        """Every block of the view and of the allowed mask as a delayed value."""
        if self._pieces is None:
            self._pieces = (_each_block(self.view), _each_block(self.allowed))
        return self._pieces

    def _blocks(self):
        return list(np.ndindex(*self.view.numblocks[:-1]))

    def sample(self, n: int, rng, report=lambda event: None, *, with_index: bool = False):
        """Up to ``n`` finite, allowed pixels from up to SAMPLE_BLOCKS random blocks, and the
        pixels each stands for; also estimates :attr:`total_weight` from those blocks. With
        ``with_index``, also each pixel's flat index in the image's spatial shape (what the
        feature-space plot links its points to pixels with).

        Every block gives the same number of pixels, so a pixel of a block that is mostly
        masked or transparent stands for fewer pixels than one of a full block: its weight is
        the block's finite allowed pixels over those drawn from it. Unweighted, such a sample
        over-represents the sparse blocks (on the sample photo, it cost one seed in eight
        1.5%).
        """
        blocks = self._blocks()
        picks = [blocks[i] for i in rng.permutation(len(blocks))[:SAMPLE_BLOCKS]]
        each = -(-n // max(len(picks), 1))  # per block: the sample is drawn block by block
        seeds = rng.integers(0, 2**31, len(picks))
        keep = self._keep_all
        if self._keep_sample and not keep:  # the sample's blocks, for the first pass
            block_bytes = sum(self._block_bytes(b) for b in picks)
            keep = _may_keep_blocks() and block_bytes <= SAMPLE_KEEP_SHARE * _available()
            self._kept_blocks = {} if keep else None
        # a few blocks at a time: the threaded scheduler would otherwise read them all first
        args = [(each, seed) for seed in seeds]
        parts = self._per_block(
            _block_sample, picks, args, report, "sample", batch=4, keep_read=keep
        )
        pixels = np.concatenate([x for x, _, _ in parts] or [np.empty((0, self.n_features))])
        weights = np.concatenate(
            [np.full(len(x), n_valid / max(len(x), 1)) for x, n_valid, _ in parts] or [[]]
        )
        index = np.concatenate(
            [self._flat_index(b, where) for b, (_, _, where) in zip(picks, parts, strict=True)]
            or [np.zeros(0, dtype=np.int64)]
        )
        valid = sum(n_valid for _, n_valid, _ in parts)
        self._total_weight = valid * len(blocks) / max(len(picks), 1)
        if len(pixels) > n:  # a uniform pick keeps the weights' meaning
            keep = np.sort(rng.choice(len(pixels), n, replace=False))
            pixels, weights, index = pixels[keep], weights[keep], index[keep]
        return (pixels, weights, index) if with_index else (pixels, weights)

    def _block_shape(self, block: tuple) -> list[int]:
        """The spatial shape of one block."""
        return [c[i] for c, i in zip(self.view.chunks[:-1], block, strict=True)]

    def _block_bytes(self, block: tuple) -> int:
        """Bytes of one block as kept: the view's channels and, with alpha, its alpha plane."""
        channels = self.n_features + (1 if self.has_alpha else 0)
        return int(np.prod(self._block_shape(block))) * channels * self.view.dtype.itemsize

    def _flat_index(self, block: tuple, where: np.ndarray) -> np.ndarray:
        """Flat indices in the spatial shape of the pixels ``where`` (flat in ``block``)."""
        start = [sum(c[:i]) for c, i in zip(self.view.chunks[:-1], block, strict=True)]
        local = np.unravel_index(where, self._block_shape(block))
        spatial = self.view.shape[:-1]
        return np.ravel_multi_index(
            tuple(a + o for a, o in zip(local, start, strict=True)), spatial
        ).astype(np.int64)

    @property
    def total_weight(self) -> float:
        """Pixels to cluster, estimated from the sample's blocks (all pixels before it)."""
        return float(self.n_rows if self._total_weight is None else self._total_weight)

    def one_pass(self, features, centers, rates: CoresetRates | None, rng, report):
        """One pass: per-block cluster sums (and coreset rows) as dask tasks, added up; each
        block's labels are kept too, when all of them fit :data:`KEEP_LABELS_SHARE`."""
        blocks = self._blocks()
        seeds = [None] * len(blocks) if rates is None else rng.integers(0, 2**63, len(blocks))
        dtype = label_dtype(len(centers))
        # up to four copies at once: the blocks' labels as they come, the pass's, the last
        # pass's and a recovery's snapshot of it; on a dask.distributed cluster the workers
        # make labels block by block (kept ones would travel in every graph computing them)
        size = 4 * self.n_rows * dtype.itemsize
        keep = _active_client() is None and size <= KEEP_LABELS_SHARE * _available()
        keep = keep or self._keep_all  # far smaller than the blocks kept
        args = [(features, centers, rates, seed) for seed in seeds]
        try:
            with _blas_threads_for_blocks():
                done = self._per_block(
                    _block_sums,
                    blocks,
                    args,
                    report,
                    "blocks",
                    keep=keep,
                    keep_read=self._keep_all,
                )
        finally:
            if not self._keep_all:  # the sample's blocks have served (or the pass stopped)
                self._kept_blocks = None
        kept = None
        if keep:
            kept = np.empty(self.view.shape[:-1], dtype=dtype)
            for b, (_, lab) in zip(blocks, done, strict=True):
                _put_block(kept, lab, b, self.view.chunks[:-1])
        self._last = (features, centers, kept)
        return reduce(Accumulator.merge, [acc for acc, _ in done])

    def distinct(self, limit: int, report=None) -> np.ndarray:
        """The distinct finite pixel values, or at least ``limit`` of them (eight blocks at a
        time, stopping once enough are found: never more than ``limit`` rows per block)."""
        report = report or (lambda event: None)
        blocks = self._blocks()
        found = np.zeros((0, self.n_features), np.float32)
        for start in range(0, len(blocks), 8):

            def overall(event, start=start):  # this batch's progress as the scan's
                report(event._replace(done=start + event.done, total=len(blocks)))

            batch = blocks[start : start + 8]
            parts = self._per_block(
                _block_distinct,
                batch,
                [(limit,)] * len(batch),
                overall,
                "distinct",
                keep_read=self._keep_all,
            )
            found = np.unique(np.concatenate([found, *parts]), axis=0)
            if len(found) >= limit:
                break
        return found

    def _per_block(
        self, fn, blocks, args, report, stage, *, batch=None, keep_read=False, **kwargs
    ) -> list:
        """``fn(block, allowed, *args[i], **kwargs)`` for every block ``blocks[i]``, as dask
        tasks (:func:`compute_each`); a block read from storage now is kept with
        ``keep_read`` (when blocks are kept), and a kept block is not read again."""
        view, allowed = self._block_pieces()
        kept = self._kept_blocks
        keep_read = keep_read and kept is not None
        tasks = []
        for b, extra in zip(blocks, args, strict=True):
            name = f"{fn.__name__}-{uuid.uuid4().hex}"  # named as fn: the task stream shows it
            if kept is not None and b in kept:
                pieces, keep = kept[b], False
            else:
                pieces, keep = (view[(*b, 0)], allowed[b]), keep_read
            call = dask.delayed(_read_and_keep)
            tasks.append(call(fn, *pieces, *extra, keep_block=keep, dask_key_name=name, **kwargs))
        done = compute_each(tasks, report, stage, batch=batch)
        if keep_read:
            kept.update((b, kept_) for b, (_, kept_) in zip(blocks, done, strict=True) if kept_)
        return [out for out, _ in done]

    def snapshot(self):
        return self._last

    def restore(self, state) -> None:
        self._last = state

    def labels(self, order: np.ndarray) -> da.Array | np.ndarray:
        """Labels with the last pass's centres, cluster ``order[i]`` numbered ``i + 1``: the
        pass's own labels when it kept them (no block is read again), else made block by
        block when computed."""
        features, centers, kept = self._last
        lut = np.zeros(len(order) + 1, dtype=label_dtype(len(order)))
        lut[np.asarray(order) + 1] = np.arange(1, len(order) + 1, dtype=lut.dtype)
        if kept is not None and self._keep_all:  # read once: in memory
            return lut[kept]
        if kept is not None:  # name=False: a random name, not a hash of all the labels
            return da.from_array(lut[kept], chunks=self.view.chunks[:-1], name=False)
        # the band axis is kept (length 1) and dropped after: with drop_axis, dask hands each
        # block over concatenated along it, a C-ordered copy of a block that is a transposed
        # view (every block of a v7.3 cube), which doubled the labels' pass
        return da.map_blocks(
            _label_block,
            self.view,
            self.allowed[..., None],
            features=features,
            centers=centers,
            lut=lut,
            dtype=lut.dtype,
            chunks=(*self.view.chunks[:-1], (1,)),
        )[..., 0]

    def recolored(self, labels, colors, *, transparent=False) -> da.Array | np.ndarray:
        if isinstance(labels, np.ndarray):  # kept blocks: no alpha (see lazy_pixels)
            return recolor(labels, colors, transparent=transparent)
        image, axis = self.image, self.channel_axis
        return _lazy_recolor(labels, colors, image, axis, self.has_alpha, transparent)


def lazy_view(image: da.Array, channel_axis, alpha: bool, mask=None):
    """(spatial..., C) view with whole spectra per block, and the allowed pixels (alpha, mask)."""
    view = image[..., None] if channel_axis is None else da.moveaxis(image, channel_axis, -1)
    view = view.rechunk({view.ndim - 1: -1})
    if alpha:
        allowed = view[..., -1] > 0
        view = view[..., :-1]
    else:
        allowed = da.ones(view.shape[:-1], dtype=bool, chunks=view.chunks[:-1])
    if mask is not None:
        mask = da.asarray(mask)
        if mask.shape != allowed.shape:
            raise ClusteringError(f"mask shape {mask.shape} does not match image {allowed.shape}")
        allowed = allowed & mask.astype(bool).rechunk(allowed.chunks)
    return view, allowed


def _read_and_keep(fn, block, ok, *args, keep_block: bool, **kwargs):
    """``fn``'s result for a block, and the block and its allowed mask to keep, if asked."""
    out = fn(block, ok, *args, **kwargs)
    return out, ((np.asarray(block), np.asarray(ok)) if keep_block else None)


def _block_sample(block, ok, n: int, seed: int) -> tuple[np.ndarray, float, np.ndarray]:
    """About ``n`` finite allowed pixels of one block, picked before any copy is made, how
    many finite allowed pixels the block has (estimated from those looked at), and where the
    picked pixels are (flat indices in the block)."""
    block, ok = np.asarray(block), np.asarray(ok)
    allowed = np.flatnonzero(ok)
    candidates = allowed
    rng = np.random.default_rng(seed)
    if len(candidates) > 2 * n:  # twice as many, to leave room for NaN pixels
        candidates = np.sort(rng.choice(candidates, 2 * n, replace=False))
    x = block[np.unravel_index(candidates, ok.shape)].astype(np.float64)
    finite = np.isfinite(x).all(axis=1)
    x, where = x[finite], candidates[finite]
    n_valid = len(allowed) * len(x) / max(len(candidates), 1)
    if len(x) > n:
        keep = np.sort(rng.choice(len(x), n, replace=False))
        x, where = x[keep], where[keep]
    return x, n_valid, where


def _block_rows(block, ok) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A (spatial..., C) block as (n, C) rows and its allowed mask as (n,), both with the
    spatial axes in memory order (:func:`~.pixels.memory_order`), and that order.

    In memory order the rows are a view: a block of a bands-first cube comes Fortran-ordered
    (an HDF5 cube read through its transposed view), and reshaping it in C order was a
    transposing copy that took half of every pass (benchmarks/bench_lazy_read.py)."""
    block = np.asarray(block)
    order = memory_order(block)
    x = block.transpose(*order, len(order)).reshape(-1, block.shape[-1])
    return x, np.asarray(ok).transpose(order).reshape(-1), order


def _finite_rows(x: np.ndarray) -> np.ndarray | None:
    """Which rows of ``x`` are finite, or None when all are."""
    # the sum is finite only if every value is: 4x cheaper than isfinite(x).all(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum: row by row
        if not np.issubdtype(x.dtype, np.floating) or np.isfinite(x.sum()):
            return None
    finite = np.isfinite(x).all(axis=1)
    return None if finite.all() else finite


def _block_pixels(block: np.ndarray, ok: np.ndarray, *, where: bool = False):
    """The finite allowed pixels of one block as (n, C) float32 (a copy only where the block
    is masked or not float32); with ``where``, also which of the block's rows (in memory
    order) they are -- a mask, None when all -- and that order (:func:`_block_rows`)."""
    x, ok, order = _block_rows(block, ok)
    valid = None if ok.all() else ok
    if valid is not None:
        x = x[valid]
    with np.errstate(over="ignore"):  # beyond float32: refused just below
        x32 = x.astype(np.float32, copy=False)
    finite = _finite_rows(x32)
    if finite is not None:
        check_range(x[~finite])  # finite before the cast, not after: beyond float32, refused
        x32 = x32[finite]
        if valid is None:
            valid = finite
        else:
            valid = valid.copy()
            valid[np.flatnonzero(valid)[~finite]] = False
    return (x32, valid, order) if where else x32


def _block_sums(
    block, ok, features: Features, centers, rates, seed, *, keep: bool = False
) -> tuple[Accumulator, np.ndarray | None]:
    """One block's cluster sums, and with ``keep`` its labels (spatial block, 0 = excluded,
    else 1 + the nearest centre)."""
    acc = Accumulator(centers, block.shape[-1], features.identity)
    x, valid, order = _block_pixels(block, ok, where=True)
    lab = None
    if len(x):
        rng = None if seed is None else np.random.default_rng(seed)
        # in pieces of CHUNK_BYTES, as a pass over an image in memory goes: the labelling
        # and the sums sweep a piece several times, and a 40 MiB block's sweeps went to
        # memory, not the cache (1.5x slower on the v7.3 blocks of bench_lazy_read.py)
        step = max(1, CHUNK_BYTES // (4 * x.shape[1]))
        labs = []
        for start in range(0, len(x), step):
            feats, raw = features.convert(x[start : start + step])
            labs.append(acc.add_chunk(feats, None, raw, rates, rng))
        lab = np.concatenate(labs)
    if not keep:
        return acc, None
    out = np.zeros(int(np.prod(block.shape[:-1])), dtype=label_dtype(len(centers)))
    if lab is not None:
        out[slice(None) if valid is None else valid] = lab + 1
    return acc, _spatial(out, order, block.shape)


def _spatial(rows: np.ndarray, order: tuple, shape: tuple) -> np.ndarray:
    """A block's per-pixel values, given in memory ``order``, as a C-ordered array of the
    block's spatial ``shape`` (its own axis order)."""
    spatial = [shape[a] for a in order]
    return np.ascontiguousarray(rows.reshape(spatial).transpose(np.argsort(order)))


def _block_distinct(block, ok, limit: int) -> np.ndarray:
    """Up to ``limit`` distinct finite allowed pixel values of one block."""
    return np.unique(_block_pixels(block, ok), axis=0)[:limit]


def compute_each(tasks: list, report, stage: str, *, batch: int | None = None) -> list:
    """Compute dask tasks on the active scheduler, reporting each one as it finishes.

    ``report(ProgressEvent(stage, done, total))`` is called once per finished task; an
    exception raised by it (:class:`~napari_spectral_clusters.Cancelled`) stops the
    computation. On a ``dask.distributed`` client the tasks are submitted as futures: progress
    comes from the cluster as they complete, and stopping cancels the futures still pending.
    Elsewhere a scheduler callback reports them (``batch`` tasks per compute, if given).
    """
    total = len(tasks)
    client = _active_client()
    if client is not None:
        from distributed import wait

        futures = client.compute(tasks)
        pending = set(futures)
        try:
            while pending:
                try:  # wake up now and then, so a cancel is seen while blocks take long
                    finished, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:  # not one class before 3.11
                    finished = ()
                for future in finished:
                    if future.status == "error":
                        future.result()  # raise it now: the rest are cancelled below
                report(ProgressEvent(stage, total - len(pending), total))
            return [f.result() for f in futures]  # raises what a task raised
        finally:
            client.cancel(futures)  # nothing for finished ones; the rest when stopped early
    keys = {t.key for t in tasks}
    done = 0

    def posttask(key, result, dsk, state, worker_id):
        nonlocal done
        if key in keys:
            done += 1
            report(ProgressEvent(stage, done, total))  # an exception here stops the pass

    step = batch or max(total, 1)
    with Callback(posttask=posttask):
        return [r for i in range(0, total, step) for r in dask.compute(*tasks[i : i + step])]


def _blas_threads_for_blocks():
    """One BLAS thread while dask's threads compute blocks in parallel (not on a cluster,
    whose workers are other processes): BLAS's own threads on top of dask's spin against
    each other, which made a block-by-block pass 2x slower on 2 cores, far more when another
    process holds one (benchmarks/bench_lazy_read.py)."""
    if _active_client() is not None or dask.config.get("scheduler", None) in SERIAL:
        return nullcontext()
    return one_blas_thread()


#: dask scheduler names that compute one task at a time (BLAS may use every core then).
SERIAL = ("sync", "synchronous", "single-threaded")


def _active_client():
    """The ``dask.distributed`` client dask would compute on now, if any."""
    if "distributed" not in sys.modules:
        return None
    from distributed import Client

    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    # a client that never reached its scheduler (a wrong --scheduler address) stays
    # "connecting" as the default: computing on it would wait forever
    if not isinstance(client, Client) or client.status != "running":
        return None
    return client


def _lazy_recolor(labels: da.Array, colors, image: da.Array, channel_axis, alpha, transparent):
    """:func:`~napari_spectral_clusters.cluster.recolor` block by block, with the image's
    alpha plane (or, ``transparent``, label 0 see-through)."""
    if not alpha:
        lut = color_lut(colors, alpha=transparent)
        return labels.map_blocks(
            _lut_block,
            lut=lut,
            dtype=np.uint8,
            new_axis=labels.ndim,
            chunks=(*labels.chunks, (lut.shape[1],)),
        )
    plane = da.moveaxis(image, channel_axis, -1)[..., -1].rechunk(labels.chunks)
    dtype = np.uint16 if plane.dtype == np.uint16 else np.uint8
    return da.map_blocks(
        _recolor_block,
        labels,
        plane,
        colors=np.asarray(colors),
        dtype=dtype,
        new_axis=labels.ndim,
        chunks=(*labels.chunks, (4,)),
    )


def _lut_block(block: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Colours of a block of labels (module level: a cluster's workers must unpickle it); as
    :func:`~.recolor.recolor` does, by np.take of whole rows."""
    return np.take(lut, block, axis=0)


def _recolor_block(block: np.ndarray, alpha: np.ndarray, colors: np.ndarray) -> np.ndarray:
    return recolor(block, colors, alpha)


def _label_block(block, ok, *, features: Features, centers, lut) -> np.ndarray:
    """Labels of one block as (spatial..., 1): nearest centre, numbered by ``lut``; 0 where
    not allowed or not finite."""
    x, valid, order = _block_rows(block, np.asarray(ok)[..., 0])  # ok came as (spatial..., 1)
    x = x.astype(np.float32, copy=False)
    finite = _finite_rows(x)
    if finite is not None:
        valid = valid & finite
    out = np.zeros(len(x), dtype=lut.dtype)
    if valid.all():
        out[:] = lut[nearest(features(x), centers)[0] + 1]
    elif valid.any():
        out[valid] = lut[nearest(features(x[valid]), centers)[0] + 1]
    return _spatial(out, order, block.shape)[..., None]
