"""Edits of a cluster labelling that keep every other cluster's id: a selection of pixels made a
new cluster, one cluster split into sub-clusters. Each returns a new labels array; the one
given is never modified (it may be a user's hand-edited Labels layer).

>>> from napari_spectral_clusters.label_edits import new_cluster
>>> import numpy as np
>>> labels = np.array([[1, 1, 2], [2, 2, 0]])
>>> out, new = new_cluster(labels, labels == 2)
>>> out.tolist(), new
([[1, 1, 3], [3, 3, 0]], 3)
"""

from __future__ import annotations

import numpy as np

from .cluster import cluster_image

__all__ = ["free_ids", "new_cluster", "split_cluster"]


def free_ids(labels: np.ndarray, n: int) -> list[int]:
    """The ``n`` ids after the largest in use (0 is never one: it marks unclustered pixels)."""
    top = int(np.max(labels, initial=0))
    return list(range(top + 1, top + 1 + n))


def _widened(labels: np.ndarray, top: int) -> np.ndarray:
    """A copy of ``labels`` in an integer type that holds ``top``."""
    dtype = np.promote_types(labels.dtype, np.min_scalar_type(top))
    if not np.issubdtype(dtype, np.integer):  # past int64/uint64: no integer type holds it
        raise ValueError(f"cluster id {top} does not fit the labels' {labels.dtype}")
    return np.array(labels, dtype=dtype, copy=True)


def _integer_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"cluster labels are integers, not {labels.dtype}")
    return labels


def new_cluster(labels: np.ndarray, selection: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels`` with the ``selection`` (a boolean mask of its shape) as one new cluster, the
    next free id; returns (labels, that id).

    Raises
    ------
    ValueError
        The selection does not match the labels' shape, or selects no pixel.
    """
    labels = _integer_labels(labels)
    selection = np.asarray(selection, dtype=bool)
    if selection.shape != labels.shape:
        raise ValueError(f"a selection of shape {selection.shape} for labels {labels.shape}")
    if not selection.any():
        raise ValueError("the selection holds no pixel")
    (new,) = free_ids(labels, 1)
    out = _widened(labels, new)
    out[selection] = new
    return out, new


def split_cluster(
    labels: np.ndarray,
    image,
    label: int,
    n: int,
    *,
    channel_axis: int | None = -1,
    **clustering,
) -> tuple[np.ndarray, list[int]]:
    """``labels`` with cluster ``label`` split into ``n`` sub-clusters by KMeans on its pixels
    of ``image`` (``clustering``: :func:`~.cluster_image` options, e.g. ``preprocessing``).

    The largest sub-cluster keeps ``label`` (and so its colour); the others take the next free
    ids, largest first. Every other cluster keeps its id. Returns (labels, the sub-clusters'
    ids, ``label`` first).

    Raises
    ------
    ValueError
        ``label`` is not in ``labels``, ``n`` is below 2, or the image does not match.
    ClusteringError
        The cluster's pixels cannot be split into ``n`` (fewer distinct values).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.label_edits import split_cluster
    >>> image = np.zeros((2, 4, 1))
    >>> image[:, 2:] = 1.0  # cluster 1 holds two materials: 0 on the left, 1 on the right
    >>> labels = np.array([[1, 1, 1, 1], [1, 1, 1, 2]])
    >>> out, ids = split_cluster(labels, image, 1, 2)
    >>> ids, out.tolist()
    ([1, 3], [[1, 1, 3, 3], [1, 1, 3, 2]])
    """
    labels = _integer_labels(labels)
    if int(n) < 2:
        raise ValueError(f"a cluster is split into at least 2, not {n}")
    inside = labels == label
    if not inside.any():
        raise ValueError(f"no pixel has label {label}")
    mask = clustering.pop("mask", None)  # "only inside": narrows the cluster's pixels
    where = inside if mask is None else inside & np.asarray(mask, dtype=bool)
    result = cluster_image(image, int(n), channel_axis=channel_axis, mask=where, **clustering)
    sub = np.asarray(result.labels)  # 1 = the largest sub-cluster, 0 where not clustered
    ids = [int(label), *free_ids(labels, result.n_clusters - 1)]
    out = _widened(labels, max(ids))
    # a pixel of the cluster the engine left out (NaN, transparent, outside the mask) keeps
    # the cluster's id: it may have been painted by hand
    lut = np.array([label, *ids], dtype=out.dtype)
    out[inside] = lut[sub[inside]]
    return out, ids
