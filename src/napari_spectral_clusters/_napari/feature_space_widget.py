"""The "Feature space" dock widget: an image's pixels as a density picture in two axes (R/G/B,
bands, principal components, band ratios), coloured by cluster, or as a 3-D cloud; linked both
ways to the viewer -- a region drawn on the plot selects every pixel in it (a selection layer
over the image), a cluster selected in the table or painted pixels light up their points --
and a selection is an action: a new cluster, the mask of the next run, or a cluster split.

The numbers come from the pure core (``feature_space``, ``density``, ``label_edits``); this
module only wires them to layers and controls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, LineEdit, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer

from .._arrays import is_lazy
from ..cluster import ClusteringError
from ..feature_space import FeatureAxes, axis_choices, feature_points, select_polygon
from ..label_edits import new_cluster, split_cluster
from ..spectral import Pipeline, PreprocessingError
from ._colors import label_colormap
from .edited_labels import cluster_colors, put_edited_labels
from .feature_plot import TOOLS, FeaturePlot
from .layer_rules import features_of, n_features, spatial_axes, spatial_shape, sub_transform
from .plot_panel import let_go_of_theme
from .result_layers import made_by_us
from .sections import StatusLabel, VerticalScroll, later, narrow, share_dock_height
from .worker import Runner

if TYPE_CHECKING:
    import napari

__all__ = ["FeatureSpaceWidget"]

#: Points drawn for an image in memory (every pixel of a 1000 x 1000 image) and for a lazy
#: cube (read by point indexing: a larger draw reads most of its blocks).
MAX_POINTS, MAX_POINTS_LAZY = 1_000_000, 200_000
#: Selected pixels ringed on the plot (evenly spread when more are selected).
MAX_RINGS = 20_000
SELECTION_COLOR = np.array([[0, 229, 255]], dtype=np.uint8)  # cyan: seen over most pictures


class FeatureSpaceWidget(Container):
    """Pixels of an image layer in a feature space, coloured by a Labels layer's clusters.

    Controls are reachable by name (``image``, ``clusters``, ``view``, ``x_axis``, ``y_axis``,
    ``z_axis``, ``tool``...); :meth:`select_polygon`, :meth:`selection_to_cluster`,
    :meth:`use_as_mask` and :meth:`split` do what the buttons do.

    Attributes
    ----------
    selection : ndarray of bool or None
        The selected pixels, of the image's spatial shape.
    points : FeaturePoints or None
        What the plot shows (coordinates, pixel index and weight of each point).
    axes : FeatureAxes or None
        The map from pixels to the plot's coordinates.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.selection: np.ndarray | None = None
        self.points = None
        self.axes: FeatureAxes | None = None
        self._point_labels: np.ndarray | None = None
        self._colors = np.zeros((0, 3), dtype=np.uint8)
        self._extra_axes: list[str] = []
        self._followed: Labels | None = None  # the clusters layer whose events we follow
        self._stale = True  # the points no longer match the chosen image and axes
        self.runner = Runner(busy=self._busy)  # reads of a lazy cube, off the GUI thread
        self._writing = False  # the selection layer is being written by us

        self.image = ComboBox(name="image", label="image", choices=self._image_choices)
        self.clusters = ComboBox(name="clusters", label="colour by", choices=self._label_choices)
        self.view = ComboBox(
            name="view", label="view", choices=[("2-D density", "2d"), ("3-D cloud", "3d")]
        )
        self.x_axis = ComboBox(name="x_axis", label="x", choices=self._axis_names)
        self.y_axis = ComboBox(name="y_axis", label="y", choices=self._axis_names)
        self.z_axis = ComboBox(name="z_axis", label="z", choices=self._axis_names, visible=False)
        self.new_axis = LineEdit(name="new_axis", label="other axis", value="")
        self.new_axis.native.setPlaceholderText("ratio(a, b) or nd(a, b)")
        self.tool = ComboBox(name="tool", label="select", choices=list(TOOLS))
        self.plot = FeaturePlot()
        self.plot.ring_color = "#{:02x}{:02x}{:02x}".format(*SELECTION_COLOR[0])
        self.status = StatusLabel(name="status", value="")
        self.new_cluster_button = PushButton(name="new_cluster_button", text="New cluster")
        self.mask_button = PushButton(name="mask_button", text="Cluster only these")
        self.clear_button = PushButton(name="clear_button", text="Clear")
        self.split_label = ComboBox(name="split_label", label="split", choices=self._cluster_ids)
        self.split_n = SpinBox(name="split_n", label="into", value=2, min=2, max=16)
        self.split_button = PushButton(name="split_button", text="Split")
        self._tooltips()
        # a menu as wide as its longest choice (a layer's name, "PC1 ... PC12") made the
        # three axes of the 3-D cloud wider than the dock, and cut off z, Clear and Split
        for menu in (self.image, self.clusters):
            narrow(menu, 8)
        for menu in (self.view, self.tool):  # two in a row, beside the row names
            narrow(menu, 5)
        for menu in (self.x_axis, self.y_axis, self.z_axis, self.split_label):
            narrow(menu, 3)

        # two controls a row where they are short: the plot gets the height (at 1366 x 768
        # one control a row left it below the dock's fold)
        self.view.label, self.tool.label = "", "select"  # the row says "view"
        view_row = Container(
            name="view_row", label="view", layout="horizontal", widgets=[self.view, self.tool]
        )
        # the axes row spans the dock, beside no row name: three menus fit there, not in
        # the room the names ("colour by", "other axis") leave
        axes_row = Container(
            name="axes_row",
            layout="horizontal",
            widgets=[self.x_axis, self.y_axis, self.z_axis],
        )
        for row in (view_row, axes_row):
            row.margins = (0, 0, 0, 0)
        top = Container(
            name="axes_section",
            labels=False,
            widgets=[
                Container(name="source_rows", widgets=[self.image, self.clusters, view_row]),
                axes_row,
                Container(name="axis_rows", widgets=[self.new_axis]),
            ],
        )
        for rows in (top[0], top[2]):
            rows.margins = (0, 0, 0, 0)
        actions = Container(
            name="selection_row",
            layout="horizontal",
            labels=False,
            widgets=[self.new_cluster_button, self.mask_button, self.clear_button],
        )
        split_row = Container(
            name="split_row",
            layout="horizontal",
            widgets=[self.split_label, self.split_n, self.split_button],
        )
        bottom = Container(
            name="selection_section", labels=False, widgets=[self.status, actions, split_row]
        )
        inner = Container(name="inner", labels=False, widgets=[top, bottom])
        inner.native.layout().insertWidget(1, self.plot, 1)
        scroll = VerticalScroll(inner.native)
        self._inner = inner  # keeps the magicgui containers alive with their Qt widgets
        self.native.layout().addWidget(scroll)
        # beside the clustering dock, two thirds of the height: the plot needs it (the
        # clustering dock scrolls, and its Run and status stay at the top)
        share_dock_height(self.native, weight=2)

        # draws are coalesced: changing the image resets three axes, drawn once
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._draw_if_stale)

        self.image.changed.connect(self._image_changed)
        self.clusters.changed.connect(self._clusters_changed)
        for control in (self.x_axis, self.y_axis, self.z_axis):
            control.changed.connect(self._axes_changed)
        self.view.changed.connect(self._view_changed)
        self.tool.changed.connect(lambda value: self.plot.set_tool(value))
        self.new_axis.native.editingFinished.connect(lambda: self.add_axis())
        self.plot.selected.connect(lambda vertices: self.select_polygon(vertices, wait=False))
        self.new_cluster_button.changed.connect(lambda: self.selection_to_cluster())
        self.mask_button.changed.connect(lambda: self.use_as_mask())
        self.clear_button.changed.connect(lambda: self.clear_selection())
        self.split_button.changed.connect(
            lambda: self.split(self.split_label.value, int(self.split_n.value))
        )
        viewer.layers.selection.events.active.connect(self._follow_active_layer)
        viewer.layers.events.inserted.connect(self._layer_inserted)
        viewer.layers.events.removed.connect(self.reset_choices)
        self.plot.follow_theme(viewer.theme)
        viewer.events.theme.connect(self._theme_changed)
        self.native.destroyed.connect(lambda *_: self._let_go(viewer))
        self.reset_choices()
        self._follow_active_layer()
        self._image_changed()

    def _let_go(self, viewer) -> None:
        """A closed widget stops following the viewer and its layers."""
        let_go_of_theme(viewer, self._theme_changed)
        try:
            layers = viewer.layers
        except AttributeError:  # napari tore the viewer down first
            return
        layers.selection.events.active.disconnect(self._follow_active_layer)
        layers.events.inserted.disconnect(self._layer_inserted)
        layers.events.removed.disconnect(self.reset_choices)
        self._unfollow()
        for layer in layers:
            if isinstance(layer, Labels):
                layer.events.data.disconnect(self._selection_painted)
                if hasattr(layer.events, "paint"):
                    layer.events.paint.disconnect(self._selection_painted)

    def _unfollow(self) -> None:
        if self._followed is not None:
            for name in ("data", "colormap", "selected_label", "show_selected_label"):
                getattr(self._followed.events, name).disconnect(self._clusters_edited)
            self._followed = None

    def _busy(self, busy: bool) -> None:
        for button in (self.new_cluster_button, self.mask_button, self.split_button):
            button.enabled = not busy

    def _tooltips(self) -> None:
        tips = {
            self.image: "The image whose pixels are plotted (a picture or a spectral cube).",
            self.clusters: (
                "The cluster labels that colour the points (a clustering's Labels layer over "
                "this image); choose none to see the pixels alone."
            ),
            self.view: (
                "A 2-D density of all pixels (where you draw selections) or a 3-D cloud of "
                "three axes, turned with the mouse."
            ),
            self.x_axis: "What the plot's x axis shows: a channel, a band or a component.",
            self.y_axis: "What the plot's y axis shows.",
            self.z_axis: "The third axis of the 3-D cloud.",
            self.new_axis: (
                "Type another axis and press Enter: 'ratio(a, b)' (band a over band b) or "
                "'nd(a, b)' (their normalised difference), bands counted from 0; it is put "
                "on x."
            ),
            self.tool: (
                "How a region is drawn on the 2-D plot: a free lasso, a polygon (click the "
                "corners, close on the first) or a rectangle. Every pixel of the image whose "
                "point falls inside is selected, not only those drawn."
            ),
            self.status: "What is selected.",
            self.new_cluster_button: (
                "Make the selected pixels a new cluster with the next free id; the other "
                "clusters keep their ids and colours."
            ),
            self.mask_button: (
                "Keep the selection as a mask layer and choose it as 'only inside' of the "
                "clustering widget: the next run clusters only these pixels."
            ),
            self.clear_button: "Clear the selection (the selection layer empties).",
            self.split_label: "The cluster to split.",
            self.split_n: "How many sub-clusters it is split into.",
            self.split_button: (
                "Split the cluster by KMeans on its own pixels: the largest part keeps its id "
                "and colour, the others get new ids; the other clusters are unchanged."
            ),
        }
        for control, tip in tips.items():
            control.tooltip = tip

    # -- choices --------------------------------------------------------------------------

    def reset_choices(self, *_):
        image, clusters = self.image.value, self.clusters.value
        super().reset_choices()
        self._inner.reset_choices()  # the controls live in the scroll area, not in self
        # magicgui drops a removed layer from a choice without saying so: follow it here
        if self.image.value is not image:
            self._image_changed()
        elif self.clusters.value is not clusters or self._followed is not clusters:
            self._clusters_changed()

    def _image_choices(self, _widget=None):
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image) and not made_by_us(layer)
        ]

    def _spatial(self, layer: Image | None = None) -> tuple | None:
        layer = self.image.value if layer is None else layer
        if layer is None:
            return None
        axis, _ = features_of(layer)
        return spatial_shape(layer.data.shape, layer.rgb, axis)

    def _label_choices(self, _widget=None):
        spatial = self._spatial()
        found = [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and spatial is not None
            and tuple(layer.data.shape) == spatial
            and not layer.metadata.get("spectral_clusters_selection_of")
            and not layer.metadata.get("spectral_clusters_mask_for")
        ]
        return [("none", None), *found]

    def _axis_names(self, _widget=None) -> list[str]:
        layer = self.image.value
        if layer is None:
            return ["R", "G"]
        axis, alpha = features_of(layer)
        n = n_features(layer, axis, alpha)
        return [*axis_choices(n, picture=bool(layer.rgb)), *self._extra_axes]

    def _cluster_ids(self, _widget=None) -> list[int]:
        if self._point_labels is None:
            return []
        return [int(v) for v in np.unique(self._point_labels) if v > 0]

    # -- following the viewer -------------------------------------------------------------

    def _follow_active_layer(self, *_):
        """The selected layer: an image is plotted; a clustering's labels colour the points
        of the image they came from."""
        active = self._viewer.layers.selection.active
        if isinstance(active, Image) and not made_by_us(active):
            if active is not self.image.value and active in self.image.choices:
                self.image.value = active
        elif isinstance(active, Labels):
            source = active.metadata.get("spectral_clusters_source")
            if (
                source in self._viewer.layers
                and self.image.value is not self._viewer.layers[source]
            ):
                layer = self._viewer.layers[source]
                if layer in self.image.choices:
                    self.image.value = layer
            if active in self.clusters.choices and active is not self.clusters.value:
                self.clusters.value = active

    def _layer_inserted(self, event):
        layer = event.value
        self.reset_choices()
        image = self.image.value
        if image is None and isinstance(layer, Image):
            self._image_changed()
        # a new clustering of the plotted image colours its points at once
        if (
            isinstance(layer, Labels)
            and image is not None
            and layer.metadata.get("spectral_clusters_source") == image.name
            and layer in self.clusters.choices
        ):
            self.clusters.value = layer

    def _theme_changed(self, *_):
        self.plot.follow_theme(self._viewer.theme)
        self._render(fresh=True)

    def _image_changed(self, *_):
        # the points, and the selection, are the new image's own (its selection layer, if we
        # made one)
        self.points = self.axes = self._point_labels = None
        self.selection = None
        layer = self._selection_layer()
        if layer is not None:
            self._listen_to_selection(layer)
            if np.asarray(layer.data).any():
                self.selection = np.asarray(layer.data) > 0
        self.clusters.reset_choices()
        self.clusters.value = self._default_clusters()
        self._reset_axes()

    def _reset_axes(self):
        names = self._axis_names()
        for control, i in ((self.x_axis, 0), (self.y_axis, 1), (self.z_axis, 2)):
            control.reset_choices()
            control.value = names[min(i, len(names) - 1)]
        self._request_draw()

    def _default_clusters(self):
        """The newest clustering of the chosen image, if any."""
        image = self.image.value
        ours = [
            value
            for _, value in self._label_choices()
            if value is not None
            and image is not None
            and value.metadata.get("spectral_clusters_source") == image.name
        ]
        return ours[-1] if ours else None

    def _clusters_changed(self, *_):
        layer = self.clusters.value
        if self._followed is not layer:
            self._unfollow()
        if layer is not None and layer is not self._followed:
            for name in ("data", "colormap", "selected_label", "show_selected_label"):
                getattr(layer.events, name).connect(self._clusters_edited)
        self._followed = layer
        self._read_labels()
        self._render()

    def _clusters_edited(self, event):
        if event.type == "data":
            self._read_labels()
        self._render()

    def _axes_changed(self, *_):
        self._request_draw()

    def _view_changed(self, value):
        self.z_axis.visible = value == "3d"
        self.tool.visible = value == "2d"  # regions are drawn on the 2-D plot
        self._request_draw()

    def _request_draw(self):
        self._stale = True
        self._timer.start(0)

    def _draw_if_stale(self):
        if self._stale:
            self.draw(wait=False)

    # -- drawing --------------------------------------------------------------------------

    def draw(self, *, wait: bool = True) -> None:
        """Compute the plotted points for the chosen image and axes, and draw them. A lazy
        cube's points are read in a background thread (with napari's progress bar); with
        ``wait`` this returns once they are drawn, processing Qt events meanwhile."""
        self._stale = False
        layer = self.image.value
        self.points = self.axes = None
        if layer is None:
            self._nothing_to_plot("Open an image to see its pixels in feature space.")
            return
        names = [self.x_axis.value, self.y_axis.value]
        if self.view.value == "3d":
            names.append(self.z_axis.value)
        if any(name is None for name in names):
            return
        axis, alpha = features_of(layer)
        if n_features(layer, axis, alpha) < 2:
            # every axis would be that one band: the pixels on a diagonal line
            self._nothing_to_plot(
                f"{layer.name} has one band: a plot of its pixels needs two or more bands "
                "(a cube) or colours (a picture)."
            )
            return

        def job(data, channel_axis, has_alpha, _wavelengths, _progress):
            try:
                return feature_points(
                    data,
                    names,
                    channel_axis=channel_axis,
                    alpha=has_alpha,
                    max_points=MAX_POINTS_LAZY if is_lazy(data) else MAX_POINTS,
                )
            except ValueError as exc:  # an axis the image lacks: a message, not a bug
                raise ClusteringError(str(exc)) from exc

        def done(found, error):
            if error is not None:
                show_error(f"Feature space of {layer.name}: {error}")
            elif layer is self.image.value:  # still the chosen image
                self.axes, self.points = found
                self._read_labels()
                self._render(fresh=True)
                self._say_selected()
            if self._stale:  # the choices changed while the points were read
                self._request_draw()

        self._compute(layer, job, (axis, alpha), done, what="reading", wait=wait)

    def _nothing_to_plot(self, why: str) -> None:
        """An empty plot, and ``why`` in the status line."""
        self.status.value = why
        self.plot.figure.clear()
        self.plot.draw_idle()

    def _compute(self, layer, job, args, done, *, what: str, wait: bool) -> None:
        """``done(*job(...))`` for the image ``layer``: at once for an image in memory, in a
        background thread for a lazy cube (never a frozen viewer while its blocks are read)."""
        data = layer.data if is_lazy(layer.data) else np.asarray(layer.data)
        if not is_lazy(data):
            try:
                found = job(data, *args, None, None)
            except ClusteringError as exc:
                done(None, exc)
                return
            done(found, None)
            return
        if self.runner.running and wait:
            _wait_for(self.runner.worker)
        if self.runner.running:
            self._stale = True  # drawn again when the running job is done
            return
        self.status.value = f"{what} {layer.name}…"
        self.runner.start(
            job,
            (data, *args, None),
            desc=f"Feature space: {what} {layer.name}",
            scheduler="",
            on_done=done,
            on_bug=lambda exc: setattr(self.status, "value", f"failed: {type(exc).__name__}"),
            wait=wait,
        )

    def _read_labels(self):
        """Each plotted point's cluster, from the chosen Labels layer."""
        layer, points = self.clusters.value, self.points
        self._point_labels = None
        if layer is not None and points is not None and tuple(layer.data.shape) == points.shape:
            where = np.unravel_index(points.index, points.shape)
            if is_lazy(layer.data):
                values = layer.data.vindex[where].compute()
            else:
                values = np.asarray(layer.data)[where]
            self._point_labels = np.asarray(values, dtype=np.int64)
            self._colors = cluster_colors(layer)
        self.split_label.reset_choices()

    def highlighted(self) -> set | None:
        """The clusters shown in colour: those the clusters layer still paints when a table
        selection (or napari's *show selected*) hides the others; None when all are."""
        layer = self.clusters.value
        if layer is None or self._point_labels is None:
            return None
        present = np.array(self._cluster_ids(), dtype=np.int64)
        if len(present) == 0:
            return None
        if getattr(layer, "show_selected_label", False):
            return {int(layer.selected_label)}
        alpha = np.asarray(layer.colormap.map(present)).reshape(-1, 4)[:, 3]
        if (alpha > 0).all() or not (alpha > 0).any():
            return None
        return {int(v) for v in present[alpha > 0]}

    def _chosen_coords(self) -> np.ndarray | None:
        """Coordinates of the plotted points whose pixels are selected."""
        if self.selection is None or self.points is None:
            return None
        if self.selection.shape != self.points.shape:
            return None
        chosen = self.points.coords[self.selection.reshape(-1)[self.points.index]]
        if len(chosen) > MAX_RINGS:
            chosen = chosen[np.linspace(0, len(chosen) - 1, MAX_RINGS).astype(int)]
        return chosen

    def _render(self, *, fresh: bool = False):
        """Draw the computed points again: anew (``fresh``: new points, theme), or only their
        colours, highlight and selection."""
        if self.points is None:
            return
        names = self.axes.names
        highlight = self.highlighted()
        if len(names) == 3:
            self.plot.show_3d(
                self.points.coords,
                self._point_labels,
                self._colors,
                names=names,
                highlight=highlight,
            )
        else:
            self.plot.show_2d(
                self.points.coords,
                self._point_labels,
                self._colors,
                weight=self.points.weight,
                names=names,
                highlight=highlight,
                chosen=self._chosen_coords(),
                same_points=not fresh,
            )

    # -- selecting ------------------------------------------------------------------------

    def add_axis(self, text: str | None = None) -> str | None:
        """Offer the axis ``text`` (e.g. ``"ratio(40, 12)"``) and put it on x; None (after
        saying why) when the image has no such axis."""
        text = str(self.new_axis.value if text is None else text).strip()
        layer = self.image.value
        if not text or layer is None:
            return None
        axis, alpha = features_of(layer)
        n = n_features(layer, axis, alpha)
        try:
            FeatureAxes.fit([text], np.zeros((1, n)))
        except ValueError as exc:
            show_error(f"Feature space: {exc}")
            return None
        if text not in self._axis_names():
            self._extra_axes.append(text)
            for control in (self.x_axis, self.y_axis, self.z_axis):
                control.reset_choices()
        self.x_axis.value = text
        self.new_axis.value = ""
        return text

    def _ensure_drawn(self) -> bool:
        if self.runner.running:
            _wait_for(self.runner.worker)
        if self._stale or self.points is None:
            self.draw(wait=True)
        return self.points is not None

    def select_polygon(self, vertices, *, wait: bool = True) -> int | None:
        """Select every pixel of the image whose point falls inside the polygon ``vertices``
        ((m, 2) in the plot's x, y coordinates): shown in the selection layer over the image
        and ringed on the plot. Returns how many pixels were selected (a lazy cube is read
        block by block in a background thread: without ``wait``, None at once)."""
        if not self._ensure_drawn():
            return 0
        layer = self.image.value
        axis, alpha = features_of(layer)
        xy = self.axes if len(self.axes.names) == 2 else _first_two(self.axes)

        def job(data, channel_axis, has_alpha, _wavelengths, _progress):
            return select_polygon(data, xy, vertices, channel_axis=channel_axis, alpha=has_alpha)

        def done(selected, error):
            if error is not None or layer is not self.image.value:
                return
            self.selection = np.asarray(selected, dtype=bool)
            self._show_selection()
            self._render()
            self._say_selected()

        self._compute(layer, job, (axis, alpha), done, what="selecting in", wait=wait)
        if (is_lazy(layer.data) and not wait) or self.selection is None:
            return None
        return int(self.selection.sum())

    def select_rectangle(self, x0, x1, y0, y1) -> int:
        """Select the pixels whose points fall in ``[x0, x1] x [y0, y1]``."""
        return self.select_polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def clear_selection(self, *, quiet: bool = False) -> None:
        """No pixel selected; the selection layer empties."""
        had = self.selection is not None
        self.selection = None
        if had:
            self._show_selection()
            if not quiet:
                self._render()
        self._say_selected()

    def _own_layer(self, kind: str, key: str) -> tuple[str, Labels | None]:
        """The name of this image's ``kind`` layer ("selection", "mask") and the layer if it
        is there: ours only when its metadata ``key`` names this image and it fits -- a layer
        of that name the user made is never written to (ours then takes the next name)."""
        image = self.image.value
        n = 1
        while True:
            name = f"{image.name} {kind}" + ("" if n == 1 else f" ({n})")
            if name not in self._viewer.layers:
                return name, None
            found = self._viewer.layers[name]
            ours = isinstance(found, Labels) and found.metadata.get(key) == image.name
            if ours and tuple(found.data.shape) == self._spatial():
                return name, found
            n += 1

    def _selection_layer(self) -> Labels | None:
        if self.image.value is None:
            return None
        return self._own_layer("selection", "spectral_clusters_selection_of")[1]

    def _show_selection(self):
        """The selection as a Labels layer over the image (painting it selects too)."""
        image = self.image.value
        if image is None:
            return
        data = (
            np.zeros(self._spatial(), dtype=np.uint8)
            if self.selection is None
            else self.selection.astype(np.uint8)
        )
        name, layer = self._own_layer("selection", "spectral_clusters_selection_of")
        self._writing = True
        try:
            if layer is not None:
                layer.data = data
                self._listen_to_selection(layer)  # one left by an earlier widget, too
            elif self.selection is not None:
                axis, _ = features_of(image)
                layer = self._viewer.add_labels(
                    data,
                    name=name,
                    colormap=label_colormap(SELECTION_COLOR),
                    opacity=0.6,
                    metadata={"spectral_clusters_selection_of": image.name},
                    **sub_transform(image, spatial_axes(image, axis)),
                )
                self._listen_to_selection(layer)
                # the image stays the chosen layer: the selection is drawn over it
                self._viewer.layers.selection.active = image
        finally:
            self._writing = False

    def _listen_to_selection(self, layer: Labels) -> None:
        layer.events.data.connect(self._selection_painted)  # napari ignores a second connect
        if hasattr(layer.events, "paint"):
            layer.events.paint.connect(self._selection_painted)

    def _selection_painted(self, event):
        """Pixels painted (or filled, or drawn as a polygon) in the selection layer are the
        selection: their points light up."""
        if self._writing:
            return
        layer = event.source
        image = self.image.value
        if image is None or layer.metadata.get("spectral_clusters_selection_of") != image.name:
            return  # another image's selection
        if event.type == "paint":  # napari tells of a paint before it writes the pixels
            later(self.native, lambda: self._read_selection(layer))
        else:
            self._read_selection(layer)

    def _read_selection(self, layer: Labels):
        if self._spatial() != tuple(layer.data.shape):
            return
        self.selection = np.asarray(layer.data) > 0
        self._render()
        self._say_selected()

    def _say_selected(self) -> int:
        if self.selection is None:
            self.status.value = (
                "Draw a region on the plot to select its pixels."
                if self.view.value == "2d"
                else "Regions are drawn in the 2-D view."
            )
            return 0
        n = int(self.selection.sum())
        total = max(int(np.prod(self.selection.shape)), 1)
        self.status.value = f"{n:,} pixels selected ({n / total:.1%} of the image)"
        return n

    # -- actions --------------------------------------------------------------------------

    def _editable_labels(self, what: str) -> Labels | None:
        layer = self.clusters.value
        if layer is None:
            show_error(f"{what}: choose the clusters (a Labels layer) under 'colour by'.")
            return None
        if is_lazy(layer.data):
            show_error(
                f"{what}: {layer.name} is computed from a lazy cube as it is viewed; save it "
                "(or cluster a cube that fits in memory) to edit its clusters."
            )
            return None
        return layer

    def _alpha_plane(self):
        image = self.image.value
        _, alpha = features_of(image)
        return np.asarray(image.data)[..., -1] if alpha else None

    def selection_to_cluster(self) -> int | None:
        """Make the selected pixels a new cluster (the next free id); returns that id."""
        layer = self._editable_labels("New cluster")
        if layer is None:
            return None
        if self.selection is None or not self.selection.any():
            show_error("New cluster: select pixels first (draw a region on the plot).")
            return None
        out, new = new_cluster(np.asarray(layer.data), self.selection)
        n = int(self.selection.sum())
        put_edited_labels(self._viewer, layer, out, alpha=self._alpha_plane())
        # the selection is the cluster now: cleared, its layer no longer covers the cluster's
        # colour on the canvas (nor the plot its points)
        self.clear_selection()
        show_info(f"{n:,} pixels are cluster {new} of {layer.name}.")
        return new

    def split(self, label, n: int = 2) -> list[int] | None:
        """Split cluster ``label`` into ``n`` by KMeans on its pixels: the largest part keeps
        ``label``, the others get the next free ids. Returns the ids (``label`` first)."""
        layer = self._editable_labels("Split")
        image = self.image.value
        if layer is None or image is None or label is None:
            return None
        axis, alpha = features_of(image)
        params = layer.metadata.get("params") or {}
        try:
            out, ids = split_cluster(
                np.asarray(layer.data),
                np.asarray(image.data),
                int(label),
                int(n),
                channel_axis=axis,
                alpha=alpha,
                preprocessing=_preprocessing_of(params),
                wavelengths=layer.metadata.get("wavelengths"),
                random_state=int(params.get("random_state", 0)),
            )
        except (ValueError, ClusteringError, PreprocessingError) as exc:
            show_error(f"Cannot split cluster {label}: {exc}")
            return None
        put_edited_labels(self._viewer, layer, out, alpha=self._alpha_plane())
        show_info(f"Cluster {label} of {layer.name} is split into {', '.join(map(str, ids))}.")
        return ids

    def use_as_mask(self) -> Labels | None:
        """Keep the selection as the Labels layer ``"<image> mask"``; the clustering widget
        chooses it as 'only inside', so its next run clusters only these pixels."""
        image = self.image.value
        if image is None or self.selection is None or not self.selection.any():
            show_error("Cluster only these: select pixels first (draw a region on the plot).")
            return None
        name, existing = self._own_layer("mask", "spectral_clusters_mask_for")
        data = self.selection.astype(np.uint8)  # a copy: later selections leave it alone
        axis, _ = features_of(image)
        if existing is not None:
            existing.data = data
            self._viewer.layers.selection.active = existing  # the clustering widget follows
            show_info(f"{name} holds the new selection: the next run clusters only these.")
            return existing
        layer = self._viewer.add_labels(
            data,
            name=name,
            metadata={"spectral_clusters_mask_for": image.name},
            **sub_transform(image, spatial_axes(image, axis)),
        )
        show_info(f"{name}: the next run of the clustering widget clusters only these pixels.")
        return layer


def _wait_for(worker) -> None:
    """Return once the running ``worker`` finished, processing Qt events meanwhile."""
    from qtpy.QtCore import QEventLoop

    if worker is None or not worker.is_running:
        return
    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    loop.exec()


def _first_two(axes: FeatureAxes) -> FeatureAxes:
    return FeatureAxes(axes.names[:2], axes.kinds[:2], axes.mean, axes.components)


def _preprocessing_of(params: dict) -> str:
    """What a clustering compared (its spectral steps, then its feature space), for a split
    that compares the same."""
    space = str(params.get("preprocessing") or "none")
    steps = params.get("steps")
    if not steps:
        return space
    return Pipeline(Pipeline.parse(str(steps)).steps, space).spec
