"""The *Feature space* widget's canvas: pixels as a density picture (or points, when few) in
two axes, coloured by cluster, with a lasso, polygon or rectangle to select a region; or a
rotatable 3-D cloud of three axes (the walkthrough's RGB cube). In napari's theme colours."""

from __future__ import annotations

import numpy as np
from matplotlib.widgets import LassoSelector, PolygonSelector, RectangleSelector
from qtpy.QtCore import QSize, Signal

from ..density import UNCLUSTERED, DensityGrid
from ._plots import ClusterPlot

__all__ = ["TOOLS", "FeaturePlot"]

TOOLS = ("lasso", "polygon", "rectangle")
#: Up to this many points are drawn one by one; more become a density picture.
MAX_SCATTER = 5_000
#: Points drawn in the 3-D view (a rotating scatter of more is slow to turn).
MAX_3D = 20_000


def point_colors(labels, colors) -> np.ndarray:
    """(n, 3) floats 0..1: each point's cluster colour (grey for label 0 and unknown ids)."""
    table = np.concatenate([[UNCLUSTERED], np.asarray(colors, dtype=np.float64)[:, :3] / 255])
    labels = np.asarray(labels, dtype=np.int64)
    return table[np.where((labels >= 0) & (labels < len(table)), labels, 0)]


class FeaturePlot(ClusterPlot):
    """``selected`` is emitted with the (m, 2) vertices of a region drawn with the tool."""

    selected = Signal(object)

    def __init__(self):
        super().__init__()
        self.setMinimumHeight(240)
        self.tool = "lasso"
        self._selector = None
        self.mode = None  # "2d" or "3d" once something is drawn
        self.extent = None  # (xmin, xmax, ymin, ymax) of the 2-D picture
        self._picture = None  # the density picture (updated in place) ...
        self._grid = None  # ... from the bins of the points last drawn
        self.ring_color = "#00e5ff"  # the selection layer's colour
        self._rings = None  # the selected points' rings

    def show_2d(
        self,
        coords,
        labels,
        colors,
        *,
        weight=None,
        names,
        highlight=None,
        chosen=None,
        same_points=False,
    ):
        """The (n, 2) ``coords`` coloured by ``labels`` (``colors``: cluster i in row i - 1);
        ``highlight``: clusters kept in colour; ``chosen``: (m, 2) coordinates of selected
        pixels, ringed in ``ring_color``. ``same_points``: the points are those last
        drawn (only colours, highlight or rings changed): the density picture is updated in
        place, axes and all kept."""
        many = len(coords) > MAX_SCATTER
        if same_points and many and self.mode == "2d" and self._picture is not None:
            self._picture.set_data(self._grid.picture(labels, colors, highlight=highlight))
            self._ring(chosen, many)
            self.draw_idle()
            return
        ax = self._fresh()
        self.mode = "2d"
        self._picture = self._rings = None
        if many:
            self._grid = DensityGrid(coords, weight=weight)
            self.extent = self._grid.extent
            rgba = self._grid.picture(labels, colors, highlight=highlight)
            self._picture = ax.imshow(
                rgba, origin="lower", extent=self.extent, aspect="auto", interpolation="nearest"
            )
        elif len(coords):
            rgb = point_colors(labels, colors) if labels is not None else [UNCLUSTERED]
            alpha = 1.0
            if highlight is not None and labels is not None:
                alpha = np.where(np.isin(labels, list(highlight)), 1.0, 0.15)
            ax.scatter(coords[:, 0], coords[:, 1], s=6, c=rgb, alpha=alpha, linewidths=0)
            self.extent = (*ax.get_xlim(), *ax.get_ylim())
        self._ring(chosen, many)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1], color=self.colors["text"])
        self._finish(ax, legend=False)
        self._arm(ax)

    def _ring(self, chosen, many: bool) -> None:
        """Ring the selected pixels' points (replacing the rings drawn before)."""
        if self._rings is not None:
            self._rings.remove()
            self._rings = None
        if chosen is None or not len(chosen):
            return
        ax = self.axes
        self._rings = ax.scatter(
            chosen[:, 0],
            chosen[:, 1],
            s=3 if many else 14,
            facecolors="none",
            edgecolors=self.ring_color,
            linewidths=0.5,
        )
        if self.extent is not None:  # the rings must not widen the picture's axes
            ax.set_xlim(*self.extent[:2])
            ax.set_ylim(*self.extent[2:])

    def show_3d(self, coords, labels, colors, *, names, highlight=None):
        """Up to :data:`MAX_3D` of the (n, 3) ``coords`` as a cloud to turn with the mouse."""
        self.figure.clear()
        self._disarm()
        self.mode = "3d"
        ax = self.figure.add_subplot(projection="3d")
        self.axes = ax
        if len(coords) > MAX_3D:  # evenly spread: the sample is already in random order
            keep = np.linspace(0, len(coords) - 1, MAX_3D).astype(int)
            coords = coords[keep]
            labels = None if labels is None else labels[keep]
        rgb = point_colors(labels, colors) if labels is not None else [UNCLUSTERED]
        alpha = 0.8
        if highlight is not None and labels is not None:
            alpha = np.where(np.isin(labels, list(highlight)), 0.9, 0.05)
        ax.scatter(coords[:, 0], coords[:, 1], coords[:, 2], s=2, c=rgb, alpha=alpha)
        for axis, name in zip((ax.xaxis, ax.yaxis, ax.zaxis), names, strict=True):
            axis.set_label_text(name, color=self.colors["text"])
            axis.set_pane_color((0, 0, 0, 0))
        ax.tick_params(colors=self.colors["text"])
        self.figure.set_facecolor(self.colors["background"])
        ax.set_facecolor(self.colors["background"])
        self.shown.emit()
        self.draw_idle()

    def sizeHint(self) -> QSize:
        """As wide as the figure, as high as the minimum: in a dock too short for all its
        controls, the plot takes no more than it must (the figure's 260 px pushed its axis
        below the fold at 1366 x 768); with room to spare it still grows."""
        return QSize(super().sizeHint().width(), self.minimumHeight())

    def set_tool(self, tool: str) -> None:
        """Draw regions with the lasso, a polygon (click the corners, close on the first)
        or a rectangle."""
        if tool not in TOOLS:
            raise ValueError(f"a selection tool is one of {TOOLS}, not {tool!r}")
        self.tool = tool
        if self.mode == "2d":
            self._arm(self.axes)

    def _arm(self, ax) -> None:
        self._disarm()
        line = {"color": self.colors["text"], "linewidth": 1.2}
        if self.tool == "lasso":
            self._selector = LassoSelector(ax, self._emit, props=line)
        elif self.tool == "polygon":
            self._selector = PolygonSelector(ax, self._emit, props=line)
        else:
            self._selector = RectangleSelector(
                ax, self._emit_rectangle, props={"edgecolor": line["color"], "fill": False}
            )

    def _disarm(self) -> None:
        if self._selector is not None:
            self._selector.set_active(False)
            self._selector = None

    def _emit(self, vertices) -> None:
        vertices = np.asarray(vertices, dtype=np.float64)
        if len(vertices) >= 3:
            self.selected.emit(vertices)

    def _emit_rectangle(self, press, release) -> None:
        x0, x1 = sorted((press.xdata, release.xdata))
        y0, y1 = sorted((press.ydata, release.ydata))
        if x1 > x0 and y1 > y0:
            self.selected.emit(np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]))
