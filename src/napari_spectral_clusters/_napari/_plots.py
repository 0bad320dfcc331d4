"""The widget's plot: each cluster's mean spectrum (± std) in its colour, or a k sweep,
drawn in the colours of napari's theme."""

from __future__ import annotations

import warnings

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtCore import Signal


class ClusterPlot(FigureCanvasQTAgg):
    """A small matplotlib canvas that lives in the dock widget; ``shown`` is emitted when it
    first has something to show."""

    shown = Signal()

    def __init__(self):
        self.figure = Figure(figsize=(4, 2.6), tight_layout=True)
        super().__init__(self.figure)
        self.setMinimumHeight(220)
        self.colors = {"background": "white", "text": "black", "grid": "#cccccc"}
        self.axes = self.figure.add_subplot()

    def follow_theme(self, theme_name: str) -> None:
        """Draw in the colours of napari's theme ``theme_name`` from now on."""
        from napari.utils.theme import get_theme

        with warnings.catch_warnings():  # older napari warn about get_theme's return type
            warnings.simplefilter("ignore")
            theme = get_theme(theme_name)

        def color(key: str) -> str:
            value = theme[key] if isinstance(theme, dict) else getattr(theme, key)
            return value.as_hex() if hasattr(value, "as_hex") else str(value)

        self.colors = {
            "background": color("background"),
            "text": color("text"),
            "grid": color("foreground"),
        }
        self._style(*self.figure.axes)  # (all of them: some plots are two)
        self.draw_idle()

    def _style(self, *axes) -> None:
        c = self.colors
        self.figure.set_facecolor(c["background"])
        for ax in axes:
            ax.set_facecolor(c["background"])
            ax.tick_params(colors=c["text"], which="both")
            ax.xaxis.label.set_color(c["text"])
            for spine in ax.spines.values():
                spine.set_color(c["grid"])
            legend = ax.get_legend()
            if legend is not None:
                legend.get_frame().set_facecolor(c["background"])
                legend.get_frame().set_edgecolor(c["grid"])
                for text in legend.get_texts():
                    text.set_color(c["text"])

    def show_spectra(self, x, means, stds, colors, *, xlabel: str, labels, ticks=None):
        """Mean ± standard deviation of each cluster against wavelength or band; ``labels``
        are the clusters' names."""
        ax = self._fresh()
        for mean, std, color, label in zip(means, stds, colors, labels, strict=True):
            c = np.asarray(color) / 255
            ax.plot(x, mean, color=c, label=label)
            ax.fill_between(x, mean - std, mean + std, color=c, alpha=0.25, linewidth=0)
        ax.set_xlabel(xlabel)
        if ticks is not None:
            ax.set_xticks(x, ticks)
        ax.set_ylabel("mean ± std", color=self.colors["text"])
        self._finish(ax, legend=len(means) <= 10)

    def add_line(self, x, y, label: str) -> None:
        """One more line (a clicked pixel's spectrum) in the theme's text colour."""
        ax = self.figure.axes[0]
        ax.plot(x, y, color=self.colors["text"], linewidth=1.2, label=label)
        ax.legend(fontsize="x-small")
        self._style(ax)
        self.draw_idle()

    def show_histograms(self, edges, counts, colors, *, labels):
        """Each cluster's histogram of a one-band image's values, in its colour."""
        ax = self._fresh()
        for count, color, label in zip(counts, colors, labels, strict=True):
            ax.stairs(
                count, edges, color=np.asarray(color) / 255, label=label, fill=True, alpha=0.6
            )
        ax.set_xlabel("value")
        ax.set_ylabel("pixels", color=self.colors["text"])
        self._finish(ax, legend=len(counts) <= 10)

    def show_sweep(self, k, inertia, silhouette, suggested=None):
        """Inertia (elbow, top) and silhouette (below) against the number of clusters; the
        suggested k marked. One above the other, not on twin axes: there both curves start
        at their highest at k = 2 and their points hid each other."""
        self.figure.clear()
        ax = self.figure.add_subplot(2, 1, 1)
        below = self.figure.add_subplot(2, 1, 2, sharex=ax)
        self.axes = ax
        ax.plot(k, inertia, "o-", color="tab:blue")
        below.plot(k, silhouette, "s--", color="tab:orange")
        if suggested is not None:
            for axes in (ax, below):
                axes.axvline(suggested, color=self.colors["text"], linestyle=":", linewidth=1)
            at = list(k).index(suggested)
            ax.plot(
                [suggested],
                [inertia[at]],
                "o",
                markersize=11,
                fillstyle="none",
                color=self.colors["text"],
                label=f"suggested k = {suggested}",
            )
            ax.legend(fontsize="x-small")
        ax.tick_params(labelbottom=False)  # k is read off the lower plot
        below.set_xlabel("clusters k")
        below.xaxis.set_major_locator(MaxNLocator(integer=True))  # no k = 2.5
        ax.set_ylabel("inertia", color="tab:blue")
        below.set_ylabel("silhouette", color="tab:orange")
        self._finish(ax, below, legend=False)

    def show_before_after(self, before, after, *, xlabel: str) -> None:
        """Spectra before (top) and after (bottom) the preprocessing steps: each a list of
        (x, y, label), the mean first, in the theme's text colour then tab colours."""
        self.figure.clear()
        # one x range: a band range's "after" lines up under the bands it kept
        top = self.figure.add_subplot(2, 1, 1)
        bottom = self.figure.add_subplot(2, 1, 2, sharex=top)
        self.axes = top
        for ax, lines, title in ((top, before, "as given"), (bottom, after, "after the steps")):
            for i, (x, y, label) in enumerate(lines):
                color = self.colors["text"] if i == 0 else f"C{i}"
                ax.plot(x, y, color=color, linewidth=1.2, label=label)
            ax.set_ylabel(title, color=self.colors["text"])
        bottom.set_xlabel(xlabel)
        self._finish(top, bottom, legend=True)

    def _finish(self, *axes, legend: bool) -> None:
        """Legend (a few entries only), the theme's colours, and on screen."""
        if legend and axes[0].get_legend_handles_labels()[0]:  # (no cluster: no legend)
            axes[0].legend(fontsize="x-small")
        self._style(*axes)
        self.shown.emit()  # something to show: no empty 0-1 axes before
        self.draw_idle()

    def clear_plot(self) -> None:
        """Nothing drawn: no axes either (in the theme's colours)."""
        ax = self._fresh()
        self._style(ax)
        ax.set_axis_off()
        self.draw_idle()

    def _fresh(self):
        self.figure.clear()
        self.axes = self.figure.add_subplot()
        return self.axes
