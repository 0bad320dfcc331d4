"""The "KMeans clustering" dock widget: pick a layer, run the engine in a thread, show results."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    Table,
    create_widget,
)
from napari.layers import Image, Labels, Shapes
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEventLoop, Qt

from .._arrays import is_lazy
from ..cluster import (
    Cancelled,
    ClusteringError,
    ClusterResult,
    apply_model,
    cluster_image,
    label_statistics,
    recolor,
    sweep_k,
)
from ..color import spectra_to_rgb
from ..model import ClusterModel, ModelError
from ._colors import MAX_COLORED_LABEL, TRANSPARENT, label_colormap
from ._plots import ClusterPlot
from .layer_rules import (
    colors_for,
    features_of,
    has_hand_edits,
    labels_checksum,
    spatial_axes,
    sub_transform,
    wavelengths_of,
)
from .sections import fit_sections, plot_tabs, scroll_area
from .settings import restore_settings, save_settings
from .worker import ProgressRelay, in_thread

if TYPE_CHECKING:
    import napari


class ClusterWidget(Container):
    """Cluster the pixels of an image layer; results as a Labels and an RGB layer above it.

    Controls are reachable by name (``w.image``, ``w.n_clusters``, ``w.random_state``) and
    :meth:`run` does what the Run button does.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self.image = create_widget(annotation=Image, name="image", label="image")
        self.channel_axis = ComboBox(
            name="channel_axis", label="band axis", choices=self._axis_choices
        )
        self.n_clusters = SpinBox(name="n_clusters", label="clusters", value=8, min=1, max=255)
        self.random_state = SpinBox(
            name="random_state", label="seed", value=0, min=0, max=2**31 - 1
        )
        self.preprocessing = ComboBox(
            name="preprocessing",
            label="features",
            choices=[
                ("as given", "none"),
                ("standardised bands", "standardize"),
                ("spectral shape (unit length)", "unit"),
                ("principal components", "pca"),
            ],
        )
        self.mask = ComboBox(name="mask", label="only inside", choices=self._mask_choices)
        self.wavelengths = LineEdit(name="wavelengths", label="wavelengths", value="")
        self.wavelengths.native.setPlaceholderText("first-last nm, e.g. 401-889")
        self.wavelengths.native.editingFinished.connect(lambda: self.set_wavelengths())
        self._wavelengths_shown = ""  # what the entry shows of the layer's own wavelengths
        self.palette = ComboBox(
            name="palette",
            label="colours",
            choices=[("true colour / centre colour", "auto"), ("categorical", "categorical")],
        )
        self.scheduler = LineEdit(name="scheduler", label="dask scheduler", value="")
        self.scheduler.native.setPlaceholderText("this machine (or tcp://host:8786)")
        self.scheduler.tooltip = (
            "Address of a dask.distributed scheduler (tcp://host:8786) to cluster on, block by "
            "block, with progress from the cluster. Empty: this machine (or the dask client "
            "already active in this session)."
        )
        self.true_colour_button = PushButton(name="true_colour_button", text="True-colour view")
        self.run_button = PushButton(name="run_button", text="Run")
        self.cancel_button = PushButton(name="cancel_button", text="Cancel", enabled=False)
        self.status = Label(name="status", value="")
        self.status.native.setWordWrap(True)  # a sentence, not cut at the dock's edge
        # an existing model to apply (an open dialog); Save model asks where with a save dialog
        self.model_file = FileEdit(name="model_file", label="model", mode="r", filter="*.npz")
        self.save_model_button = PushButton(name="save_model_button", text="Save model")
        self.apply_model_button = PushButton(name="apply_model_button", text="Apply model")
        self.table = Table(name="table", label="clusters")
        self.merge_button = PushButton(name="merge_button", text="Merge selected clusters")
        self.refresh_button = PushButton(name="refresh_button", text="Refresh from labels")
        self.suggest_button = PushButton(name="suggest_button", text="Suggest k")
        self.use_k_button = PushButton(name="use_k_button", text="Use k", visible=False)
        self.use_k_button.changed.connect(lambda: self.use_suggested_k())
        self._tooltips()
        # sections in the order of the work, in a scroll area so the dock fits a laptop
        # screen (1366 x 768) instead of growing napari's window
        clusters_row = Container(
            name="clusters_row",
            label="clusters",
            layout="horizontal",
            labels=False,
            widgets=[self.n_clusters, self.suggest_button, self.use_k_button],
        )
        run_row = Container(
            name="run_row",
            label=" ",  # no label beside the buttons (an empty one shows the name)
            layout="horizontal",
            labels=False,
            widgets=[self.run_button, self.cancel_button],
        )
        edit_row = Container(
            name="edit_row",
            layout="horizontal",
            labels=False,
            widgets=[self.merge_button, self.refresh_button],
        )
        self.sections = {
            "Input": Container(
                name="input_section",
                widgets=[
                    self.image,
                    self.channel_axis,
                    self.wavelengths,
                    self.mask,
                    self.true_colour_button,
                ],
            ),
            "Clustering": Container(
                name="clustering_section",
                widgets=[
                    clusters_row,
                    self.preprocessing,
                    self.palette,
                    self.random_state,
                    run_row,
                    self.status,
                ],
            ),
            "Results": Container(
                name="results_section", labels=False, widgets=[self.table, edit_row]
            ),
            "Reuse and scale": Container(
                name="reuse_section",
                widgets=[
                    self.model_file,
                    self.save_model_button,
                    self.apply_model_button,
                    self.scheduler,
                ],
            ),
        }
        # the clusters' spectra and the k sweep each in a tab of their own: a sweep no longer
        # replaces the spectra
        self.plot, self.sweep_plot = ClusterPlot(), ClusterPlot()
        self.plots = plot_tabs({"Spectra": self.plot, "Suggest k": self.sweep_plot})
        for plot in (self.plot, self.sweep_plot):
            plot.follow_theme(viewer.theme)
        viewer.events.theme.connect(self._follow_theme)
        self.native.destroyed.connect(
            lambda *_: viewer.events.theme.disconnect(self._follow_theme)
        )
        scroll, self._boxes = scroll_area(self.sections, self.plots)
        self.native.layout().addWidget(scroll)
        self.suggest_button.changed.connect(lambda: self.suggest_k())
        self.last_sweep: dict | None = None
        self.table.read_only = True
        self.table.native.setMinimumHeight(160)
        self.table.native.verticalHeader().setVisible(False)
        self.table.native.itemSelectionChanged.connect(self._highlight_selected)
        self.merge_button.changed.connect(lambda: self.merge(self.selected_labels()))
        self.refresh_button.changed.connect(lambda: self.refresh())
        self._shown: dict | None = None  # the result on screen: source, layers, colours
        self._results: dict[str, dict] = {}  # every result of this session, by labels layer
        restore_settings(self)
        self.true_colour_button.changed.connect(lambda: self.true_colour())
        self.save_model_button.changed.connect(lambda: self._model_button("save"))
        self.apply_model_button.changed.connect(lambda: self._model_button("apply"))
        self._model: ClusterModel | None = None
        self.image.changed.connect(self.channel_axis.reset_choices)
        self.image.changed.connect(self._show_wavelengths)
        self.run_button.changed.connect(lambda: self.run())
        self.cancel_button.changed.connect(self.cancel)
        self._worker = None
        self._progress = None
        self._started: float | None = None
        self._cancel = threading.Event()
        self._relay = ProgressRelay()
        self._relay.reported.connect(self._on_progress)
        viewer.layers.selection.events.active.connect(self._follow_active_layer)
        viewer.mouse_drag_callbacks.append(self._on_click)
        self.native.destroyed.connect(
            lambda *_: _remove(viewer.mouse_drag_callbacks, self._on_click)
        )
        # the layer lists follow renames too (napari itself refreshes them on add/remove)
        for layer in viewer.layers:
            layer.events.name.connect(self.reset_choices)
        viewer.layers.events.inserted.connect(
            lambda event: event.value.events.name.connect(self.reset_choices)
        )
        self.table.native.cellDoubleClicked.connect(self._edit_cell)
        self.reset_choices()
        self._follow_active_layer()

    def reset_choices(self, *_):
        super().reset_choices()
        for section in self.sections.values():  # their controls live in the scroll area
            section.reset_choices()
        self._follow_active_layer()

    def _tooltips(self):
        """Every control says what it does and when to change it."""
        tips = {
            self.image: "The image layer to cluster: a spectral cube, a picture or any image.",
            self.channel_axis: (
                "Which axis holds the bands (or colours). 'auto' takes the reader's band axis, "
                "or the colour axis of an RGB picture; pick one when auto chose wrong."
            ),
            self.mask: (
                "Cluster only the pixels inside this Labels or Shapes layer (drawn over this "
                "image); the others get label 0."
            ),
            self.wavelengths: (
                "The bands' wavelengths, when the file does not give them: the first and "
                "last in nm (e.g. 401-889), spread evenly over the bands. Kept in the layer's "
                "metadata, used by the plot, true colour and saved files."
            ),
            self.true_colour_button: (
                "Add an RGB view of the cube: CIE true colour from the wavelengths when known, "
                "else a false-colour picture of its leading principal components."
            ),
            self.n_clusters: "How many clusters (materials) to look for.",
            self.suggest_button: (
                "Cluster a sample for k = 2..12 and plot the inertia (and silhouette): the "
                "suggested k is the elbow, where more clusters stop paying (a few seconds)."
            ),
            self.use_k_button: "Set the number of clusters to the suggested k.",
            self.preprocessing: (
                "What is compared: the values as given; each band standardised (bands of "
                "different scales count alike); spectral shape only (brightness ignored); or "
                "the leading principal components (faster on many bands)."
            ),
            self.palette: (
                "Cluster colours: the true colour of each mean spectrum (or the centre's own "
                "colour for pictures), or distinct categorical colours."
            ),
            self.random_state: (
                "Seed of the random starts: the same seed and settings give the same result."
            ),
            self.run_button: "Cluster the image; the result layers appear above it.",
            self.cancel_button: "Stop the running clustering; nothing is changed.",
            self.status: "What the last run did.",
            self.table: (
                "One row per cluster: select rows to see only those clusters, double-click a "
                "name to rename it or a swatch to change its colour."
            ),
            self.merge_button: "Merge the selected clusters into the first of them.",
            self.refresh_button: (
                "Recount the table from the Labels layer after painting on it by hand."
            ),
            self.model_file: "The .npz file a clustering is saved to, or applied from.",
            self.save_model_button: "Save the last clustering, to label other images alike.",
            self.apply_model_button: (
                "Label this image with a saved clustering (same bands), without fitting anew."
            ),
        }
        for widget, tip in tips.items():
            widget.tooltip = tip

    def set_wavelengths(self, text: str | None = None) -> np.ndarray | None:
        """Give the chosen cube wavelengths from "first-last" (nm), evenly spread over its
        bands, kept in its metadata; returns them (None, after saying why, when they cannot
        be). An empty entry changes nothing."""
        text = self.wavelengths.value if text is None else text
        layer = self.image.value
        if not str(text).strip() or layer is None or text == self._wavelengths_shown:
            return None  # nothing entered, or the layer's own (perhaps uneven) wavelengths
        channel_axis, _ = features_of(layer, self.channel_axis.value)
        if channel_axis is None or layer.rgb:
            show_error(f"{layer.name} has no band axis to give wavelengths to.")
            return None
        entered = str(layer.metadata.get("wavelength_source", "")).startswith("entered")
        if layer.metadata.get("wavelengths") is not None and not entered:
            show_error(
                f"{layer.name} has its file's own wavelengths; they are kept, not replaced by "
                "an even spread."
            )
            self._show_wavelengths()
            return None
        dashes = "-\u2013\u2014"  # hyphen, en and em dash: "401-889", "401\u2013889"
        parts = [p for p in re.split(rf"\s*(?:[{dashes}]|,|\s)\s*", str(text).strip()) if p]
        parts = [p for p in parts if p.lower() not in ("nm", "to")]
        try:
            first, last = (float(p) for p in parts)
        except ValueError:
            show_error(
                f"Wavelengths are two numbers in nm, first-last (e.g. 401-889), not {text!r}."
            )
            return None
        if not (np.isfinite([first, last]).all() and 0 < first < last):
            show_error(f"Wavelengths go up from a positive first to a larger last, not {text!r}.")
            return None
        n = layer.data.shape[channel_axis]
        wl = np.linspace(first, last, n)
        layer.metadata = {
            **layer.metadata,
            "wavelengths": wl,
            "wavelength_unit": "nm",
            "wavelength_source": f"entered in the widget: {first:g}-{last:g} nm",
        }
        show_info(f"{layer.name}: {n} bands from {first:g} to {last:g} nm")
        self._wavelengths_shown = f"{first:g}-{last:g}"
        self.wavelengths.value = self._wavelengths_shown
        self.channel_axis.reset_choices()
        return wl

    def _show_wavelengths(self, *_):
        """The chosen layer's wavelengths as the entry shows them."""
        layer = self.image.value
        wl = None if layer is None else layer.metadata.get("wavelengths")
        text = ""
        if wl is not None and np.size(wl) >= 2:
            wl = np.asarray(wl, dtype=float).ravel()
            text = f"{wl[0]:g}-{wl[-1]:g}"
        self._wavelengths_shown = text
        self.wavelengths.value = text

    def _follow_active_layer(self, *_):
        """Default source: the active layer, when it is an image we did not make; and when it
        is one of our result layers, the table, plot and actions follow that result."""
        active = self._viewer.layers.selection.active
        if isinstance(active, Image) and not active.metadata.get("spectral_clusters_source"):
            if active in self.image.choices:
                self.image.value = active
        if active is None or not hasattr(self, "_results"):
            return
        record = next(
            (r for r in self._results.values() if active.name in (r["labels"], r["recolored"])),
            None,
        )
        if record is not None and record is not self._shown:
            self._clear_isolation()
            self._shown = record
            self._model = record["model"]
            if "table" in record and self._result_layers(quiet=True) is not None:
                # redrawn from what the result holds: nothing recomputed (a lazy cube is
                # never read for it)
                self._plot_spectra(*record["plot_args"])
                self._fill_table(*record["table"])

    def _axis_choices(self, _widget=None) -> list[tuple[str, object]]:
        """ "auto" (the reader's band axis, or the colour axis), or any axis of the layer."""
        layer = self.image.value
        if layer is None or layer.rgb:
            return [("auto (colour)" if layer is not None else "auto", "auto")]
        names = tuple(getattr(layer, "axis_labels", ())) or tuple(map(str, range(layer.ndim)))
        chosen, _ = features_of(layer, "auto")  # say what auto chose
        if chosen is None:
            choices: list[tuple[str, object]] = [("auto (greyscale)", "auto")]
        else:
            axis = chosen % layer.ndim
            name = names[axis] if not names[axis].lstrip("-").isdigit() else f"axis {axis}"
            choices = [(f"auto ({name}: {layer.data.shape[axis]} bands)", "auto")]
        choices.append(("none (greyscale)", "none"))
        choices += [(f"{axis}: {name}", axis) for axis, name in enumerate(names)]
        return choices

    def _mask_choices(self, _widget=None) -> list[tuple[str, object]]:
        """No mask, or any Labels/Shapes layer that is not one of our results."""
        layers = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Labels | Shapes)
            and not layer.metadata.get("spectral_clusters_source")
        ]
        return [("everywhere", None)] + [(layer.name, layer) for layer in layers]

    def _mask_array(self):
        """The chosen mask as a boolean array over the source's pixels; None for no mask;
        False (after telling the user) when it does not fit the image."""
        layer, source = self.mask.value, self.image.value
        if layer is None or source is None:
            return None
        channel_axis, _ = features_of(source, self.channel_axis.value)
        spatial = tuple(
            n
            for i, n in enumerate(source.data.shape)
            if (source.rgb and i < source.data.ndim - 1)
            or (not source.rgb and (channel_axis is None or i != channel_axis % source.data.ndim))
        )
        if isinstance(layer, Shapes):
            return layer.to_labels(labels_shape=spatial) > 0
        data = np.asarray(layer.data)
        if data.shape != spatial:
            show_error(
                f"The mask {layer.name} is {data.shape}, the image's pixels are {spatial}: "
                "choose a mask drawn over this image."
            )
            return False
        return data > 0

    def selected_labels(self) -> list[int]:
        """Labels of the rows selected in the cluster table."""
        rows = sorted({index.row() for index in self.table.native.selectedIndexes()})
        labels = self.table.to_dict("list").get("label", []) if rows else []
        return [int(labels[r]) for r in rows]

    def _follow_theme(self, *_):
        for plot in (self.plot, self.sweep_plot):
            plot.follow_theme(self._viewer.theme)

    def _clear_isolation(self):
        """Undo what a table selection hid or cleared, before another result is shown."""
        if self._shown is not None and self._shown.get("recolored_visible") is not None:
            self._isolate(set())

    def _highlight_selected(self):
        """Show only the clusters selected in the table (all of them when none is)."""
        self._isolate(set(self.selected_labels()))

    def _isolate(self, selected: set):
        """Show only the ``selected`` clusters (all of them when empty): the others turn clear
        in the Labels layer, and the recoloured layer, which shows them all, steps aside
        until the selection is cleared. Only what is drawn changes, never the data."""
        found = self._result_layers(quiet=True)
        if found is None:
            return
        labels_layer, recolored, _ = found
        colormap = label_colormap(np.asarray(self._shown["colors"], dtype=np.uint8))
        if selected:
            colormap = {
                k: v if k in selected or k in (0, None) else TRANSPARENT
                for k, v in colormap.items()
            }
        labels_layer.colormap = colormap
        if recolored is not None:
            if selected and self._shown.get("recolored_visible") is None:
                self._shown["recolored_visible"] = recolored.visible
                recolored.visible = False
            elif not selected and self._shown.get("recolored_visible") is not None:
                recolored.visible = self._shown.pop("recolored_visible")

    def merge(self, labels: list[int]):
        """Merge clusters into the first of them; the recoloured image and table follow."""
        if self._shown is None or len(labels) < 2:
            show_info("Select two or more clusters in the table to merge.")
            return
        found = self._result_layers()
        if found is None:
            return
        layer = found[0]
        data = np.array(layer.data)
        keep = min(labels)
        data[np.isin(data, labels)] = keep
        layer.data = data
        self.refresh(edited=True)

    def refresh(self, *, edited: bool = False):
        """Recompute the table, features, colours and recoloured image from the labels as they
        are now (after painting or merging); a label painted beyond the clustering's gets a
        colour of its own, in both result layers."""
        found = self._result_layers()
        if found is None:
            return
        shown = self._shown
        labels_layer, recolored, source = found
        labels = np.asarray(labels_layer.data)
        data = np.asarray(source.data)
        try:
            stats = label_statistics(
                data, labels, channel_axis=shown["channel_axis"], alpha=shown["alpha"]
            )
        except ClusteringError as exc:
            show_error(f"Cannot refresh from {labels_layer.name}: {exc}")
            return
        top = int(labels.max(initial=0))
        if top > MAX_COLORED_LABEL or labels.min(initial=0) < 0:
            show_error(
                f"{labels_layer.name} holds labels outside 0..{MAX_COLORED_LABEL:,}: paint "
                "with labels in that range to give them colours."
            )
            return
        if top > len(shown["colors"]):
            shown["colors"] = colors_for(np.arange(1, top + 1), shown["colors"])
        colors = np.asarray(shown["colors"], dtype=np.uint8)
        edited = edited or labels_checksum(labels) != labels_layer.metadata.get("labels_checksum")
        labels_layer.colormap = label_colormap(colors)
        labels_layer.metadata = {
            **labels_layer.metadata,
            "colors": colors,
            "hand_edited": bool(edited or labels_layer.metadata.get("hand_edited")),
        }
        present = colors[stats["label"] - 1]
        self._plot_spectra(stats["mean"], stats["std"], present, stats["label"])
        alpha_plane = data[..., -1] if shown["alpha"] else None
        if recolored is not None:  # the user may have closed it: the labels carry on
            recolored.data = recolor(labels, colors, alpha_plane)
            recolored.metadata = {**recolored.metadata, "colors": colors}
        self._fill_table(stats, present)

    def _result_layers(self, *, quiet: bool = False):
        """The shown result's labels, recoloured (None once the user removed it) and source
        layers, or None (after saying so, unless ``quiet``) when the labels or the source
        were removed or replaced by another kind of layer."""
        if self._shown is None:
            return None
        layers = self._viewer.layers

        def get(name, kind):
            return layers[name] if name in layers and isinstance(layers[name], kind) else None

        labels, source = get(self._shown["labels"], Labels), get(self._shown["source"], Image)
        if labels is None or source is None:
            if not quiet:
                show_error("The clustered layers are gone; run the clustering again.")
            return None
        return labels, get(self._shown["recolored"], Image), source

    def rename(self, label: int, name: str):
        """Name a cluster (e.g. after the material it shows); table and features follow."""
        if self._shown is None:
            return
        self._shown["names"][int(label)] = str(name)
        self.refresh(edited=True)

    def recolour(self, label: int, color):
        """Give a cluster another colour (RGB 0-255); labels, recoloured image, table and
        plot follow."""
        if self._shown is None:
            return
        label = int(label)
        try:
            color = np.asarray(color, dtype=float)[:3]
        except (TypeError, ValueError):
            color = np.zeros(0)
        if (
            color.shape != (3,)
            or not np.isfinite(color).all()
            or color.min() < 0
            or color.max() > 255
        ):
            show_error(
                f"A colour is three numbers from 0 to 255 (red, green, blue), not {color!r}."
            )
            return
        colors = np.asarray(self._shown["colors"], dtype=np.uint8)
        if label > len(colors):
            colors = colors_for(np.arange(1, label + 1), colors)
        colors = colors.copy()
        colors[label - 1] = np.round(color).astype(np.uint8)
        self._shown["colors"] = colors
        self.refresh(edited=True)

    def _edit_cell(self, row: int, column: int):
        """Double-click: the swatch picks a new colour, the name asks for a new name."""
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QColorDialog, QInputDialog

        label = self.table.to_dict("list")["label"][row]
        if column == 0:
            current = self.table.native.item(row, 0).background().color()
            chosen = QColorDialog.getColor(QColor(current), self.native, f"cluster {label}")
            if chosen.isValid():
                self.recolour(label, chosen.getRgb()[:3])
        elif column == 1:
            name, ok = QInputDialog.getText(self.native, "Cluster name", f"cluster {label}:")
            if ok:
                self.rename(label, name)

    def _plot_spectra(self, means, stds, colors, labels):
        shown = self._shown
        shown["plot_args"] = (means, stds, colors, labels)
        n = means.shape[1]
        wl = shown.get("wavelengths")
        ticks = None
        if shown["rgb"] and n == 3:
            x, xlabel, ticks = np.arange(3), "colour channel (R, G, B)", ["R", "G", "B"]
        elif wl is not None and len(wl) == n:
            x, xlabel = wl, "wavelength (nm)"
        else:
            x, xlabel = np.arange(n), "band"
        names = [shown["names"].get(int(label), f"cluster {label}") for label in labels]
        # what a clicked pixel's spectrum is drawn against (show_pixel)
        shown["plotted"] = {
            int(label): (mean, std, color, name)
            for label, mean, std, color, name in zip(
                labels, means, stds, colors, names, strict=True
            )
        }
        shown["axis"] = (x, xlabel, ticks)
        if n == 1 and self._one_band_histograms(labels, colors, names):
            return
        self.plot.show_spectra(x, means, stds, colors, xlabel=xlabel, labels=names, ticks=ticks)
        self.plots.setCurrentWidget(self.plot)

    def show_pixel(self, position) -> np.ndarray | None:
        """Plot the spectrum of the source pixel at ``position`` (world coordinates, as
        napari's mouse events give them) against its cluster's mean ± std. Shift-click on
        the image does this. Returns the spectrum (None outside the image or its clusters)."""
        found = self._result_layers(quiet=True)
        shown = self._shown
        if found is None or "plotted" not in shown:
            return None
        labels_layer, _, source = found
        where = np.round(labels_layer.world_to_data(position)).astype(int)[-labels_layer.ndim :]
        if np.any(where < 0) or np.any(where >= labels_layer.data.shape):
            return None
        label = int(np.asarray(labels_layer.data[tuple(where)]))
        if label not in shown["plotted"]:
            return None
        data = source.data
        axis = shown["channel_axis"]
        if source.rgb:
            spectrum = np.asarray(data[tuple(where)])[:3]
        elif axis is None:
            return None  # one value per pixel: the histograms say it all
        else:
            index = list(where)
            index.insert(axis % data.ndim, slice(None))
            spectrum = np.asarray(data[tuple(index)], dtype=np.float64)
        mean, std, color, name = shown["plotted"][label]
        x, xlabel, ticks = shown["axis"]
        self.plot.show_spectra(
            x,
            np.asarray([mean]),
            np.asarray([std]),
            [color],
            xlabel=xlabel,
            labels=[name],
            ticks=ticks,
        )
        self.plot.add_line(x, spectrum, f"pixel {tuple(int(i) for i in where)}")
        return spectrum

    def _on_click(self, viewer, event):
        """Shift-click: the clicked pixel's spectrum against its cluster's."""
        if event.type == "mouse_press" and "Shift" in event.modifiers:
            self.show_pixel(event.position)

    def _one_band_histograms(self, labels, colors, names) -> bool:
        """A one-band image has no spectrum to draw: each cluster's histogram of its values
        instead. False when the layers are not at hand (the spectra plot is drawn)."""
        found = self._result_layers(quiet=True)
        if found is None:
            return False
        labels_layer, _, source = found
        if is_lazy(source.data) or is_lazy(labels_layer.data):
            return False  # not read for a plot
        values = np.asarray(source.data)
        if self._shown["channel_axis"] is not None:
            values = np.take(values, 0, axis=self._shown["channel_axis"])
        lab = np.asarray(labels_layer.data)
        if values.shape != lab.shape:
            return False
        finite = np.isfinite(values) & (lab > 0)
        edges = np.histogram_bin_edges(values[finite], bins=50)
        counts = [np.histogram(values[finite & (lab == k)], bins=edges)[0] for k in labels]
        self.plot.show_histograms(edges, counts, colors, labels=names)
        return True

    def suggest_k(self, *, ks=range(2, 13), wait: bool = False):
        """Sweep k on a sample in the background; plot inertia (elbow) and silhouette.

        The result is kept in ``last_sweep``; the status line names the k with the best
        silhouette."""
        preprocessing = self.preprocessing.value

        def job(data, channel_axis, alpha, wavelengths, progress):
            return sweep_k(
                data,
                ks,
                channel_axis=channel_axis,
                alpha=alpha,
                preprocessing=preprocessing,
                progress=progress,
            )

        return self._start(job, "for several k", wait=wait, on_done=self._show_sweep)

    def _show_sweep(self, sweep: dict | None, error: Exception | None):
        if error is not None:
            self.status.value = "no suggestion"
            if not isinstance(error, Cancelled):
                show_error(f"Cannot sweep k: {error}")
            return
        self.last_sweep = sweep
        suggested = sweep.get("suggested")
        self.sweep_plot.show_sweep(sweep["k"], sweep["inertia"], sweep["silhouette"], suggested)
        self.plots.setCurrentWidget(self.sweep_plot)
        if suggested is None:
            self.use_k_button.visible = False
            self.status.value = "no suggestion: too few distinct pixels to compare several k"
            return
        self.status.value = (
            f"suggested k = {suggested}: the elbow, where more clusters stop paying"
        )
        self.use_k_button.text = f"Use k = {suggested}"
        self.use_k_button.visible = True
        fit_sections(self._boxes)

    def use_suggested_k(self):
        """Set the number of clusters to the last sweep's suggestion."""
        if self.last_sweep and self.last_sweep.get("suggested"):
            self.n_clusters.value = int(self.last_sweep["suggested"])
            self.use_k_button.visible = False

    def _fill_table(self, stats: dict, colors: np.ndarray):
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QTableWidgetItem

        names = self._shown["names"]
        self._shown["table"] = (stats, colors)
        self.table.value = {
            "colour": [""] * len(stats["label"]),
            "name": [names.get(int(v), f"cluster {v}") for v in stats["label"]],
            "label": [int(v) for v in stats["label"]],
            "pixels": [int(v) for v in stats["count"]],
            "fraction": [f"{v:.1%}" for v in stats["fraction"]],
        }
        for row, color in enumerate(colors):
            swatch = QTableWidgetItem()  # an empty cell painted in the cluster's colour
            swatch.setBackground(QColor(*map(int, color)))
            # not selectable: a selected row's swatch keeps its colour, not selection grey
            swatch.setFlags(swatch.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.table.native.setItem(row, 0, swatch)
        self.table.native.resizeColumnsToContents()
        layer = self._viewer.layers[self._shown["labels"]]
        layer.features = {
            "index": np.concatenate([[0], stats["label"]]),
            "name": ["background"] + [names.get(int(v), f"cluster {v}") for v in stats["label"]],
            "pixels": np.concatenate([[0], stats["count"]]),
            "fraction": np.concatenate([[0.0], stats["fraction"]]),
        }
        fit_sections(self._boxes)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def run(self, *, wait: bool = False):
        """Cluster the chosen layer in a background thread, as the Run button does.

        With ``wait=True`` return only when the result layers are in the viewer (or the run
        failed), processing Qt events meanwhile: for scripts and the napari console.
        """
        n_clusters, seed = int(self.n_clusters.value), int(self.random_state.value)
        palette, preprocessing = self.palette.value, self.preprocessing.value
        mask = self._mask_array()
        if mask is False:
            return None
        save_settings(self)

        def job(data, channel_axis, alpha, wavelengths, progress):
            return cluster_image(
                data,
                n_clusters,
                channel_axis=channel_axis,
                alpha=alpha,
                random_state=seed,
                wavelengths=wavelengths,
                palette=palette,
                preprocessing=preprocessing,
                mask=mask,
                progress=progress,
            )

        return self._start(job, f"into {n_clusters}", wait=wait)

    def apply_model(self, path=None, *, wait: bool = False):
        """Label the chosen layer with the clustering saved in ``path`` (default: the model
        file field), so its clusters mean the same as in the image the model came from."""
        path = path or self.model_file.value
        if not str(path).strip() or Path(path).is_dir():
            show_error("Choose a model file (.npz, from Save model) to apply.")
            return None
        try:
            model = ClusterModel.load(path)
        except (ModelError, OSError) as exc:
            show_error(f"Cannot use the model {Path(path).name}: {exc}")
            return None

        def job(data, channel_axis, alpha, wavelengths, progress):
            return apply_model(
                data,
                model,
                channel_axis=channel_axis,
                alpha=alpha,
                wavelengths=wavelengths,
                progress=progress,  # so Cancel stops it, chunk by chunk
            )

        return self._start(job, f"with the model {getattr(path, 'name', path)}", wait=wait)

    def true_colour(self):
        """Add the chosen cube as an RGB picture of the same (y, x): true colour where its
        wavelengths cover the visible, false colour otherwise (the notification says which)."""
        layer = self.image.value
        if layer is None or layer.rgb:
            show_error("Choose a spectral cube (not an RGB image) for a true-colour view.")
            return None
        channel_axis, _ = features_of(layer, self.channel_axis.value)
        if channel_axis is None:
            show_error(f"{layer.name} has no band axis: choose one under 'band axis'.")
            return None
        data = np.asarray(layer.data)
        rendering = spectra_to_rgb(
            data, wavelengths_of(layer, data, channel_axis), channel_axis=channel_axis
        )
        keep = spatial_axes(layer, channel_axis)
        kind = "true colour" if rendering.coverage > 0 else "false colour"  # named as it is
        out = self._put(
            f"{layer.name} {kind}",
            "image",
            rendering.rgb,
            dict(
                rgb=True,
                metadata={"rendering": rendering.method, "spectral_clusters_source": layer.name},
                **sub_transform(layer, keep),
            ),
            above=layer,
        )
        show_info(f"{layer.name}: {rendering.method}")
        return out

    def _model_button(self, action: str):
        """Save model / Apply model: the model field's file when it names one, else a save or
        open dialog (cancelling it does nothing)."""
        from qtpy.QtWidgets import QFileDialog

        field = str(self.model_file.value).strip()
        path = field if field and field != "." and not Path(field).is_dir() else None
        if path is None:
            if action == "save":
                if self._model is None:
                    return self.save_model()  # says there is nothing to save yet
                path, _ = QFileDialog.getSaveFileName(
                    self.native, "Save the clustering", "clustering.npz", "Models (*.npz)"
                )
            else:
                path, _ = QFileDialog.getOpenFileName(
                    self.native, "Apply a saved clustering", "", "Models (*.npz)"
                )
            if not path:
                return None
            self.model_file.value = path
        return self.save_model(path) if action == "save" else self.apply_model(path)

    def save_model(self, path=None):
        """Save the last clustering (centres, preprocessing, wavelengths) to ``path`` (default:
        the model file field) as a small ``.npz``, to apply to other layers or files."""
        path = path or self.model_file.value
        if self._model is None:
            show_error("Nothing to save yet: run a clustering first.")
            return None
        if not str(path).strip() or Path(path).is_dir():
            show_error("Choose a file name (.npz) to save the model to.")
            return None
        try:
            written = self._model.save(path)
        except (OSError, ValueError) as exc:
            show_error(f"Cannot save the model to {Path(path).name}: {exc}")
            return None
        show_info(f"Saved the clustering to {written}")
        return written

    def _start(self, job, what: str, *, wait: bool, on_done=None):
        if self.running:
            show_info("A clustering is already running; cancel it first.")
            return None
        layer = self.image.value
        if layer is None:
            show_error("No image layer to cluster: open a .mat or .png file, or a sample.")
            return None
        channel_axis, alpha = features_of(layer, self.channel_axis.value)
        # a dask (lazy) layer stays lazy: clustered block by block, labels computed on view
        data = layer.data if is_lazy(layer.data) else np.asarray(layer.data)
        self._cancel.clear()
        self._progress = progress(total=0, desc=f"KMeans clustering {layer.name}")
        worker = create_worker(
            in_thread,
            job,
            data,
            channel_axis,
            alpha,
            wavelengths_of(layer, data, channel_axis),
            cancel=self._cancel,
            relay=self._relay,
            scheduler=self.scheduler.value.strip(),
            _start_thread=False,
        )
        if on_done is None:
            worker.returned.connect(lambda outcome: self._show(layer, channel_axis, *outcome))
        else:
            worker.returned.connect(lambda outcome: on_done(*outcome))
        worker.errored.connect(self._report_bug)
        worker.finished.connect(self._finished)
        self._worker = worker
        self.run_button.enabled = False
        self.apply_model_button.enabled = False
        self.cancel_button.enabled = True
        where = f" on {self.scheduler.value.strip()}" if self.scheduler.value.strip() else ""
        self.status.value = f"clustering {layer.name} {what}{where}…"
        self._started = time.perf_counter()
        if wait:
            loop = QEventLoop()
            worker.finished.connect(loop.quit)
            worker.start()
            loop.exec()
        else:
            worker.start()
        return worker

    def cancel(self, *_):
        """Stop the running clustering; the layers stay as they were."""
        self._cancel.set()

    def _on_progress(self, stage: str, done: int, total: int):
        if self._progress is not None:
            self._progress.set_description(f"KMeans clustering: {stage} {done}/{total}")

    def _finished(self):
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._worker = None
        self.run_button.enabled = True
        self.apply_model_button.enabled = True
        self.cancel_button.enabled = False

    def _report_bug(self, exc: Exception):
        # napari's worker already shows the exception with its traceback: a bug, not bad input.
        self.status.value = f"failed: {type(exc).__name__}"

    def _show(
        self,
        source: Image,
        channel_axis: int | None,
        result: ClusterResult | None,
        error: Exception | None,
    ):
        """Add the result layers above the source, or update them in place on a rerun."""
        if isinstance(error, Cancelled):
            self.status.value = "cancelled"
            show_info("Clustering cancelled; nothing was changed.")
            return
        if error is not None:
            self.status.value = "not clustered"
            show_error(f"Cannot cluster {source.name}: {error}")
            return
        if source not in self._viewer.layers:
            self.status.value = "source removed"
            show_info(f"{source.name} was removed while it was clustered; the result is dropped.")
            return
        keep = spatial_axes(source, channel_axis)
        transform = sub_transform(source, keep)
        self._clear_isolation()
        self._model = result.model
        meta = {"spectral_clusters_source": source.name, **result.summary()}
        labels_name, recolored_name = self._result_names(source.name)
        colormap = label_colormap(result.colors)
        self._put(
            recolored_name,
            "image",
            result.recolored,
            dict(rgb=True, metadata=meta, **transform),
            above=source,
        )
        self._put(
            labels_name,
            "labels",
            result.labels,
            dict(
                colormap=colormap,
                metadata={**meta, "labels_checksum": labels_checksum(result.labels)},
                opacity=0.7,
                **transform,
            ),
            above=self._viewer.layers[recolored_name],
        )
        self._shown = {
            "source": source.name,
            "labels": labels_name,
            "recolored": recolored_name,
            "channel_axis": channel_axis,
            "alpha": result.recolored.shape[-1] == 4,
            "colors": result.colors,
            "rgb": bool(source.rgb),
            "names": {},
            "wavelengths": result.model.wavelengths,
            "model": result.model,
        }
        self._results[labels_name] = self._shown
        present = result.counts > 0
        self._plot_spectra(
            result.centers[present],
            result.std[present],
            result.colors[present],
            np.flatnonzero(present) + 1,
        )
        self._fill_table(
            {
                "label": np.flatnonzero(present) + 1,
                "count": result.counts[present],
                "fraction": result.fractions[present],
            },
            result.colors[present],
        )
        how = result.params.get("colors", "")
        if self.palette.value == "auto" and str(how).startswith("categorical"):
            # true colours were asked for but two clusters would look alike: say why not
            show_info(f"{source.name}: cluster colours from a {how}")
        seconds = f" in {time.perf_counter() - self._started:.1f} s" if self._started else ""
        self.status.value = (
            f"{result.n_clusters} clusters of {int(result.counts.sum()):,} pixels{seconds}"
        )

    def _result_names(self, source: str) -> tuple[str, str]:
        """Names of the labels and recoloured layers a new result of ``source`` goes to: the
        usual ones, updated in place, unless those hold hand edits (painting, merges, names,
        colours), which are never overwritten: then new names, and a notification."""
        layers = self._viewer.layers

        def reusable(name: str, kind) -> bool:  # absent, or our own unedited result
            if name not in layers:
                return True
            layer = layers[name]
            ours = layer.metadata.get("spectral_clusters_source") == source
            edited = kind is Labels and has_hand_edits(layer)  # the recoloured image follows
            return isinstance(layer, kind) and ours and not edited

        n = 1
        while True:
            suffix = "" if n == 1 else f" ({n})"
            names = (f"{source} clusters{suffix}", f"{source} recolored{suffix}")
            if reusable(names[0], Labels) and reusable(names[1], Image):
                break
            n += 1
        if n > 1:
            show_warning(
                f"'{source} clusters' or '{source} recolored' holds your edits or is not a "
                f"result of this widget, so the new result is in '{names[0]}' and '{names[1]}'."
            )
        return names

    def _put(self, name: str, layer_type: str, data, kwargs: dict, *, above):
        layers = self._viewer.layers
        kind = Labels if layer_type == "labels" else Image
        if name in layers and isinstance(layers[name], kind):
            layer = layers[name]
            layer.data = data
            for key, value in kwargs.items():
                if key not in ("rgb", "opacity"):  # opacity is the user's to keep
                    setattr(layer, key, value)
        else:
            if name in layers:
                layers.remove(name)
            add = self._viewer.add_labels if layer_type == "labels" else self._viewer.add_image
            layer = add(data, name=name, **kwargs)
        here, target = layers.index(layer), layers.index(above) + 1
        if here != target:
            layers.move(here, target if here > target else target - 1)
        return layer


def _remove(callbacks: list, callback) -> None:
    """Take a closed widget's mouse callback off the viewer (clicks must not reach it)."""
    if callback in callbacks:
        callbacks.remove(callback)
