import dask.array as da
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.samples import sample_photo, synthetic_cube


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


def test_lazy_path_reads_blocks_not_the_whole_cube():
    """Fitting reads only the sample blocks; each pass reads each block once."""
    cube, _, _ = synthetic_cube((256, 256), 16, seed=1)
    reads = []

    def counted(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    lazy_cube = da.from_array(cube, chunks=(16, 32, 32)).map_blocks(counted, dtype=cube.dtype)
    res = cluster_image(lazy_cube, 4, channel_axis=0, max_refine=2)
    n_blocks = 8 * 8
    passes = 2 + 1  # refinement passes + the final statistics pass
    assert len(reads) <= 32 + passes * n_blocks
    reads.clear()
    res.labels[:32, :32].compute()
    assert len(reads) == 1  # showing a corner reads one block


def test_sweep_k_on_a_dask_cube():
    from napari_spectral_clusters import sweep_k

    cube, _, _ = synthetic_cube((64, 64), 16, seed=4)
    sweep = sweep_k(
        da.from_array(cube, chunks=(16, 16, 16)), range(2, 7), channel_axis=0, max_samples=1500
    )
    assert sweep["k"][np.argmax(sweep["silhouette"])] == 4
