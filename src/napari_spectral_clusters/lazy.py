"""Clustering cubes larger than memory: dask arrays in, dask labels out.

The same method as :func:`~napari_spectral_clusters.cluster_image`, block by block:

1. the sample is drawn from up to ``SAMPLE_BLOCKS`` randomly chosen blocks (reading whole
   blocks is how chunked HDF5/zarr storage is read efficiently; many blocks keep the sample
   spread over the image), so the cube is never read whole to fit;
2. k-means++ starts and Lloyd iterations run on that sample in memory;
3. each refinement pass computes per-block cluster sums as dask tasks and adds them up, on
   whatever scheduler is active (threads by default, a ``dask.distributed`` cluster when a
   client exists); the last pass's sums are the result's counts, centres and spreads, for
   the labels its centres give (no extra pass to compute them). Every finished block is
   reported as progress (on a cluster: as its future completes), and a cancel raised from
   the progress callback stops the pass (on a cluster: cancels the futures left);
4. labels and the recoloured image are ``map_blocks`` over the cube: lazy, computed as napari
   shows them or as a writer stores them, block by block.

Peak memory is a few blocks plus the sample, whatever the cube's size.
"""

from __future__ import annotations

import asyncio
import sys
from functools import reduce

import dask
import dask.array as da
import numpy as np
from dask.callbacks import Callback

from .cluster import (
    ClusteringError,
    ClusterResult,
    ProgressEvent,
    _Accumulator,
    _best_start,
    _label_dtype,
    _nearest,
    color_lut,
    recolor,
    refine,
)
from .color import center_colors
from .model import ClusterModel, Features

__all__ = ["cluster_lazy", "compute_each", "lazy_sample", "lazy_view"]

#: Blocks read to draw the fitting sample.
SAMPLE_BLOCKS = 32


def cluster_lazy(
    image: da.Array,
    n_clusters: int,
    *,
    channel_axis: int | None,
    alpha: bool,
    mask=None,
    params: dict,
    wavelengths=None,
    palette: str = "auto",
    report=lambda event: None,
) -> ClusterResult:
    """Cluster a dask array without loading it; see the module docstring."""
    try:
        return _cluster_lazy(
            image, n_clusters, channel_axis, alpha, mask, params, wavelengths, palette, report
        )
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


def _cluster_lazy(
    image, n_clusters, channel_axis, alpha, mask, params, wavelengths, palette, report
) -> ClusterResult:
    view, allowed = lazy_view(image, channel_axis, alpha, mask)
    rng = np.random.default_rng(params["random_state"])
    sample, weights = lazy_sample(view, allowed, params["max_samples"], rng, report)
    if len(sample) == 0:
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
    features = Features.fit(sample, weights, params)
    centers = _best_start(features(sample), weights, n_clusters, params, rng, report)
    if centers is None:
        raise ClusteringError(
            f"the sample has fewer distinct pixels than the {n_clusters} clusters asked for"
        )

    # The labels are those of the last pass, made lazily with the centres it labelled with,
    # as in memory: its sums are then the final statistics, and no extra pass over the cube
    # is needed to compute them.
    acc, inertia = refine(
        lambda c: _sums(view, allowed, features, c, report), centers, params, report
    )
    centers = acc.centers
    if not acc.counts.any():
        raise ClusteringError("no pixel left to cluster: all are masked, transparent or NaN")
    order = np.argsort(-np.round(acc.counts), kind="stable")
    centers = centers[order]
    means, std = acc.input_mean_std(features.offset)
    means, std, counts = means[order], std[order], np.round(acc.counts[order]).astype(np.int64)
    colors, params["colors"] = center_colors(
        means, image.dtype, rgb=view.shape[-1] == 3, wavelengths=wavelengths, palette=palette
    )
    model = ClusterModel(features, centers, colors, params)
    labels = da.map_blocks(
        _label_block,
        view,
        allowed[..., None],
        features=features,
        centers=centers,
        dtype=_label_dtype(len(centers)),
        drop_axis=view.ndim - 1,
    )
    recolored = _lazy_recolor(labels, colors, image, channel_axis, alpha)
    report(ProgressEvent("done", 1, 1, inertia))
    return ClusterResult(
        labels=labels,
        centers=means,
        std=std,
        colors=colors,
        recolored=recolored,
        inertia=inertia,
        counts=counts,
        model=model,
        params=params,
    )


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


def lazy_sample(view: da.Array, allowed: da.Array, n: int, rng, report=lambda e: None):
    """Up to ``n`` finite, allowed pixels from up to SAMPLE_BLOCKS random blocks, and the
    pixels each stands for.

    Every block gives the same number of pixels, so a pixel of a block that is mostly masked
    or transparent stands for fewer pixels than one of a full block: its weight is the
    block's finite allowed pixels over those drawn from it. Unweighted, such a sample
    over-represents the sparse blocks (on the sample photo, it cost one seed in eight 1.5%).
    """
    blocks = list(np.ndindex(*view.numblocks[:-1]))
    picks = [blocks[i] for i in rng.permutation(len(blocks))[:SAMPLE_BLOCKS]]
    each = -(-n // max(len(picks), 1))  # per block, so only the sample is ever kept
    seeds = rng.integers(0, 2**31, len(picks))
    tasks = [
        dask.delayed(_block_sample)(view.blocks[(*b, 0)], allowed.blocks[b], each, seed)
        for b, seed in zip(picks, seeds, strict=True)
    ]
    # a few blocks at a time: the threaded scheduler would otherwise read them all first
    parts = compute_each(tasks, report, "sample", batch=4)
    pixels = np.concatenate([x for x, _ in parts] or [np.empty((0, view.shape[-1]))])
    weights = np.concatenate([np.full(len(x), n_valid / max(len(x), 1)) for x, n_valid in parts])
    if len(pixels) > n:  # a uniform pick keeps the weights' meaning
        keep = np.sort(rng.choice(len(pixels), n, replace=False))
        pixels, weights = pixels[keep], weights[keep]
    return pixels, weights


def _block_sample(block, ok, n: int, seed: int) -> tuple[np.ndarray, float]:
    """About ``n`` finite allowed pixels of one block, picked before any copy is made, and
    how many finite allowed pixels the block has (estimated from those looked at)."""
    block, ok = np.asarray(block), np.asarray(ok)
    allowed = np.flatnonzero(ok)
    candidates = allowed
    rng = np.random.default_rng(seed)
    if len(candidates) > 2 * n:  # twice as many, to leave room for NaN pixels
        candidates = np.sort(rng.choice(candidates, 2 * n, replace=False))
    x = block[np.unravel_index(candidates, ok.shape)].astype(np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    n_valid = len(allowed) * len(x) / max(len(candidates), 1)
    return (x[np.sort(rng.choice(len(x), n, replace=False))] if len(x) > n else x), n_valid


def _block_pixels(block: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The finite allowed pixels of one block as (n, C) float32 (one copy of the block)."""
    x = np.asarray(block).reshape(-1, block.shape[-1])
    ok = np.asarray(ok).reshape(-1)
    if not ok.all():
        x = x[ok]
    x = x.astype(np.float32, copy=False)
    finite = np.isfinite(x).all(axis=1)
    return x if finite.all() else x[finite]


def _sums(view, allowed, features, centers, report) -> _Accumulator:
    """One pass: per-block cluster sums as dask tasks, added up."""
    parts = [
        dask.delayed(_block_sums)(view.blocks[(*b, 0)], allowed.blocks[b], features, centers)
        for b in np.ndindex(*view.numblocks[:-1])
    ]
    return reduce(_add, compute_each(parts, report, "blocks"))


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
                except (TimeoutError, asyncio.TimeoutError):  # not one class before 3.11
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


def _active_client():
    """The ``dask.distributed`` client dask would compute on now, if any."""
    if "distributed" not in sys.modules:
        return None
    from distributed import Client

    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    return client if isinstance(client, Client) else None


def _block_sums(block, ok, features: Features, centers) -> _Accumulator:
    acc = _Accumulator(centers, block.shape[-1], features.identity)
    x = _block_pixels(block, ok)
    if len(x):
        feats = features(x)
        lab, dist, margin = _nearest(feats, centers, margin=True)
        raw = None if features.identity else x - features.offset.astype(np.float32)
        acc.add(lab, None, feats, dist, raw, margin)
    return acc


def _add(a: _Accumulator, b: _Accumulator) -> _Accumulator:
    for name in ("counts", "sums", "sq", "raw", "raw_sq"):
        if getattr(a, name) is not None:
            setattr(a, name, getattr(a, name) + getattr(b, name))
    a.dist += b.dist
    a.margin = np.minimum(a.margin, b.margin)
    return a


def _lazy_recolor(labels: da.Array, colors, image: da.Array, channel_axis, alpha: bool):
    """:func:`~napari_spectral_clusters.cluster.recolor` block by block, with the image's
    alpha plane."""
    if not alpha:
        lut = color_lut(colors, alpha=False)
        return labels.map_blocks(
            _lut_block,
            lut=lut,
            dtype=np.uint8,
            new_axis=labels.ndim,
            chunks=(*labels.chunks, (3,)),
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
    """Colours of a block of labels (module level: a cluster's workers must unpickle it)."""
    return lut[block]


def _recolor_block(block: np.ndarray, alpha: np.ndarray, colors: np.ndarray) -> np.ndarray:
    return recolor(block, colors, alpha)


def _label_block(block, ok, *, features: Features, centers) -> np.ndarray:
    """Labels of one block: nearest centre + 1, 0 where not allowed or not finite."""
    shape = block.shape[:-1]
    x = np.asarray(block).reshape(-1, block.shape[-1]).astype(np.float32, copy=False)
    valid = np.asarray(ok).reshape(-1) & np.isfinite(x).all(axis=1)
    out = np.zeros(len(x), dtype=_label_dtype(len(centers)))
    if valid.any():
        lab, _ = _nearest(features(x[valid]), centers)
        out[valid] = lab + 1
    return out.reshape(shape)
