"""What a saved clusters layer says of its clusters agrees with its labels as they are.

The widget recounts a result after painting when asked (*Refresh from labels*; *Save…* does
it first). napari's own *File ▸ Save Selected Layers* writes what the layers hold: labels
painted since the last count, beside the counts, colours and means of the labels before. The
writers bring the summary up to date from the labels alone: counts counted again, a colour
for every id painted beyond the clustering's, and the means and spreads of the clusters that
painting changed, which only the image could give, marked unknown (NaN); the clustering's
inertia no longer describes the labels, so it is left out.
"""

from __future__ import annotations

import numpy as np

from .color import categorical_colors

__all__ = ["PER_CLUSTER", "colors_up_to", "follow_labels"]

#: The statistics a result's summary holds per cluster (row ``i`` is label ``i + 1``).
PER_CLUSTER = ("centers", "std")


def colors_up_to(colors: np.ndarray, top: int) -> np.ndarray:
    """(max(top, k), 3) uint8: the clustering's ``k`` colours, then well-separated categorical
    ones for the ids painted beyond them.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.saved_summary import colors_up_to
    >>> colors_up_to(np.zeros((2, 3), np.uint8), 3).shape
    (3, 3)
    """
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if top <= len(colors):
        return colors
    return np.concatenate([colors, categorical_colors(top)[len(colors) :]]).astype(np.uint8)


def follow_labels(labels: np.ndarray, metadata: dict) -> tuple[dict, bool]:
    """``metadata`` of a clusters layer, its summary brought up to date with ``labels`` (in
    memory); and whether anything had to change. ``metadata`` is not modified.

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
    counts_before = metadata.get("counts")
    if counts_before is None:
        return dict(metadata), False  # not a result of ours: nothing it says to follow
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError("cluster labels are 0 (unclustered) or more, not negative")
    before = np.asarray(counts_before, dtype=np.int64).ravel()
    top = max(int(labels.max(initial=0)), len(before))
    counts = np.bincount(labels.ravel(), minlength=top + 1)[1:].astype(np.int64)
    padded = np.zeros(top, np.int64)
    padded[: len(before)] = before
    if np.array_equal(counts, padded):
        return dict(metadata), False
    changed = counts != padded
    out = {key: value for key, value in metadata.items() if key != "inertia"}
    out["counts"] = counts
    out["hand_edited"] = True
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
