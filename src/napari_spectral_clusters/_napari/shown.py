"""The clustering result a widget shows: which layers hold it and what it looks like (pure
data, no Qt), so the table, the plot and the actions all read one record."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import ClusterModel
from .layer_rules import features_of

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
        The source carries an alpha plane, which the recoloured layer keeps (a cube's
        recoloured layer is RGBA too where pixels were left out: see-through there).
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
    counted : int, str or None
        Fingerprint (``labels_checksum``) of the labels the table and plot were counted
        from: while the labels still match it, a rename or merge works from the table
        instead of reading the image again. None: not known to match (a reopened file, a
        joint clustering's layer, whose centres are shared).
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
    joint : object or None
        For a joint clustering: what its layers' results share, one object per run (an
        edit of one is made in the others; an earlier run of the same layers is another).
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
    joint: object = None
    inertia: float | None = None
    counted: int | str | None = None

    @classmethod
    def from_saved(cls, layer, source, recolored: str) -> ShownResult | None:
        """The result a clusters ``layer`` saved by this plugin holds, opened again beside
        its image ``source`` (``recolored``: the recoloured layer's name, "" for none): table
        and plot as the file's statistics say (counts, means, spreads, colours, cluster
        names), not known to match the labels (a file saved after painting, before a
        refresh, holds the counts from before it). None when the metadata lacks them. It has
        no model: *Save model* needs a clustering of this session."""
        meta = layer.metadata
        try:
            colors = np.asarray(meta["colors"], dtype=np.uint8).reshape(-1, 3)
            counts = np.asarray(meta["counts"], dtype=np.int64).reshape(-1)
            centers = np.asarray(meta["centers"], dtype=np.float64).reshape(len(counts), -1)
            std = np.asarray(meta["std"], dtype=np.float64).reshape(centers.shape)
        except (KeyError, TypeError, ValueError):
            return None
        if len(colors) < len(counts):
            return None
        channel_axis, alpha = features_of(source)
        names = {}
        if "name" in layer.features and "index" in layer.features:
            for index, name in zip(layer.features["index"], layer.features["name"], strict=True):
                if int(index) > 0 and str(name) != f"cluster {int(index)}":
                    names[int(index)] = str(name)
        inertia = meta.get("inertia")
        present = counts > 0
        labels = np.flatnonzero(present) + 1
        fractions = counts[present] / max(int(counts.sum()), 1)
        return cls(
            source=source.name,
            labels=layer.name,
            recolored=recolored,
            channel_axis=channel_axis,
            alpha=alpha,
            rgb=bool(source.rgb),
            colors=colors,
            wavelengths=meta.get("wavelengths"),
            model=None,
            names=names,
            centers=centers,
            inertia=None if inertia is None else float(inertia),
            counted=None,
            # what the widget draws when it follows this result
            plot_args=(centers[present], std[present], colors[present], labels),
            table=(
                {"label": labels, "count": counts[present], "fraction": fractions},
                colors[present],
            ),
        )

    def name_of(self, label) -> str:
        """The cluster's name: the user's, else "cluster N"."""
        return self.names.get(int(label), f"cluster {label}")

    def rename(self, old: str, new: str) -> None:
        """A layer of this result (or, for a joint clustering, one it counts) was renamed."""
        for attr in ("source", "labels", "recolored"):
            if getattr(self, attr) == old:
                setattr(self, attr, new)
        if old in self.per_layer:
            self.per_layer = {(new if k == old else k): v for k, v in self.per_layer.items()}

    def holds(self, layer_name: str) -> bool:
        """``layer_name`` is one of this result's layers."""
        return layer_name in (self.labels, self.recolored)
