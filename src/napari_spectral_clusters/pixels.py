"""The pixels of an image in memory, as the engine (:mod:`.kmeans`) reads them: checked,
masked, and handed out in float32 chunks, with every pass's labels written as it goes."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np

from .kmeans import (
    WHOLE_BYTES,
    Accumulator,
    ClusteringError,
    CoresetRates,
    ProgressEvent,
    check_range,
    label_dtype,
    one_blas_thread,
)
from .model import Features
from .recolor import recolor

__all__ = ["Pixels", "memory_order", "prepare_image"]

#: float32 bytes per chunk in the passes over all pixels: large enough for BLAS, small enough
#: that a chunk, its distances and its per-cluster sums stay a few tens of MB. A pass sweeps a
#: chunk several times (features, distances, deviations, sums): 4 MiB chunks made the
#: 1024 x 1024 x 128 cube of benchmarks/bench_engine.py 5% faster than 8 MiB (median of 6
#: runs, bands last and as read; 2 MiB was slower); labelling and summing 1 M pixels in one
#: thread took 0.32 s in 8,192-row chunks against 0.52 s in 16,384-row ones.
CHUNK_BYTES = 4 * 2**20
#: Threads a pass over an image in memory labels its chunks in: one a core, at most 4 (measured
#: on 2 cores only: 1.3-1.8x faster a pass than one thread with BLAS on both).
PASS_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Images whose float32 features fit in this many bytes are converted once and kept for all
#: passes; larger ones are converted chunk by chunk in every pass, so memory stays flat. The
#: engine's limit for searching an image whole: its coreset of every row is the kept chunks.
CACHE_BYTES = WHOLE_BYTES


def memory_order(view: np.ndarray) -> tuple[int, ...]:
    """The spatial axes of a (spatial..., C) ``view`` from the one farthest apart in memory
    to the closest (stable: C order stays as it is)."""
    spatial = view.ndim - 1
    return tuple(sorted(range(spatial), key=lambda a: -abs(view.strides[a])))


def prepare_image(image, channel_axis, mask, alpha):
    """Check the image; return it, its (spatial..., C) feature view without alpha, the pixels
    allowed by mask and alpha, and its alpha plane (None without alpha).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.pixels import prepare_image
    >>> rgba = np.zeros((2, 2, 4), np.uint8)
    >>> rgba[..., 3] = [[255, 0], [255, 255]]  # one transparent pixel
    >>> image, view, allowed, alpha = prepare_image(rgba, -1, None, None)
    >>> view.shape, allowed.tolist()
    ((2, 2, 3), [[True, False], [True, True]])
    """
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


@dataclass
class Pixels:
    """The pixels to cluster, handed out in float32 chunks (a :class:`~.kmeans.PixelSource`).

    Either an image view (spatial..., C) with the ``allowed`` mask — read once and kept as
    float32 chunks when small (``cache``), read chunk by chunk in every pass otherwise — or,
    for 8-bit colour, its distinct colours with pixel counts as weights and each pixel's
    colour code, to give every pixel its colour's label at the end.
    """

    view: np.ndarray
    allowed: np.ndarray
    alpha_plane: np.ndarray | None = None
    uniques: np.ndarray | None = None
    weights: np.ndarray | None = None
    codes: np.ndarray | None = None  # uint32 colour code of every pixel (distinct colours)
    unique_codes: np.ndarray | None = None
    unique_labels: np.ndarray | None = None  # the last pass's label of each distinct colour
    finite_checked: bool = False
    cache: list | None = None  # the finite allowed pixels as float32 chunks, when small
    last_labels: np.ndarray | None = None  # the last pass's labels (1-based, 0 = excluded)
    feature_cache: tuple | None = None  # (features, their converted chunks), when small
    # the spatial axes as ``view`` and ``allowed`` hold them: in memory order (outermost
    # first), so a chunk is a few contiguous runs of memory; labels are given back in the
    # image's own order
    order: tuple | None = None
    in_memory = True  # (not a field) every pixel is here: a small image is searched whole

    @classmethod
    def from_image(cls, image, channel_axis=-1, mask=None, alpha=None) -> Pixels:
        """The pixels of ``image`` (see :func:`prepare_image`)."""
        _, view, allowed, alpha_plane = prepare_image(image, channel_axis, mask, alpha)
        return cls.from_view(view, allowed, alpha_plane)

    @classmethod
    def from_view(cls, view: np.ndarray, allowed: np.ndarray, alpha_plane=None) -> Pixels:
        if view.dtype != np.uint8 or view.shape[-1] > 4:
            order = memory_order(view)
            spatial = len(order)
            data = cls(
                view.transpose(*order, spatial), allowed.transpose(order), alpha_plane, order=order
            )
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
        return cls(view, allowed, alpha_plane, colors.astype(np.float32), weights, codes, uniq)

    @property
    def n_features(self) -> int:
        return self.view.shape[-1]

    @property
    def dtype(self) -> np.dtype:
        return self.view.dtype

    @property
    def has_alpha(self) -> bool:
        return self.alpha_plane is not None

    @property
    def n_rows(self) -> int:
        return len(self.uniques) if self.uniques is not None else int(self.allowed.size)

    @property
    def total_weight(self) -> float:
        """Pixels to cluster (the distinct colours' counts added up)."""
        if self.uniques is not None:
            return float(self.weights.sum())
        return float(np.count_nonzero(self.allowed))

    @property
    def nbytes_float32(self) -> int:
        return 4 * self.n_rows * self.n_features

    def sample(
        self, n: int, rng: np.random.Generator, report=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` finite pixels drawn at random (float32 or float64), with their weights
        (in memory: nothing to report)."""
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
        rows = self._pixel_rows()
        if rows is not None and abs(rows.strides[0]) < abs(rows.strides[1]):
            # a cube with its bands first in memory: gather each band's plane along its
            # contiguous axis (1024 x 1024 x 128, 8,000 pixels: 17 -> 9 ms)
            x = np.take(rows.T, flat, axis=1).T.astype(np.float64)
        else:
            x = self.view[np.unravel_index(flat, self.allowed.shape)].astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # finite sum: every value is
            if not np.isfinite(x.sum()):
                x = x[np.isfinite(x).all(axis=1)]
        if len(x) == 0 and self.allowed.any():  # mostly NaN: draw among finite pixels only
            rows = np.concatenate([b for b, _, _ in self.chunks()])
            x = rows[np.sort(rng.choice(len(rows), min(n, len(rows)), replace=False))]
            x = x.astype(np.float64)
        return x, np.ones(len(x))

    def _pixel_rows(self) -> np.ndarray | None:
        """The view as (pixels, C) without a copy, or None when its spatial axes are not
        evenly spaced in memory (then only a copy could flatten them)."""
        shape, strides = self.view.shape, self.view.strides
        spatial = len(shape) - 1
        if any(strides[a] != strides[a + 1] * shape[a + 1] for a in range(spatial - 1)):
            return None
        return np.lib.stride_tricks.as_strided(
            self.view, (int(np.prod(shape[:-1])), shape[-1]), strides[-2:], writeable=False
        )

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
        check = self._needs_finite_check()
        for rows in self._row_chunks():
            block, where, _ = self._read_chunk(rows, check)
            yield block, None, where
        self.finite_checked = True

    def _needs_finite_check(self) -> bool:
        """Whether a read must look for non-finite pixels (float input not read through yet)."""
        return np.issubdtype(self.view.dtype, np.floating) and not self.finite_checked

    def _read_chunk(self, rows: slice, check: bool):
        """One chunk's finite allowed pixels as float32, where they go, and which of its
        allowed pixels were finite (None: all). With ``check``, non-finite pixels are looked
        for and dropped from ``allowed`` (chunks are disjoint: chunks may be read in
        threads)."""
        view, allowed = self.view, self.allowed
        ok = allowed[rows].reshape(-1)
        # one converting copy in memory order (none for C-ordered float32): for a cube with
        # its bands first in memory, as the readers deliver cubes, the chunk's pixels are
        # contiguous runs in every band and the (pixels, bands) block is a transposed view of
        # the copy (BLAS takes it as it is); converting it to C order would be a transposing
        # copy, several times slower than the cast
        with np.errstate(over="ignore"):  # beyond float32: refused just below
            block = np.asarray(view[rows], dtype=np.float32, order="K").reshape(ok.size, -1)
        if not ok.all():
            block = block[ok]
        # the sum is finite only if every value is (and a sum that overflows is checked row
        # by row): 4x cheaper than isfinite(...).all(axis=1) when all are finite
        # an overflowing sum (or inf + -inf) is checked row by row
        with np.errstate(over="ignore", invalid="ignore"):
            overflow = check and not np.isfinite(block.sum())
        finite = None
        if overflow:
            finite = np.isfinite(block).all(axis=1)
            if finite.all():
                finite = None
            else:
                # finite before the cast, not after: beyond float32, refused
                check_range(np.asarray(view[rows]).reshape(ok.size, -1)[ok][~finite])
                ok = ok.copy()
                ok[np.flatnonzero(ok)[~finite]] = False
                allowed[rows] = ok.reshape(allowed[rows].shape)
                block = block[finite]
        return block, (rows, ok), finite

    def _row_chunks(self) -> list[slice]:
        view = self.view
        per_row = int(np.prod(view.shape[1:-1], dtype=np.int64)) or 1
        step = max(1, CHUNK_BYTES // (4 * view.shape[-1] * per_row))
        return [slice(i, min(i + step, view.shape[0])) for i in range(0, view.shape[0], step)]

    def one_pass(self, features, centers, rates: CoresetRates | None, rng, report) -> Accumulator:
        """Label every pixel with its nearest centre and sum up the clusters, chunk by chunk
        (each reported as a step of stage "blocks", where a cancel stops the pass).

        Chunks are labelled and summed in PASS_THREADS threads, one BLAS thread each (a
        chunk's products are small: BLAS's own threads gained little), and added up in
        chunk order, with each chunk's coreset draws made in order beforehand: the result is
        the same, to the bit, as one chunk after the other.
        """
        acc = Accumulator(centers, self.n_features, features.identity)
        if self.last_labels is None or self.last_labels.dtype != label_dtype(len(centers)):
            self.last_labels = np.zeros(self.allowed.shape, dtype=label_dtype(len(centers)))
        if self.uniques is not None:
            n_chunks = 1
        else:
            n_chunks = len(self.cache) if self.cache is not None else len(self._row_chunks())
        random = rates is not None and not rates.takes_every_row
        done = 0

        def finish(task, where):
            nonlocal acc, done
            part, lab, read_where = task.result()
            where = where if read_where is None else read_where
            acc = acc.merge(part)
            self._put(where, lab)
            done += 1
            report(ProgressEvent("blocks", done, n_chunks))

        threads = min(PASS_THREADS, n_chunks)
        blas = one_blas_thread() if threads > 1 else nullcontext()  # one chunk: BLAS's threads
        with blas, ThreadPoolExecutor(threads) as pool:  # the pool ends first, then BLAS
            pending = deque()
            for chunk, n, w, where in self._pass_chunks(features):
                draws = rng.random(n, dtype=np.float32) if random else None
                args = (chunk, w, features, centers, self.n_features, rates, draws)
                pending.append((pool.submit(_chunk_sums, *args), where))
                while len(pending) > threads:  # a few chunks in flight: memory stays flat
                    finish(*pending.popleft())
            while pending:
                finish(*pending.popleft())
        self.finite_checked = True  # every chunk was read, and none was refused
        return acc

    def _pass_chunks(self, features: Features):
        """(chunk, rows, weights, where) for every chunk of a pass. A small image's chunks
        are converted once and kept from one pass to the next: ``(features, input - offset
        or None)`` (:meth:`Features.convert`). A larger image's are read, checked for
        non-finite pixels (the first time) and converted in the thread that labels them, so
        memory stays flat and the pass's threads share that work too (read here, they took
        an eighth of the 1024 x 1024 x 128 cube's time, in one thread): the chunk is then a
        function that reads it, ``rows`` its allowed pixels and ``where`` None (the thread
        gives it, less any non-finite pixel)."""
        if self.nbytes_float32 > CACHE_BYTES and self.uniques is not None:
            for block, w, where in self.chunks():  # the distinct colours, converted each pass
                yield partial(_as_read, block), len(block), w, where
            return
        if self.nbytes_float32 > CACHE_BYTES:
            check = self._needs_finite_check()
            for rows in self._row_chunks():
                n = int(np.count_nonzero(self.allowed[rows]))
                yield partial(self._read_chunk, rows, check), n, None, None
            return  # finite_checked is set once every thread has read its chunk
        if self.feature_cache is None or self.feature_cache[0] is not features:
            kept = [(features.convert(b), len(b), w, where) for b, w, where in self.chunks()]
            self.feature_cache = (features, kept)
        yield from self.feature_cache[1]

    def _put(self, where, lab: np.ndarray) -> None:
        """Store a chunk's labels (0-based); distinct colours wait for :meth:`labels`."""
        if where is None:
            self.unique_labels = lab
            return
        rows, ok = where
        target = self.last_labels[rows]
        if len(lab) == ok.size:  # every pixel of the chunk: no mask to apply (2-3x faster)
            np.add(lab.reshape(target.shape), 1, out=target, casting="unsafe")
            return
        out = np.zeros(ok.shape, dtype=self.last_labels.dtype)
        out[ok] = lab + 1
        target[...] = out.reshape(target.shape)

    def snapshot(self):
        unique = None if self.unique_labels is None else self.unique_labels.copy()
        return self.last_labels.copy(), unique

    def restore(self, state) -> None:
        self.last_labels[...], self.unique_labels = state

    def labels(self, order: np.ndarray) -> np.ndarray:
        """The last pass's labels, cluster ``order[i]`` numbered ``i + 1`` (0 = excluded)."""
        labels = self.last_labels
        if self.uniques is not None:
            self._finish(labels)
        lut = np.zeros(len(order) + 1, dtype=labels.dtype)
        lut[np.asarray(order) + 1] = np.arange(1, len(order) + 1, dtype=labels.dtype)
        if self.order is None or self.order == tuple(range(labels.ndim)):
            return lut[labels]
        back = np.transpose(labels, np.argsort(self.order))  # the image's own axis order
        return lut[np.ascontiguousarray(back)]

    def _finish(self, labels: np.ndarray) -> None:
        """Give every pixel its distinct colour's label from the last pass."""
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

    def recolored(self, labels: np.ndarray, colors: np.ndarray, *, transparent=False):
        return recolor(labels, colors, self.alpha_plane, transparent=transparent)

    def distinct(self, limit: int, report=None) -> np.ndarray:
        """The distinct finite pixel values (only needed in degenerate cases)."""
        if self.uniques is not None:
            return self.uniques
        return np.unique(np.concatenate([b for b, _, _ in self.chunks()]), axis=0).astype(
            np.float32
        )


def _chunk_sums(chunk, w, features, centers, n_input, rates, draws):
    """One chunk's cluster sums, labels and, when read here, where they go (run in a pass's
    threads); ``chunk`` as :meth:`Pixels._pass_chunks` gives it: converted already, or a
    function that reads its pixels, as :meth:`Pixels._read_chunk` (``draws``: one for each of
    its allowed pixels)."""
    where = None
    if isinstance(chunk, tuple):
        feats, raw = chunk
    else:
        block, where, finite = chunk()
        feats, raw = features.convert(block)
        if draws is not None and finite is not None:
            draws = draws[finite]
    acc = Accumulator(centers, n_input, features.identity)
    return acc, acc.add_chunk(feats, w, raw, rates, draws), where


def _as_read(block: np.ndarray):
    """Pixels already read, as :meth:`Pixels._read_chunk` gives them (where they go: known)."""
    return block, None, None
