"""Pixels in a feature space (the walkthrough's RGB-space plot) and the pixels selected by a
region drawn there; cluster edits that keep every other id."""

import dask.array as da
import numpy as np
import pytest
from matplotlib.path import Path

from napari_spectral_clusters.density import UNCLUSTERED, density_rgba, robust_extent
from napari_spectral_clusters.feature_space import (
    FeatureAxes,
    axis_choices,
    feature_points,
    select_polygon,
)
from napari_spectral_clusters.label_edits import free_ids, new_cluster, split_cluster
from napari_spectral_clusters.samples import sample_photo, synthetic_cube


def test_a_photo_in_rgb_space_is_its_pixels_values():
    photo = sample_photo()[..., :3]
    _, points = feature_points(photo, ["R", "G", "B"], max_points=5000, seed=1)
    h, w = photo.shape[:2]
    assert points.coords.shape == (5000, 3) and points.shape == (h, w)
    assert len(np.unique(points.index)) == 5000
    pixels = photo.reshape(-1, 3)[points.index]
    np.testing.assert_array_equal(points.coords, pixels.astype(float))
    assert points.weight.sum() == pytest.approx(h * w)
    _, all_points = feature_points(photo, ["B", "R"], max_points=10**9)
    assert len(all_points.index) == h * w  # small enough: every pixel, in order
    np.testing.assert_array_equal(all_points.coords[:, 0], photo[..., 2].ravel())


def test_band_ratios_normalised_differences_and_principal_components():
    cube, _, _ = synthetic_cube((20, 30), 16, seed=2)  # bands first
    bands_last = np.moveaxis(cube, 0, -1).reshape(-1, 16).astype(float)
    _, points = feature_points(
        cube, ["ratio(5, 2)", "nd(5, 2)", "PC1", "PC2", "band 7"], channel_axis=0
    )
    x = bands_last[points.index]
    np.testing.assert_allclose(points.coords[:, 0], x[:, 5] / x[:, 2])
    np.testing.assert_allclose(points.coords[:, 1], (x[:, 5] - x[:, 2]) / (x[:, 5] + x[:, 2]))
    np.testing.assert_array_equal(points.coords[:, 4], x[:, 7])
    pcs = points.coords[:, 2:4]
    assert abs(np.corrcoef(pcs.T)[0, 1]) < 1e-6  # uncorrelated, PC1 the widest
    assert pcs[:, 0].var() > pcs[:, 1].var() > 0
    centred = x - x.mean(axis=0)
    assert pcs[:, 0].var() == pytest.approx(
        np.linalg.svd(centred, compute_uv=False)[0] ** 2 / len(x)
    )
    assert axis_choices(3, picture=True)[:3] == ["R", "G", "B"]
    assert "PC1" in axis_choices(16) and "band 15" in axis_choices(16)
    for bad in ["band 16", "ratio(1, 99)", "PC0", "hue"]:
        with pytest.raises(ValueError, match=r"band|axis"):
            FeatureAxes.fit([bad], bands_last)


def _brute_force(image_last, axes, vertices):
    xy = axes(image_last.reshape(-1, image_last.shape[-1]))[:, :2]
    ok = np.isfinite(xy).all(axis=1)
    inside = np.zeros(len(xy), bool)
    inside[ok] = Path(np.asarray(vertices)).contains_points(xy[ok])
    return inside.reshape(image_last.shape[:-1])


@pytest.mark.parametrize("lazy", [False, True])
def test_a_polygon_selects_every_pixel_whose_point_is_inside(lazy):
    cube, _, _ = synthetic_cube((64, 48), 12, seed=5)
    cube[:, 3, 4] = np.nan  # a pixel without a point is never selected
    data = da.from_array(cube, chunks=(12, 16, 16)) if lazy else cube
    axes, points = feature_points(data, ["PC1", "PC2"], channel_axis=0, max_points=500)
    assert len(points.index) <= 500 and points.weight.sum() == pytest.approx(64 * 48, rel=0.05)
    _, every = feature_points(data, axes, channel_axis=0, max_points=10**6)
    assert len(every.index) == 64 * 48 - 1 and every.weight.sum() == pytest.approx(64 * 48 - 1)
    assert 3 * 48 + 4 not in every.index  # the NaN pixel has no point
    lo, hi = np.nanpercentile(points.coords, [10, 60], axis=0)
    vertices = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
    mask = select_polygon(data, axes, vertices, channel_axis=0)
    assert isinstance(mask, np.ndarray) and mask.shape == (64, 48) and mask.dtype == bool
    expected = _brute_force(np.moveaxis(cube, 0, -1), axes, vertices)
    np.testing.assert_array_equal(mask, expected)
    assert 0 < mask.sum() < mask.size and not mask[3, 4]
    # more pixels than the plotted sample: the selection is of the image, not of the points
    in_sample = Path(np.asarray(vertices)).contains_points(points.coords)
    assert mask.sum() > in_sample.sum()


def test_a_selection_becomes_a_new_cluster_and_nothing_else_changes():
    labels = np.array([[1, 1, 2, 2], [3, 3, 0, 2]], dtype=np.uint8)
    before = labels.copy()
    selection = np.array([[0, 1, 1, 0], [0, 0, 0, 0]], bool)
    out, new = new_cluster(labels, selection)
    assert new == 4 and out.tolist() == [[1, 4, 4, 2], [3, 3, 0, 2]]
    np.testing.assert_array_equal(labels, before)  # the given labels are left as they were
    full = np.full((2, 2), 255, np.uint8)
    out, new = new_cluster(full, np.eye(2, dtype=bool))
    assert new == 256 and out.dtype.itemsize >= 2 and out[0, 0] == 256 and out[0, 1] == 255
    assert free_ids(np.zeros((2, 2), int), 2) == [1, 2]
    with pytest.raises(ValueError, match="no pixel"):
        new_cluster(labels, np.zeros_like(selection))


@pytest.mark.parametrize("lazy", [False, True])
def test_splitting_a_cluster_keeps_every_other_id(lazy):
    cube, truth, _ = synthetic_cube((48, 48), 16, seed=7)  # materials 1-4: 1511, 417, 161, 215
    labels = np.where(truth == 3, 2, truth).astype(np.uint8)  # 2 and 3 as one cluster
    before = labels.copy()
    data = da.from_array(cube, chunks=(16, 24, 24)) if lazy else cube
    out, ids = split_cluster(labels, data, 2, 2, channel_axis=0)
    np.testing.assert_array_equal(labels, before)
    assert ids == [2, 5]  # the larger half keeps 2; the other takes the next free id
    untouched = labels != 2
    np.testing.assert_array_equal(out[untouched], labels[untouched])
    # the two halves are the two materials that were merged, the larger one still 2
    assert (out[truth == 2] == 2).all() and (out[truth == 3] == 5).all()
    with pytest.raises(ValueError, match="no pixel"):
        split_cluster(labels, cube, 9, 2, channel_axis=0)


@pytest.mark.parametrize("lazy", [False, True])
def test_transparent_and_masked_out_pixels_have_no_point_and_are_never_selected(lazy):
    photo = sample_photo()  # RGBA uint8: the cup on a transparent background
    opaque = photo[..., 3] > 0
    mask = np.zeros(opaque.shape, bool)
    mask[:, : photo.shape[1] // 2] = True  # "only inside" the left half
    data = da.from_array(photo, chunks=(100, 150, 4)) if lazy else photo
    axes, points = feature_points(data, ["R", "G"], max_points=10**7)
    assert axes.names == ("R", "G") and points.coords.shape[1] == 2
    assert len(points.index) == opaque.sum() and points.weight.sum() == pytest.approx(opaque.sum())
    assert opaque.ravel()[points.index].all()
    with pytest.raises(ValueError, match="axis"):
        feature_points(photo, ["A"])  # the alpha plane is not a colour axis
    everything = [(-1, -1), (300, -1), (300, 300), (-1, 300)]
    selected = select_polygon(data, axes, everything, mask=mask)
    np.testing.assert_array_equal(selected, opaque & mask)


def test_label_edits_refuse_ids_no_integer_type_holds_and_keep_left_out_pixels():
    top = np.iinfo(np.int64).max
    with pytest.raises(ValueError, match="does not fit"):
        new_cluster(np.array([[top, 1]]), np.array([[False, True]]))
    with pytest.raises(ValueError, match="integers"):
        new_cluster(np.array([[1.0, 2.0]]), np.array([[True, False]]))
    cube, truth, _ = synthetic_cube((48, 48), 16, seed=7)
    labels = np.where(truth == 3, 2, truth).astype(np.int32)
    hole = np.argwhere(labels == 2)[0]
    cube[:, hole[0], hole[1]] = np.nan  # a pixel of cluster 2 the engine cannot cluster
    out, ids = split_cluster(labels, cube, 2, 2, channel_axis=0)
    assert ids == [2, 5] and out.dtype == np.int32
    assert out[hole[0], hole[1]] == 2  # kept, not erased to 0


def test_density_bins_wear_their_majority_cluster_and_fade_when_not_highlighted():
    rng = np.random.default_rng(0)
    # cluster 1 around (0, 0), cluster 2 around (10, 10), a few of cluster 2 among cluster 1
    a, b = rng.normal(0, 1, (5000, 2)), rng.normal(10, 1, (5000, 2))
    coords = np.concatenate([a, b, a[:50]])
    labels = np.r_[np.ones(5000, int), np.full(5000, 2), np.full(50, 2)]
    colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    extent = (-5, 15, -5, 15)
    rgba, got = density_rgba(coords, labels, colors, bins=20, extent=extent)
    assert got == extent and rgba.shape == (20, 20, 4)
    assert rgba[5, 5, :3].tolist() == [1, 0, 0]  # (0, 0) falls in bin 5: red wins there
    assert rgba[15, 15, :3].tolist() == [0, 0, 1]
    assert rgba[0, 19, 3] == 0  # no point, clear
    assert 0.3 <= rgba[5, 5, 3] <= 1
    faded, _ = density_rgba(coords, labels, colors, bins=20, extent=extent, highlight={2})
    assert faded[15, 15, :3].tolist() == [0, 0, 1] and faded[15, 15, 3] == rgba[15, 15, 3]
    # a bin where cluster 2 has points shows cluster 2 (its 50 points among 1's)
    assert faded[5, 5, :3].tolist() == [0, 0, 1]
    blue = coords[labels == 2]
    no_blue = np.histogram2d(blue[:, 1], blue[:, 0], bins=20, range=[extent[2:], extent[:2]])
    y, x = np.argwhere((no_blue[0] == 0) & (rgba[..., 3] > 0))[0]  # a bin of cluster 1 only
    assert faded[y, x, :3].tolist() == list(UNCLUSTERED) and faded[y, x, 3] < rgba[y, x, 3]
    # weights count as pixels; many labels take the other path to the same answer
    heavy, _ = density_rgba(
        coords,
        labels,
        colors,
        bins=20,
        extent=extent,
        weight=np.r_[np.ones(10000), np.full(50, 1000.0)],
    )
    assert heavy[5, 5, :3].tolist() == [0, 0, 1]
    many = labels + 300  # ids past the colour table are drawn as unclustered
    table = np.zeros((400, 3), np.uint8)
    table[300], table[301] = colors
    fine, _ = density_rgba(coords, labels, colors, bins=256, extent=extent)
    again, _ = density_rgba(coords, many, table, bins=256, extent=extent)  # 65536 x 302 pairs
    np.testing.assert_array_equal(again, fine)


def test_robust_extent_ignores_a_few_outliers():
    coords = np.r_[np.random.default_rng(1).uniform(0, 1, (10000, 2)), [[1e6, -1e6]]]
    x0, x1, y0, y1 = robust_extent(coords)
    assert -0.1 < x0 < 0 and 1 < x1 < 1.1 and -0.1 < y0 < 0 and 1 < y1 < 1.1
    assert robust_extent(np.full((3, 2), np.nan)) == (0.0, 1.0, 0.0, 1.0)


def test_a_lazy_cube_gives_the_engines_block_sample_each_point_at_its_pixel():
    from napari_spectral_clusters.lazy import SAMPLE_BLOCKS

    cube, _, _ = synthetic_cube((64, 72), 6, seed=3)  # (bands, rows, cols)
    cube[:, 5, 7] = np.nan  # never a point
    lazy = da.from_array(cube, chunks=(6, 8, 8))  # 72 blocks, more than the engine reads
    _, points = feature_points(lazy, ["band 0", "band 4"], channel_axis=0, max_points=1500)
    assert len(points.index) == 1500 and len(np.unique(points.index)) == 1500
    rows, cols = np.unravel_index(points.index, (64, 72))
    np.testing.assert_array_equal(points.coords[:, 0], cube[0, rows, cols])
    np.testing.assert_array_equal(points.coords[:, 1], cube[4, rows, cols])
    assert not ((rows == 5) & (cols == 7)).any()
    blocks = {(r // 8, c // 8) for r, c in zip(rows, cols, strict=True)}
    assert len(blocks) <= SAMPLE_BLOCKS < 72
    # weights: the pixels the sample stands for (the engine's estimate from those blocks)
    assert points.weight.sum() == pytest.approx(64 * 72 - 1, rel=0.02)
