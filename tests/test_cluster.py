from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from napari_spectral_clusters import Cancelled, ClusteringError, apply_model, cluster_image
from napari_spectral_clusters.recolor import color_lut
from napari_spectral_clusters.samples import sample_photo, synthetic_cube

DATA = Path(__file__).parent / "data"


def _blobs(rng, n_per=300, centers=((0, 0, 0), (5, 5, 5), (10, 0, 5)), shape=(30, 30)):
    """An image whose pixels come from well-separated Gaussian blobs, with ground truth."""
    k = len(centers)
    gt = rng.integers(0, k, size=shape)
    img = np.asarray(centers, dtype=np.float64)[gt] + rng.normal(0, 0.3, (*shape, 3))
    return img, gt


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint16, np.int32])
def test_recovers_separated_clusters(dtype):
    rng = np.random.default_rng(1)
    img, gt = _blobs(rng)
    img = (img * 100 + 2000).astype(dtype)  # positive offsets for the unsigned cases
    res = cluster_image(img, 3, random_state=0)
    assert res.labels.shape == gt.shape
    assert set(np.unique(res.labels)) == {1, 2, 3}
    assert adjusted_rand_score(gt.ravel(), res.labels.ravel()) == 1.0
    # Centres are the per-cluster means, in the input's units.
    for lab in range(1, 4):
        np.testing.assert_allclose(
            res.centers[lab - 1], img[res.labels == lab].mean(axis=0), rtol=1e-5
        )


def test_labels_colours_and_recoloured_agree():
    rng = np.random.default_rng(2)
    img, _ = _blobs(rng)
    res = cluster_image(img, 3)
    assert res.recolored.shape == (*img.shape[:2], 3)
    assert res.recolored.dtype == np.uint8
    np.testing.assert_array_equal(res.recolored, res.colors[res.labels - 1])
    assert res.colors.shape == (3, 3)
    assert len({tuple(c) for c in res.colors}) == 3


def test_numbered_by_size_and_counts():
    rng = np.random.default_rng(3)
    gt = np.zeros((40, 40), int)
    gt[:, 30:] = 1
    gt[:5, :30] = 2
    img = np.array([[0.0, 0], [1, 1], [2, 0]])[gt] + rng.normal(0, 0.01, (40, 40, 2))
    res = cluster_image(img, 3)
    np.testing.assert_array_equal(res.counts, [40 * 30 - 5 * 30, 40 * 10, 5 * 30])
    np.testing.assert_array_equal(res.counts, np.bincount(res.labels.ravel())[1:])
    assert (res.labels[gt == 0] == 1).all()


def test_same_seed_same_result_other_seed_runs():
    cube, _, _ = synthetic_cube((48, 48), 16, seed=5)
    a = cluster_image(cube, 4, channel_axis=0, random_state=7)
    b = cluster_image(cube, 4, channel_axis=0, random_state=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.params["random_state"] == 7
    assert a.params["n_clusters"] == 4


def test_synthetic_cube_ground_truth_recovered():
    cube, gt, _ = synthetic_cube(seed=0)
    res = cluster_image(cube, 4, channel_axis=0)
    assert res.labels.shape == gt.shape
    assert adjusted_rand_score(gt.ravel(), res.labels.ravel()) > 0.99


def test_inertia_matches_full_kmeans():
    cube, _, _ = synthetic_cube((64, 64), 32, seed=2)
    res = cluster_image(cube, 4, channel_axis=0)
    pixels = np.moveaxis(cube, 0, -1).reshape(-1, 32).astype(np.float64)
    best = KMeans(4, n_init=10, random_state=0).fit(pixels).inertia_
    assert res.inertia <= best * 1.01
    # inertia is what it says: squared distances to the reported centres
    d = pixels - res.centers[res.labels.ravel() - 1]
    assert res.inertia == pytest.approx(float(np.sum(d * d)), rel=1e-4)


def test_sampled_fit_labels_every_pixel():
    cube, gt, _ = synthetic_cube((100, 100), 8, seed=3)
    res = cluster_image(cube, 4, channel_axis=0, max_samples=500)
    assert (res.labels > 0).all()
    assert adjusted_rand_score(gt.ravel(), res.labels.ravel()) > 0.99


def test_rgba_alpha_zero_pixels_excluded_and_stay_transparent():
    photo = sample_photo()
    transparent = photo[..., 3] == 0
    # Garbage colours under alpha = 0 must not influence the clusters.
    noisy = photo.copy()
    noisy[transparent, :3] = np.random.default_rng(0).integers(0, 256, (transparent.sum(), 3))
    res = cluster_image(noisy, 8)
    ref = cluster_image(photo, 8)
    assert transparent.any()
    assert res.recolored.shape == (*photo.shape[:2], 4)
    assert (res.labels[transparent] == 0).all()
    assert (res.labels[~transparent] > 0).all()
    assert (res.recolored[transparent] == 0).all()
    assert (res.recolored[~transparent, 3] == 255).all()
    np.testing.assert_array_equal(res.labels, ref.labels)
    np.testing.assert_allclose(res.centers, ref.centers)


def test_photo_colours_are_the_centre_colours():
    photo = sample_photo()
    res = cluster_image(photo, 8)
    np.testing.assert_array_equal(res.colors, np.round(res.centers).astype(np.uint8))
    inside = photo[..., 3] > 0
    np.testing.assert_array_equal(res.recolored[inside, :3], res.colors[res.labels[inside] - 1])


def test_photo_exact_kmeans_quality():
    """Unique-colour compression is exact KMeans on all pixels: same inertia as sklearn."""
    photo = sample_photo()
    inside = photo[..., 3] > 0
    pixels = photo[inside, :3].astype(np.float64)
    res = cluster_image(photo, 8)
    best = KMeans(8, n_init=10, random_state=0).fit(pixels).inertia_
    assert res.inertia <= best * 1.01
    d = pixels - res.centers[res.labels[inside] - 1]
    assert res.inertia == pytest.approx(float(np.sum(d * d)), rel=1e-6)


def test_nan_and_mask_pixels_get_label_zero():
    cube, _, _ = synthetic_cube((32, 32), 8, seed=1)
    cube = cube.copy()
    cube[3, 5, 6] = np.nan
    cube[0, 7, 8] = np.inf
    mask = np.ones((32, 32), bool)
    mask[:4] = False
    res = cluster_image(cube, 3, channel_axis=0, mask=mask)
    assert res.labels[5, 6] == 0 and res.labels[7, 8] == 0
    assert (res.labels[:4] == 0).all()
    assert np.count_nonzero(res.labels) == 32 * 28 - 2
    assert np.isfinite(res.centers).all()
    # the recoloured image shows what lies below the pixels left out: RGBA, see-through there
    assert res.recolored.shape == (32, 32, 4) and res.recolored.dtype == np.uint8
    np.testing.assert_array_equal(res.recolored[..., 3], np.where(res.labels > 0, 255, 0))
    rgb = color_lut(res.colors, alpha=False)[res.labels]  # label 0 black beneath
    np.testing.assert_array_equal(res.recolored[..., :3], rgb)
    # and so does the model applied to the cube again
    again = apply_model(cube, res.model, channel_axis=0)
    assert again.recolored.shape == (32, 32, 4)
    np.testing.assert_array_equal(again.recolored[..., 3], np.where(again.labels > 0, 255, 0))


def test_a_cube_with_every_pixel_clustered_is_recoloured_in_rgb():
    cube, _, _ = synthetic_cube((32, 32), 8, seed=1)
    res = cluster_image(cube, 3, channel_axis=0)
    assert res.recolored.shape == (32, 32, 3)
    np.testing.assert_array_equal(res.recolored, res.colors[res.labels - 1])
    assert apply_model(cube, res.model, channel_axis=0).recolored.shape == (32, 32, 3)


def test_greyscale_and_extra_axes():
    img = np.repeat(np.array([10, 200, 90], np.uint8), 100).reshape(3, 10, 10)
    res = cluster_image(img, 3, channel_axis=None)
    assert res.labels.shape == (3, 10, 10)
    assert res.centers.shape == (3, 1)
    # each plane is one cluster; labels mean the same in every plane
    for plane in range(3):
        assert len(np.unique(res.labels[plane])) == 1


def test_source_is_not_modified():
    cube, _, _ = synthetic_cube((20, 20), 6, seed=4)
    before = cube.copy()
    cluster_image(cube, 3, channel_axis=0)
    np.testing.assert_array_equal(cube, before)


def test_too_few_distinct_pixels_is_a_clear_error():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:5] = 200
    with pytest.raises(ClusteringError, match="only 2 distinct"):
        cluster_image(img, 3)
    with pytest.raises(ClusteringError, match="only 1 distinct"):
        cluster_image(np.ones((10, 10, 4), np.float32), 2, alpha=False)


def test_everything_masked_is_a_clear_error():
    with pytest.raises(ClusteringError, match="no pixel left"):
        cluster_image(np.full((4, 4, 3), np.nan), 2)


def test_progress_reported_and_cancel_stops():
    cube, _, _ = synthetic_cube((32, 32), 8)
    seen = []
    res = cluster_image(cube, 3, channel_axis=0, n_init=3, progress=seen.append)
    assert [e.stage for e in seen[:3]] == ["fit"] * 3
    assert [(e.done, e.total) for e in seen[:3]] == [(1, 3), (2, 3), (3, 3)]
    # every pass reports its chunks (where a cancel also stops it), then itself
    assert seen[3].stage == "blocks" and seen[4].stage == "refine" and seen[-1].stage == "done"
    assert seen[-1].inertia == res.inertia
    refine = [e.inertia for e in seen if e.stage == "refine"]
    assert refine == sorted(refine, reverse=True)  # Lloyd never increases the inertia

    calls = []

    def cancel(event):
        calls.append(event)
        if event.stage == "refine":
            raise Cancelled

    with pytest.raises(Cancelled):
        cluster_image(cube, 3, channel_axis=0, progress=cancel)
    assert calls[-1].stage == "refine" and calls[-1].done == 1  # stopped at the first pass


@pytest.mark.parametrize("kept", [True, False], ids=["features kept", "converted per pass"])
def test_a_pass_in_threads_gives_the_one_thread_result_to_the_bit(monkeypatch, kept):
    """Chunks are labelled in PASS_THREADS threads and added up in chunk order, each chunk's
    coreset draws made in order first: the same clustering as one chunk after the other."""
    from napari_spectral_clusters import pixels

    cube, _, _ = synthetic_cube((300, 300), 12, seed=4)  # above ALL_ROWS: coreset draws
    cube = cube.astype(np.float64)  # converted to float32 chunk by chunk
    # pixels left out: non-finite ones are found by the threads that read the chunks
    cube[3, 5, 7] = np.nan
    cube[:, 100:103, 50] = np.inf
    mask = np.ones((300, 300), bool)
    mask[200:230, 10:40] = False
    monkeypatch.setattr(pixels, "CHUNK_BYTES", 64 * 1024)  # many chunks
    monkeypatch.setattr(pixels, "CACHE_BYTES", 2**40 if kept else 0)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(pixels, "PASS_THREADS", threads)
        events = []
        res = cluster_image(
            cube, 6, channel_axis=0, mask=mask, random_state=2, progress=events.append
        )
        assert res.labels[5, 7] == 0 and (res.labels[100:103, 50] == 0).all()
        assert (res.labels[200:230, 10:40] == 0).all()
        assert (res.labels > 0).sum() == mask.sum() - 4
        blocks = [e.done for e in events if e.stage == "blocks"]
        n_chunks = events[[e.stage for e in events].index("blocks")].total
        assert n_chunks > 10 and blocks[:n_chunks] == list(range(1, n_chunks + 1))
        results.append(res)
    for res in results[1:]:
        np.testing.assert_array_equal(res.labels, results[0].labels)
        assert res.inertia == results[0].inertia
        np.testing.assert_array_equal(res.centers, results[0].centers)
        np.testing.assert_array_equal(res.std, results[0].std)


def test_distinct_colours_converted_in_every_pass_give_the_kept_result(monkeypatch):
    """A picture with too many distinct colours to keep converted has them converted in
    every pass's threads: the same clustering as converted once."""
    from napari_spectral_clusters import pixels

    photo = np.asarray(sample_photo())
    kept = cluster_image(photo, 6, random_state=1)
    monkeypatch.setattr(pixels, "CACHE_BYTES", 0)
    converted = cluster_image(photo, 6, random_state=1)
    np.testing.assert_array_equal(converted.labels, kept.labels)
    np.testing.assert_array_equal(converted.recolored, kept.recolored)
    assert converted.inertia == kept.inertia


@pytest.mark.parametrize("far_start", [False, True], ids=["plain start", "an empty cluster"])
@pytest.mark.parametrize("n_features", [6, 24], ids=["bincount sums", "one-hot sums"])
def test_lloyd_with_bounds_takes_the_plain_lloyd_steps(monkeypatch, far_start, n_features):
    """Many rows and clusters: the bounds only skip rows that cannot change cluster, so each
    iteration moves the centres as plain Lloyd does (an empty cluster restarted alike)."""
    from napari_spectral_clusters import kmeans

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40_000, n_features)).astype(np.float32)  # no structure: rows move
    w = rng.uniform(0.5, 2.0, len(x))
    start = x[rng.choice(len(x), 16, replace=False)].copy()
    if far_start:
        start[3] = 100.0  # nearest to no row: restarted on the farthest row
    assert len(x) * len(start) >= kmeans.BOUNDED_WORK
    bounded_calls = []
    real = kmeans._lloyd_bounded
    monkeypatch.setattr(
        kmeans, "_lloyd_bounded", lambda *a, **kw: bounded_calls.append(1) or real(*a, **kw)
    )
    for iters in (1, 3, 8):
        bounded = kmeans._lloyd(x, w, start, max_iter=iters, tol=0)
        assert len(bounded_calls) == 1
        bounded_calls.clear()
        with monkeypatch.context() as plain_only:
            plain_only.setattr(kmeans, "BOUNDED_WORK", 2**62)
            plain = kmeans._lloyd(x, w, start, max_iter=iters, tol=0)
        assert not bounded_calls
        np.testing.assert_allclose(bounded[0], plain[0], atol=1e-4)
        assert bounded[1] == pytest.approx(plain[1], rel=1e-5)
    assert (np.bincount(kmeans.nearest(x, bounded[0])[0], minlength=16) > 0).all()


@pytest.mark.parametrize("k", [6, 40], ids=["dense one-hot", "sparse one-hot"])
def test_cluster_sums_alike_for_rows_in_either_layout(k):
    """Rows laid out column by column (a bands-first block) are summed by another product:
    the same per-cluster sums as a float64 reference, in either layout."""
    from napari_spectral_clusters import kmeans

    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, (50_000, 20)).astype(np.float32)  # over ACC_ROWS: two pieces
    lab, w = rng.integers(0, k, len(x)), rng.uniform(0.5, 2.0, len(x))
    reference = np.stack(
        [np.bincount(lab, w * col.astype(np.float64), minlength=k) for col in x.T], 1
    )
    for rows in (x, np.asfortranarray(x)):
        sums = kmeans._cluster_sums(lab, w, rows, k)
        assert isinstance(sums, np.ndarray) and sums.shape == (k, 20)
        np.testing.assert_allclose(sums, reference, rtol=1e-5)


def test_per_cluster_statistics():
    rng = np.random.default_rng(11)
    img, _ = _blobs(rng)
    res = cluster_image(img, 3)
    for lab in range(1, 4):
        members = img[res.labels == lab]
        np.testing.assert_allclose(res.std[lab - 1], members.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(res.fractions, res.counts / res.counts.sum())
    assert res.fractions.sum() == pytest.approx(1.0)


def test_unit_length_clusters_by_spectral_shape():
    """Two materials, each at two brightnesses: unit-length spectra group by shape."""
    rng = np.random.default_rng(12)
    shapes = np.array([[1.0, 2, 3, 4], [4.0, 3, 2, 1]])
    material = rng.integers(0, 2, (30, 30))
    brightness = rng.choice([1.0, 5.0], (30, 30))
    img = shapes[material] * brightness[..., None] + rng.normal(0, 0.01, (30, 30, 4))
    by_shape = cluster_image(img, 2, preprocessing="unit")
    by_value = cluster_image(img, 2)
    assert adjusted_rand_score(material.ravel(), by_shape.labels.ravel()) == 1.0
    assert adjusted_rand_score(material.ravel(), by_value.labels.ravel()) < 0.5
    # centres stay in the input's units: the mean spectrum of each cluster
    for lab in (1, 2):
        np.testing.assert_allclose(
            by_shape.centers[lab - 1], img[by_shape.labels == lab].mean(axis=0), rtol=1e-5
        )


def test_standardize_lets_a_small_band_count():
    """A band with a tiny range separates the clusters; standardising gives it its weight."""
    rng = np.random.default_rng(13)
    gt = rng.integers(0, 2, (40, 40))
    img = np.stack(
        [rng.normal(0, 100, (40, 40)), gt * 0.01 + rng.normal(0, 0.001, (40, 40))], axis=-1
    )
    plain = cluster_image(img, 2)
    scaled = cluster_image(img, 2, preprocessing="standardize")
    assert adjusted_rand_score(gt.ravel(), scaled.labels.ravel()) == 1.0
    assert adjusted_rand_score(gt.ravel(), plain.labels.ravel()) < 0.5


def test_pca_preprocessing_recovers_the_cube():
    cube, gt, _ = synthetic_cube((48, 48), 64, seed=9)
    res = cluster_image(cube, 4, channel_axis=0, preprocessing="pca", n_components=3)
    assert adjusted_rand_score(gt.ravel(), res.labels.ravel()) > 0.99
    assert res.centers.shape == (4, 64)
    assert res.params["preprocessing"] == "pca"


def test_reduce_k_warns_and_clusters_into_fewer():
    img = np.zeros((10, 10, 3), np.float32)
    img[:5] = 1
    with pytest.warns(UserWarning, match="clustering into 2 clusters instead"):
        res = cluster_image(img, 5, reduce_k=True)
    assert res.n_clusters == 2
    assert res.params["n_clusters_used"] == 2


@pytest.mark.parametrize("lazy", [False, True])
def test_reduce_k_counts_again_when_distinct_pixels_meet_as_features(lazy):
    # three pixel values, but standardised in float32 the 0 and the 1 beside 2,031,874 are
    # one point: k = 4 is cut to 3 (the pixels), then to 2 (the features), never refused
    img = np.array([[[1.0], [0.0], [2031874.0]]])
    data = da.from_array(img, chunks=(1, 2, -1)) if lazy else img
    with pytest.warns(UserWarning) as warned:
        res = cluster_image(data, 4, preprocessing="standardize", reduce_k=True)
    said = [str(w.message) for w in warned]
    assert "only 3 distinct pixel value(s)" in said[0]
    assert "only 2 distinct points after standardising" in said[1]
    labels = np.asarray(res.labels)
    assert res.n_clusters == res.params["n_clusters_used"] == 2
    assert labels[0, 0] == labels[0, 1] != labels[0, 2]


@pytest.mark.parametrize(
    ("image", "k"),
    [
        (np.full((6, 7, 3), 0.5), 1),  # constant image, one cluster
        (np.ones((1, 1, 5)), 1),  # a single pixel
    ],
)
def test_degenerate_images_that_still_cluster(image, k):
    res = cluster_image(image, k)
    assert (res.labels == 1).all()
    np.testing.assert_allclose(res.centers[0], image.reshape(-1, image.shape[-1])[0])
    assert res.inertia == pytest.approx(0.0, abs=1e-6)


def test_mostly_nan_cube_still_finds_its_few_pixels():
    cube = np.full((200, 200, 3), np.nan)
    cube[5, 5] = [1, 2, 3]
    cube[150, 7] = [9, 9, 9]
    res = cluster_image(cube, 2)
    assert np.count_nonzero(res.labels) == 2
    assert res.labels[5, 5] != res.labels[150, 7]


def test_memory_does_not_grow_with_float_copies_of_the_cube():
    """Chunks are converted to float32 one at a time, never the whole cube to float: peak
    memory grows with the image only by the labels (the input is 32 bytes a pixel here)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    peaks, sizes = [], []
    for rows in (500, 2000):
        cube = rng.integers(0, 4000, (rows, 1000, 16)).astype(np.uint16)
        tracemalloc.start()
        res = cluster_image(cube, 4)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        sizes.append(cube.nbytes)
        assert res.labels.shape == (rows, 1000)
    # a float64 copy would grow by 4x the input growth, a float32 copy by 2x
    assert peaks[1] - peaks[0] < 0.25 * (sizes[1] - sizes[0]), (peaks, sizes)


def test_label_statistics_match_the_clustering_and_follow_edits():
    from napari_spectral_clusters import label_statistics

    cube, _, _ = synthetic_cube((40, 40), 8, seed=2)
    res = cluster_image(cube, 4, channel_axis=0)
    stats = label_statistics(cube, res.labels, channel_axis=0)
    np.testing.assert_array_equal(stats["label"], [1, 2, 3, 4])
    np.testing.assert_array_equal(stats["count"], res.counts)
    np.testing.assert_allclose(stats["mean"], res.centers, rtol=1e-5)
    np.testing.assert_allclose(stats["std"], res.std, rtol=1e-3, atol=1e-6)
    merged = np.where(res.labels == 4, 3, res.labels)  # merge cluster 4 into 3
    stats = label_statistics(cube, merged, channel_axis=0)
    np.testing.assert_array_equal(stats["label"], [1, 2, 3])
    assert stats["count"][2] == res.counts[2] + res.counts[3]
    pixels = np.moveaxis(cube, 0, -1)[merged == 3]
    np.testing.assert_allclose(stats["mean"][2], pixels.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats["fraction"].sum(), 1.0)


@pytest.mark.parametrize("group", [[2, 5], [1, 3, 6], [4, 6, 99], [6], [5, 1]])
def test_merged_statistics_equal_a_recount_of_the_merged_labels(group):
    """A merge's table is worked out from the table before it (no read of the image): the
    same counts, means and spreads as counting the merged labels again."""
    from napari_spectral_clusters.cluster import label_statistics, merged_statistics

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, (30, 40))  # 0: no label; label 99 is not in the image
    if group == [5, 1]:
        labels[labels == 1] = 2  # merged into a label no pixel has
    image = rng.normal(size=(30, 40, 5)) * 10 + labels[..., None] * [1.0, -3, 0, 7, 50]
    before = label_statistics(image, labels)
    merged = np.where(np.isin(labels, group), min(group), labels)
    expected = label_statistics(image, merged)
    got = merged_statistics(before, group)
    assert sorted(got) == sorted(expected)
    np.testing.assert_array_equal(got["label"], expected["label"])
    np.testing.assert_array_equal(got["count"], expected["count"])
    for key in ("fraction", "mean", "std"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [False, True])
def test_label_statistics_of_a_dask_image_equal_the_numpy_ones(alpha):
    """Read block by block (bands split across chunks too), never whole: the same table."""
    from napari_spectral_clusters import label_statistics

    rng = np.random.default_rng(5)
    if alpha:  # an RGBA picture: transparent pixels are left out
        image = rng.integers(0, 256, (50, 70, 4), dtype=np.uint8)
        image[..., 3] = np.where(rng.random((50, 70)) < 0.3, 0, 255)
        chunks, axis = (16, 32, 2), -1
    else:  # bands first, with NaN pixels
        image = rng.normal(size=(6, 50, 70))
        image[:, 3, 4] = np.nan
        chunks, axis = (4, 16, 32), 0
    labels = rng.integers(0, 5, (50, 70))
    expected = label_statistics(image, labels, channel_axis=axis, alpha=alpha)
    reads = []

    def counted(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    lazy = da.from_array(image, chunks=chunks).map_blocks(counted, dtype=image.dtype)
    got = label_statistics(lazy, labels, channel_axis=axis, alpha=alpha)
    every = list(np.ndindex(*lazy.numblocks))
    assert sorted(reads) == every  # each block read once, a block at a time
    np.testing.assert_array_equal(got["label"], expected["label"])
    np.testing.assert_array_equal(got["count"], expected["count"])
    for key in ("fraction", "mean", "std"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-10, atol=1e-12)
    with pytest.raises(ClusteringError, match="does not match"):
        label_statistics(da.from_array(image), labels[1:], channel_axis=axis, alpha=alpha)
    with pytest.raises(ClusteringError, match="not an axis"):
        label_statistics(da.from_array(image), labels, channel_axis=3, alpha=alpha)


def test_a_dask_recount_reports_its_blocks_and_stops_when_cancelled(monkeypatch):
    from napari_spectral_clusters import cluster, label_statistics

    monkeypatch.setattr(cluster, "RECOUNT_BATCH", 3)
    rng = np.random.default_rng(6)
    image = rng.normal(size=(5, 40, 60))
    labels = rng.integers(0, 4, (40, 60))
    lazy = da.from_array(image, chunks=(5, 10, 30))  # 8 blocks: counted 3, 3 and 2 at a time
    events = []
    got = label_statistics(lazy, labels, channel_axis=0, progress=events.append)
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("blocks", done, 8) for done in (0, 3, 6, 8)
    ]
    np.testing.assert_array_equal(
        got["count"], label_statistics(image, labels, channel_axis=0)["count"]
    )

    reads = []

    def counted(block):
        if block.size:  # not dask's call with an empty array to learn the output type
            reads.append(block.shape)
        return block

    def stop_after_first(event):
        if event.done:
            raise Cancelled

    with pytest.raises(Cancelled):
        label_statistics(
            lazy.map_blocks(counted, dtype=image.dtype),
            labels,
            channel_axis=0,
            progress=stop_after_first,
        )
    assert len(reads) == 3  # the first batch, nothing after it


def test_sweep_k_points_at_the_true_number_of_materials():
    from napari_spectral_clusters import sweep_k

    cube, _, _ = synthetic_cube((64, 64), 16, seed=4)  # four materials
    sweep = sweep_k(cube, range(2, 8), channel_axis=0, max_samples=1500)
    np.testing.assert_array_equal(sweep["k"], np.arange(2, 8))
    assert np.all(np.diff(sweep["inertia"]) <= 0)  # more clusters, less inertia
    assert sweep["k"][np.argmax(sweep["silhouette"])] == 4
    # the elbow: past 4 clusters the inertia hardly falls any more
    drop = -np.diff(sweep["inertia"])
    assert drop[3] < 0.05 * drop[1]
    assert sweep["suggested"] == 4


def test_the_suggested_k_is_the_elbow_on_real_samson_not_the_best_silhouette(data_dir):
    import scipy.io

    from napari_spectral_clusters import sweep_k

    cube = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"]
    sweep = sweep_k(cube, channel_axis=-1)
    assert sweep["k"][np.nanargmax(sweep["silhouette"])] == 2  # what the old status said
    assert sweep["suggested"] == 4  # rock/soil, trees, water and the shore: the elbow


def test_silhouette_matches_scikit_learns():
    from sklearn.metrics import silhouette_score

    from napari_spectral_clusters.cluster import silhouette

    rng = np.random.default_rng(0)
    for n, k in [(40, 2), (300, 5), (1000, 9)]:
        x = rng.random((n, 6)) + rng.integers(0, k, n)[:, None]
        labels = rng.integers(0, k, n)
        labels[:k] = np.arange(k)
        assert silhouette(x, labels) == pytest.approx(silhouette_score(x, labels), abs=1e-9)
    assert np.isnan(silhouette(rng.random((5, 2)), np.zeros(5, int)))


@pytest.mark.parametrize(
    ("inertia", "expected"),
    [([100, 40, 10, 8, 7, 6], 4), ([100, 90, 80, 70, 60, 50], None), ([5, 5, 5], None)],
)
def test_elbow(inertia, expected):
    from napari_spectral_clusters.cluster import elbow

    assert elbow(range(2, 2 + len(inertia)), inertia) == expected


@pytest.mark.parametrize("k", [1, 2, 7, 16, 17, 40])
@pytest.mark.parametrize(
    "n_features, order", [(6, "C"), (40, "C"), (40, "F")], ids=["6", "40 C", "40 F"]
)
def test_nearest_centre_distance_and_margin_match_brute_force(k, n_features, order):
    # few or many features, stored pixel by pixel or band after band: the product is taken
    # the way round BLAS is fastest for each
    from napari_spectral_clusters.kmeans import nearest as _nearest

    rng = np.random.default_rng(k)
    x = np.asarray(rng.normal(size=(500, n_features)), np.float32, order=order)
    centers = rng.normal(size=(k, n_features)).astype(np.float32)
    d = ((x[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(axis=-1)
    lab, dist, margin = _nearest(x, centers, margin=True)
    np.testing.assert_array_equal(lab, np.argmin(d, axis=1))
    np.testing.assert_allclose(dist, d.min(axis=1), rtol=1e-4, atol=1e-4)
    if k == 1:
        assert np.isinf(margin).all()
    else:
        r = np.sort(np.sqrt(d), axis=1)
        np.testing.assert_allclose(margin, r[:, 1] - r[:, 0], rtol=1e-3, atol=1e-3)
    lab2, dist2 = _nearest(x, centers)  # without the margin: the same labels and distances
    np.testing.assert_array_equal(lab2, lab)
    np.testing.assert_array_equal(dist2, dist)


def test_refinement_stops_when_no_pixel_can_change_cluster():
    rng = np.random.default_rng(8)
    img, gt = _blobs(rng, shape=(120, 120))  # 14,400 pixels: the fit sees a sample of them
    events = []
    res = cluster_image(img, 3, tol=0.0, progress=events.append)
    # tol=0: only the margin test can stop it, and on separated blobs one pass is enough...
    assert [e.stage for e in events].count("refine") == 1
    # ...because it is a fixed point: every pixel is nearest to its own cluster's mean
    d = ((img[..., None, :] - res.centers) ** 2).sum(axis=-1)
    np.testing.assert_array_equal(res.labels, np.argmin(d, axis=-1) + 1)
    assert adjusted_rand_score(gt.ravel(), res.labels.ravel()) == 1.0


def test_refinement_goes_on_while_pixels_can_change_cluster():
    # a continuous spread of pixels: every pass moves some across the cluster borders
    # (90,000 pixels: above ALL_ROWS, so refined pass by pass rather than settled whole)
    rng = np.random.default_rng(9)
    img = rng.random((300, 300, 2))
    events = []
    res = cluster_image(img, 6, tol=0.0, max_refine=4, progress=events.append)
    refine = [e for e in events if e.stage == "refine"]
    assert [e.done for e in refine[:5]] == [1, 2, 3, 4, 1]  # all 4, then the recovery's
    refined = [e.inertia for e in refine[:4]]
    assert refined == sorted(refined, reverse=True)
    assert res.inertia <= refined[-1]


def test_a_small_image_is_settled_whole():
    # the same spread, 10,000 pixels: searched and settled on every pixel, so a pass or two
    # over all pixels end at a fixed point of Lloyd (each pixel nearest its cluster's mean)
    rng = np.random.default_rng(9)
    img = rng.random((100, 100, 2))
    best = KMeans(6, n_init=10, random_state=0).fit(img.reshape(-1, 2)).inertia_
    for seed in range(4):  # seeds 0 and 3 ended 28 and 18 pixels short of it, before a fix
        events = []
        res = cluster_image(img, 6, random_state=seed, progress=events.append)
        assert [e.stage for e in events].count("refine") <= 3
        d = ((img[..., None, :] - res.centers) ** 2).sum(axis=-1)
        assert np.count_nonzero(res.labels != np.argmin(d, axis=-1) + 1) <= 2  # float32 ties
        assert res.inertia <= best * 1.001


def test_many_clusters_stay_close_to_full_kmeans():
    # 48 clusters of a photo's colours: screening the starts on too few rows per cluster
    # cost 2.7-3.1% of inertia at these seeds; against 3 full scikit-learn runs
    photo = sample_photo()[::2, ::2]
    pixels = photo[photo[..., 3] > 0][:, :3].astype(np.float64)
    best = KMeans(48, n_init=3, random_state=0).fit(pixels).inertia_
    for seed in (0, 2):
        assert cluster_image(photo, 48, random_state=seed).inertia <= best * 1.025


def _materials_scene(seed: int = 0, noise: float = 0.0):
    """Indian Pines' ground-truth layout (17 classes, 20 to 10,776 of 21,025 pixels) with a
    smooth, distinct 224-band spectrum per class, noise-free unless ``noise`` (its std)."""
    import scipy.io

    gt = scipy.io.loadmat(DATA / "hsi" / "Indian_pines_gt.mat")["y"].astype(np.intp)
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, 224)
    spectra = np.zeros((17, 224))
    for m in range(17):
        for _ in range(3):
            centre, width = rng.uniform(), rng.uniform(0.05, 0.3)
            spectra[m] += rng.uniform(0.2, 1) * np.exp(-0.5 * ((wl - centre) / width) ** 2)
    cube = spectra[gt] + rng.normal(0, noise, (*gt.shape, 224)) if noise else spectra[gt]
    return cube.astype(np.float32), gt, spectra


@pytest.mark.parametrize(("k", "noise"), [(17, 0.0), (17, 0.01), (18, 0.01), (20, 0.01)])
def test_a_20_pixel_material_gets_its_own_cluster_for_every_seed(k, noise):
    cube, gt, _ = _materials_scene(noise=noise)
    assert np.bincount(gt.ravel()).min() == 20
    tiny = gt == np.argmin(np.bincount(gt.ravel()))
    for seed in range(10):
        labels = cluster_image(cube, k, random_state=seed).labels
        (own,) = np.unique(labels[tiny])  # all 20 pixels in one cluster...
        assert (labels[~tiny] != own).all(), seed  # ...which holds nothing else


def test_one_cluster_short_merges_the_two_most_alike_materials_for_every_seed():
    """k = materials - 1 on a noise-free scene: the best clustering merges the pair whose
    merge costs least, n_a n_b / (n_a + n_b) |mu_a - mu_b|^2; no seed may do worse by 1%."""
    cube, gt, spectra = _materials_scene()
    n = np.bincount(gt.ravel()).astype(float)
    d2 = ((spectra[:, None] - spectra[None]) ** 2).sum(-1)
    cost = n[:, None] * n[None] / (n[:, None] + n[None]) * d2
    best = cost[np.triu_indices(17, 1)].min()
    x = cube.reshape(-1, 224).astype(np.float64)
    for seed in range(10):
        labels = cluster_image(cube, 16, random_state=seed).labels.ravel()
        inertia = sum(((x[labels == v] - x[labels == v].mean(0)) ** 2).sum() for v in range(1, 17))
        assert inertia <= 1.01 * best, (seed, inertia / best)


def test_parameters_record_the_engine_version():
    from napari_spectral_clusters import __version__

    res = cluster_image(np.random.default_rng(0).random((6, 7, 3)), 2)
    assert res.params["version"] == __version__ == res.model.params["version"]


def test_a_small_cube_is_settled_in_full_feature_space():
    # 64 bands, 25,600 pixels, k = 8 (twice its materials: clusters split along the noise,
    # outside the leading principal components): settled in those components only, the
    # refinement ran 21 passes over all pixels and still left 126-174 pixels off their
    # nearest centre
    cube, _, _ = synthetic_cube((160, 160))
    x = np.moveaxis(cube, 0, -1).reshape(-1, cube.shape[0]).astype(np.float64)
    for seed in range(2):
        events = []
        res = cluster_image(cube, 8, channel_axis=0, random_state=seed, progress=events.append)
        assert [e.stage for e in events].count("refine") <= 4
        d = (x**2).sum(1)[:, None] - 2 * x @ res.centers.T + (res.centers**2).sum(1)
        assert np.count_nonzero(res.labels.ravel() != d.argmin(1) + 1) <= 0.001 * len(x)


def test_only_an_image_in_memory_is_searched_whole(monkeypatch):
    # searching whole copies every pixel's features: a lazy cube's memory must stay a few
    # blocks, so it takes the coreset path however small it is
    from napari_spectral_clusters import kmeans, lazy

    monkeypatch.setattr(lazy, "READ_ONCE_SHARE", 0.0)
    calls = []
    every_row = kmeans.CoresetRates.every_row
    monkeypatch.setattr(
        kmeans.CoresetRates,
        "every_row",
        classmethod(lambda cls, k: calls.append(k) or every_row(k)),
    )
    img = np.random.default_rng(3).random((64, 64, 5)).astype(np.float32)
    cluster_image(da.from_array(img, chunks=(16, 16, 5)), 4)
    assert calls == []
    cluster_image(img, 4)
    assert calls == [4]
