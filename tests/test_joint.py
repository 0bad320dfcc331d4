"""Joint clustering of several images (shared ids) and ids that stay put across re-runs."""

from dataclasses import replace

import dask.array as da
import numpy as np
import pytest

from napari_spectral_clusters import ClusterModel, apply_model, cluster_image
from napari_spectral_clusters.cluster import ClusteringError
from napari_spectral_clusters.color import MIN_DELTA_E, delta_e
from napari_spectral_clusters.joint import cluster_images
from napari_spectral_clusters.samples import sample_photo, synthetic_cube
from napari_spectral_clusters.stable_ids import describe_ids, keep_ids, match_ids


def _majority(labels, truth) -> dict:
    """The cluster most of each true material's pixels are in."""
    return {int(m): int(np.bincount(labels[truth == m]).argmax()) for m in np.unique(truth)}


def _two_scenes():
    """The same four materials in two images of other sizes and proportions: the second is a
    crop holding mostly the background and the disc."""
    a, truth_a, wl = synthetic_cube((64, 64), n_bands=24, seed=1)
    b, truth_b, _ = synthetic_cube((96, 96), n_bands=24, seed=2)
    b, truth_b = b[:, 10:70, 5:90], truth_b[10:70, 5:90]
    return (a, truth_a), (b, truth_b), wl


@pytest.mark.parametrize("lazy", [False, True])
def test_the_same_material_has_the_same_id_in_both_images(lazy):
    (a, ta), (b, tb), wl = _two_scenes()
    fractions = [np.bincount(t.ravel(), minlength=5)[1:] / t.size for t in (ta, tb)]
    assert not np.allclose(fractions[0], fractions[1], atol=0.05)  # other proportions
    images = [da.from_array(x, chunks=(24, 32, 32)) for x in (a, b)] if lazy else [a, b]
    joint = cluster_images(images, 4, channel_axis=0, wavelengths=[wl, wl], random_state=0)
    labels = [np.asarray(r.labels) for r in joint.results]
    assert [x.shape for x in labels] == [ta.shape, tb.shape]
    ids_a, ids_b = _majority(labels[0], ta), _majority(labels[1], tb)
    assert ids_a == ids_b and len(set(ids_a.values())) == 4
    # one model, centres and colours for both; counts per image and overall
    assert all(r.model is joint.model for r in joint.results)
    np.testing.assert_array_equal(joint.results[0].colors, joint.results[1].colors)
    np.testing.assert_array_equal(joint.results[0].centers, joint.results[1].centers)
    for counts, x in zip(joint.counts, labels, strict=True):
        np.testing.assert_array_equal(counts, np.bincount(x.ravel(), minlength=5)[1:])
    np.testing.assert_array_equal(joint.total, joint.counts.sum(axis=0))
    assert list(joint.total) == sorted(joint.total, reverse=True)  # 1 = largest overall


@pytest.mark.parametrize("lazy", [False, True])
def test_joint_equals_clustering_the_concatenated_pixels(lazy):
    (a, _), (b, _), _ = _two_scenes()
    images = [da.from_array(x, chunks=(24, 32, 32)) for x in (a, b)] if lazy else [a, b]
    joint = cluster_images(images, 5, channel_axis=0, random_state=3)
    pixels = np.concatenate([np.moveaxis(x, 0, -1).reshape(-1, 1, x.shape[0]) for x in (a, b)])
    alone = cluster_image(pixels, 5, channel_axis=-1, random_state=3)
    together = np.concatenate([np.asarray(r.labels).ravel() for r in joint.results])
    np.testing.assert_array_equal(together, alone.labels.ravel())
    np.testing.assert_allclose(joint.results[0].centers, alone.centers)
    np.testing.assert_array_equal(joint.total, alone.counts)


def test_equal_sampling_weighs_every_image_the_same():
    """One material, a little brighter in the small image: the centre is the mean over the
    pixels (the big image decides) or over the images (each counts half)."""
    big = np.full((30, 30, 3), 1.0)
    small = np.full((10, 10, 3), 1.2)
    by_pixels = cluster_images([big, small], 1)
    equal = cluster_images([big, small], 1, sampling="equal")
    np.testing.assert_allclose(by_pixels.results[0].centers[0], 1.02, rtol=1e-6)
    np.testing.assert_allclose(equal.results[0].centers[0], 1.1, rtol=1e-6)
    # every pixel is still labelled, in both images
    assert [int(c.sum()) for c in equal.counts] == [900, 100]
    with pytest.raises(ValueError, match="sampling"):
        cluster_images([big, small], 1, sampling="per-image")


def test_per_image_masks_and_alpha():
    photo = sample_photo()  # RGBA, transparent outside an ellipse
    other = photo[::2, ::2].copy()
    mask = np.zeros(other.shape[:2], bool)
    mask[:, : other.shape[1] // 2] = True
    joint = cluster_images([photo, other], 6, masks=[None, mask])
    first, second = (np.asarray(r.labels) for r in joint.results)
    assert (first[photo[..., 3] == 0] == 0).all() and (first[photo[..., 3] > 0] > 0).all()
    inside = mask & (other[..., 3] > 0)
    assert (second[~inside] == 0).all() and (second[inside] > 0).all()
    # each result carries its own alpha plane where it has labels; excluded pixels are clear
    expected = np.where(inside, other[..., 3], 0)
    np.testing.assert_array_equal(joint.results[1].recolored[..., 3], expected)


def test_a_joint_result_is_see_through_only_where_its_own_pixels_were_left_out():
    cube, _, _ = synthetic_cube((16, 16), n_bands=8)
    holed = cube.copy()
    holed[:, 2, 3] = np.nan
    for sampling in ("pixels", "equal"):
        joint = cluster_images([cube, holed], 3, channel_axis=0, sampling=sampling)
        whole, with_hole = joint.results
        assert whole.recolored.shape == (16, 16, 3)
        assert with_hole.recolored.shape == (16, 16, 4)
        assert with_hole.recolored[2, 3, 3] == 0 and (with_hole.recolored[..., 3] > 0).sum() == 255
        expected = whole.recolored.copy()  # the same cube, the same clusters: but the hole
        expected[2, 3] = 0
        np.testing.assert_array_equal(with_hole.recolored[..., :3], expected)


def test_joint_rgba_pictures_keep_their_own_alpha_where_every_pixel_is_clustered():
    """Soft alpha everywhere (no pixel left out): each recoloured picture still carries its
    own alpha plane, as a run of it alone does."""
    rng = np.random.default_rng(2)
    pictures = []
    for _ in range(2):
        picture = rng.integers(0, 256, (20, 20, 4)).astype(np.uint8)
        picture[..., 3] = np.where(rng.random((20, 20)) < 0.5, 40, 255)
        pictures.append(picture)
    for sampling in ("pixels", "equal"):
        for alpha in (True, None, [True, True]):
            joint = cluster_images(pictures, 3, alpha=alpha, sampling=sampling)
            for picture, result in zip(pictures, joint.results, strict=True):
                assert result.recolored.shape == (20, 20, 4)
                np.testing.assert_array_equal(result.recolored[..., 3], picture[..., 3])
    alone = cluster_images([pictures[0]], 3).results[0]
    np.testing.assert_array_equal(alone.recolored[..., 3], pictures[0][..., 3])


def test_images_that_cannot_share_clusters_are_refused():
    cube, _, wl = synthetic_cube((16, 16), n_bands=8)
    with pytest.raises(ClusteringError, match="numbers of channels"):
        cluster_images([cube, cube[:5]], 2, channel_axis=0)
    with pytest.raises(ClusteringError, match="wavelengths differ"):
        cluster_images([cube, cube], 2, channel_axis=0, wavelengths=[wl, wl + 5])
    with pytest.raises(ClusteringError, match="masks"):
        cluster_images([cube, cube], 2, channel_axis=0, masks=[None])
    with pytest.raises(ClusteringError, match="at least one"):
        cluster_images([], 2)


def test_match_ids_pairs_the_nearest_centres_and_numbers_new_ones_after():
    previous = np.array([[0.0], [10.0], [20.0]])
    assert match_ids(previous, np.array([[19.0], [1.0], [9.0], [30.0]])).tolist() == [3, 1, 2, 4]
    assert match_ids(previous, np.array([[11.0], [19.5]])).tolist() == [2, 3]  # 1 stays free
    free = np.array([[0.0], [np.nan], [20.0]])  # id 2 was free: it matches nothing
    assert match_ids(free, np.array([[9.0], [1.0]])).tolist() == [3, 1]


@pytest.mark.parametrize("lazy", [False, True])
def test_a_rerun_with_one_more_cluster_keeps_the_old_ids_and_colours(lazy):
    cube, _truth, _ = synthetic_cube((64, 64), n_bands=16, seed=1)
    data = da.from_array(cube, chunks=(16, 32, 32)) if lazy else cube
    before = cluster_image(cube, 3, channel_axis=0, random_state=0)
    after, ids = keep_ids(
        cluster_image(data, 4, channel_axis=0, random_state=7), before.centers, before.colors
    )
    labels = np.asarray(after.labels)
    assert sorted(ids.tolist()) == [1, 2, 3, 4]
    for old in (1, 2, 3):  # most of an old cluster's pixels keep its id, and its colour
        assert np.bincount(labels[before.labels == old]).argmax() == old
        np.testing.assert_array_equal(after.colors[old - 1], before.colors[old - 1])
    np.testing.assert_array_equal(after.counts, np.bincount(labels.ravel(), minlength=5)[1:])
    lut = np.vstack([[0, 0, 0], after.colors])
    np.testing.assert_array_equal(np.asarray(after.recolored), lut[labels])
    # the renumbered model gives these ids again
    np.testing.assert_array_equal(apply_model(cube, after.model, channel_axis=0).labels, labels)


@pytest.mark.parametrize("seed", range(5))
def test_a_new_cluster_never_wears_a_kept_clusters_colour(seed):
    """Palette colours go by row: a re-run's new 4th cluster wore the kept 3rd's colour
    whenever it was the 3rd largest of the four (Samson, k = 3 then 4: two greens)."""
    cube, _, _ = synthetic_cube((64, 64), n_bands=16, seed=seed)
    before = cluster_image(cube, 3, channel_axis=0, random_state=seed, palette="categorical")
    for k in (4, 6):
        new = cluster_image(cube, k, channel_axis=0, random_state=seed, palette="categorical")
        after, _ = keep_ids(new, before.centers, before.colors)
        worn = after.colors[after.counts > 0]
        assert len(worn) == k
        d = delta_e(worn[:, None], worn[None]) + np.eye(k) * 1e9
        assert d.min() >= MIN_DELTA_E, (k, worn.tolist())
        for old in range(3):  # the kept ones keep theirs
            np.testing.assert_array_equal(after.colors[old], before.colors[old])
        lut = np.vstack([[0, 0, 0], after.colors])
        np.testing.assert_array_equal(after.recolored, lut[after.labels])
        np.testing.assert_array_equal(after.model.colors, after.colors)


def test_a_new_clusters_true_colour_like_a_kept_one_is_replaced_and_said():
    cube, _, wl = synthetic_cube((64, 64), n_bands=16, seed=1)
    new = cluster_image(cube, 4, channel_axis=0, wavelengths=wl, random_state=0)
    assert new.params["colors"].startswith("true colour")
    # the two kept clusters wear what clusters 3 and 4 would wear in true colour
    after, ids = keep_ids(new, new.centers[:2], new.colors[2:])
    assert ids.tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(after.colors[:2], new.colors[2:])  # kept: theirs
    assert delta_e(after.colors[2:], new.colors[2:]).min() >= MIN_DELTA_E  # new: replaced
    assert after.params["colors"].endswith(
        "palette colours for new id(s) 3, 4, whose own looked like a kept cluster's"
    )
    np.testing.assert_array_equal(after.model.colors, after.colors)


def test_kept_ids_under_a_palette_fallback_say_they_wear_their_earlier_colours():
    """Samson k = 3 in true colours, then k = 4, whose true colours fell back to the palette
    (two alike): the notice said "cluster colours from a categorical palette (true colours
    of clusters 3 and 4 differ by only ...)", while ids 1-3 wore their earlier true colours."""
    cube, _, wl = synthetic_cube((64, 64), n_bands=16, seed=1)
    before = cluster_image(cube, 3, channel_axis=0, wavelengths=wl, random_state=0)
    new = cluster_image(cube, 4, channel_axis=0, wavelengths=wl, random_state=7)
    new = replace(new, params={**new.params, "colors": "categorical palette (two alike)"})
    after, ids = keep_ids(new, before.centers, before.colors)
    fresh = sorted(set(ids.tolist()) - {1, 2, 3})
    assert fresh == [4]
    assert after.params["colors"] == (
        "earlier colours for kept id(s) 1-3; palette colours for new id(s) 4"
    )
    np.testing.assert_array_equal(after.colors[:3], before.colors)


def test_fewer_clusters_leave_free_ids_that_survive_a_saved_model(tmp_path):
    cube, _, _ = synthetic_cube((64, 64), n_bands=16, seed=1)
    before = cluster_image(cube, 4, channel_axis=0, random_state=0)
    after, ids = keep_ids(
        cluster_image(cube, 2, channel_axis=0, random_state=0), before.centers, before.colors
    )
    assert len(after.centers) == 4 and len(set(ids.tolist())) == 2
    free = np.setdiff1d([1, 2, 3, 4], ids) - 1
    assert np.isnan(after.centers[free]).all() and (after.counts[free] == 0).all()
    np.testing.assert_array_equal(after.colors[free], before.colors[free])
    model = ClusterModel.load(after.model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(apply_model(cube, model, channel_axis=0).labels, after.labels)
    assert set(np.unique(after.labels)) == set(ids.tolist())


def test_rgba_ids_kept_keep_the_alpha_plane():
    photo = sample_photo()
    before = cluster_image(photo, 6)
    after, _ = keep_ids(cluster_image(photo, 7, random_state=4), before.centers, before.colors)
    np.testing.assert_array_equal(after.recolored[..., 3], photo[..., 3])


def test_an_rgba_picture_beside_rgb_ones_clusters_its_opaque_pixels(data_dir):
    """Alpha is transparency, not a fourth colour: an RGBA picture was refused beside an RGB
    one in the widget ("different numbers of channels: 3, 4"). With one alpha flag per
    image, its opaque pixels share the RGB picture's clusters and its recoloured picture
    keeps its own alpha plane."""
    from napari_spectral_clusters.io.png import read_png

    rgb = read_png(data_dir / "png" / "pngsuite" / "basn2c08.png").data
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:8] = 0  # transparent rows
    alpha[8:12] = 90  # soft ones
    rgba = np.dstack([rgb, alpha])
    joint = cluster_images([rgb, rgba], 4, channel_axis=-1, alpha=[False, True])
    a, b = (r.labels for r in joint.results)
    assert (b[:8] == 0).all() and (b[8:] > 0).all()
    np.testing.assert_array_equal(a[8:], b[8:])  # the same colours, the same clusters
    assert joint.counts[1].sum() == 24 * 32
    recolored = joint.results[1].recolored
    assert recolored.shape == (32, 32, 4)
    np.testing.assert_array_equal(recolored[..., 3], alpha)
    np.testing.assert_array_equal(recolored[8:, :, :3], joint.results[0].recolored[8:])
    assert joint.results[0].recolored.shape == (32, 32, 3)


def test_alpha_flags_that_agree_act_as_one():
    """alpha=[None, None] still finds out (it turned alpha off, clustering it as a colour),
    and a mask that does not fit a picture beside an RGBA one is named, not a numpy error."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:5, :, 3] = 0
    joint = cluster_images([rgba, rgba.copy()], 3, channel_axis=-1, alpha=[None, None])
    assert all(r.recolored.shape == (20, 20, 4) for r in joint.results)
    assert all((r.labels[:5] == 0).all() for r in joint.results)
    with pytest.raises(ClusteringError, match=r"mask 1 has shape \(3, 3\)"):
        cluster_images(
            [rgba[..., :3], rgba],
            3,
            channel_axis=-1,
            alpha=[False, True],
            masks=[np.ones((3, 3), bool), None],
        )


def test_many_new_ids_are_said_as_a_range():
    """k = 50 after k = 3 listed all 47 new ids in the notification."""
    cube, _, wl = synthetic_cube((64, 64), n_bands=16, seed=1)
    before = cluster_image(cube, 3, channel_axis=0, wavelengths=wl, random_state=0)
    new = cluster_image(cube, 50, channel_axis=0, wavelengths=wl, random_state=7)
    new = replace(new, params={**new.params, "colors": "categorical palette (two alike)"})
    after, _ = keep_ids(new, before.centers, before.colors)
    assert after.params["colors"] == (
        "earlier colours for kept id(s) 1-3; palette colours for new id(s) 4-50"
    )
    assert describe_ids([9, 1, 2, 3, 5, 7, 8, 2]) == "1-3, 5, 7-9"
    assert describe_ids([4, 5]) == "4, 5" and describe_ids([]) == ""
