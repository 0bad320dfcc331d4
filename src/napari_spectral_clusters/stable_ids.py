"""Cluster ids that stay put: a new clustering's clusters take the ids (and colours) of the
previous clustering's clusters they match, so re-running with another k, seed or
preprocessing does not renumber the materials a scientist has already named.

Matching is an assignment problem: each new centre is paired with at most one previous centre
so that the summed squared distances between paired centres (in the input's units) is least —
the Hungarian method, ``scipy.optimize.linear_sum_assignment``. New clusters beyond the
previous ones take the next free ids; a previous id no new cluster matches stays free (its row
holds NaN centres and no pixel), so the other ids do not move.

Example
-------
>>> import numpy as np
>>> from napari_spectral_clusters.stable_ids import match_ids
>>> previous = np.array([[0.0, 0.0], [10.0, 10.0], [5.0, 0.0]])
>>> new = np.array([[9.5, 10.2], [0.1, 0.0], [5.0, 0.2], [20.0, 20.0]])  # one more cluster
>>> match_ids(previous, new).tolist()
[2, 1, 3, 4]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._arrays import is_lazy
from .cluster import ClusterResult
from .color import MIN_DELTA_E, categorical_colors, delta_e
from .kmeans import label_dtype

__all__ = ["describe_ids", "keep_ids", "match_ids"]


def describe_ids(ids) -> str:
    """Cluster ids for a message, runs of three or more as ranges: a re-run at k = 50 after
    k = 3 listed all 47 new ids.

    >>> from napari_spectral_clusters.stable_ids import describe_ids
    >>> describe_ids([1, 2, 3, 5, 7, 8, 9, 10])
    '1-3, 5, 7-10'
    >>> describe_ids([4, 5])
    '4, 5'
    """
    ids = sorted({int(i) for i in ids})
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = []
    for run in runs:
        parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(i) for i in run]
    return ", ".join(parts)


def match_ids(previous_centers, centers) -> np.ndarray:
    """The id (1-based) each row of ``centers`` takes: the id of the previous cluster it is
    paired with (least summed squared distance; rows of ``previous_centers`` holding NaN are
    free ids and match nothing), else the next ids after the previous ones, in row order."""
    previous = np.asarray(previous_centers, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if previous.ndim != 2 or centers.ndim != 2 or previous.shape[1] != centers.shape[1]:
        raise ValueError(f"centres of shape {centers.shape} cannot be matched to {previous.shape}")
    ids = np.zeros(len(centers), dtype=np.int64)
    usable = np.flatnonzero(np.isfinite(previous).all(axis=1))
    found = np.isfinite(centers).all(axis=1)
    rows = np.flatnonzero(found)
    if len(usable) and len(rows):
        cost = ((centers[rows, None, :] - previous[None, usable, :]) ** 2).sum(axis=2)
        new_rows, old_rows = linear_sum_assignment(cost)
        ids[rows[new_rows]] = usable[old_rows] + 1
    unmatched = np.flatnonzero(ids == 0)
    ids[unmatched] = len(previous) + 1 + np.arange(len(unmatched))
    return ids


def keep_ids(
    result: ClusterResult, previous_centers, previous_colors=None
) -> tuple[ClusterResult, np.ndarray]:
    """``result`` renumbered so its clusters keep the ids of the previous ones they match
    (:func:`match_ids`), and their colours (``previous_colors``, row ``i`` = id ``i + 1``);
    returns it and the id of each of ``result``'s clusters (its labels ``1..k``).

    Row ``i`` of the new result's centres, spreads, counts, colours and model is id ``i + 1``;
    an id no cluster took holds NaN centres, no pixel and its previous colour. The labels,
    the recoloured image (its alpha plane unchanged) and the model follow, so applying the
    model to the image gives these ids. Numpy and dask results alike (dask stays lazy).
    """
    ids = match_ids(previous_centers, result.centers)
    n = int(max(ids.max(), len(previous_centers)))
    k = len(result.centers)
    rows = ids - 1

    def placed(values, fill):
        out = np.full((n, *values.shape[1:]), fill, dtype=np.result_type(values, type(fill)))
        out[rows] = values
        return out

    # a matched cluster keeps its previous colour; a new one (or one with no colour given)
    # wears its own, unless it looks like one already worn (palette colours are given by
    # row, so the new 4th cluster of a re-run may wear what the kept 3rd wears): then the
    # first palette colour unlike all; a free id keeps its colour for when it comes back
    previous = np.zeros((0, 3), np.uint8) if previous_colors is None else previous_colors
    previous = np.asarray(previous, np.uint8)[:n]
    colors = np.zeros((n, 3), np.uint8)
    colors[: len(previous)] = previous
    new = rows >= len(previous)
    colors[rows[new]] = result.colors[new]
    moved = _tell_new_apart(colors, len(previous), np.sort(rows[new]))
    params = {**result.params, "ids_kept": True}
    how = str(params.get("colors", ""))
    if moved and how.startswith("true"):  # say where it says how
        ids_moved = describe_ids(np.asarray(moved) + 1)
        params["colors"] = f"{how}; palette colours for new id(s) {ids_moved}, "
        params["colors"] += "whose own looked like a kept cluster's"
    elif how.startswith("categorical") and (~new).any():
        # the run's own colours fell back to the palette, but the kept ids wear what they
        # wore: the palette's reason (two of the run's clusters alike) is not what is shown
        kept, fresh = describe_ids(rows[~new] + 1), describe_ids(rows[new] + 1)
        params["colors"] = f"earlier colours for kept id(s) {kept}" + (
            f"; palette colours for new id(s) {fresh}" if fresh else ""
        )
    model = result.model
    model = replace(
        model,
        centers=placed(np.asarray(model.centers, np.float32), np.float32(np.nan)).astype(
            np.float32
        ),
        colors=colors,
    )
    lut = np.zeros(k + 1, dtype=label_dtype(n))
    lut[1:] = ids
    labels = _mapped(result.labels, lut)
    recolored = _recolored(result.recolored, result.labels, lut, colors)
    renumbered = replace(
        result,
        labels=labels,
        recolored=recolored,
        centers=placed(result.centers, np.nan),
        std=placed(result.std, np.nan),
        colors=colors,
        counts=placed(result.counts, 0).astype(np.int64),
        model=model,
        params=params,
    )
    return renumbered, ids


def _tell_new_apart(colors: np.ndarray, n_kept: int, new_rows: np.ndarray) -> list[int]:
    """Give each of ``new_rows`` (in order) whose colour is within
    :data:`~.color.MIN_DELTA_E` of a kept one (the first ``n_kept`` rows) or an earlier new
    one the first categorical colour far enough from all those (the farthest when none is);
    returns the rows given one."""
    moved = []
    taken = np.zeros(len(colors), bool)
    taken[:n_kept] = True
    palette = categorical_colors(256)
    for row in new_rows:
        if taken.any() and delta_e(colors[taken], colors[row]).min() < MIN_DELTA_E:
            nearest = delta_e(palette[:, None], colors[taken][None]).min(axis=1)
            fits = np.flatnonzero(nearest >= MIN_DELTA_E)
            colors[row] = palette[fits[0] if len(fits) else np.argmax(nearest)]
            moved.append(int(row))
        taken[row] = True
    return moved


def _mapped(labels, lut: np.ndarray):
    if is_lazy(labels):
        return labels.map_blocks(lambda block: lut[block], dtype=lut.dtype)
    return lut[np.asarray(labels)]


def _recolored(recolored, old_labels, lut: np.ndarray, colors: np.ndarray):
    """The recoloured image in the new colours, its alpha plane (if any) unchanged."""
    rgb = np.zeros((len(lut), 3), dtype=recolored.dtype)
    scale = 257 if recolored.dtype == np.uint16 else 1
    rgb[1:] = colors[lut[1:] - 1].astype(recolored.dtype) * scale

    def paint(image, labels):
        if labels.ndim == image.ndim:  # dask hands the labels with the channel axis added
            labels = labels[..., 0]
        out = np.array(image, copy=True)
        out[..., :3] = rgb[labels]
        return out

    if is_lazy(recolored) or is_lazy(old_labels):
        import dask.array as da

        image = da.asarray(recolored)
        labels = da.asarray(old_labels).rechunk(image.chunks[:-1])
        return da.map_blocks(paint, image, labels[..., None], dtype=image.dtype)
    return paint(recolored, np.asarray(old_labels))
