"""The cube as the readers deliver it: band axis first, as stored (float64, uint16), in
C order (HDF5) or Fortran order (MATLAB v5 files through scipy) -- clustered alike."""

import numpy as np
import pytest

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters import pixels as pixel_source
from napari_spectral_clusters.pixels import memory_order


def _scene(seed=0, bands=12):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 4, (70, 90))
    gt[5:9, 10:15] = 4  # a 20-pixel material
    spectra = rng.uniform(0.1, 0.9, (5, bands))
    cube = spectra[gt] + rng.normal(0, 0.004, (*gt.shape, bands))
    cube[0, 0] = np.nan  # a pixel the engine leaves out
    return cube, gt


LAYOUTS = {
    "bands last, C": lambda c: (c, -1),
    "bands first, C (HDF5)": lambda c: (np.ascontiguousarray(np.moveaxis(c, -1, 0)), 0),
    "bands first, Fortran (MATLAB v5)": lambda c: (np.moveaxis(np.asfortranarray(c), -1, 0), 0),
    "bands in the middle": lambda c: (np.ascontiguousarray(np.moveaxis(c, -1, 1)), 1),
    "x before y in memory": lambda c: (
        np.asfortranarray(c.transpose(1, 0, 2)).transpose(1, 0, 2),
        -1,
    ),
}


@pytest.fixture(params=[True, False], ids=["kept in memory", "read in every pass"])
def per_pass(request, monkeypatch):
    if not request.param:  # as for a cube too big to keep: converted chunk by chunk
        monkeypatch.setattr(pixel_source, "CACHE_BYTES", 0)
        monkeypatch.setattr(pixel_source, "CHUNK_BYTES", 4 * 12 * 90 * 7)  # 10 chunks
    return request.param


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float64, np.uint16])
def test_every_layout_gives_the_same_clustering(layout, dtype, per_pass):
    cube, gt = _scene()
    if dtype == np.uint16:
        cube = np.nan_to_num(np.round(cube * 60000)).astype(np.uint16)
    mask = np.ones(gt.shape, bool)
    mask[60:, 80:] = False
    reference = cluster_image(cube, 5, mask=mask, random_state=3)
    data, axis = LAYOUTS[layout](cube)
    before = data.copy()
    res = cluster_image(data, 5, channel_axis=axis, mask=mask, random_state=3)
    np.testing.assert_array_equal(res.labels, reference.labels)
    assert res.labels.shape == gt.shape and res.labels.flags.c_contiguous
    # float32 sums in another order: centres agree to float32 accumulation precision
    np.testing.assert_allclose(res.centers, reference.centers, rtol=1e-4)
    np.testing.assert_array_equal(res.counts, reference.counts)
    assert (res.labels[60:, 80:] == 0).all()
    if dtype == np.float64:
        assert res.labels[0, 0] == 0  # the NaN pixel
    # the 20-pixel material has a cluster of its own
    assert len(np.unique(res.labels[5:9, 10:15])) == 1
    assert (res.labels == res.labels[6, 11]).sum() == 20
    np.testing.assert_array_equal(data, before)  # the input is never modified


def test_memory_order_puts_the_outermost_axis_first():
    cube = np.zeros((4, 5, 3))
    assert memory_order(cube) == (0, 1)  # C order, bands last: as it is
    assert memory_order(np.moveaxis(np.asfortranarray(cube), -1, 0).transpose(1, 2, 0)) == (1, 0)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_big_images_sample_is_gathered_from_any_layout(layout, monkeypatch):
    # too big to keep converted: the sample is gathered from the image as it lies in memory
    # (along each band's plane for a cube with its bands first)
    monkeypatch.setattr(pixel_source, "CACHE_BYTES", 0)
    cube, _ = _scene(bands=7)
    reference, _ = pixel_source.Pixels.from_image(cube).sample(500, np.random.default_rng(4))
    data, axis = LAYOUTS[layout](cube)
    pixels = pixel_source.Pixels.from_image(data, channel_axis=axis)
    x, weights = pixels.sample(500, np.random.default_rng(4))
    assert x.dtype == np.float64 and (weights == 1).all()
    # (y, x) flatten without a copy but where the bands lie between them in memory
    assert (pixels._pixel_rows() is None) == (layout == "bands in the middle")
    if pixels.order == (0, 1):  # the same pixel order: the same pixels drawn
        np.testing.assert_array_equal(x, reference)
    else:  # (x, y) in memory order: other pixels for the same seed, each one drawn once
        assert len(x) >= 499  # the NaN pixel may be drawn, and is left out
        rows = {tuple(p) for p in cube.reshape(-1, 7)}
        assert all(tuple(p) in rows for p in x) and len({tuple(p) for p in x}) == len(x)


def test_pixels_not_evenly_spaced_in_memory_are_sampled_through_their_indices(monkeypatch):
    monkeypatch.setattr(pixel_source, "CACHE_BYTES", 0)
    cube, _ = _scene(bands=7)
    every_other_row = np.ascontiguousarray(np.moveaxis(cube, -1, 0))[:, ::2]
    pixels = pixel_source.Pixels.from_image(every_other_row, channel_axis=0)
    assert pixels._pixel_rows() is None  # only a copy could flatten (y, x)
    x, _ = pixels.sample(400, np.random.default_rng(1))
    reference, _ = pixel_source.Pixels.from_image(cube[::2]).sample(400, np.random.default_rng(1))
    np.testing.assert_array_equal(x, reference)
