"""The band slider of a spectral cube says the wavelength it shows ("552.3 nm" in place of
the axis name), and a cube opens on a representative band.

napari's slider shows an index; its axis name is the one place beside it that can say more,
so the name follows the slider (and is given back when no cube with wavelengths is shown).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image

from .layer_rules import features_of, wavelengths_of

if TYPE_CHECKING:
    import napari

__all__ = [
    "band_label",
    "fit_again_once_docked",
    "follow_bands",
    "follow_current_viewer",
    "refresh_bands",
    "show_band",
]

#: (viewer, its update) for the viewers whose band slider follows; both weak, so a closed
#: viewer is not kept alive.
_FOLLOWED: list = []


def follow_bands(viewer: napari.viewer.Viewer) -> None:
    """From now on, the band slider of ``viewer`` names the wavelength shown while a cube
    with wavelengths is shown (napari's or the user's name for the axis comes back after),
    and a cube opens on its ``representative_band``. Calling it again does nothing."""
    viewer = _unproxied(viewer)
    _FOLLOWED[:] = [(ref, update) for ref, update in _FOLLOWED if ref() is not None]
    if any(ref() is viewer for ref, _ in _FOLLOWED):
        return
    ref = weakref.ref(viewer)
    # axis counted from the last (layers align on their last axes, so a layer of more
    # dimensions added later does not move it) -> (the name before ours, the name we wrote)
    state: dict = {}

    def update(*_):
        followed = ref()
        if followed is not None:
            show_band(followed, state)

    def inserted(event):
        followed = ref()
        if followed is not None:
            if len(followed.layers) == 1 and event.value.ndim > 2:
                _fit_once_laid_out(followed)
            _open_on_representative_band(followed, event.value)
            event.value.events.visible.connect(update)
            update()

    _FOLLOWED.append((ref, update))
    # after napari's own handlers; napari names the axes anew from the layers on many
    # events (a layer added, moved, given data or a scale...): each renaming is answered
    viewer.dims.events.current_step.connect(update, position="last")
    viewer.dims.events.axis_labels.connect(update, position="last")
    viewer.layers.events.inserted.connect(inserted, position="last")
    viewer.layers.events.removed.connect(update, position="last")
    viewer.layers.selection.events.active.connect(update, position="last")
    for layer in viewer.layers:
        layer.events.visible.connect(update)
    update()


def follow_current_viewer() -> None:
    """:func:`follow_bands` for the viewer napari is opening files or samples in, if any."""
    from napari import current_viewer

    viewer = current_viewer()
    if viewer is not None:
        follow_bands(viewer)


def refresh_bands(viewer: napari.viewer.Viewer) -> None:
    """Say the band again (a layer's wavelengths changed): when ``viewer`` is followed."""
    viewer = _unproxied(viewer)
    for ref, update in _FOLLOWED:
        if ref() is viewer:
            update()


def _cube(viewer: napari.viewer.Viewer):
    """The cube the slider is about: the active layer when it is a cube with wavelengths,
    else the top-most visible one; with its band axis and wavelengths (None when none)."""
    active = viewer.layers.selection.active
    layers = [active, *reversed(viewer.layers)]
    for layer in layers:
        if not isinstance(layer, Image) or layer.rgb or not layer.visible:
            continue
        axis, _ = features_of(layer)
        if axis is None:
            continue
        wl = wavelengths_of(layer, layer.data, axis)
        if wl is not None:
            return layer, axis % layer.ndim, wl
    return None


def band_label(wavelength: float, unit: str = "nm") -> str:
    """What the band slider says: "552.3 nm"."""
    return f"{wavelength:.4g} {unit}"


def show_band(viewer: napari.viewer.Viewer, state: dict | None = None) -> str | None:
    """Name the band slider after the wavelength it shows; returns the name (None when no
    cube with wavelengths is shown). ``state`` remembers the names it replaced."""
    state = {} if state is None else state
    labels = list(viewer.dims.axis_labels)
    n = len(labels)
    found = _cube(viewer)
    text = None
    wanted = {}
    if found is not None:
        layer, axis, wl = found
        coords = np.asarray(viewer.dims.point, dtype=float)[-layer.ndim :]
        index = int(np.clip(np.round(layer.world_to_data(coords)[axis]), 0, len(wl) - 1))
        text = band_label(float(wl[index]), str(layer.metadata.get("wavelength_unit", "nm")))
        wanted[axis - layer.ndim] = text  # counted from the last axis
    for axis, (original, written) in list(state.items()):  # give back names no longer ours
        if axis not in wanted:
            if -n <= axis and labels[axis] == written:
                labels[axis] = original
            del state[axis]
    for axis, value in wanted.items():
        original, written = state.get(axis, (None, None))
        if labels[axis] != written:  # napari (or the user) named the axis since
            original = labels[axis]
        state[axis] = (original, value)
        labels[axis] = value
    if tuple(labels) != tuple(viewer.dims.axis_labels):
        viewer.dims.axis_labels = tuple(labels)
        _measure_slider_names_soon()
    return text


_MEASURE_DUE: list = []  # a measure is due at the next turn of the event loop


def _measure_slider_names_soon() -> None:
    """:func:`_measure_slider_names` at the next turn of the event loop, once however many
    names change before it: a name set while napari is naming the axes itself reaches its
    field only after napari is done (measured at once, "band" was measured, not the
    wavelength that replaced it)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    if not _MEASURE_DUE and QApplication.instance() is not None:  # no loop: none is due
        _MEASURE_DUE.append(True)
        QTimer.singleShot(0, _measure_slider_names)


def _measure_slider_names() -> None:
    """Have napari measure the room for the sliders' names again: from napari 0.6 or so it
    sets a name with the name field's signals blocked, and measures the names only when a
    field says its text changed or a slider says it was resized, so "857.5 nm" stayed in
    the room "band" had and read "857...". The slider's Qt signal ``size_changed`` (of the
    parent of napari's name field, object name ``axis_label``) makes it measure, and does
    nothing else."""
    from qtpy.QtWidgets import QApplication, QLineEdit

    _MEASURE_DUE.clear()
    app = QApplication.instance()
    if app is None:
        return
    for window in app.topLevelWidgets():
        for name in window.findChildren(QLineEdit, "axis_label"):
            resized = getattr(name.parentWidget(), "size_changed", None)
            try:
                if resized is not None:
                    resized.emit()
            except (TypeError, RuntimeError):  # not napari's slider, or being deleted
                continue


#: (viewer, the view napari or we last fitted it to), the viewer weakly: a view still as
#: fitted is fitted again when the window's layout changes the canvas.
_FITTED: list = []


def _fitted(viewer: napari.viewer.Viewer, view: tuple | None = None) -> tuple | None:
    """The view ``viewer`` was last fitted to; with ``view``, record it."""
    if view is None:
        return next((v for ref, v in _FITTED if ref() is viewer), None)
    _FITTED[:] = [(ref, v) for ref, v in _FITTED if ref() is not None and ref() is not viewer]
    _FITTED.append((weakref.ref(viewer), view))
    return view


def _fit_once_laid_out(viewer: napari.viewer.Viewer) -> None:
    """Fit the view to the first layer again once Qt has laid the window out.

    napari fits it as the layer is added, before a cube's slider has taken its row under the
    canvas: Samson then overflowed the canvas at 1366 x 768, and the slider's name, measured
    against a slider not yet sized, read "857..." instead of "857.5 nm".
    """
    _fitted(viewer, _view(viewer))  # as napari fitted it: a script or the user may change it
    _fit_again_later(viewer)


def fit_again_once_docked(viewer: napari.viewer.Viewer, widget) -> None:
    """Fit the view again whenever the canvas changes size within a second of now (a widget
    being docked takes its room from it; napari hears of the new size when the canvas is
    next drawn), if the view is still as it was last fitted (a script or the user may have
    zoomed or panned since): a cube opened before the clustering widget was docked
    overflowed the narrower canvas at 1366 x 768, cut on the right. ``widget``: the Qt
    widget being docked (the wait ends with it)."""
    from qtpy.QtCore import QTimer

    viewer = _unproxied(viewer)
    resized = _canvas_resized(viewer)
    if resized is None:
        return
    ref = weakref.ref(viewer)

    def resized_now(*_):
        followed = ref()
        if followed is not None:
            _fit_again_later(followed)

    def stop():
        if listening:
            listening.clear()
            resized.disconnect(resized_now)

    listening = [True]
    resized.connect(resized_now)
    widget.destroyed.connect(lambda *_: stop())  # closed within the second: stop now
    timer = QTimer(widget)  # goes with the widget
    timer.setSingleShot(True)
    timer.timeout.connect(stop)
    timer.timeout.connect(timer.deleteLater)
    timer.start(1000)


def _canvas_resized(viewer: napari.viewer.Viewer):
    """napari's event for a canvas that changed size, ``viewer.canvas.events.size``, where
    the viewer has a canvas model (napari 0.6+; napari 0.5 fits the view again itself when
    the canvas is first drawn, and says a new size only through a private field): None."""
    canvas = getattr(viewer, "canvas", None)
    events = getattr(canvas, "events", None)
    return getattr(events, "size", None) if events is not None else None


def _unproxied(viewer):
    """The viewer itself: napari hands a plugin's widget a proxy of it, which is another
    object than the viewer napari opens files in (and would be followed twice)."""
    return getattr(viewer, "__wrapped__", viewer)


def _fit_again_later(viewer: napari.viewer.Viewer) -> None:
    from qtpy.QtCore import QTimer

    ref = weakref.ref(viewer)

    def fit():
        followed = ref()
        if followed is None or not len(followed.layers):
            return
        fitted = _fitted(followed)
        if fitted is not None and _view(followed) == fitted:
            followed.reset_view()
            _fitted(followed, _view(followed))
            _measure_slider_names()  # against the slider as laid out

    QTimer.singleShot(0, fit)


def _view(viewer: napari.viewer.Viewer) -> tuple:
    """The camera's zoom and centre (``viewer.scene.camera`` from napari 0.9)."""
    scene = getattr(viewer, "scene", None)
    camera = scene.camera if scene is not None else viewer.camera
    return float(camera.zoom), tuple(np.round(camera.center, 6))


def _open_on_representative_band(viewer: napari.viewer.Viewer, layer) -> None:
    """A cube opens on the band the reader found representative (napari's default is the
    middle one), unless a bigger layer of as many dimensions is already shown: the slider
    is then about that one, and stays where it is."""
    band = layer.metadata.get("representative_band") if isinstance(layer, Image) else None
    if not isinstance(band, int | np.integer) or layer.rgb:
        return
    size = np.prod(layer.data.shape, dtype=float)
    if any(
        other is not layer
        and other.ndim >= layer.ndim
        and np.prod(other.data.shape, dtype=float) >= size
        for other in viewer.layers
    ):
        return
    axis, _ = features_of(layer)
    if axis is None or not 0 <= band < layer.data.shape[axis]:
        return
    axis %= layer.ndim
    world_axis = viewer.dims.ndim - layer.ndim + axis
    point = layer.data_to_world([band if i == axis else 0 for i in range(layer.ndim)])[axis]
    viewer.dims.set_point(world_axis, float(point))
