"""A pass's sums over rows stored band after band (one-hot products) equal those gathered
by label, for float32 and float64 centres and any k; non-finite centres take the gather."""

import numpy as np
import pytest

from napari_spectral_clusters.kmeans import Accumulator, nearest


@pytest.mark.parametrize("k", [3, 20, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_by_column_equal_sums_gathered(k, dtype):
    rng = np.random.default_rng(k)
    x = np.asfortranarray(rng.random((5000, 40), dtype=np.float32))  # band after band
    centers = x[rng.choice(len(x), k, replace=False)].astype(dtype)
    lab, dist, gap = nearest(x, centers, margin=True)
    by_column = Accumulator(centers, 40, True)
    by_column.add(lab, None, x, dist, None, gap)
    gathered = Accumulator(centers, 40, True)
    gathered.add(lab, None, np.ascontiguousarray(x), dist, None, gap)  # pixel by pixel
    np.testing.assert_array_equal(by_column.counts, gathered.counts)
    # both are the clusters' sums and squared deviations up to float32 sums over the rows
    # (in other orders: 2e-6 apart), as float64 sums over every row give them
    x64 = x.astype(np.float64)
    sums, sq = np.zeros_like(by_column.sums), np.zeros_like(by_column.sq)
    np.add.at(sums, lab, x64)
    np.add.at(sq, lab, (x64 - centers[lab].astype(np.float64)) ** 2)
    for acc in (by_column, gathered):
        np.testing.assert_allclose(acc.sums, sums, rtol=1e-5)
        np.testing.assert_allclose(acc.sq, sq, rtol=1e-5)


def test_a_centre_that_is_not_finite_takes_the_gather():
    """0 x inf is NaN: a free id's NaN centre must not poison the one-hot product."""
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.random((1000, 20), dtype=np.float32))
    centers = x[:3].copy()
    centers[1] = np.nan  # a free id (stable_ids): never the nearest
    lab, dist, gap = nearest(x, centers, margin=True)
    acc = Accumulator(centers, 20, True)
    acc.add(lab, None, x, dist, None, gap)
    assert np.isfinite(acc.sums).all() and np.isfinite(acc.sq).all()
    assert acc.counts[1] == 0 and acc.counts.sum() == 1000
