"""What a saved clusters layer says of its clusters agrees with its labels as they are.

The widget recounts a result after painting when asked (*Refresh from labels*; *Save…* does
it first). napari's own *File ▸ Save Selected Layers* writes what the layers hold: labels
painted since the last count, beside the counts, colours and means of the labels before. The
writers bring the summary up to date from the labels alone: counts counted again, a colour
for every id painted beyond the clustering's, and the means and spreads of the clusters that
painting changed, which only the image could give, marked unknown (NaN); the clustering's
inertia no longer describes the labels, so it is left out.

Painting is noticed by the labels' :func:`fingerprint`, which a result records when its
labels are made (``labels_checksum``) and counted again (``counted_checksum``): a stroke
that moves as many pixels into a cluster as out of it leaves the counts as they were (and
the means nearly so: they are kept), but the recoloured image must be painted again.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["MAX_LABEL", "PER_CLUSTER", "fingerprint", "follow_labels"]

#: The statistics a result's summary holds per cluster (row ``i`` is label ``i + 1``).
PER_CLUSTER = ("centers", "std")
#: Labels above this carry no row of statistics or colour in a saved file (one row per
#: label up to the largest: an id of 10 million painted by mistake would ask for gigabytes).
MAX_LABEL = 65_535


def fingerprint(labels: np.ndarray) -> int:
    """A checksum of labels in memory (CRC-32 of their bytes), to notice painting later."""
    return zlib.crc32(np.ascontiguousarray(labels).view(np.uint8))


def follow_labels(labels: np.ndarray, metadata: dict) -> tuple[dict, bool]:
    """``metadata`` of a clusters layer, its summary brought up to date with ``labels`` (in
    memory); and whether they had changed since counted. ``metadata`` is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.saved_summary import follow_labels
    >>> meta = {"counts": np.array([2, 2]), "centers": np.array([[0.0], [1.0]]),
    ...         "colors": np.zeros((2, 3), np.uint8), "inertia": 0.5}
    >>> new, changed = follow_labels(np.array([[1, 1, 2, 3]]), meta)
    >>> changed, new["counts"].tolist(), new["centers"].ravel().tolist(), "inertia" in new
    (True, [2, 1, 1], [0.0, nan, nan], False)
    """
    from .color import colors_up_to  # colorcet takes a second: only for a painted layer

    counts_before = metadata.get("counts")
    if counts_before is None:
        return dict(metadata), False  # not a result of ours: nothing it says to follow
    labels = np.asarray(labels)
    now = fingerprint(labels)
    if metadata.get("counted_checksum") == now:
        # recounted from these very labels with the image, which leaves out the pixels
        # without data (transparent, NaN) that a count of the labels alone would add
        return dict(metadata), False
    counted = metadata.get("counted_checksum", metadata.get("labels_checksum"))
    same_pixels = counted is None or counted == now
    before = np.asarray(counts_before, dtype=np.int64).ravel()
    top = int(labels.max(initial=0))
    if top > MAX_LABEL or labels.min(initial=0) < 0:  # no rows for such ids: say edited only
        out = {key: value for key, value in metadata.items() if key != "inertia"}
        return {**out, "hand_edited": True}, True
    top = max(top, len(before))
    counts = np.bincount(labels.ravel(), minlength=top + 1)[1:].astype(np.int64)
    padded = np.zeros(top, np.int64)
    padded[: len(before)] = before
    changed = counts != padded
    if not changed.any() and same_pixels:
        return dict(metadata), False
    # pixels moved between clusters, as many each way, leave the counts and (nearly) the
    # means as they were: kept, and the layer marked edited; only changed counts lose them
    out = {key: value for key, value in metadata.items() if key != "inertia"}
    out["counts"] = counts
    out["hand_edited"] = True
    out["counted_checksum"] = now  # what the counts are now of
    if metadata.get("colors") is not None:
        out["colors"] = colors_up_to(metadata["colors"], top)
    for key in PER_CLUSTER:
        if metadata.get(key) is None:
            continue
        rows = np.asarray(metadata[key], dtype=np.float64)
        if rows.ndim != 2:
            continue  # a damaged file's: left as it was
        grown = np.full((top, rows.shape[1]), np.nan)
        n = min(len(rows), top)
        grown[:n] = rows[:n]
        grown[changed] = np.nan  # painted: only the image can say its mean and spread
        out[key] = grown
    return out, True
