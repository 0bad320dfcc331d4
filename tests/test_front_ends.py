"""One engine, two front ends: the same calls on a numpy array and on a dask array of it give
the same results, option by option."""

import dask
import dask.array as da
import numpy as np
import pytest

from napari_spectral_clusters import Cancelled, ClusteringError, apply_model, cluster_image
from napari_spectral_clusters import lazy as lazy_engine
from napari_spectral_clusters.samples import sample_photo


@pytest.fixture(autouse=True)
def block_by_block(monkeypatch):
    """The dask input is clustered block by block, never read into memory whole."""
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.0)


def _scene(dtype=np.float64, channels=6, seed=0):
    """Four well-separated materials (one of 40 pixels) with a little noise, (60, 80, C)."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 3, (60, 80))
    gt[10:15, 20:28] = 3
    spectra = rng.uniform(0.1, 0.9, (4, channels))
    img = spectra[gt] + rng.normal(0, 0.005, (*gt.shape, channels))
    if np.issubdtype(dtype, np.integer):
        img = np.round(img * np.iinfo(dtype).max * 0.9)
    return img.astype(dtype), gt


def _both(img, chunks=(20, 40, -1)):
    return [img, da.from_array(img, chunks=chunks)]


def _computed(res):
    return {
        "labels": np.asarray(res.labels),
        "recolored": np.asarray(res.recolored),
        "counts": res.counts,
        "centers": res.centers,
        "std": res.std,
        "colors": res.colors,
    }


def _assert_same(eager, lazy):
    a, b = _computed(eager), _computed(lazy)
    np.testing.assert_array_equal(a["labels"], b["labels"])
    np.testing.assert_array_equal(a["recolored"], b["recolored"])
    np.testing.assert_array_equal(a["counts"], b["counts"])
    np.testing.assert_allclose(a["centers"], b["centers"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["std"], b["std"], rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(a["colors"], b["colors"])
    # in the clustered space: standardising and PCA are fitted on each front end's sample
    assert lazy.inertia == pytest.approx(eager.inertia, rel=1e-3)
    assert eager.summary().keys() == lazy.summary().keys()


@pytest.mark.parametrize("preprocessing", ["none", "standardize", "unit", "pca"])
def test_the_same_clustering_from_numpy_and_dask(preprocessing):
    img, gt = _scene()
    wl = np.linspace(450, 700, img.shape[-1])
    mask = np.ones(gt.shape, bool)
    mask[:5] = False
    eager, lazy = (
        cluster_image(x, 4, wavelengths=wl, mask=mask, preprocessing=preprocessing)
        for x in _both(img)
    )
    assert isinstance(lazy.labels, da.Array) and isinstance(lazy.recolored, da.Array)
    _assert_same(eager, lazy)
    assert (np.asarray(lazy.labels)[:5] == 0).all()
    # both see-through where the mask left pixels out (RGBA), opaque elsewhere
    alpha = np.asarray(lazy.recolored)[..., 3]
    np.testing.assert_array_equal(alpha, np.where(np.asarray(lazy.labels) > 0, 255, 0))
    np.testing.assert_array_equal(lazy.summary()["wavelengths"], wl)  # plotted in nm
    np.testing.assert_array_equal(lazy.model.wavelengths, wl)
    assert lazy.params == eager.params


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_alpha_the_same_from_numpy_and_dask(dtype):
    img, _ = _scene(dtype, channels=3)
    alpha = np.full(img.shape[:2], np.iinfo(dtype).max, dtype)
    alpha[:, :10] = 0
    alpha[:, 10:20] = np.iinfo(dtype).max // 3
    rgba = np.concatenate([img, alpha[..., None]], axis=-1)
    eager, lazy = (cluster_image(x, 4) for x in _both(rgba))
    _assert_same(eager, lazy)
    np.testing.assert_array_equal(np.asarray(lazy.recolored)[..., 3], alpha)


def test_reduce_k_the_same_from_numpy_and_dask():
    # three values on 600, 400 and 200 pixels: numbered alike by size
    img = np.repeat(np.array([[0.0, 1], [5, 5], [9, 0]]), [600, 400, 200], axis=0)
    img = img[np.random.default_rng(0).permutation(1200)].reshape(30, 40, 2)
    for x in _both(img, chunks=(10, 10, -1)):
        with pytest.raises(ClusteringError, match="only 3 distinct"):
            cluster_image(x, 5)
    with pytest.warns(UserWarning, match="clustering into 3"):
        eager = cluster_image(img, 5, reduce_k=True)
    with pytest.warns(UserWarning, match="clustering into 3"):
        lazy = cluster_image(da.from_array(img, chunks=(10, 10, -1)), 5, reduce_k=True)
    _assert_same(eager, lazy)
    assert lazy.params["n_clusters_used"] == eager.params["n_clusters_used"] == 3


def test_progress_and_cancel_the_same_from_numpy_and_dask():
    img, _ = _scene()
    stages = []
    for x in _both(img):
        events = []
        cluster_image(x, 4, progress=events.append)
        stages.append({e.stage for e in events})
        assert events[-1].stage == "done"

        def cancel(event):
            if event.stage == "blocks":
                raise Cancelled

        with pytest.raises(Cancelled):
            cluster_image(x, 4, progress=cancel)
        with pytest.raises(Cancelled):
            apply_model(x, cluster_image(img, 4).model, progress=cancel)
    assert stages[0] - {"sample"} == stages[1] - {"sample"} == {"fit", "blocks", "refine", "done"}


def test_apply_model_keeps_a_dask_input_lazy_and_gives_the_same_labels():
    img, _ = _scene(seed=1)
    model = cluster_image(img, 4).model
    other, _ = _scene(seed=1)
    other = other[::-1].copy()
    eager, lazy = (apply_model(x, model) for x in _both(other))
    assert isinstance(lazy.labels, da.Array) and isinstance(lazy.recolored, da.Array)
    _assert_same(eager, lazy)
    assert lazy.recolored.shape == (*other.shape[:2], 3)  # every pixel labelled: RGB
    mask = np.ones(other.shape[:2], bool)
    mask[:, :7] = False
    eager, lazy = (apply_model(x, model, mask=mask) for x in _both(other))
    _assert_same(eager, lazy)
    assert lazy.recolored.shape == (*other.shape[:2], 4)
    np.testing.assert_array_equal(np.asarray(lazy.recolored)[..., 3], np.where(mask, 255, 0))


def test_apply_model_on_dask_reads_block_by_block(monkeypatch):
    """Bounded memory: the labels are computed block by block, never the cube at once (or
    kept from the pass that labelled every pixel: no block is read again)."""
    img, _ = _scene()
    model = cluster_image(img, 4).model
    biggest = []

    def watched(block):
        biggest.append(block.size)
        return block

    lazy = da.from_array(img, chunks=(20, 40, -1)).map_blocks(watched, dtype=img.dtype)
    res = apply_model(lazy, model)
    assert biggest and max(biggest) <= 20 * 40 * img.shape[-1]  # the sums' pass: per block
    biggest.clear()
    kept = res.labels.compute()
    assert not biggest
    monkeypatch.setattr(lazy_engine, "KEEP_LABELS_SHARE", 0.0)  # labels too big to keep
    res = apply_model(lazy, model)
    biggest.clear()
    np.testing.assert_array_equal(res.labels.compute(), kept)
    assert biggest and max(biggest) <= 20 * 40 * img.shape[-1]


def _counted(img, chunks, reads: list):
    """``img`` as a dask array that notes the location of every block it reads in ``reads``."""

    def counted(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    return da.from_array(img, chunks=chunks).map_blocks(counted, dtype=img.dtype)


def test_a_cube_that_fits_in_memory_is_read_once(monkeypatch):
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.25)
    img, _ = _scene()
    reads = []
    lazy = _counted(img, (20, 40, -1), reads)
    events = []
    res = cluster_image(lazy, 4, progress=events.append)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 3 * 2  # each block once
    assert [e.done for e in events if e.stage == "read"] == list(range(1, 7))
    _assert_same(cluster_image(img, 4), res)


@pytest.mark.parametrize("read_whole_bytes", [2**40, 0], ids=["read whole", "blocks kept"])
def test_on_the_processes_scheduler_nothing_is_kept_from_its_workers(
    monkeypatch, read_whole_bytes
):
    """The processes scheduler's workers hold copies: a cube read once by them into an array of
    this process stayed unset (wrong labels), and blocks kept would be sent to them in every
    pass. Such a cube is clustered block by block, with the in-memory result."""
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.25)
    monkeypatch.setattr(lazy_engine, "READ_WHOLE_BYTES", read_whole_bytes)
    img, _ = _scene(seed=4)
    lazy = da.from_array(img, chunks=(30, 40, -1))
    with dask.config.set(scheduler="processes", num_workers=2):
        events = []
        res = cluster_image(lazy, 4, progress=events.append)
        assert "read" not in {e.stage for e in events}  # not read whole first
        assert isinstance(res.labels, da.Array)  # nor kept block by block
        n_blocks = lazy.numblocks[0] * lazy.numblocks[1]
        assert {e.total for e in events if e.stage == "blocks"} == {n_blocks}
        _assert_same(cluster_image(img, 4), res)


def test_a_bigger_cube_that_fits_keeps_its_blocks_as_first_read(monkeypatch):
    """Above READ_WHOLE_BYTES a cube read once is not read whole first: the sample and the
    first pass read each block once and keep it, later passes and the labels read none. The
    result is the block-by-block one (same sample, same passes), with numpy labels."""
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.25)
    monkeypatch.setattr(lazy_engine, "READ_WHOLE_BYTES", 0)
    img, _ = _scene(seed=2)
    mask = np.ones(img.shape[:2], bool)
    mask[:7, :9] = False
    img[30, 40] = np.nan
    reads = []
    lazy = _counted(img, (20, 20, -1), reads)
    events = []
    # at least two passes: a second one must not read a block again
    res = cluster_image(lazy, 5, mask=mask, tol=0, max_refine=3, progress=events.append)
    assert [e.stage for e in events].count("refine") >= 2
    assert "read" not in {e.stage for e in events}  # no read before the clustering
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 3 * 4  # each block once
    assert isinstance(res.labels, np.ndarray) and isinstance(res.recolored, np.ndarray)
    assert res.labels[30, 40] == 0 and (res.labels[:7, :9] == 0).all()
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.0)  # block by block: the same
    _assert_same(cluster_image(lazy, 5, mask=mask, tol=0, max_refine=3), res)
    assert len(reads) > 3 * 4 * 2


@pytest.mark.parametrize("bands", [3, 4], ids=["RGB", "RGBA"])
def test_colour_pictures_are_read_whole_however_big(monkeypatch, bands):
    """8-bit colour is clustered by its distinct colours, which needs every pixel at once (and
    an alpha plane is carried over from the whole picture)."""
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.25)
    monkeypatch.setattr(lazy_engine, "READ_WHOLE_BYTES", 0)
    photo = np.ascontiguousarray(np.asarray(sample_photo())[..., :bands])
    events = []
    lazy = da.from_array(photo, chunks=(100, 150, bands))
    res = cluster_image(lazy, 5, progress=events.append)
    assert "read" in {e.stage for e in events}
    _assert_same(cluster_image(photo, 5), res)


@pytest.mark.parametrize("channel_axis", [-1, 0], ids=["bands last", "bands first"])
@pytest.mark.parametrize("share", [0.25, 0.0], ids=["read once", "block by block"])
def test_fortran_ordered_blocks_cluster_like_the_in_memory_cube(monkeypatch, share, channel_axis):
    """A v7.3 cube comes as the transpose of its HDF5 dataset: every block Fortran-ordered. Its
    rows are taken in memory order and its labels put back in place, masked and NaN pixels
    too."""
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", share)
    img, _ = _scene()
    img[3, 5] = np.nan
    mask = np.ones(img.shape[:2], bool)
    mask[10:20, 30:50] = False
    matlab = np.moveaxis(img, -1, channel_axis)  # the cube as MATLAB shows it
    stored = np.ascontiguousarray(matlab.T)  # as HDF5 holds it
    chunks = tuple(-1 if n == img.shape[-1] else 30 for n in stored.shape)
    read = da.from_array(stored, chunks=chunks).map_blocks(np.ascontiguousarray)  # as h5py
    lazy = read.T  # as the reader gives it
    assert lazy.to_delayed().ravel()[0].compute().flags.f_contiguous
    res = cluster_image(lazy, 4, channel_axis=channel_axis, mask=mask)
    labels = np.asarray(res.labels)
    assert labels[3, 5] == 0 and (labels[10:20, 30:50] == 0).all()
    assert (labels > 0).sum() == mask.sum() - 1
    _assert_same(cluster_image(img, 4, mask=mask), res)
