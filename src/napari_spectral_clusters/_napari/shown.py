"""The clustering result a widget shows: which layers hold it and what it looks like (pure
data, no Qt), so the table, the plot and the actions all read one record."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import ClusterModel

__all__ = ["ShownResult"]


@dataclass
class ShownResult:
    """One result of the widget: its layers (by name), colours, names and what was drawn.

    Attributes
    ----------
    source, labels, recolored : str
        Names of the clustered image layer and of the two result layers.
    channel_axis : int or None
        The source's band (or colour) axis the result was computed over.
    alpha : bool
        The recoloured layer is RGBA (the source's alpha plane kept).
    rgb : bool
        The source is an RGB(A) picture.
    colors : ndarray of uint8, shape (n_labels, 3)
        Colour of label ``i`` in row ``i - 1``.
    wavelengths : ndarray or None
        The bands' wavelengths, for the plot's axis.
    model : ClusterModel
        What *Save model* writes.
    names : dict
        Cluster names the user gave (label -> name).
    table : tuple or None
        ``(stats, colors)`` the table was last filled from (redrawn, never recomputed).
    plot_args : tuple or None
        ``(means, stds, colors, labels)`` the spectra were last drawn from.
    counted : int or None
        Fingerprint of the labels the table and plot were counted from (None for lazy
        labels, which stay as the clustering made them): while the labels still match it,
        a rename or merge works from the table instead of reading the image again.
    plotted : dict
        label -> (mean, std, colour, name): what a clicked pixel is drawn against.
    axis : tuple or None
        ``(x, xlabel, ticks)`` of the spectra plot.
    recolored_visible : bool or None
        The recoloured layer's visibility before a table selection hid it (None: not hidden).
    centers : ndarray or None
        Cluster centres in the input's units (row ``i`` = label ``i + 1``; NaN for a free
        id): what a re-run's clusters are matched to, to keep their ids.
    per_layer : dict
        For a joint clustering: layer name -> pixels of each cluster in that layer (row
        ``i`` = label ``i + 1``), shown as one table column per layer.
    inertia : float or None
        The clustering's inertia: the layers' metadata hold it while the labels are as it
        gave them (an edit undone brings it back).
    """

    source: str
    labels: str
    recolored: str
    channel_axis: int | None
    alpha: bool
    rgb: bool
    colors: np.ndarray
    wavelengths: np.ndarray | None
    model: ClusterModel | None
    names: dict = field(default_factory=dict)
    table: tuple | None = None
    plot_args: tuple | None = None
    plotted: dict = field(default_factory=dict)
    axis: tuple | None = None
    recolored_visible: bool | None = None
    centers: np.ndarray | None = None
    per_layer: dict = field(default_factory=dict)
    inertia: float | None = None
    counted: int | None = None

    def name_of(self, label) -> str:
        """The cluster's name: the user's, else "cluster N"."""
        return self.names.get(int(label), f"cluster {label}")

    def holds(self, layer_name: str) -> bool:
        """``layer_name`` is one of this result's layers."""
        return layer_name in (self.labels, self.recolored)
