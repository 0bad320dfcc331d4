"""Pure rules about napari layers the widget clusters (no Qt): which axis holds the bands,
which axes, pixels and transform a result keeps, the wavelengths of a layer, what a plot's
x axis is, a clusters layer's features table, and whether a result layer holds the user's
hand edits."""

from __future__ import annotations

import numpy as np
import pandas as pd
from napari.layers import Image, Labels

from .._arrays import is_lazy
from ..saved_summary import fingerprint

__all__ = [
    "band_histograms",
    "clusters_table",
    "colors_for",
    "features_of",
    "has_hand_edits",
    "labels_checksum",
    "n_features",
    "pixel_sample",
    "pixel_spectrum",
    "spatial_axes",
    "spatial_shape",
    "spectrum_axis",
    "sub_transform",
    "wavelengths_of",
]


def features_of(layer: Image, choice="auto") -> tuple[int | None, bool]:
    """The layer's feature (band/colour) axis in its data, and whether it carries alpha.

    RGB(A) layers: the colour axis. Otherwise the user's ``choice`` (an axis, or "none" for
    greyscale); for "auto", the axis the reader recorded in metadata, else the first axis
    (napari's channel-first convention) for 3-D and larger, none for 2-D images.
    """
    if layer.rgb:
        return -1, layer.data.shape[-1] == 4
    if choice == "none":
        return None, False
    if isinstance(choice, int):
        return choice, False
    recorded = layer.metadata.get("channel_axis")
    if isinstance(recorded, int | np.integer) and -layer.ndim <= recorded < layer.ndim:
        return int(recorded), False  # anything else (a damaged file's) falls back below
    return (0 if layer.ndim >= 3 else None), False


def n_features(layer: Image, axis: int | None, alpha: bool) -> int:
    """Features per pixel (:func:`features_of`'s ``axis`` and ``alpha``): bands or colours
    along ``axis`` (alpha is not one), 1 without."""
    return 1 if axis is None else layer.data.shape[axis] - int(alpha)


#: The columns of a clusters layer's features table that the plugin writes.
TABLE_COLUMNS = ("index", "name", "pixels", "fraction")


def clusters_table(labels, names, counts, old=None) -> pd.DataFrame:
    """A clusters layer's features table: the background row, then one row per cluster
    ``labels`` with its name and pixel count. Columns a user added to the ``old`` table are
    kept, row by cluster id (empty for a cluster the old table had no row for): a table
    written again after painting or a merge does not drop them.

    Examples
    --------
    >>> import pandas as pd
    >>> old = pd.DataFrame({"index": [0, 1, 2], "name": ["background", "a", "b"],
    ...                     "pixels": [0, 3, 1], "fraction": [0, 0.75, 0.25],
    ...                     "note": ["", "cells", "dust"]})
    >>> clusters_table([2, 3], ["b", "new"], [2, 2], old)["note"].tolist()
    ['', 'dust', '']
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    total = max(int(counts.sum()), 1)
    table = pd.DataFrame(
        {
            "index": np.concatenate([[0], labels]),
            "name": ["background", *map(str, names)],
            "pixels": np.concatenate([[0], counts]),
            "fraction": np.concatenate([[0.0], counts / total]),
        }
    )
    extra = [] if old is None else [c for c in old.columns if c not in TABLE_COLUMNS]
    if extra and "index" in old.columns:
        by_id = old.drop_duplicates("index").set_index("index")[extra]
        for column in extra:  # empty: NaN in a column of numbers, "" in any other
            values = by_id[column].reindex(table["index"])
            if not pd.api.types.is_numeric_dtype(values):
                values = values.astype(object).fillna("")  # a categorical one too
            table[column] = values.to_numpy()
    return table


def labels_checksum(labels) -> int | str:
    """A fingerprint of labels as a clustering wrote them, to notice painting later: of the
    values in memory, or of a dask array's graph (napari paints lazy labels too, and each
    stroke gives the array a new graph; reading every block to hash it could take minutes)."""
    if is_lazy(labels):
        return f"dask:{labels.name}"
    return fingerprint(labels)


def has_hand_edits(layer: Labels) -> bool:
    """The user changed this result layer: painted it, or merged, renamed or recoloured its
    clusters. A labels layer without the fingerprint we record (not ours, or its metadata
    lost) counts as edited: it is not ours to overwrite."""
    meta = layer.metadata
    if meta.get("hand_edited"):
        return True
    if set(getattr(layer, "features", {}).keys()) - set(TABLE_COLUMNS):
        return True  # columns of the user's own in its table (notes per cluster)
    if "labels_checksum" not in meta:
        return True
    return labels_checksum(layer.data) != meta["labels_checksum"]


def colors_for(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Colours of ``labels``: the clustering's for its own, well-separated ones for labels
    painted beyond them."""
    from ..color import colors_up_to  # colorcet takes a second: not for the reader

    table = colors_up_to(colors, int(max(np.max(labels, initial=0), len(colors))))
    return table[np.asarray(labels) - 1]


def wavelengths_of(layer: Image, data, channel_axis):
    """The layer's wavelengths when they describe the chosen band axis, else None."""
    wl = layer.metadata.get("wavelengths")
    if wl is None or layer.rgb or channel_axis is None:
        return None
    try:
        wl = np.asarray(wl, dtype=np.float64).ravel()
    except (TypeError, ValueError):  # a damaged file's metadata: no wavelengths
        return None
    ok = len(wl) == data.shape[channel_axis] and np.isfinite(wl).all()
    return wl if ok else None


def spatial_axes(layer: Image, channel_axis: int | None) -> list[int]:
    """Layer dimensions that remain in the result (all but the band axis)."""
    if layer.rgb or channel_axis is None:
        return list(range(layer.ndim))
    drop = channel_axis % layer.ndim
    return [d for d in range(layer.ndim) if d != drop]


def spatial_shape(shape: tuple, rgb: bool, channel_axis: int | None) -> tuple:
    """The shape of an image's pixels: ``shape`` without its colour or band axis."""
    if rgb:
        return tuple(shape[:-1])
    if channel_axis is None:
        return tuple(shape)
    drop = channel_axis % len(shape)
    return tuple(n for i, n in enumerate(shape) if i != drop)


def spectrum_axis(n: int, rgb: bool, wavelengths) -> tuple:
    """A spectra plot's x axis for ``n`` features: ``(x, label, tick names or None)`` --
    R, G, B for pictures, wavelengths when they describe the bands, else band numbers."""
    if rgb and n == 3:
        return np.arange(3), "colour channel (R, G, B)", ["R", "G", "B"]
    if wavelengths is not None and len(wavelengths) == n:
        return np.asarray(wavelengths), "wavelength (nm)", None
    return np.arange(n), "band", None


def pixel_spectrum(data, where: tuple, channel_axis: int | None, rgb: bool):
    """The features of the pixel at ``where`` (its spatial index): a picture's R, G, B as
    stored, a cube's spectrum as float64; None for a greyscale image (one value: nothing to
    draw as a spectrum)."""
    if rgb:
        return np.asarray(data[tuple(where)])[:3]  # the picture's own values (uint8...)
    if channel_axis is None:
        return None
    index = list(where)
    index.insert(channel_axis % data.ndim, slice(None))
    return np.asarray(data[tuple(index)], dtype=np.float64)


def pixel_sample(data, channel_axis: int, n: int = 2000) -> np.ndarray:
    """About ``n`` finite spectra of a cube, evenly spread over its pixels (a regular grid:
    a lazy cube computes only that), as (pixels, bands) float64."""
    axis = channel_axis % data.ndim
    spatial = [d for d in range(data.ndim) if d != axis]
    per_axis = max(1, round(n ** (1 / len(spatial))))
    index = [slice(None)] * data.ndim
    for d in spatial:
        index[d] = slice(None, None, max(1, data.shape[d] // per_axis))
    grid = np.asarray(data[tuple(index)], dtype=np.float64)
    rows = np.moveaxis(grid, axis, -1).reshape(-1, data.shape[axis])
    return rows[np.isfinite(rows).all(axis=1)]


def band_histograms(values: np.ndarray, labels: np.ndarray, clusters, *, bins: int = 50):
    """Each cluster's histogram of a one-band image's ``values`` on shared bin edges:
    ``(edges, [counts per cluster])``; None when the shapes differ."""
    if values.shape != labels.shape:
        return None
    inside = np.isfinite(values) & (labels > 0)
    edges = np.histogram_bin_edges(values[inside], bins=bins)
    return edges, [np.histogram(values[inside & (labels == k)], bins=edges)[0] for k in clusters]


def sub_transform(layer: Image, keep: list[int]) -> dict:
    """The layer's scale, translate, rotate, shear, affine (and units, on a napari that has
    them) restricted to ``keep`` axes."""
    n = layer.ndim
    shear = np.eye(n)
    shear[np.triu_indices(n, 1)] = layer.shear
    affine = layer.affine.affine_matrix
    homog = [*keep, n]
    units = {"units": tuple(layer.units[i] for i in keep)} if hasattr(layer, "units") else {}
    return {
        **units,
        "scale": np.asarray(layer.scale)[keep],
        "translate": np.asarray(layer.translate)[keep],
        "rotate": np.asarray(layer.rotate)[np.ix_(keep, keep)],
        "shear": shear[np.ix_(keep, keep)],
        "affine": affine[np.ix_(homog, homog)],
    }
