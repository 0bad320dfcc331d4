from contextlib import contextmanager

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_spectral_clusters import apply_model, cluster_image, kmeans
from napari_spectral_clusters import lazy as lazy_engine
from napari_spectral_clusters.samples import sample_photo, synthetic_cube


@pytest.fixture(autouse=True)
def never_read_once(monkeypatch):
    """These tests are about the block-by-block path: no cube is read into memory whole,
    however small (test_a_cube_that_fits_in_memory_is_read_once tests that)."""
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.0)


def test_a_dask_cube_clusters_lazily_like_the_in_memory_one():
    cube, gt, wl = synthetic_cube((128, 128), 32, seed=6)
    lazy_cube = da.from_array(cube, chunks=(8, 32, 32))  # bands split too: rechunked
    events = []
    lazy = cluster_image(lazy_cube, 4, channel_axis=0, wavelengths=wl, progress=events.append)
    eager = cluster_image(cube, 4, channel_axis=0, wavelengths=wl)
    assert isinstance(lazy.labels, da.Array) and isinstance(lazy.recolored, da.Array)
    labels = lazy.labels.compute()
    assert labels.shape == gt.shape
    assert adjusted_rand_score(gt.ravel(), labels.ravel()) > 0.99
    # the same clusters, numbered the same (by size): the samples differ, the result does not
    np.testing.assert_array_equal(labels, eager.labels)
    np.testing.assert_array_equal(lazy.counts, eager.counts)
    np.testing.assert_allclose(lazy.centers, eager.centers, rtol=1e-4)
    assert lazy.inertia == pytest.approx(eager.inertia, rel=0.005)
    np.testing.assert_array_equal(lazy.recolored.compute(), lazy.colors[labels - 1])
    assert events[-1].stage == "done"


def test_lazy_rgba_keeps_alpha_and_masks():
    photo = sample_photo()
    lazy = cluster_image(da.from_array(photo, chunks=(100, 150, 4)), 5)
    labels = lazy.labels.compute()
    transparent = photo[..., 3] == 0
    assert (labels[transparent] == 0).all() and (labels[~transparent] > 0).all()
    rgba = lazy.recolored.compute()
    assert rgba.shape == photo.shape and (rgba[transparent, 3] == 0).all()
    eager = cluster_image(photo, 5)
    assert lazy.inertia <= eager.inertia * 1.01
    mask = np.zeros(photo.shape[:2], bool)
    mask[100:300, 200:400] = True
    masked = cluster_image(da.from_array(photo, chunks=(100, 150, 4)), 3, mask=mask)
    out = masked.labels.compute()
    assert (out[~mask] == 0).all() and (out[mask & ~transparent] > 0).all()


def _counted_cube(reads: list):
    cube, _, _ = synthetic_cube((256, 256), 16, seed=1)

    def counted(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    return cube, da.from_array(cube, chunks=(16, 32, 32)).map_blocks(counted, dtype=cube.dtype)


@pytest.mark.parametrize("keep_sample", [True, False], ids=["sample kept", "sample let go"])
def test_lazy_path_reads_blocks_not_the_whole_cube(monkeypatch, keep_sample):
    """Fitting reads only the sample blocks; each pass reads each block once, but the first
    reads none of the sample's blocks again while they fit SAMPLE_KEEP_SHARE of free memory.
    Kept or read again, the blocks give the same clustering."""
    if not keep_sample:
        monkeypatch.setattr(lazy_engine, "SAMPLE_KEEP_SHARE", 0.0)
    reads = []
    cube, lazy_cube = _counted_cube(reads)
    events = []
    res = cluster_image(lazy_cube, 4, channel_axis=0, max_refine=3, progress=events.append)
    n_blocks, n_sample = 8 * 8, lazy_engine.SAMPLE_BLOCKS
    passes = [e.stage for e in events].count("refine")  # no pass but the refinement's
    assert passes >= 1
    sampled = reads[:n_sample]
    assert len(set(sampled)) == n_sample
    first_pass = reads[n_sample : n_sample + n_blocks - (n_sample if keep_sample else 0)]
    assert bool(set(first_pass) & set(sampled)) == (not keep_sample)
    assert len(reads) == n_sample + passes * n_blocks - (n_sample if keep_sample else 0)
    reads.clear()
    res.labels[:32, :32].compute()
    assert not reads  # the last pass's labels are kept
    np.testing.assert_array_equal(
        res.labels.compute(), cluster_image(cube, 4, channel_axis=0, max_refine=3).labels
    )


@pytest.mark.parametrize("room", ["for the alpha plane too", "for the colours only"])
def test_kept_sample_blocks_are_measured_with_their_alpha_plane(monkeypatch, room):
    """Whether the sample's blocks fit SAMPLE_KEEP_SHARE of free memory counts all they hold:
    an RGBA block keeps its alpha plane too (it was left out: a third more than counted)."""
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.0)  # lazy, whatever the room
    image = np.random.default_rng(0).integers(1, 999, (4, 64, 64), dtype=np.uint16)
    blocks = 16  # (4, 16, 16) blocks, all of them in the sample
    per_channel = 16 * 16 * image.itemsize * blocks
    fits = 4 * per_channel if room == "for the alpha plane too" else 3.5 * per_channel
    monkeypatch.setattr(lazy_engine, "_available", lambda: fits / lazy_engine.SAMPLE_KEEP_SHARE)
    source = lazy_engine.lazy_pixels(
        da.from_array(image, chunks=(4, 16, 16)), 0, alpha=True, read_once=True
    )
    assert isinstance(source, lazy_engine.LazyPixels) and source.n_features == 3
    source.sample(5000, np.random.default_rng(0))
    assert (source._kept_blocks is not None) == (room == "for the alpha plane too")


@pytest.mark.parametrize("pass_ends", ["done", "cancelled"])
def test_the_sample_blocks_are_let_go_by_the_first_pass_and_never_kept_for_sampling_only(
    pass_ends,
):
    """A clustering's source keeps its sample's blocks until the first pass ends (done or
    cancelled); a source that only samples (k sweep, feature space) keeps none."""
    from napari_spectral_clusters import Cancelled
    from napari_spectral_clusters.model import Features

    reads = []
    _, lazy_cube = _counted_cube(reads)
    sampler = lazy_engine.lazy_pixels(lazy_cube, 0, read_once=False)
    sampler.sample(2000, np.random.default_rng(0))
    assert sampler._kept_blocks is None
    source = lazy_engine.lazy_pixels(lazy_cube, 0, read_once=True)
    rng = np.random.default_rng(0)
    sample, weights = source.sample(2000, rng)
    assert len(source._kept_blocks) == lazy_engine.SAMPLE_BLOCKS
    features = Features.fit(sample, weights, {"preprocessing": "none"})
    centers = features(sample[:4]).astype(np.float32)

    def report(event):
        if pass_ends == "cancelled" and event.stage == "blocks" and event.done == 3:
            raise Cancelled

    reads.clear()
    if pass_ends == "cancelled":
        with pytest.raises(Cancelled):
            source.one_pass(features, centers, None, rng, report)
    else:
        source.one_pass(features, centers, None, rng, report)
        assert len(reads) == 64 - lazy_engine.SAMPLE_BLOCKS  # the kept ones were not read
    assert source._kept_blocks is None


@pytest.mark.parametrize("keep", [True, False])
def test_labels_come_from_the_last_pass_without_reading_the_cube_again(monkeypatch, keep):
    """The last pass keeps its labels when they fit KEEP_LABELS_SHARE of free memory: the
    labels, the recoloured image and apply_model's labels read no block again. Labels too
    big to keep are made block by block from the last pass's centres: the same labels."""
    if not keep:
        monkeypatch.setattr(lazy_engine, "KEEP_LABELS_SHARE", 0.0)
    reads = []
    cube, lazy_cube = _counted_cube(reads)
    res = cluster_image(lazy_cube, 4, channel_axis=0)
    eager = cluster_image(cube, 4, channel_axis=0)
    reads.clear()
    labels = res.labels.compute()
    np.testing.assert_array_equal(labels, eager.labels)
    np.testing.assert_array_equal(res.recolored.compute(), res.colors[labels - 1])
    assert len(reads) == (0 if keep else 2 * 64)  # labels, then recoloured from them again
    reads.clear()
    res.labels[:32, :32].compute()
    assert len(reads) == (0 if keep else 1)  # not kept: showing a corner reads one block
    assert res.labels.chunks == ((32,) * 8, (32,) * 8)  # the cube's blocks, kept or not
    # applying the model reads every block once (its pass), or twice (and its labels)
    reads.clear()
    applied = apply_model(lazy_cube, res.model, channel_axis=0)
    np.testing.assert_array_equal(applied.labels.compute(), labels)
    assert len(reads) == (64 if keep else 2 * 64)


def test_a_refused_recovery_keeps_the_labels_of_the_pass_it_restores(monkeypatch):
    """A recovery refines a better coreset clustering over all pixels and keeps the result only
    if its inertia is lower too: otherwise the earlier pass's centres and kept labels come
    back together -- the same labels as made again from those centres, block by block."""
    _, lazy_cube = _counted_cube([])
    real_refine, calls = kmeans.refine, []

    def refine(*args, **kwargs):  # every refinement after the first looks far worse
        acc, inertia = real_refine(*args, **kwargs)
        calls.append(acc)
        return acc, inertia * (1 if len(calls) == 1 else 1e6)

    monkeypatch.setattr(kmeans, "refine", refine)
    monkeypatch.setattr(kmeans, "RECOVER_GAIN", -1.0)  # every recovery refines: none is kept
    res = cluster_image(lazy_cube, 6, channel_axis=0)
    # the refused refinement ended on another partition, whose labels must not be kept
    assert len(calls) > 1
    assert not np.array_equal(np.sort(calls[0].counts), np.sort(calls[-1].counts))
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(lazy_engine, "KEEP_LABELS_SHARE", 0.0)
    remade = cluster_image(lazy_cube, 6, channel_axis=0)  # the same run, labels made again
    assert [a.counts.tolist() for a in calls] == [a.counts.tolist() for a in first]
    np.testing.assert_array_equal(res.labels.compute(), remade.labels.compute())
    np.testing.assert_array_equal(np.bincount(res.labels.compute().ravel())[1:], res.counts)


def test_sweep_k_on_a_dask_cube():
    from napari_spectral_clusters import sweep_k

    cube, _, _ = synthetic_cube((64, 64), 16, seed=4)
    sweep = sweep_k(
        da.from_array(cube, chunks=(16, 16, 16)), range(2, 7), channel_axis=0, max_samples=1500
    )
    assert sweep["k"][np.argmax(sweep["silhouette"])] == 4


def _cube_blocks():
    cube, _, _ = synthetic_cube((96, 96), 16, seed=3)
    return cube, da.from_array(cube, chunks=(16, 32, 32))  # 3 x 3 blocks


def test_each_finished_block_is_reported_and_a_cancel_stops_the_pass():
    from napari_spectral_clusters import Cancelled

    _, lazy_cube = _cube_blocks()
    events = []
    cluster_image(lazy_cube, 3, channel_axis=0, max_refine=2, progress=events.append)
    blocks = [(e.done, e.total) for e in events if e.stage == "blocks"]
    passes = [e for e in events if e.stage == "refine"]
    assert 1 <= len(passes) <= 2
    # every refinement pass reports its 9 blocks, in order; no other pass reads the cube
    assert blocks == [(i, 9) for i in range(1, 10)] * len(passes)
    assert [e.done for e in events if e.stage == "sample"] == list(range(1, 10))

    seen = []

    def cancel_after_two_blocks(event):
        seen.append(event)
        if event.stage == "blocks" and event.done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        cluster_image(lazy_cube, 3, channel_axis=0, progress=cancel_after_two_blocks)
    assert [e.stage for e in seen].count("blocks") == 2 and seen[-1].stage == "blocks"


def test_the_distinct_scan_stops_once_it_has_enough_and_can_be_cancelled():
    from napari_spectral_clusters import Cancelled

    cube = np.random.default_rng(0).random((96, 96, 4))  # every pixel distinct
    reads = []

    def counted(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    lazy_cube = da.from_array(cube, chunks=(16, 16, 4)).map_blocks(counted, dtype=cube.dtype)
    source = lazy_engine.lazy_pixels(lazy_cube, -1, read_once=False)
    events = []
    found = source.distinct(50, events.append)
    assert len(found) >= 50 and len(np.unique(found, axis=0)) == len(found)
    assert len(reads) == 8  # the first batch of blocks had enough: 28 of 36 never read
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("distinct", i, 36) for i in range(1, 9)
    ]
    assert len(source.distinct(10**6)) == 96 * 96  # asked for more than there are: all

    def cancel_in_the_second_batch(event):
        if event.done == 10:
            raise Cancelled

    reads.clear()
    with pytest.raises(Cancelled):
        source.distinct(10**6, cancel_in_the_second_batch)
    assert len(reads) < 36


@contextmanager
def _local_cluster(**config):
    """A LocalCluster of 2 single-threaded worker processes, and its client as dask's default."""
    distributed = pytest.importorskip("distributed")
    with (
        dask.config.set(config),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def local_cluster():
    with _local_cluster() as client:
        yield client


def test_on_a_dask_cluster_progress_comes_from_futures_and_cancel_cancels_them(local_cluster):
    from distributed import get_task_stream

    from napari_spectral_clusters import Cancelled

    cube, lazy_cube = _cube_blocks()
    events = []
    with get_task_stream(local_cluster) as stream:
        res = cluster_image(lazy_cube, 3, channel_axis=0, max_refine=2, progress=events.append)
    # on a cluster the workers make the labels block by block: kept ones would travel in the
    # graph of every computation of them
    with get_task_stream(local_cluster) as labelling:
        labels = res.labels.compute()
    assert sum("label_block" in str(t["key"]) for t in labelling.data) == 9  # fused: renamed
    np.testing.assert_array_equal(
        labels, cluster_image(cube, 3, channel_axis=0, max_refine=2).labels
    )
    # finished futures are reported as they complete (and every half second while waiting):
    # the refinement passes, each climbing to its 9 blocks
    n_passes = len([e for e in events if e.stage == "refine"])
    assert n_passes >= 1
    done = [e.done for e in events if e.stage == "blocks"]
    assert all(e.total == 9 for e in events if e.stage == "blocks")
    assert done.count(9) == n_passes and done[-1] == 9  # each pass reports its end once
    passes = np.split(done, np.flatnonzero(np.asarray(done) == 9)[:-1] + 1)
    assert all((np.diff(p) >= 0).all() for p in passes)
    # the cluster did the work: its workers ran the block sums
    ran = [t["key"] for t in stream.data]
    assert sum("_block_sums" in str(key) for key in ran) == 9 * n_passes

    def cancel_on_first_block(event):
        if event.stage == "blocks":
            raise Cancelled

    with pytest.raises(Cancelled):
        cluster_image(lazy_cube, 3, channel_axis=0, progress=cancel_on_first_block)
    # the futures of that pass were cancelled: nothing is left processing or waiting
    import time

    def left() -> int:
        return local_cluster.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

    for _ in range(100):  # the scheduler forgets cancelled tasks as their futures go
        if not left():
            break
        time.sleep(0.1)
    assert not left(), "tasks still on the scheduler after cancelling"


def _dies_once(block, marker=None):
    """A block that kills its worker process the first time it is computed."""
    import os
    from pathlib import Path

    if marker is not None and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return block


def _always_dies(block):
    import os

    os._exit(1)


def test_a_worker_dying_is_retried_elsewhere(local_cluster, tmp_path):
    cube, lazy_cube = _cube_blocks()
    marker = tmp_path / "died"
    meta = np.empty((0, 0, 0), cube.dtype)  # else map_blocks would call it here to learn it
    flaky = lazy_cube.map_blocks(_dies_once, marker=str(marker), meta=meta)
    res = cluster_image(flaky, 3, channel_axis=0, max_refine=2)
    assert marker.exists()  # a worker did die, and dask ran its tasks again
    np.testing.assert_array_equal(
        res.labels.compute(), cluster_image(cube, 3, channel_axis=0, max_refine=2).labels
    )


def test_workers_that_keep_dying_are_reported_clearly():
    from napari_spectral_clusters.cluster import ClusteringError

    cube, lazy_cube = _cube_blocks()
    deadly = lazy_cube.map_blocks(_always_dies, meta=np.empty((0, 0, 0), cube.dtype))
    # a task is given up once it has killed this many workers (dask's default is 3)
    with (
        _local_cluster(**{"distributed.scheduler.allowed-failures": 0}),
        pytest.raises(ClusteringError, match="workers kept dying"),
    ):
        cluster_image(deadly, 3, channel_axis=0)


def test_block_margins_stop_the_refinement_as_in_memory():
    # separated blobs: after one pass no pixel of any block can change cluster
    rng = np.random.default_rng(8)
    gt = rng.integers(0, 3, size=(96, 96))
    img = np.array([[0.0, 0, 0], [5, 5, 5], [10, 0, 5]])[gt] + rng.normal(0, 0.3, (96, 96, 3))
    events = []
    res = cluster_image(da.from_array(img, chunks=(32, 32, 3)), 3, tol=0.0, progress=events.append)
    assert [e.stage for e in events].count("refine") == 1
    labels = res.labels.compute()
    d = ((img[..., None, :] - res.centers) ** 2).sum(axis=-1)
    np.testing.assert_array_equal(labels, np.argmin(d, axis=-1) + 1)
    # a continuous spread: pixels near the borders of some block keep it going (82,944
    # pixels: above ALL_ROWS, so refined pass by pass rather than settled whole)
    events = []
    spread = da.from_array(rng.random((288, 288, 2)), chunks=(96, 96, 2))
    res = cluster_image(spread, 6, tol=0.0, max_refine=3, progress=events.append)
    passes = [e.done for e in events if e.stage == "refine"]
    # every refinement (the first, and any a recovered cluster starts) runs all 3 passes
    assert passes[:3] == [1, 2, 3] and passes == [1, 2, 3] * (len(passes) // 3)
    # not converged, yet the statistics are those of the labels (from the same, last pass)
    labels = res.labels.compute()
    np.testing.assert_array_equal(res.counts, np.bincount(labels.ravel())[1:])
    for lab in range(1, 7):
        np.testing.assert_allclose(
            res.centers[lab - 1], spread.compute()[labels == lab].mean(axis=0), rtol=1e-6
        )


def test_the_block_sample_weighs_pixels_by_what_they_stand_for():
    # left block: 64 x 64 pixels of value 0; right block: value 1, but 90% masked
    img = np.zeros((64, 128, 2))
    img[:, 64:] = 1
    mask = np.ones((64, 128), bool)
    mask[:, 64:] = np.random.default_rng(0).random((64, 64)) < 0.1
    lazy_img = da.from_array(img, chunks=(64, 64, 2))
    source = lazy_engine.LazyPixels(lazy_img, -1, False, mask)
    x, w = source.sample(1000, np.random.default_rng(1))
    assert 900 < len(x) <= 1000 and (w > 0).all()  # the sparse block has ~410 to give
    assert 0.3 < x[:, 0].mean() < 0.7  # as many pixels drawn from each block...
    truth = img[mask][:, 0].mean()  # ...but weighted, they give the valid pixels' mean
    assert np.average(x[:, 0], weights=w) == pytest.approx(truth, rel=0.02)
    assert source.total_weight == pytest.approx(mask.sum(), rel=1e-9)  # every block sampled


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lazy_recoloured_image_keeps_the_alpha_plane(dtype):
    rng = np.random.default_rng(1)
    img = rng.integers(0, np.iinfo(dtype).max, (40, 30, 4)).astype(dtype)
    img[:5, :, 3] = 0
    lazy = da.from_array(img, chunks=(16, 16, 4))
    res = cluster_image(lazy, 3, random_state=0)
    eager = cluster_image(img, 3, random_state=0)
    out = res.recolored.compute()
    assert out.dtype == dtype == eager.recolored.dtype
    np.testing.assert_array_equal(out[..., 3], img[..., 3])
    np.testing.assert_array_equal(eager.recolored[..., 3], img[..., 3])
