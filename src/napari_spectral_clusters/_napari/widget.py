"""The "KMeans clustering" dock widget: its sections in the order of the work (Input,
Clustering, Results, Reuse and scale) in a scroll area, and the runs that connect them.

Each section is its own module: ``input_section``, ``clustering_section`` (its controls),
``results_section`` (table and edits), ``plot_panel`` (the plots), ``reuse_section`` (models,
dask) and ``worker`` (running jobs); this one holds the actions that connect them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from .._arrays import is_lazy
from ..cluster import Cancelled, ClusterResult, apply_model, cluster_image, sweep_k
from ..joint import JointResult, cluster_images
from ..spectral import Pipeline, PreprocessingError
from ..stable_ids import describe_ids, keep_ids
from .band_readout import fit_again_once_docked, follow_bands
from .clustering_section import ClusteringSection
from .input_section import InputSection
from .layer_rules import (
    features_of,
    pixel_sample,
    pixel_spectrum,
    spatial_axes,
    wavelengths_of,
)
from .plot_panel import PlotPanel
from .result_layers import made_by_us
from .results_section import ResultsSection
from .reuse_section import ReuseSection
from .sections import (
    fit_sections,
    later,
    scroll_area,
    scroll_to,
    share_dock_height,
    show_in_view,
)
from .settings import restore_settings, save_settings
from .worker import Runner

if TYPE_CHECKING:
    import napari

#: Controls reachable by name on the widget (``w.image``, ``w.n_clusters``...), by section.
_INPUT = (
    "image",
    "channel_axis",
    "wavelengths",
    "mask",
    "together",
    "true_colour_button",
    "stack_button",
)
_CLUSTERING = (
    "n_clusters",
    "suggest_button",
    "use_k_button",
    "preprocessing",
    "steps",
    "steps_editor",
    "preview_button",
    "palette",
    "random_state",
    "keep_ids",
    "run_button",
    "cancel_button",
    "progress_bar",
    "status",
)
_RESULTS = ("table", "merge_button", "refresh_button", "save_button")
_REUSE = ("model_file", "save_model_button", "apply_model_button", "scheduler")
#: Said after the status of a result whose labels were painted since its table was counted.
PAINTED_SINCE = " (painted since it was counted: press Refresh from labels)"
#: The status while the spectral steps do not fit the chosen image (the notification says why).
STEPS_DO_NOT_FIT = "spectral steps do not fit"


class ClusterWidget(Container):
    """Cluster the pixels of an image layer; results as a Labels and an RGB layer above it.

    Controls are reachable by name (``w.image``, ``w.n_clusters``, ``w.random_state``) and
    :meth:`run` does what the Run button does.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self.panel = PlotPanel(viewer)
        self.plot, self.sweep_plot = self.panel.spectra, self.panel.sweep
        self.plots = self.panel.tabs
        self.input = InputSection(viewer, wavelengths_given=self._wavelengths_given)
        self.results = ResultsSection(
            viewer,
            self.panel,
            resized=self._fit,
            edited=self._edited_status,
            followed=self._followed_status,
            background=self._in_background,
        )
        self.reuse = ReuseSection(
            current_model=self._current_model, no_model=self._no_model, apply=self._apply_model
        )
        named = ((self.input, _INPUT), (self.results, _RESULTS), (self.reuse, _REUSE))
        for section, names in named:
            for name in names:
                setattr(self, name, getattr(section, name))
        self._to_view = False  # bring Cancel and the progress into view (see _busy)
        self.runner = Runner(busy=self._busy, progressed=self._progressed)
        self.last_sweep: dict | None = None
        self._palette_noted: set = set()  # (layer, reason) already said
        self._gaps_noted: set = set()  # layers told their kept ids are not 1..k
        self._clicked = None  # world position of the last Shift-click
        self._status_before_steps = ""  # shown again once the steps fit
        self.clustering = ClusteringSection(
            bands=self._bands, steps_edited=self._steps_edited, resized=self._fit
        )
        for name in _CLUSTERING:
            setattr(self, name, getattr(self.clustering, name))
        self._run_row = self.clustering.run_row
        self.steps.native.editingFinished.connect(lambda: self.check_steps())
        self.preview_button.changed.connect(lambda: self.preview_steps())
        self.suggest_button.changed.connect(lambda: self.suggest_k())
        self.use_k_button.changed.connect(lambda: self.use_suggested_k())
        self.run_button.changed.connect(lambda: self.run())
        self.cancel_button.changed.connect(self.cancel)
        self.sections = {
            "Input": self.input,
            "Clustering": self.clustering,
            "Results": self.results,
            "Reuse and scale": self.reuse,
        }
        # in a scroll area, so the dock fits a laptop screen (1366 x 768) instead of growing
        # napari's window
        self._scroll, self._boxes = scroll_area(self.sections, self.plots)
        self.native.layout().addWidget(self._scroll)
        share_dock_height(self.native, weight=1)  # beside the feature space dock: 1 : 2
        self._defaults = restore_settings(self)
        # steps fit one kind of cube: say where they came from, once the widget is docked
        # (unless they are gone by then: the demo sets its own)
        later(self.native, self._say_remembered_steps)
        #: whether a run saves k, seed, features, steps and palette as the user's next defaults
        #: (the demo sets its own and leaves the user's as they were: :meth:`use_defaults`)
        self.remember_settings = True
        #: a layer made active that the widget has yet to take as its image (napari may
        #: make a new layer active before the choices hold it); None once taken
        self._to_follow = viewer.layers.selection.active
        viewer.layers.selection.events.active.connect(self._active_changed)
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
        follow_bands(viewer)
        fit_again_once_docked(viewer, self.native)  # the dock takes its width from the canvas
        self.reset_choices()

    # -- what the sections share ----------------------------------------------------------

    def reset_choices(self, *_):
        super().reset_choices()
        for section in self.sections.values():  # their controls live in the scroll area
            section.reset_choices()
        self._follow_active_layer()

    def _active_changed(self, *_):
        self._to_follow = self._viewer.layers.selection.active
        self._follow_active_layer()

    def _follow_active_layer(self, *_):
        """Default source: the active layer, when it is a shown image we did not make (a
        file's abundance maps open hidden, last, so napari selects one), once each time it
        becomes active: a layer added or removed leaves the image the user chose (a run's
        result layers set it back to the active layer, and *together with* emptied); and when
        it is one of our result layers, the table, plot and actions follow that result."""
        active = self._viewer.layers.selection.active
        # (napari hands a plugin's widget a proxy of the viewer, whose layers come wrapped
        # anew on every access: they compare equal, not identical)
        to_follow = getattr(self, "_to_follow", None)
        if to_follow is not None and active == to_follow and active in self.image.choices:
            # taken now or not at all: a layer hidden as it became active (a file's
            # abundance maps) is not taken later, when shown, by a run's layers being added
            self._to_follow = None
            if isinstance(active, Image) and active.visible and not made_by_us(active):
                self.image.value = active
        image = self.image.value
        if image is not None and active is not None:
            # a mask the Feature space widget made for this image: the next run uses it
            if active.metadata.get("spectral_clusters_mask_for") == image.name:
                self.mask.reset_choices()
                if active in self.mask.choices:
                    self.mask.value = active
        if active is not None:
            self.results.follow(active)

    def _current_model(self):
        shown = self.results.shown
        return None if shown is None else shown.model

    def _wavelengths_given(self, layer, wavelengths) -> None:
        """Wavelengths entered after a run: the plot of the layer's results shows them."""
        if hasattr(self, "results"):  # (not while the sections are built)
            self.results.wavelengths_given(layer.name, wavelengths)

    def _no_model(self) -> str:
        """Why *Save model* has nothing to save."""
        shown = self.results.shown
        if shown is not None and shown.model is None:  # a result opened from a file
            return (
                f"{shown.labels} was opened from a file, which keeps no model: run the "
                f"clustering of {shown.source} again to save one (or select the clusters "
                "layer of a run of this session)."
            )
        return "Nothing to save yet: run a clustering first."

    def _fit(self):
        fit_sections(getattr(self, "_boxes", []))  # none yet while the sections are built

    def _busy(self, busy: bool):
        self.run_button.enabled = not busy
        self.apply_model_button.enabled = not busy
        for button in (self.refresh_button, self.save_button):
            button.enabled = not busy  # each may recount a lazy cube in the worker
        self.cancel_button.enabled = busy
        bar = self.progress_bar.native
        bar.setRange(0, 0)  # busy until the first report says how much there is
        bar.setFormat("starting")
        self.progress_bar.visible = busy
        # Cancel, the progress bar and the status line below it in view as a job starts (on
        # a laptop screen the bar would appear below the fold), and again at its first report,
        # once the bar's text has settled the heights; not after: the user may scroll away
        self._to_view = busy
        self._progress_in_view()

    def _progress_in_view(self):
        if self._to_view and hasattr(self, "_scroll"):
            self._fit()
            show_in_view(self._scroll, self.cancel_button.native, self.status.native)

    def _progressed(self, stage: str, done: int, total: int):
        self._progress_in_view()
        self._to_view = False
        bar = self.progress_bar.native
        bar.setRange(0, max(total, 1))
        bar.setValue(min(done, max(total, 1)))
        bar.setFormat(f"{stage}: {done} of {total}")

    def _results_in_view(self):
        """Scroll so Run, the status line and the Results below them show (on a laptop
        screen the table would otherwise start below the fold)."""
        self._fit()
        scroll_to(self._scroll, self._run_row.native)

    def _on_click(self, viewer, event):
        """Shift-click: the clicked pixel's spectrum against its cluster's."""
        if event.type == "mouse_press" and "Shift" in event.modifiers:
            self._clicked = event.position  # the pixel Preview steps shows
            self.show_pixel(event.position)

    # -- the scriptable actions (each also a button) --------------------------------------

    @property
    def running(self) -> bool:
        return self.runner.running

    def run(self, *, wait: bool = False):
        """Cluster the chosen layer in a background thread, as the Run button does.

        With ``wait=True`` return only when the result layers are in the viewer (or the run
        failed), processing Qt events meanwhile: for scripts and the napari console.
        """
        n_clusters, seed = int(self.n_clusters.value), int(self.random_state.value)
        palette, preprocessing = self.palette.value, self.check_steps()
        mask = self.input.mask_array()
        if mask is False or preprocessing is None:
            # what to put right in view (and the status saying so, for the steps): the dock
            # may be scrolled down to the results, where neither showed
            if mask is False:
                show_in_view(self._scroll, self.mask.native)
            else:
                show_in_view(self._scroll, self.steps.native, self.status.native)
            return None
        if self.remember_settings:
            save_settings(self)
        others = self.input.together_layers()
        if others:
            return self._run_jointly(others, n_clusters, seed, palette, preprocessing, mask, wait)

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

    def _run_jointly(self, others, n_clusters, seed, palette, preprocessing, mask, wait):
        """One clustering of the chosen layer and the *together with* layers: each gets its
        result layers, with shared ids, colours and model."""
        layers = [self.image.value, *others]
        axes = [self.input.features()] + [features_of(layer) for layer in others]
        data = [layer.data if is_lazy(layer.data) else np.asarray(layer.data) for layer in layers]
        wavelengths = [
            wavelengths_of(layer, d, a)
            for layer, d, (a, _) in zip(layers, data, axes, strict=True)
        ]
        moved = [_bands_last(d, a) for d, (a, _) in zip(data, axes, strict=True)]
        alpha = [has_alpha for _, has_alpha in axes]  # RGB and RGBA pictures together

        def job(_data, _channel_axis, _alpha, _wavelengths, progress):
            return cluster_images(
                moved,
                n_clusters,
                channel_axis=-1,
                masks=[mask] + [None] * len(others),
                wavelengths=wavelengths,
                alpha=alpha,
                random_state=seed,
                palette=palette,
                preprocessing=preprocessing,
                progress=progress,
            )

        def on_done(result, error):
            self._show_joint(layers, axes, result, error)

        what = f"into {n_clusters}, with {len(others)} other layer(s)"
        return self._start(job, what, wait=wait, on_done=on_done)

    def apply_model(self, path=None, *, wait: bool = False):
        """Label the chosen layer with the clustering saved in ``path`` (default: the model
        file field), so its clusters mean the same as in the image the model came from."""
        return self.reuse.apply_model(path, wait=wait)

    def _apply_model(self, model, path, *, wait: bool = False):
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

    def suggest_k(self, *, ks=range(2, 13), wait: bool = False):
        """Sweep k on a sample in the background; plot inertia (elbow) and silhouette.

        The result is kept in ``last_sweep``; the status line names the suggested k."""
        preprocessing = self.check_steps()
        if preprocessing is None:
            return None

        def job(data, channel_axis, alpha, wavelengths, progress):
            return sweep_k(
                data,
                ks,
                channel_axis=channel_axis,
                alpha=alpha,
                preprocessing=preprocessing,
                progress=progress,
                wavelengths=wavelengths,
            )

        return self._start(job, "for several k", wait=wait, on_done=self._show_sweep)

    def _bands(self):
        """(band count, wavelengths or None) of the chosen image, for new steps' limits."""
        layer = self.image.value
        if layer is None:
            return None, None
        axis, alpha = self.input.features()
        if axis is None:
            return None, None
        return layer.data.shape[axis] - int(alpha), wavelengths_of(layer, layer.data, axis)

    def _steps_edited(self, text: str):
        self.steps.value = text
        self.check_steps()  # a step that does not fit this image is named now, not at Run

    def check_steps(self) -> str | None:
        """What is clustered: the spectral steps followed by the *features* choice, checked
        against the chosen layer's bands and wavelengths; None (after a notification naming
        the step) when they do not fit."""
        checked = self._checked_steps()
        return None if checked is None else checked[0].spec

    def _checked_steps(self):
        """(pipeline, its steps bound to the chosen layer or None), or None after saying
        why the steps do not fit."""
        text = str(self.steps.value).strip()
        if not text:
            self._steps_fit_again()
            return Pipeline.parse(self.preprocessing.value), None
        layer = self.image.value
        try:
            steps = Pipeline.parse(text)
            if steps.space != "none":
                raise PreprocessingError(
                    f"{steps.space} is chosen under 'features', not in the steps"
                )
            pipeline = Pipeline(steps.steps, self.preprocessing.value)
            bound = None
            if layer is not None:
                axis, alpha = self.input.features()
                if axis is None:
                    raise PreprocessingError(f"{layer.name} has no band axis for spectral steps")
                n = layer.data.shape[axis] - int(alpha)  # alpha is not a band
                bound = pipeline.bind(n, wavelengths_of(layer, layer.data, axis))
        except PreprocessingError as exc:
            if self.status.value != STEPS_DO_NOT_FIT:  # said until the steps fit again
                self._status_before_steps = self.status.value
                self.status.value = STEPS_DO_NOT_FIT
            show_error(f"Spectral steps: {exc}")
            return None
        self._steps_fit_again()
        return pipeline, bound

    def _steps_fit_again(self) -> None:
        if self.status.value == STEPS_DO_NOT_FIT:
            self.status.value = self._status_before_steps

    def preview_steps(self, position=None) -> dict | None:
        """Plot the mean spectrum of a sample of the chosen cube -- and of the pixel at
        ``position`` (world coordinates; default: the last Shift-clicked one) -- before and
        after the spectral steps; returns what was plotted (None when nothing can be)."""
        layer = self.image.value
        if layer is None:
            show_error("Preview steps: no image to preview them on; open a cube first.")
            return None
        checked = self._checked_steps()
        if checked is None:
            return None
        axis, _ = self.input.features()
        if axis is None or layer.rgb:
            show_error("Preview steps: choose a cube with a band axis.")
            return None
        data = layer.data
        wl = wavelengths_of(layer, data, axis)
        pipeline, bound = checked
        bound = bound or pipeline.bind(data.shape[axis], wl)  # no steps: the bands as given
        sample = pixel_sample(data, axis)
        if len(sample) == 0:
            show_error(f"Preview steps: {layer.name} has no finite pixel.")
            return None
        x = wl if wl is not None else np.arange(data.shape[axis])
        preview = {
            "x": x,
            "mean": sample.mean(axis=0),
            "x_after": x[bound.bands],
            "mean_after": bound(sample).mean(axis=0),
            "xlabel": "wavelength (nm)" if wl is not None else "band",
            "pixel": None,
        }
        position = self._clicked if position is None else position
        if position is not None:
            spatial = spatial_axes(layer, axis)
            where = np.round(layer.world_to_data(position)).astype(int)
            where = where[-layer.ndim :][spatial]
            shape = np.asarray(data.shape)[spatial]
            if np.all(where >= 0) and np.all(where < shape):
                pixel = pixel_spectrum(data, tuple(where), axis, False)
                if np.isfinite(pixel).all():
                    preview.update(
                        pixel=pixel, pixel_after=bound(pixel[None])[0], where=tuple(where)
                    )
        self.panel.show_preview(preview)
        # the plots sit below the Results: on a laptop screen, out of view without this
        self._fit()
        show_in_view(self._scroll, self.plots)
        return preview

    def use_suggested_k(self):
        """Set the number of clusters to the last sweep's suggestion."""
        if self.last_sweep and self.last_sweep.get("suggested"):
            self.n_clusters.value = int(self.last_sweep["suggested"])
            self.use_k_button.visible = False

    def _say_remembered_steps(self) -> None:
        if str(self.steps.value).strip():
            show_info(
                f"Spectral steps from your last session: {self.steps.value} (clear them in "
                "the steps editor if they do not fit this image)."
            )

    def use_defaults(self) -> None:
        """Every setting a run remembers back to its default (k, seed, features, steps,
        palette), for this widget only: the user's saved settings stay as they are, and runs
        no longer save them (the demo runs the same for everyone)."""
        self.remember_settings = False
        for name, value in self._defaults.items():
            getattr(self, name).value = value

    def cancel(self, *_):
        """Stop the running clustering; the layers stay as they were."""
        self.runner.cancel()

    # the sections' actions, reachable on the widget as before
    def set_wavelengths(self, text: str | None = None):
        """Wavelengths "first-last" nm for the chosen cube (:class:`InputSection`)."""
        return self.input.set_wavelengths(text)

    def stack_selected(self, layers=None):
        """Stack single-channel layers into one cube layer (:class:`InputSection`)."""
        return self.input.stack_selected(layers)

    def true_colour(self):
        """A true- (or false-) colour view of the chosen cube (:class:`InputSection`)."""
        return self.input.true_colour()

    def save_model(self, path=None):
        """Save the shown clustering as a model (:class:`ReuseSection`)."""
        return self.reuse.save_model(path)

    def selected_labels(self) -> list[int]:
        """Labels of the table's selected rows (:class:`ResultsSection`)."""
        return self.results.selected_labels()

    def merge(self, labels: list[int]):
        """Merge clusters into the first of them (:class:`ResultsSection`)."""
        return self.results.merge(labels)

    def refresh(self, *, edited: bool = False):
        """Recount from the labels as painted (:class:`ResultsSection`)."""
        return self.results.refresh(edited=edited)

    def rename(self, label: int, name: str):
        """Name a cluster (:class:`ResultsSection`)."""
        return self.results.rename(label, name)

    def save_result(self, path=None):
        """Save the shown result's layers in one .mat or .zarr (:class:`ResultsSection`)."""
        return self.results.save(path)

    def recolour(self, label: int, color):
        """Give a cluster another colour (:class:`ResultsSection`)."""
        return self.results.recolour(label, color)

    def show_pixel(self, position):
        """Plot a pixel's spectrum against its cluster's (:class:`ResultsSection`)."""
        return self.results.show_pixel(position)

    # -- running --------------------------------------------------------------------------

    def _start(self, job, what: str, *, wait: bool, on_done=None):
        if self.running:
            show_info("A clustering is already running; cancel it first.")
            return None
        layer = self.image.value
        if layer is None:
            show_error("No image layer to cluster: open a .mat or .png file, or a sample.")
            return None
        channel_axis, alpha = self.input.features()
        # a dask (lazy) layer stays lazy: clustered block by block, labels computed on view
        data = layer.data if is_lazy(layer.data) else np.asarray(layer.data)
        scheduler = self.scheduler.value.strip()
        where = f" on {scheduler}" if scheduler else ""
        self.status.value = f"clustering {layer.name} {what}{where}…"
        if on_done is None:

            def on_done(result, error):
                self._show(layer, channel_axis, result, error)

        return self.runner.start(
            job,
            (data, channel_axis, alpha, wavelengths_of(layer, data, channel_axis)),
            desc=f"KMeans clustering {layer.name}",
            scheduler=scheduler,
            on_done=on_done,
            on_bug=self._report_bug,
            wait=wait,
        )

    def _in_background(self, job, what: str):
        """Run ``job`` (see :func:`~.worker.in_thread`) in the worker thread, with the progress
        bar and Cancel, and wait for it with Qt events processed, so the viewer stays usable:
        ``(result, error)``, both None for a bug (napari shows it); None when another job
        is running."""
        if self.running:
            return None
        outcome = []
        before = self.status.value
        self.status.value = f"{what}…"
        self.runner.start(
            job,
            (None, None, None, None),
            desc=what,
            scheduler="",
            on_done=lambda result, error: outcome.append((result, error)),
            on_bug=self._report_bug,
            wait=True,
        )
        if not outcome:
            return None, None
        error = outcome[0][1]
        if error is None:
            self.status.value = before  # what the labels hold is said by the refresh
        else:
            ended = "cancelled" if isinstance(error, Cancelled) else "failed"
            self.status.value = f"{what}: {ended}"
        return outcome[0]

    def _report_bug(self, exc: Exception):
        # napari's worker already shows the exception with its traceback: a bug, not bad input.
        self.status.value = f"failed: {type(exc).__name__}"

    def _show(self, source: Image, channel_axis, result: ClusterResult | None, error):
        """The result layers, table and plot; or why there is no result."""
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
        result, names = self._kept_ids(source, result)
        self.results.show_result(source, channel_axis, result, names=names)
        how = result.params.get("colors", "")
        fallback = str(how).startswith("categorical") or "palette colours for new" in str(how)
        if self.palette.value == "auto" and fallback:
            # true colours were asked for but two clusters would look alike: say why not,
            # once a layer and kind of reason (not at every run; which clusters, and how
            # alike, change from run to run)
            reason = (source.name, re.sub(r"\d+(\.\d+)?", "#", str(how)))
            if reason not in self._palette_noted:
                self._palette_noted.add(reason)
                said = how if str(how).startswith("earlier") else f"cluster colours from a {how}"
                show_info(f"{source.name}: {said}")
        elapsed = self.runner.elapsed()
        seconds = f" in {elapsed:.1f} s" if elapsed is not None else ""
        found = np.count_nonzero(result.counts)  # kept ids no cluster took are not counted
        self.status.value = (
            f"{_clusters(found)} of {int(result.counts.sum()):,} pixels{seconds}"
            f"{_after_steps(result.params.get('steps'))}"
        )
        ids = np.flatnonzero(result.counts) + 1
        if len(ids) and ids[-1] != len(ids) and source.name not in self._gaps_noted:
            # ids kept from an earlier run of more clusters: not 1..k, which a script
            # reading the labels may assume; said once a layer
            self._gaps_noted.add(source.name)
            show_info(
                f"{source.name}: cluster ids {describe_ids(ids)} are kept from the "
                f"earlier run (the same material, the same id); untick 'keep cluster ids' to "
                f"number them 1 to {len(ids)}."
            )
        self._results_in_view()

    def _edited_status(self, n_clusters: int, n_pixels: int):
        """The status line after a merge or painting: what the labels now hold."""
        self.status.value = f"{_clusters(n_clusters)} of {n_pixels:,} pixels, edited by hand"

    def _followed_status(self, layer_name: str, n_clusters: int, n_pixels: int, stale: bool):
        """The status line once another result is selected: what its table shows."""
        said = f"{_clusters(n_clusters)} of {n_pixels:,} pixels in {layer_name}"
        self.status.value = said + (PAINTED_SINCE if stale else "")

    def _kept_ids(self, source: Image, result: ClusterResult, previous=None):
        """``result`` renumbered to keep the ids, colours and names of the last result of
        ``source`` (with *keep cluster ids*), and the names to keep."""
        previous = previous or self.results.previous(source.name)
        if (
            not self.keep_ids.value
            or previous is None
            or previous.centers is None
            or previous.centers.shape[1:] != result.centers.shape[1:]
            # other colours asked for: the new palette's, numbered anew
            or previous.model is None
            or previous.model.params.get("palette") != result.params.get("palette")
        ):
            return result, {}
        result, ids = keep_ids(result, previous.centers, previous.colors)
        names = {int(i): previous.names[int(i)] for i in ids if int(i) in previous.names}
        return result, names

    def _show_joint(self, layers, axes, joint: JointResult | None, error):
        """Each layer's result layers, the chosen layer's shown last (its table and plot)."""
        if error is not None or joint is None:
            self._show(layers[0], axes[0][0], None, error)
            return
        gone = [layer.name for layer in layers if layer not in self._viewer.layers]
        if gone:
            self.status.value = "source removed"
            show_info(f"{', '.join(gone)} removed while clustered; the result is dropped.")
            return
        previous = self.results.previous(layers[0].name)  # the ids follow the chosen layer's
        kept = [
            self._kept_ids(layer, r, previous)
            for layer, r in zip(layers, joint.results, strict=True)
        ]
        per_layer = {layer.name: r.counts for layer, (r, _) in zip(layers, kept, strict=True)}
        order = [*range(1, len(layers)), 0]
        for i in order:
            result, names = kept[i]
            self.results.show_result(
                layers[i], axes[i][0], result, names=names, per_layer=per_layer
            )
        elapsed = self.runner.elapsed()
        seconds = f" in {elapsed:.1f} s" if elapsed is not None else ""
        self.status.value = (
            f"{_clusters(joint.n_clusters)} of {int(joint.total.sum()):,} pixels in "
            f"{len(layers)} layers{seconds}"
        )
        self._results_in_view()

    def _show_sweep(self, sweep: dict | None, error: Exception | None):
        if error is not None:
            self.status.value = "cancelled" if isinstance(error, Cancelled) else "no suggestion"
            if not isinstance(error, Cancelled):
                show_error(f"Cannot sweep k: {error}")
            return
        self.last_sweep = sweep
        suggested = sweep.get("suggested")
        self.panel.show_sweep(sweep)
        if suggested is None:
            self.use_k_button.visible = False
            self.status.value = "no suggestion: too few distinct pixels to compare several k"
            return
        self.status.value = (
            f"suggested k = {suggested}: the elbow, where more clusters stop paying"
        )
        self.use_k_button.text = f"Use k = {suggested}"
        self.use_k_button.visible = True
        # Use k = ... and the status line that explains it in view (on a laptop screen Run's
        # row at the top left the button above the fold), then the curves as far as they fit
        self._fit()
        show_in_view(self._scroll, self.use_k_button.native, self.status.native, self.plots)


def _bands_last(data, axis):
    """The layer's data with its bands (or colours) last (a view, or a lazy view)."""
    if axis is None:
        return data[..., None]
    if is_lazy(data):
        import dask.array as da

        return da.moveaxis(data, axis, -1)
    return np.moveaxis(data, axis, -1)


def _remove(callbacks: list, callback) -> None:
    """Take a closed widget's mouse callback off the viewer (clicks must not reach it)."""
    if callback in callbacks:
        callbacks.remove(callback)


def _after_steps(spec: str | None) -> str:
    """What the status adds for a run after spectral steps: ", after 2 spectral steps
    (range, savgol)" (nothing said, a run with steps could not be told from one without)."""
    if not spec:
        return ""
    names = [step.name for step in Pipeline.parse(spec).steps]
    plural = "s" if len(names) > 1 else ""
    return f", after {len(names)} spectral step{plural} ({', '.join(names)})"


def _clusters(n: int) -> str:
    return f"{n} cluster" if n == 1 else f"{n} clusters"
