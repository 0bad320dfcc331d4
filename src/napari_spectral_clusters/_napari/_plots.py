"""The widget's plot: each cluster's mean spectrum (± std) in its colour, or a k sweep."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class ClusterPlot(FigureCanvasQTAgg):
    """A small matplotlib canvas that lives in the dock widget."""

    def __init__(self):
        self.figure = Figure(figsize=(4, 2.6), tight_layout=True)
        super().__init__(self.figure)
        self.setMinimumHeight(220)
        self.axes = self.figure.add_subplot()

    def show_spectra(self, x, means, stds, colors, *, xlabel: str, labels, ticks=None):
        """Mean ± standard deviation of each cluster against wavelength or band."""
        ax = self._fresh()
        for mean, std, color, label in zip(means, stds, colors, labels, strict=True):
            c = np.asarray(color) / 255
            ax.plot(x, mean, color=c, label=f"cluster {label}")
            ax.fill_between(x, mean - std, mean + std, color=c, alpha=0.25, linewidth=0)
        ax.set_xlabel(xlabel)
        if ticks is not None:
            ax.set_xticks(x, ticks)
        ax.set_ylabel("mean ± std")
        if len(means) <= 10:
            ax.legend(fontsize="x-small")
        self.draw_idle()

    def show_sweep(self, k, inertia, silhouette):
        """Inertia (elbow) and silhouette against the number of clusters."""
        ax = self._fresh()
        ax.plot(k, inertia, "o-", color="tab:blue")
        ax.set_xlabel("clusters k")
        ax.set_ylabel("inertia", color="tab:blue")
        twin = ax.twinx()
        twin.plot(k, silhouette, "s--", color="tab:orange")
        twin.set_ylabel("silhouette", color="tab:orange")
        self.draw_idle()

    def _fresh(self):
        self.figure.clear()
        self.axes = self.figure.add_subplot()
        return self.axes
