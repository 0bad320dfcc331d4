"""A density picture of many points coloured by cluster: the 2-D histogram a feature-space plot
shows when there are too many points to draw one by one (no Qt, no matplotlib).

Each bin wears the colour of the cluster most of its points belong to, brighter where more
points fall; with ``highlight`` the bins holding those clusters keep their colour and the rest
fade to grey.

>>> from napari_spectral_clusters.density import density_rgba
>>> import numpy as np
>>> xy = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
>>> rgba, extent = density_rgba(xy, np.array([1, 1, 2]), np.array([[255, 0, 0], [0, 0, 255]]),
...                             bins=2, extent=(0, 1, 0, 1))
>>> rgba.shape, rgba[0, 0, :3].tolist(), rgba[1, 1, :3].tolist(), float(rgba[0, 1, 3])
((2, 2, 4), [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], 0.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["DensityGrid", "density_rgba", "robust_extent"]

#: The colour of points in no cluster (label 0, or before any run).
UNCLUSTERED = (0.62, 0.62, 0.62)


def robust_extent(coords: np.ndarray, *, clip: float = 0.1) -> tuple[float, ...]:
    """(xmin, xmax, ymin, ymax) holding all but ``clip`` percent of the points at each end,
    with a 3 % margin (a few outliers must not shrink the cloud to a dot).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.density import robust_extent
    >>> points = np.column_stack([np.linspace(0, 1, 1001), np.linspace(0, 10, 1001)])
    >>> points[0] = (-1e6, 5)  # one outlier does not make the cloud a dot
    >>> [round(v, 2) for v in robust_extent(points)]
    [-0.03, 1.03, -0.28, 10.29]
    """
    finite = coords[np.isfinite(coords).all(axis=1)]
    if len(finite) == 0:
        return (0.0, 1.0, 0.0, 1.0)
    lo, hi = np.percentile(finite, [clip, 100 - clip], axis=0)
    out = []
    for a, b in zip(lo, hi, strict=True):
        span = b - a if b > a else max(abs(a), 1.0)
        out += [float(a - 0.03 * span), float(b + 0.03 * span)]
    return tuple(out)


class DensityGrid:
    """Which of ``bins`` x ``bins`` bins over ``extent`` each of the (n, 2) ``coords`` falls
    in, computed once; :meth:`picture` then colours them for any labels, colours or highlight
    (a table selection redraws without binning again).

    ``weight`` (n,): pixels each point stands for; ``extent`` (xmin, xmax, ymin, ymax):
    default :func:`robust_extent`; points outside it are not drawn.
    """

    def __init__(self, coords, *, weight=None, bins: int = 256, extent=None):
        coords = np.asarray(coords, dtype=np.float64)
        self.extent = robust_extent(coords) if extent is None else tuple(map(float, extent))
        self.bins = int(bins)
        x0, x1, y0, y1 = self.extent
        n = len(coords)
        with np.errstate(invalid="ignore"):
            ix = np.floor((coords[:, 0] - x0) / ((x1 - x0) or 1.0) * bins)
            iy = np.floor((coords[:, 1] - y0) / ((y1 - y0) or 1.0) * bins)
        ix[ix == bins] = bins - 1  # the right and top edges belong to the last bin
        iy[iy == bins] = bins - 1
        self.inside = (ix >= 0) & (ix < bins) & (iy >= 0) & (iy < bins)  # NaN compares False
        self.cell = (iy[self.inside] * bins + ix[self.inside]).astype(np.int64)
        weight = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
        self.weight = weight[self.inside]
        self.total = np.bincount(self.cell, weights=self.weight, minlength=bins * bins)

    def picture(self, labels, colors, *, highlight=None) -> np.ndarray:
        """The RGBA picture (bins x bins, float 0..1, row = y bin from the bottom, for
        ``imshow(origin="lower", extent=extent)``).

        Parameters
        ----------
        labels : (n,) int, or None
            Each point's cluster (0: none); None colours every bin :data:`UNCLUSTERED`.
        colors : (k, 3) uint8
            Colour of cluster ``i`` in row ``i - 1``.
        highlight : collection of int, optional
            Clusters to show in colour; bins without them turn faint grey.
        """
        bins, cell, weight, total = self.bins, self.cell, self.weight, self.total
        table = np.concatenate([[UNCLUSTERED], np.asarray(colors, dtype=np.float64)[:, :3] / 255])
        if labels is None:
            labels = np.zeros(len(cell), dtype=np.int64)
        else:
            labels = np.asarray(labels, dtype=np.int64)[self.inside]
            labels = np.where((labels >= 0) & (labels < len(table)), labels, 0)
        if highlight is not None:
            shown = np.isin(labels, np.fromiter(highlight, dtype=np.int64))
            majority = _majority(cell[shown], labels[shown], weight[shown], bins * bins)
        else:
            majority = _majority(cell, labels, weight, bins * bins)
        rgb = table[np.maximum(majority, 0)]
        # brightness: log density, so both a 10-pixel material and a 10,000-pixel one show
        top = np.log1p(total.max(initial=0.0)) or 1.0
        alpha = np.where(total > 0, 0.3 + 0.7 * np.log1p(total) / top, 0.0)
        if highlight is not None:
            faded = (majority < 0) & (total > 0)  # bins of other clusters only
            rgb[faded] = UNCLUSTERED
            alpha[faded] *= 0.25
        return np.concatenate([rgb, alpha[:, None]], axis=1).reshape(bins, bins, 4)


def density_rgba(
    coords: np.ndarray,
    labels: np.ndarray | None,
    colors: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    bins: int = 256,
    extent=None,
    highlight=None,
) -> tuple[np.ndarray, tuple]:
    """The picture of :meth:`DensityGrid.picture` for one set of labels and colours, and its
    extent (arguments as :class:`DensityGrid` and its ``picture``)."""
    grid = DensityGrid(coords, weight=weight, bins=bins, extent=extent)
    return grid.picture(labels, colors, highlight=highlight), grid.extent


def _majority(cell, labels, weight, n_cells) -> np.ndarray:
    """Per cell, the label carrying the most weight (-1 for cells with none)."""
    n_labels = int(labels.max(initial=0)) + 1
    out = np.full(n_cells, -1, dtype=np.int64)
    if len(cell) == 0:
        return out
    if n_cells * n_labels <= 8_000_000:  # one bincount over (cell, label) pairs
        counts = np.bincount(
            cell * n_labels + labels, weights=weight, minlength=n_cells * n_labels
        )
        counts = counts.reshape(n_cells, n_labels)
        has = counts.max(axis=1) > 0
        out[has] = counts[has].argmax(axis=1)
        return out
    # many labels: sum weights per distinct (cell, label) pair, keep each cell's heaviest
    key = cell * n_labels + labels
    pairs, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=weight)
    # by cell, heaviest last, ties to the lowest label (as argmax above)
    order = np.lexsort((-(pairs % n_labels), sums, pairs // n_labels))
    cells = pairs[order] // n_labels
    last = np.r_[cells[1:] != cells[:-1], True]
    out[cells[last]] = pairs[order][last] % n_labels
    return out
