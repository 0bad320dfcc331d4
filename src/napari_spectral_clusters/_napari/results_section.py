"""The widget's *Results* section: the result layers of a run, the cluster table and its
edits (merge, rename, recolour, refresh after painting), isolating clusters, and a clicked
pixel's spectrum. It follows the result layer selected in the viewer."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container, PushButton, Table
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt

from .._arrays import is_lazy
from ..cluster import (
    Cancelled,
    ClusteringError,
    ClusterResult,
    label_statistics,
    merged_statistics,
    recolor,
    summary_by_label,
)
from . import PLUGIN
from ._colors import MAX_COLORED_LABEL, TRANSPARENT, label_colormap
from .layer_rules import (
    clusters_table,
    colors_for,
    features_of,
    labels_checksum,
    pixel_spectrum,
    spatial_axes,
    spatial_shape,
    sub_transform,
)
from .result_layers import find_layers, put_layer, result_names, top_result
from .sections import StatusLabel
from .shown import ShownResult

if TYPE_CHECKING:
    import napari

    from .plot_panel import PlotPanel

__all__ = ["ResultsSection"]

#: Recounts of a lazy cube in a row when its labels change while it counts (each is a pass
#: over the cube), before the user is asked to press Refresh again.
RECOUNT_TRIES = 3


#: The caption while no result is shown.
NOTHING_SHOWN = "Layer: none (Run, or select a clusters layer)"


class ResultsSection(Container):
    """The cluster table (``table``), *Merge* and *Refresh*; ``shown`` is the result they act
    on, ``results`` every result of this session by its labels layer's name. ``resized`` is
    called when the section's contents changed size, ``edited(n_clusters, n_pixels)`` when a
    refresh finds the labels changed by hand. ``background(job, what)`` runs a recount of a
    lazy cube off the viewer's thread, with progress and Cancel, and returns ``(result,
    error)`` when it is done (both None for a bug), or None when it cannot start (another
    job is running); recounts run here then, and without it."""

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        panel: PlotPanel,
        *,
        resized=None,
        edited=None,
        followed=None,
        background=None,
    ):
        self.table = Table(name="table", label="clusters")
        self.merge_button = PushButton(name="merge_button", text="Merge selected")
        self.refresh_button = PushButton(name="refresh_button", text="Refresh from labels")
        self.save_button = PushButton(name="save_button", text="Save…")
        edit_row = Container(
            name="edit_row",
            layout="horizontal",
            labels=False,
            widgets=[self.merge_button, self.refresh_button, self.save_button],
        )
        #: which clusters layer the table and plot describe
        self.caption = StatusLabel(name="caption", value=NOTHING_SHOWN)  # a long name wraps
        super().__init__(
            name="results_section", labels=False, widgets=[self.caption, self.table, edit_row]
        )
        self._viewer = viewer
        self._panel = panel
        self._resized = resized or (lambda: None)
        self._edited = edited or (lambda n_clusters, n_pixels: None)
        self._editing_partners = False  # an edit being repeated in a joint clustering's layers
        self._isolated = False  # table rows isolated: the other clusters drawn clear
        self._followed = followed or (lambda name, n_clusters, n_pixels, stale: None)
        self._background = background
        self._counting = False  # a recount is running in the background
        self._saved_in: Path | None = None  # the folder Save… wrote to last
        self.shown: ShownResult | None = None
        self.results: dict[str, ShownResult] = {}
        self._writing = False  # we are changing a labels layer's data ourselves
        self._layer_names: list[str] = []  # the layers' names, in order, until renamed
        self._snapshot_names()
        for name in ("inserted", "removed", "moved", "reordered"):
            getattr(viewer.layers.events, name).connect(self._snapshot_names)
        # each layer's own name event (napari 0.5's layer list has no "renamed"); napari
        # holds a bound method weakly: a closed widget is let go of
        viewer.layers.events.inserted.connect(self._watch_name)
        viewer.layers.events.removed.connect(self._layer_removed)
        for layer in viewer.layers:
            layer.events.name.connect(self._layer_renamed)
        self.table.tooltip = (
            "One row per cluster: select rows to see only those clusters, double-click a "
            "name to rename it or a swatch to change its colour."
        )
        self.merge_button.tooltip = (
            "Merge the clusters selected in the table into the first of them: for one material "
            "that k split in two."
        )
        self.refresh_button.tooltip = (
            "Recount the table from the Labels layer after painting on it by hand."
        )
        self.save_button.tooltip = (
            "Save the clusters and the recoloured image in one .mat file or .zarr store, "
            "which opens again as they are: ids, colours, names and statistics."
        )
        self.table.read_only = True
        self.table.native.setMinimumHeight(160)
        self.table.native.verticalHeader().setVisible(False)
        self.table.native.itemSelectionChanged.connect(self._highlight_selected)
        self.table.native.cellDoubleClicked.connect(self._edit_cell)
        self.merge_button.changed.connect(lambda: self.merge(self.selected_labels()))
        self.refresh_button.changed.connect(lambda: self.refresh())
        self.save_button.changed.connect(lambda: self.save())

    # -- a new result ---------------------------------------------------------------------

    def previous(self, source_name: str) -> ShownResult | None:
        """The latest result of this session for the layer ``source_name``."""
        found = [r for r in self.results.values() if r.source == source_name]
        return found[-1] if found else None

    def show_result(
        self,
        source: Image,
        channel_axis: int | None,
        result: ClusterResult,
        *,
        names: dict | None = None,
        per_layer: dict | None = None,
    ):
        """Add the result layers above the source (or update them in place on a rerun), then
        the table and the plot. ``names``: cluster names to keep (label -> name);
        ``per_layer``: a joint clustering's pixels per cluster in each of its layers."""
        transform = sub_transform(source, spatial_axes(source, channel_axis))
        self.clear_isolation()
        meta = {"spectral_clusters_source": source.name, **result.summary()}
        labels_name, recolored_name = result_names(self._viewer, source.name)
        put_layer(
            self._viewer,
            recolored_name,
            "image",
            result.recolored,
            dict(rgb=True, metadata=meta, **transform),
            above=top_result(self._viewer, source, besides=(labels_name, recolored_name)),
        )
        self._writing = True  # our own data change: no refresh from it
        try:
            labels_layer = put_layer(
                self._viewer,
                labels_name,
                "labels",
                result.labels,
                dict(
                    colormap=label_colormap(result.colors),
                    metadata={
                        **meta,
                        "labels_checksum": labels_checksum(result.labels),
                        "spectral_clusters_recolored": recolored_name,
                    },
                    opacity=0.7,
                    **transform,
                ),
                above=self._viewer.layers[recolored_name],
            )
        finally:
            self._writing = False
        self._watch_labels(labels_layer)
        self.shown = ShownResult(
            source=source.name,
            labels=labels_name,
            recolored=recolored_name,
            channel_axis=channel_axis,
            # the source's alpha plane, not the recoloured layer's: a cube's is RGBA too where
            # pixels were left out
            alpha=features_of(source)[1],
            rgb=bool(source.rgb),
            colors=result.colors,
            wavelengths=result.model.wavelengths,
            model=result.model,
            names=dict(names or {}),
            centers=np.asarray(result.centers, dtype=np.float64),
            per_layer=dict(per_layer or {}),
            joint=per_layer or None,  # the run's own dict: one object for its layers
            inertia=float(result.inertia),
            # a joint clustering's layer has the shared centres and spreads beside its own
            # counts: its merges are counted again, not pooled from them
            counted=None if per_layer else labels_checksum(result.labels),
        )
        self.results.pop(labels_name, None)  # the latest result of a layer comes last
        self.results[labels_name] = self.shown
        present = result.counts > 0
        labels = np.flatnonzero(present) + 1
        self._draw(result.centers[present], result.std[present], result.colors[present], labels)
        stats = {"label": labels, "count": result.counts[present]}
        self._fill_table({**stats, "fraction": result.fractions[present]}, result.colors[present])

    def follow(self, active) -> None:
        """When ``active`` is one of this session's result layers, or the clusters layer of
        a result opened from a file beside its image, the table, plot and actions follow that
        result (redrawn from what it holds: a lazy cube is never read)."""
        record = next((r for r in self.results.values() if r.holds(active.name)), None)
        if record is None:
            record = self._adopt(active)
        if record is None or record is self.shown:
            return
        self.clear_isolation()
        self.shown = record
        found = self.layers(quiet=True)
        if record.table is not None and found is not None:
            self._redraw(record)
            # painted since the table was counted (napari's brush changes the data in place)
            stale = record.counted is not None and labels_checksum(found[0].data) != record.counted
            self._say_followed(record, stale)

    def _redraw(self, record: ShownResult) -> None:
        """The plot and table of ``record`` as it holds them (nothing is read again)."""
        self._draw(*record.plot_args)
        self._fill_table(*record.table)

    def _say_followed(self, record: ShownResult, stale: bool) -> None:
        """The status line for ``record`` shown; ``stale``: painted since it was counted."""
        counts = record.table[0]["count"]
        n = int(np.count_nonzero(counts))
        self._followed(record.labels, n, int(np.sum(counts)), stale)

    def wavelengths_given(self, source_name: str, wavelengths) -> None:
        """Wavelengths entered for ``source_name`` after it was clustered: its results'
        spectra are plotted against them from now on (the shown one at once), not against
        band numbers until the next run."""
        wl = np.asarray(wavelengths, dtype=np.float64).ravel()
        given = [
            record
            for record in self.results.values()
            if record.source == source_name
            and not record.rgb
            and record.centers.shape[-1] == len(wl)  # (of another band count: not its own)
        ]
        for record in given:
            record.wavelengths = wl
        shown = self.shown
        if shown is not None and shown.plot_args is not None and any(r is shown for r in given):
            if self.layers(quiet=True) is not None:
                self._draw(*shown.plot_args)

    def _adopt(self, layer) -> ShownResult | None:
        """A result saved by this plugin and opened again (its clusters layer, beside the
        image it names, of the same size): a result of this session from now on (None when
        ``layer`` is not one). Its recoloured layer is the one the file names only while no
        other result holds it: opened in the same session, napari renames the copies."""
        meta = layer.metadata if isinstance(layer, Labels) else {}
        layers = self._viewer.layers
        source_name = meta.get("spectral_clusters_source")
        source = layers[source_name] if source_name in layers else None
        if not isinstance(source, Image) or source is layer:
            return None
        channel_axis, _ = features_of(source)
        pixels = spatial_shape(source.data.shape, source.rgb, channel_axis)
        if pixels != tuple(layer.data.shape):
            return None
        recolored = str(meta.get("spectral_clusters_recolored", ""))
        held = any(r.holds(recolored) for r in self.results.values())
        if held or recolored not in layers or layers[recolored].data.shape[:-1] != pixels:
            recolored = ""
        record = ShownResult.from_saved(layer, source, recolored)
        if record is not None:
            self.results[layer.name] = record
            self._watch_labels(layer)
        return record

    def _watch_labels(self, layer: Labels) -> None:
        """Follow a result's labels layer: set from elsewhere, painted, an id picked to paint
        with (napari ignores a repeated connection)."""
        layer.events.data.connect(self._labels_changed)
        layer.events.selected_label.connect(self._label_picked)
        if hasattr(layer.events, "paint"):  # (napari >= 0.4.19)
            layer.events.paint.connect(self._labels_painted)

    def _label_picked(self, event) -> None:
        """An id no cluster has, picked to paint with (napari's label box or its *new*
        button): it gets the colour *Refresh from labels* will give it, so what is painted
        shows at once (it was transparent)."""
        layer = event.source
        record = self.results.get(layer.name)
        label = int(layer.selected_label)
        if record is None or label <= len(record.colors) or label > MAX_COLORED_LABEL:
            return
        # napari announces the picked label again on every colormap change: not while table
        # rows are isolated (their colormap hides the other ids on purpose)
        if self._isolated:
            return
        if np.asarray(layer.colormap.map(np.array([label])))[0, 3] > 0:  # has one already
            return
        colors = colors_for(np.arange(1, label + 1), record.colors)
        layer.colormap = label_colormap(colors)

    def _labels_painted(self, event) -> None:
        """The shown result's labels were painted: the status says its table and recoloured
        layer wait for *Refresh from labels*."""
        record = self.results.get(event.source.name)
        if record is None or record is not self.shown or record.table is None:
            return
        self._say_followed(record, True)

    def _snapshot_names(self, event=None) -> None:
        self._layer_names = [layer.name for layer in self._viewer.layers]

    def _watch_name(self, event) -> None:
        event.value.events.name.connect(self._layer_renamed)

    def _layer_renamed(self, event=None) -> None:
        """Results find their layers by name: when the user renames one, they follow it
        (and so do the layers' links to each other). The old name is the one the layer had
        at its place in the list (a snapshot kept as layers come, go and move: the layers
        napari hands a plugin are proxies, which cannot be held weakly)."""
        names = [layer.name for layer in self._viewer.layers]
        if len(names) == len(self._layer_names):
            for old, new in zip(self._layer_names, names, strict=True):
                if old != new:
                    self._renamed(old, new)
        self._layer_names = names

    def _renamed(self, old: str, new: str) -> None:
        if old in self.results:  # napari's own handlers ran first: the widget, following the
            adopted = self.results.pop(new, None)  # renamed layer, took it for a saved result
            if adopted is not None and self.shown is adopted:
                self.shown = self.results[old]
        self.results = {(new if key == old else key): r for key, r in self.results.items()}
        for record in self.results.values():
            record.rename(old, new)
        if self.shown is not None and self.shown.table is not None:
            self.caption.value = f"Layer: {self.shown.labels}"
        for layer in self._viewer.layers:  # what links a result's layers, saved with them
            meta = layer.metadata
            links = (
                "spectral_clusters_source",
                "spectral_clusters_recolored",
                "spectral_clusters_mask_for",
                "spectral_clusters_selection_of",
            )
            if any(meta.get(key) == old for key in links):
                layer.metadata = {**meta, **{k: new for k in links if meta.get(k) == old}}

    def _layer_removed(self, event) -> None:
        """A result's clusters layer was removed: the result goes (selecting its recoloured
        layer does not bring it back, a re-run does not keep its ids); when it was shown, the
        table and plot, which described it, are cleared (a recoloured layer its selection
        hid is shown again)."""
        name = event.value.name
        self.results = {key: r for key, r in self.results.items() if r.labels != name}
        shown = self.shown
        if shown is None or name != shown.labels:
            return
        layers = self._viewer.layers
        if shown.recolored_visible is not None and shown.recolored in layers:
            layers[shown.recolored].visible = shown.recolored_visible
        shown.recolored_visible = None
        self.shown = None
        self.table.clear()
        self.caption.value = NOTHING_SHOWN
        self._panel.forget_clusters()

    def _labels_changed(self, event) -> None:
        """A result's labels were changed from elsewhere (the *Feature space* widget made a
        cluster or split one, a script set them): its table, plot and colours follow."""
        layer = event.source
        record = self.results.get(layer.name)
        if self._writing or record is None or is_lazy(layer.data):
            return
        self.clear_isolation()  # the table is refilled: a row selection's hiding ends
        self.shown = record
        colors = layer.metadata.get("colors")
        if colors is not None and len(colors) > len(record.colors):
            record.colors = np.asarray(colors, dtype=np.uint8)  # new ids' colours, as given
        self.refresh(edited=True)

    def layers(self, *, quiet: bool = False):
        """The shown result's labels, recoloured and source layers (see ``find_layers``)."""
        return find_layers(self._viewer, self.shown, quiet=quiet)

    # -- seeing clusters ------------------------------------------------------------------

    def selected_labels(self) -> list[int]:
        """Labels of the rows selected in the cluster table."""
        rows = sorted({index.row() for index in self.table.native.selectedIndexes()})
        labels = self.table.to_dict("list").get("label", []) if rows else []
        return [int(labels[r]) for r in rows]

    def clear_isolation(self):
        """Undo what a table selection hid or cleared, before another result is shown."""
        if self.shown is not None and (self.shown.recolored_visible is not None or self._isolated):
            self.isolate(set())
        self._isolated = False  # (the shown result's layers may be gone)

    def _highlight_selected(self):
        """Show only the clusters selected in the table (all of them when none is)."""
        self.isolate(set(self.selected_labels()))

    def isolate(self, selected: set):
        """Show only the ``selected`` clusters (all of them when empty): the others turn clear
        in the Labels layer, and the recoloured layer, which shows them all, steps aside
        until the selection is cleared. Only what is drawn changes, never the data."""
        found = self.layers(quiet=True)
        if found is None:
            return
        labels_layer, recolored, _ = found
        shown = self.shown
        colormap = label_colormap(np.asarray(shown.colors, dtype=np.uint8))
        if selected:
            colormap = {
                k: v if k in selected or k in (0, None) else TRANSPARENT
                for k, v in colormap.items()
            }
        self._isolated = bool(selected)
        labels_layer.colormap = colormap
        if recolored is not None:
            if selected and shown.recolored_visible is None:
                shown.recolored_visible = recolored.visible
                recolored.visible = False
            elif not selected and shown.recolored_visible is not None:
                recolored.visible, shown.recolored_visible = shown.recolored_visible, None

    def show_pixel(self, position) -> np.ndarray | None:
        """Plot the spectrum of the source pixel at ``position`` (world coordinates, as
        napari's mouse events give them) against its cluster's mean +- std. Returns the
        spectrum (None outside the image or its clusters, or for a greyscale image)."""
        found = self.layers(quiet=True)
        shown = self.shown
        if found is None or not shown.plotted:
            return None
        labels_layer, _, source = found
        where = np.round(labels_layer.world_to_data(position)).astype(int)[-labels_layer.ndim :]
        if np.any(where < 0) or np.any(where >= labels_layer.data.shape):
            return None
        label = int(np.asarray(labels_layer.data[tuple(where)]))
        if label not in shown.plotted:
            return None
        spectrum = pixel_spectrum(source.data, tuple(where), shown.channel_axis, source.rgb)
        if spectrum is not None:
            self._panel.show_pixel(shown, label, spectrum, where)
        return spectrum

    # -- edits ----------------------------------------------------------------------------

    def merge(self, labels: list[int]):
        """Merge clusters into the first of them; the recoloured image and table follow."""
        if self.shown is None:
            show_info("Nothing to merge: run a clustering, or select a clusters layer.")
            return
        if len(labels) < 2:
            show_info("Select two or more clusters in the table to merge.")
            return
        found = self.layers()
        if found is None:
            return
        layer = found[0]
        known = self._known_statistics()
        data = np.array(layer.data)
        data[np.isin(data, labels)] = min(labels)
        self._writing = True
        try:
            layer.data = data
        finally:
            self._writing = False
        self.refresh(
            edited=True, stats=None if known is None else merged_statistics(known, labels)
        )
        self._in_partners(lambda: self.merge(labels), "merged")

    def _in_partners(self, edit, what: str) -> None:
        """After an edit of a layer of a joint clustering, the same ``edit`` in its other
        layers (ids, names and colours mean the same material in all of them; an edit of
        one only drifted them apart), then the edited one shown again, every table's
        per-layer columns counted as the labels are now."""
        shown = self.shown
        if self._editing_partners or shown is None or shown.joint is None:
            return
        group = [r for r in self.results.values() if r.joint is shown.joint]
        done = []
        self._editing_partners = True
        try:
            for record in group:
                if record is not shown and find_layers(self._viewer, record, quiet=True):
                    self.shown = record
                    edit()
                    done.append(record.labels)
        finally:
            self._editing_partners = False
            self.shown = shown
        counts = {r.source: _counts_by_label(r) for r in group}
        for record in group:
            record.per_layer.update({k: v for k, v in counts.items() if v is not None})
        if shown.table is not None and self.layers(quiet=True) is not None:
            self._redraw(shown)
        if done:
            show_info(f"Also {what} in {', '.join(done)}, clustered together with it.")

    def save_folder(self, source) -> Path:
        """Where *Save…* offers to save: the folder saved in last, else the folder of the
        file ``source`` (the clustered layer) was read from, else the home folder -- never
        the folder napari happened to be started in."""
        read_from = None if source is None else source.source.path
        if read_from is None and source is not None:
            read_from = source.metadata.get("source")  # a file our reader opened
        candidates = [self._saved_in]
        if isinstance(read_from, str) and read_from:
            candidates.append(Path(read_from).parent)  # a .zarr store is a folder: beside it
        for folder in candidates:
            try:
                if folder is not None and folder.is_dir():
                    return folder
            except OSError:  # gone unreadable (Python 3.11 raises on EACCES): the next
                continue
        return Path.home()

    def save(self, path=None) -> list[str] | None:
        """Write the shown result's clusters and recoloured layers with this plugin's writer
        into one ``path`` (.mat or .zarr; asked for when None); returns the paths written,
        or None after saying why nothing was. (*File ▸ Save Selected Layers* preselects
        napari's own writer, which cannot write the clusters as PNG: this button needs no
        choice of file type.)"""
        if self.shown is None:
            show_info("Nothing to save: run a clustering first.")
            return None
        found = self.layers()
        if found is None:
            return None
        labels_layer, recolored, source = found
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, chosen = QFileDialog.getSaveFileName(
                self.native,
                "Save the result",
                str(self.save_folder(source) / f"{labels_layer.name}.mat"),
                "MATLAB file (*.mat);;Zarr store (*.zarr)",
            )
            if not path:
                return None
            self._saved_in = Path(path).parent
            if not Path(path).suffix:  # a name typed without one: the file type chosen
                path = f"{path}{'.zarr' if 'zarr' in chosen else '.mat'}"
        from napari.plugins.io import save_layers

        if Path(path).suffix.lower() not in (".mat", ".zarr"):
            show_error(f"Cannot save {Path(path).name}: a result is saved as .mat or .zarr.")
            return None
        if labels_checksum(labels_layer.data) != self.shown.counted:
            # painted since the table was counted: the file says what is so
            if not self.refresh():
                show_info(f"Nothing saved: the table of {labels_layer.name} was not recounted.")
                return None
            labels_layer, recolored, _ = self.layers()
        layers = [labels_layer] + ([recolored] if recolored is not None else [])
        # the writer says why when it cannot write (no folder, no room...); napari's warning
        # that it wrote nothing would only repeat it
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not return any written paths")
            written = save_layers(str(path), layers, plugin=PLUGIN)
        if written:
            show_info(f"Saved {' and '.join(layer.name for layer in layers)} to {written[0]}")
        return written or None

    def _known_statistics(self) -> dict | None:
        """The shown labels' statistics as the table and plot hold them: None if they were not
        drawn, or the labels changed since they were counted (painted, set by a script)."""
        shown, found = self.shown, self.layers(quiet=True)
        if shown is None or shown.table is None or shown.plot_args is None or found is None:
            return None
        if shown.counted is None or labels_checksum(found[0].data) != shown.counted:
            return None
        table, (means, stds, _, plotted) = shown.table[0], shown.plot_args
        if not np.array_equal(table["label"], plotted):
            return None
        return {
            "label": np.asarray(table["label"]),
            "count": np.asarray(table["count"]),
            "fraction": np.asarray(table["fraction"]),
            "mean": np.asarray(means),
            "std": np.asarray(stds),
        }

    def refresh(self, *, edited: bool = False, stats: dict | None = None):
        """Recompute the table, features, colours and recoloured image from the labels as they
        are now (after painting or merging); a label painted beyond the clustering's gets a
        colour of its own, in both result layers. ``stats``: the labels' statistics when
        they are known without reading the image (a rename, a new colour, a merge).

        Returns whether the table was refilled (not when the recount failed or was
        cancelled)."""
        return self._refresh(edited, stats, tries=RECOUNT_TRIES)

    def _refresh(self, edited: bool, stats: dict | None, *, tries: int) -> bool:
        if self.shown is None:
            show_info(
                "Nothing to refresh: run a clustering, or select the clusters layer of a "
                "saved result opened beside its image."
            )
            return False
        found = self.layers()
        if found is None:
            return False
        shown = self.shown
        labels_layer, recolored, source = found
        fingerprint = labels_checksum(labels_layer.data)
        labels = np.asarray(labels_layer.data)
        if stats is None:
            if self._counting:  # asked again while counting: that count starts over after
                return False
            stats = self._count(labels_layer, source, labels)
            if stats is None:
                return False
            if is_lazy(source.data):  # counted in the background: the viewer ran on meanwhile
                if self.shown is not shown or self.layers(quiet=True) != found:
                    show_info(
                        f"Recount of {labels_layer.name} dropped: its layers were closed or "
                        "another result was selected while it counted."
                    )
                    return False
                if labels_checksum(labels_layer.data) != fingerprint:
                    # painted, merged or split while it counted: the count is of labels that
                    # are no longer there
                    if tries <= 1:
                        show_info(
                            f"{labels_layer.name} kept changing while its table was "
                            "recounted: press Refresh from labels again."
                        )
                        return False
                    return self._refresh(edited, None, tries=tries - 1)
        shown.counted = fingerprint
        top = int(labels.max(initial=0))
        if top > MAX_COLORED_LABEL or labels.min(initial=0) < 0:
            show_error(
                f"{labels_layer.name} holds labels outside 0..{MAX_COLORED_LABEL:,}: paint "
                "with labels in that range to give them colours."
            )
            return False
        if top > len(shown.colors):
            shown.colors = colors_for(np.arange(1, top + 1), shown.colors)
        colors = np.asarray(shown.colors, dtype=np.uint8)
        changed = fingerprint != labels_layer.metadata.get("labels_checksum")
        edited = edited or changed
        labels_layer.colormap = label_colormap(colors)
        # what a saved file says of the clusters follows the labels as they are now: counts,
        # means and spreads recounted; the clustering's inertia only while they are its own
        summary = {"colors": colors, **summary_by_label(stats, len(colors))}
        if not changed and shown.inertia is not None:
            summary["inertia"] = shown.inertia
        stale = ("inertia",) if changed else ()

        def follow(meta: dict) -> dict:  # a layer's metadata with the labels' statistics
            return {**{key: v for key, v in meta.items() if key not in stale}, **summary}

        labels_layer.metadata = {
            **follow(labels_layer.metadata),
            "hand_edited": bool(edited or labels_layer.metadata.get("hand_edited")),
            "counted_checksum": fingerprint,  # what its counts are of (saved_summary)
        }
        present = colors[stats["label"] - 1]
        self._draw(stats["mean"], stats["std"], present, stats["label"])
        alpha_plane = np.asarray(source.data[..., -1]) if shown.alpha else None
        if recolored is not None:  # the user may have closed it: the labels carry on
            # RGBA while some pixel has no label (left out, or erased): see-through there
            recolored.data = recolor(labels, colors, alpha_plane, transparent=None)
            recolored.metadata = follow(recolored.metadata)
        self._fill_table(stats, present)
        if changed and not self._editing_partners:  # the status tells the edited layer's
            self._edited(len(stats["label"]), int(stats["count"].sum()))
        return True

    def _count(self, labels_layer: Labels, source: Image, labels: np.ndarray) -> dict | None:
        """The labels' statistics (:func:`label_statistics`), or None after saying why not.
        A lazy cube is counted block by block in the background (the viewer stays usable,
        with a progress bar and Cancel), on a copy of the labels: painting meanwhile does
        not mix into the count, and is noticed by the next refresh."""
        shown, name = self.shown, labels_layer.name

        def count(progress=None):
            return label_statistics(
                source.data,
                labels,
                channel_axis=shown.channel_axis,
                alpha=shown.alpha,
                progress=progress,
            )

        outcome = None
        if is_lazy(source.data) and self._background is not None:
            labels = labels.copy()
            self._counting = True
            try:
                outcome = self._background(lambda *args: count(args[-1]), f"recounting {name}")
            finally:
                self._counting = False
        if outcome is not None:  # counted in the background
            stats, error = outcome
            if stats is None and error is None:  # a bug: napari showed it
                return None
        else:  # here: in memory, or while another job holds the worker (a lazy run)
            try:
                stats, error = count(), None
            except ClusteringError as exc:
                stats, error = None, exc
        if isinstance(error, Cancelled):
            show_info(f"Recount of {name} cancelled; its table is as it was.")
            return None
        if error is not None:
            show_error(f"Cannot refresh from {name}: {error}")
            return None
        return stats

    def rename(self, label: int, name: str):
        """Name a cluster (e.g. after the material it shows); table and features follow."""
        if self.shown is None:
            return
        self.shown.names[int(label)] = str(name)
        self.refresh(edited=True, stats=self._known_statistics())
        self._in_partners(lambda: self.rename(label, name), "renamed")

    def recolour(self, label: int, color):
        """Give a cluster another colour (RGB 0-255); labels, recoloured image, table and
        plot follow."""
        if self.shown is None:
            return
        label, given = int(label), color
        try:
            color = np.asarray(color, dtype=float)[:3]
        except (TypeError, ValueError, IndexError):  # a name ("magenta"), a lone number
            color = np.zeros(0)
        if (
            color.shape != (3,)
            or not np.isfinite(color).all()
            or color.min() < 0
            or color.max() > 255
        ):
            show_error(
                f"A colour is three numbers from 0 to 255 (red, green, blue), not {given!r}."
            )
            return
        colors = np.asarray(self.shown.colors, dtype=np.uint8)
        if label > len(colors):
            colors = colors_for(np.arange(1, label + 1), colors)
        colors = colors.copy()
        colors[label - 1] = np.round(color).astype(np.uint8)
        self.shown.colors = colors
        self.refresh(edited=True, stats=self._known_statistics())
        self._in_partners(lambda: self.recolour(label, color), "recoloured")

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

    # -- drawing --------------------------------------------------------------------------

    def _draw(self, means, stds, colors, labels):
        """The plot of the shown result; a one-band image's histograms when its layers are in
        memory (a lazy cube is not read for a plot)."""
        one_band = None
        found = self.layers(quiet=True)
        if means.shape[1] == 1 and found is not None:
            labels_layer, _, source = found
            if not (is_lazy(source.data) or is_lazy(labels_layer.data)):
                values = np.asarray(source.data)
                if self.shown.channel_axis is not None:
                    values = np.take(values, 0, axis=self.shown.channel_axis)
                one_band = (values, np.asarray(labels_layer.data))
        self._panel.show_clusters(self.shown, means, stds, colors, labels, one_band=one_band)

    def _fill_table(self, stats: dict, colors: np.ndarray):
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QTableWidgetItem

        shown = self.shown
        shown.table = (stats, colors)
        self.caption.value = f"Layer: {shown.labels}"
        names = [shown.name_of(v) for v in stats["label"]]
        columns = {
            "colour": [""] * len(stats["label"]),
            "name": names,
            "label": [int(v) for v in stats["label"]],
            "pixels": [int(v) for v in stats["count"]],
            "fraction": [f"{v:.1%}" for v in stats["fraction"]],
        }
        for layer_name, counts in shown.per_layer.items():  # a joint clustering's layers
            if layer_name == shown.source:  # this layer's own column: as its labels are now
                counts = dict(zip(columns["label"], columns["pixels"], strict=True))
            else:
                counts = {i + 1: int(n) for i, n in enumerate(counts)}
            columns[f"in {layer_name}"] = [counts.get(v, 0) for v in columns["label"]]
        self.table.value = columns
        for row, color in enumerate(colors):
            swatch = QTableWidgetItem()  # an empty cell painted in the cluster's colour
            swatch.setBackground(QColor(*map(int, color)))
            # not selectable: a selected row's swatch keeps its colour, not selection grey
            swatch.setFlags(swatch.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.table.native.setItem(row, 0, swatch)
        self.table.native.resizeColumnsToContents()
        layer = self._viewer.layers[shown.labels]
        layer.features = clusters_table(stats["label"], names, stats["count"], layer.features)
        self._resized()


def _counts_by_label(record: ShownResult) -> np.ndarray | None:
    """A result's pixels per cluster as its table counts them (row ``i`` = label ``i + 1``;
    as :attr:`ShownResult.per_layer` holds them), None before its table is filled."""
    if record.table is None:
        return None
    stats = record.table[0]
    labels = np.asarray(stats["label"], dtype=np.int64)
    counts = np.zeros(int(labels.max(initial=0)), dtype=np.int64)
    counts[labels - 1] = stats["count"]
    return counts
