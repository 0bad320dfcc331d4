"""The widget's plots: the clusters' spectra (or one-band histograms, or a clicked pixel
against its cluster) and the k sweep, each in its own tab, in napari's theme colours."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._plots import ClusterPlot
from .layer_rules import band_histograms, spectrum_axis
from .sections import plot_tabs

if TYPE_CHECKING:
    import napari

    from .shown import ShownResult

__all__ = ["PlotPanel", "let_go_of_theme"]


def let_go_of_theme(viewer, callback) -> None:
    """Stop calling ``callback`` on theme changes (a closed widget's plot), unless napari
    tore the viewer down first: its events went with it."""
    try:
        events = viewer.events
    except AttributeError:
        return
    events.theme.disconnect(callback)


class PlotPanel:
    """The *Spectra*, *Suggest k* and *Preprocessing* tabs (``tabs``), hidden until one has
    something to show; they follow the viewer's theme until the tabs are destroyed."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.spectra, self.sweep, self.steps = ClusterPlot(), ClusterPlot(), ClusterPlot()
        self.tabs = plot_tabs(
            {"Spectra": self.spectra, "Suggest k": self.sweep, "Preprocessing": self.steps}
        )
        self.follow_theme()
        viewer.events.theme.connect(self.follow_theme)
        self.tabs.destroyed.connect(lambda *_: let_go_of_theme(viewer, self.follow_theme))

    def follow_theme(self, *_):
        for plot in (self.spectra, self.sweep, self.steps):
            plot.follow_theme(self._viewer.theme)

    def show_clusters(self, shown: ShownResult, means, stds, colors, labels, *, one_band=None):
        """Each cluster's mean spectrum +- std, named as in the table; for a one-band image
        whose ``one_band = (values, labels image)`` is given, their histograms instead. What
        was drawn is kept in ``shown`` (redrawn later without recomputing)."""
        shown.plot_args = (means, stds, colors, labels)
        x, xlabel, ticks = spectrum_axis(means.shape[1], shown.rgb, shown.wavelengths)
        names = [shown.name_of(label) for label in labels]
        shown.plotted = {
            int(label): (mean, std, color, name)
            for label, mean, std, color, name in zip(
                labels, means, stds, colors, names, strict=True
            )
        }
        shown.axis = (x, xlabel, ticks)
        histograms = None
        if means.shape[1] == 1 and one_band is not None:
            histograms = band_histograms(*one_band, labels)
        if histograms is not None:
            self.spectra.show_histograms(*histograms, colors, labels=names)
        else:
            self.spectra.show_spectra(
                x, means, stds, colors, xlabel=xlabel, labels=names, ticks=ticks
            )
        self.tabs.setCurrentWidget(self.spectra)

    def forget_clusters(self) -> None:
        """No clusters shown any more (their layer is gone): the spectra plot is emptied."""
        self.spectra.clear_plot()

    def show_pixel(self, shown: ShownResult, label: int, spectrum, where) -> None:
        """A pixel's spectrum against its cluster's mean +- std."""
        mean, std, color, name = shown.plotted[label]
        x, xlabel, ticks = shown.axis
        self.spectra.show_spectra(
            x,
            np.asarray([mean]),
            np.asarray([std]),
            [color],
            xlabel=xlabel,
            labels=[name],
            ticks=ticks,
        )
        self.spectra.add_line(x, spectrum, f"pixel {tuple(int(i) for i in where)}")
        self.tabs.setCurrentWidget(self.spectra)

    def show_preview(self, preview: dict) -> None:
        """What the spectral steps do: the mean spectrum of a sample (and a clicked pixel's)
        before and after them (``preview``: from the widget's ``preview_steps``)."""
        before = [(preview["x"], preview["mean"], "mean of a sample")]
        after = [(preview["x_after"], preview["mean_after"], "mean of a sample")]
        if preview.get("pixel") is not None:
            where = tuple(int(i) for i in preview["where"])
            before.append((preview["x"], preview["pixel"], f"pixel {where}"))
            after.append((preview["x_after"], preview["pixel_after"], f"pixel {where}"))
        self.steps.show_before_after(before, after, xlabel=preview["xlabel"])
        self.tabs.setCurrentWidget(self.steps)

    def show_sweep(self, sweep: dict) -> None:
        self.sweep.show_sweep(
            sweep["k"], sweep["inertia"], sweep["silhouette"], sweep.get("suggested")
        )
        self.tabs.setCurrentWidget(self.sweep)
