"""A saved clusters layer's summary follows its labels: painted ids, moved pixels, ids too
large for a table."""

import numpy as np

from napari_spectral_clusters.saved_summary import fingerprint, follow_labels


def _result(labels: np.ndarray) -> dict:
    counts = np.bincount(labels.ravel(), minlength=4)[1:]
    return {
        "counts": counts,
        "centers": np.arange(6, dtype=float).reshape(3, 2),
        "std": np.ones((3, 2)),
        "colors": np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8),
        "inertia": 12.5,
        "labels_checksum": fingerprint(labels),
    }


LABELS = np.array([[1, 1, 2, 2], [3, 3, 3, 0]], np.uint8)


def test_labels_as_counted_are_left_alone():
    meta = _result(LABELS)
    out, changed = follow_labels(LABELS.copy(), meta)
    assert not changed and out["inertia"] == 12.5 and "hand_edited" not in out


def test_pixels_moved_as_many_each_way_are_noticed():
    """One pixel of 1 and one of 2 swapped: the counts are as they were, the labels not."""
    meta = _result(LABELS)
    swapped = LABELS.copy()
    swapped[0, 1], swapped[0, 2] = 2, 1
    out, changed = follow_labels(swapped, meta)
    assert changed and out["hand_edited"] and "inertia" not in out
    np.testing.assert_array_equal(out["counts"], meta["counts"])
    np.testing.assert_array_equal(out["centers"], meta["centers"])  # nearly so: kept
    assert out["counted_checksum"] == fingerprint(swapped)
    _, changed = follow_labels(swapped, out)  # saved, reopened, saved again
    assert not changed


def test_a_recount_with_the_image_is_kept_as_it_counted():
    """Refresh from labels counts only pixels with data: one painted over a transparent pixel
    is not counted. The saved file says what the table said, not a count of labels alone."""
    painted = LABELS.copy()
    painted[1, 3] = 3  # a transparent pixel (label 0 after clustering), painted
    recounted = {
        **_result(LABELS),
        "counts": np.array([2, 2, 3]),  # as Refresh counted: the transparent one left out
        "hand_edited": True,
        "counted_checksum": fingerprint(painted),
    }
    out, changed = follow_labels(painted, recounted)
    assert not changed
    np.testing.assert_array_equal(out["counts"], [2, 2, 3])
    painted[0, 0] = 2  # painted again since: counted from the labels as they are now
    out, changed = follow_labels(painted, recounted)
    assert changed
    np.testing.assert_array_equal(out["counts"], [1, 3, 4])


def test_a_painted_id_gets_a_colour_and_unknown_statistics():
    meta = _result(LABELS)
    painted = LABELS.copy()
    painted[1, 3] = 5  # an unclustered pixel painted with a new id
    painted[1, 0] = 1  # and one of cluster 3 moved to 1
    out, changed = follow_labels(painted, meta)
    assert changed
    np.testing.assert_array_equal(out["counts"], [3, 2, 2, 0, 1])
    assert out["colors"].shape == (5, 3)
    np.testing.assert_array_equal(out["colors"][:3], meta["colors"])
    assert len({tuple(c) for c in out["colors"][[0, 1, 2, 4]].tolist()}) == 4
    np.testing.assert_array_equal(out["centers"][1], meta["centers"][1])  # 2: untouched
    assert np.isnan(out["centers"][[0, 2, 3, 4]]).all() and np.isnan(out["std"][4]).all()
    np.testing.assert_array_equal(meta["counts"], [2, 2, 3])  # the layer's own: unchanged


def test_an_id_too_large_for_a_table_asks_for_no_rows():
    """An id of ten million painted by mistake: no table of ten million rows (gigabytes),
    the layer only marked edited."""
    meta = _result(LABELS)
    painted = LABELS.astype(np.uint32)
    painted[0, 0] = 10_000_000
    out, changed = follow_labels(painted, meta)
    assert changed and out["hand_edited"] and "inertia" not in out
    assert out["centers"].shape == (3, 2) and out["colors"].shape == (3, 3)
