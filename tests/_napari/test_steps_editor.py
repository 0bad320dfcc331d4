"""The spectral steps editor: adding, removing, reordering steps and setting their parameters
edits the same pipeline the text entry holds, and what it builds is what gets clustered."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters._napari.sample_data import make_sample_cube
from napari_spectral_clusters.samples import raman_scene

from .notifications import capture_notifications

PLUGIN = "napari-spectral-clusters"


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    widget.steps.value = ""  # settings from another test are not this one's
    return viewer, widget


@pytest.fixture
def errors(monkeypatch):
    return capture_notifications(monkeypatch, "error")


def _add_cube(viewer, wavelengths=True):
    (cube, kw, _), _ = make_sample_cube()
    if not wavelengths:
        kw["metadata"] = {k: v for k, v in kw["metadata"].items() if k != "wavelengths"}
    return viewer.add_image(cube, **kw)


def _listed(editor) -> list[str]:
    return [editor.step_list.item(i).text() for i in range(editor.step_list.count())]


def test_steps_built_in_the_editor_are_the_pipeline_clustered(viewer_and_widget):
    viewer, w = viewer_and_widget
    cube, truth = raman_scene(1)
    layer = viewer.add_image(np.moveaxis(cube, -1, 0), name="raman", metadata={"channel_axis": 0})
    w.image.value = layer
    editor = w.steps_editor
    editor.add("despike")
    editor.add("savgol")
    assert editor.set_params(window=9, order=3, deriv=2) is not None
    editor.add("snv")
    assert w.steps.value == "despike | savgol(9, 3, deriv=2) | snv"
    assert _listed(editor) == ["1. despike", "2. savgol(9, 3, deriv=2)", "3. snv"]
    w.n_clusters.value, w.preprocessing.value = 3, "none"
    w.run(wait=True)
    labels = viewer.layers["raman clusters"]
    assert labels.metadata["params"]["steps"] == "despike | savgol(9, 3, deriv=2) | snv"
    assert adjusted_rand_score(truth.ravel(), labels.data.ravel()) >= 0.95
    typed = cluster_image(
        layer.data, 3, channel_axis=0, preprocessing="despike | savgol(9, 3, deriv=2) | snv"
    )
    np.testing.assert_array_equal(labels.data, typed.labels)


def test_new_steps_start_with_limits_that_fit_the_image(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    layer = _add_cube(viewer)
    wl = np.asarray(layer.metadata["wavelengths"], dtype=float)
    w.image.value = layer
    step = w.steps_editor.add("range")
    assert step.args == (wl.min(), wl.max())  # the whole range, to narrow
    w.steps_editor.set_params(lo=float(wl[10]), hi=float(wl[40]))
    assert w.steps.value == f"range({float(wl[10])!r}, {float(wl[40])!r})"
    window = w.steps_editor.add("savgol").args[0]
    assert window % 2 == 1 and window <= layer.data.shape[0]
    assert w.check_steps() is not None and not errors  # they fit this image as added

    viewer.layers.clear()
    layer = _add_cube(viewer, wavelengths=False)
    w.image.value = layer
    w.steps_editor.remove(0)
    w.steps_editor.remove(0)
    step = w.steps_editor.add("range")  # no wavelengths: band numbers
    assert step.args == (0.0, layer.data.shape[0] - 1.0) and step.option("index") is True
    assert w.check_steps() is not None and not errors
    last = layer.data.shape[0] - 1
    assert w.steps.value == f"range(0, {last}, index=True)"  # whole numbers, as typed
    w.steps_editor.set_params(lo=2.0, hi=9.0)
    assert w.steps.value == "range(2, 9, index=True)"


def test_remove_and_reorder(viewer_and_widget):
    _, w = viewer_and_widget
    w.steps.value = "despike | savgol(9, 2) | snv"
    editor = w.steps_editor
    assert _listed(editor) == ["1. despike", "2. savgol(9, 2)", "3. snv"]  # the typed text
    editor.select(2)
    editor.move(-1)
    assert w.steps.value == "despike | snv | savgol(9, 2)" and editor.selected == 1
    editor.up_button.changed.emit(True)  # the buttons do the same
    assert w.steps.value == "snv | despike | savgol(9, 2)" and editor.selected == 0
    editor.up_button.changed.emit(True)  # already first: nothing changes
    assert w.steps.value == "snv | despike | savgol(9, 2)"
    editor.remove_button.changed.emit(True)
    assert w.steps.value == "despike | savgol(9, 2)" and editor.selected == 0
    editor.select(1)
    editor.add_choice.value = "vector"
    editor.add_button.changed.emit(True)  # after the selected step
    assert w.steps.value == "despike | savgol(9, 2) | vector"
    editor.select(0)
    editor.add("max")
    assert w.steps.value == "despike | max | savgol(9, 2) | vector"
    for _ in range(4):
        editor.remove()
    assert w.steps.value == "" and editor.steps == [] and not editor.remove_button.enabled


def test_bad_parameters_are_named_and_change_nothing(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    w.image.value = _add_cube(viewer)
    w.steps.value = "savgol(9, 2) | snv"
    editor = w.steps_editor
    editor.select(0)
    assert editor.set_params(window=10) is None
    assert "savgol(10, 2): the window must be an odd number of bands" in errors[-1]
    assert w.steps.value == "savgol(9, 2) | snv"
    assert editor.params["window"].value == 9  # the form shows the step as it still is
    # parses, but longer than the cube's 64 bands: refused as soon as it is set, before Run
    assert editor.set_params(window=201) is None
    assert "savgol(201, 2): a window of 201 bands is longer than 64" in errors[-1]
    assert w.steps.value == "savgol(9, 2) | snv"
    assert editor.params["window"].value == 9
    assert editor.set_params(window=63) is not None  # the longest odd window that fits
    w.steps.value = "savgol(4"  # typed text that does not parse is never overwritten,
    assert _listed(editor) == [] and not editor.enabled  # and the list shows no stale steps
    assert editor.set_params(index=0, window=5) is None and w.steps.value == "savgol(4"
    w.steps.value = "savgol(63, 2) | snv"  # parses again: listed again
    assert _listed(editor) == ["1. savgol(63, 2)", "2. snv"] and editor.enabled


def test_a_step_is_checked_against_the_bands_the_steps_before_it_leave(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    w.image.value = _add_cube(viewer, wavelengths=False)
    w.steps.value = "range(0, 20, index=True) | savgol(9, 2)"
    editor = w.steps_editor
    editor.select(1)
    assert editor.set_params(window=23) is None  # 21 bands are left by the range
    assert "longer than 21" in errors[-1]
    assert editor.set_params(window=21) is not None
    # a step after one that does not fit is not blamed for it: the status names that one
    w.steps.value = "range(0, 500, index=True) | savgol(9, 2)"
    editor.select(1)
    assert editor.set_params(window=11) is not None
    assert w.steps.value == "range(0, 500, index=True) | savgol(11, 2)"


def test_the_parameter_form_edits_the_step(viewer_and_widget, qtbot):
    viewer, w = viewer_and_widget
    w.image.value = _add_cube(viewer)
    w.steps.value = "savgol(9, 2) | despike | baseline(asls, lam=100000.0)"
    editor = w.steps_editor
    editor.select(0)
    assert [c.name for c in editor.params] == ["window", "order", "deriv"]
    editor.params["deriv"].value = 1
    qtbot.waitUntil(lambda: w.steps.value.startswith("savgol(9, 2, deriv=1)"), timeout=5000)
    editor.select(1)
    assert [c.name for c in editor.params] == ["threshold", "width"]
    editor.params["width"].value = 4
    qtbot.waitUntil(lambda: "despike(threshold=3.5, width=4)" in w.steps.value, timeout=5000)
    editor.select(2)
    assert editor.params["method"].value == "asls"
    editor.params["method"].value = "modpoly"  # with its own defaults, not asls's lam
    qtbot.waitUntil(lambda: w.steps.value.endswith("| baseline(modpoly)"), timeout=5000)
    editor.params["options"].value = "poly_order=3"
    editor.params["options"].native.editingFinished.emit()
    qtbot.waitUntil(
        lambda: w.steps.value.endswith("baseline(modpoly, poly_order=3)"), timeout=5000
    )
    editor.select(1)
    editor.params["threshold"].value = 5.0
    qtbot.waitUntil(lambda: "threshold=5.0" in w.steps.value, timeout=5000)
    assert w.check_steps() is not None


def test_text_the_form_cannot_show_never_breaks_or_is_overwritten(viewer_and_widget, errors):
    _, w = viewer_and_widget
    editor = w.steps_editor
    w.steps.value = "baseline(asls) | snv"
    editor.select(0)
    w.steps.value = "baseline(asl) | snv"  # a typo mid-typing: no such method, it waits
    assert not editor.enabled and w.steps.value == "baseline(asl) | snv"
    assert w.check_steps() is None and "the methods are asls" in errors[-1]
    errors.clear()
    w.steps.value = "drop(1340.125, 1450.5)"
    editor.select(0)
    editor.set_params(index=False)
    assert w.steps.value == "drop(1340.125, 1450.5)"  # limits kept to the last digit
    w.steps.value = "drop(1340.125, 1450.5) | sav"  # does not parse: the editor waits
    assert not editor.enabled
    editor.remove()
    assert w.steps.value == "drop(1340.125, 1450.5) | sav"  # the typed text is not lost
    w.steps.value = "snv"
    assert editor.enabled and [s.spec for s in editor.steps] == ["snv"]
    w.steps.value = "savgol(9, 2)"
    editor.select(0)
    assert editor.set_params(window="9, 2) | snv | savgol(9") is None  # one step per form
    assert w.steps.value == "savgol(9, 2)"


def test_a_field_edit_after_its_step_was_removed_changes_nothing(viewer_and_widget, qtbot):
    _, w = viewer_and_widget
    w.steps.value = "savgol(9, 2) | savgol(5, 2)"
    editor = w.steps_editor
    editor.select(0)
    editor.params["deriv"].value = 1  # queued for the next turn of the event loop
    editor.remove(0)  # ... but the step goes first: the edit is not put on the next one
    qtbot.wait(50)
    assert w.steps.value == "savgol(5, 2)"


def test_an_edit_keeps_the_form_so_the_next_field_keeps_the_focus(viewer_and_widget, qtbot):
    _, w = viewer_and_widget
    w.steps.value = "savgol(9, 2) | snv"
    editor = w.steps_editor
    editor.select(0)
    controls = list(editor.params)
    editor.params["window"].value = 11  # then Tab to the order field
    qtbot.waitUntil(lambda: w.steps.value == "savgol(11, 2) | snv", timeout=5000)
    assert list(editor.params) == controls  # the same fields: focus is not moved off them
    assert [c.value for c in controls] == [11, 2, 0]
    editor.params["order"].value = 3
    qtbot.waitUntil(lambda: w.steps.value == "savgol(11, 3) | snv", timeout=5000)
    w.steps.value = "savgol(7, 1) | snv"  # typed in the entry: the form follows in place
    assert list(editor.params) == controls and [c.value for c in controls] == [7, 1, 0]
    w.steps.value = "savgol(200001, 1) | snv"  # past the spin box's range: it widens
    assert editor.params["window"].value == 200001
    editor.select(1)
    assert [c.name for c in editor.params] == ["no_params"]  # another step: another form
    step = editor.steps[editor.selected].name
    assert (editor.params[0].label, editor.params[0].value) == (step, "no parameters")


def test_a_step_added_after_others_starts_from_the_bands_they_leave(viewer_and_widget):
    viewer, w = viewer_and_widget
    layer = _add_cube(viewer)
    wl = np.asarray(layer.metadata["wavelengths"], dtype=float)
    w.image.value = layer
    editor = w.steps_editor
    lo, hi = float(wl[10]), float(wl[15])  # six bands left
    w.steps.value = f"range({lo!r}, {hi!r})"
    editor.select(0)
    assert editor.add("range").args == (lo, hi)  # not the whole image's range
    window = editor.add("savgol").args[0]
    assert window == 5  # fits six bands
    assert w.check_steps() is not None
    editor.select(0)
    assert editor.add("drop").args == (float(wl[13]),) * 2  # the middle of those six

    viewer.layers.clear()
    layer = _add_cube(viewer, wavelengths=False)
    w.image.value = layer
    w.steps.value = "range(20, 29, index=True)"
    editor.select(0)
    step = editor.add("range")
    assert step.args == (20.0, 29.0) and step.option("index") is True
    assert w.check_steps() is not None


def test_typing_a_baseline_step_imports_its_library_in_the_background(
    viewer_and_widget, monkeypatch, qtbot
):
    """The import is started from the steps field as it changes, in a thread, so checking
    the steps (Enter, Run) finds the library imported instead of freezing the viewer."""
    import importlib
    import sys
    import threading

    from napari_spectral_clusters import spectral

    _, w = viewer_and_widget
    seen = []

    def import_recorded(module):
        seen.append(threading.current_thread())
        importlib.import_module(module)
        spectral._importing.discard(module)

    monkeypatch.setattr(spectral, "SLOW_IMPORTS", {"wave(": "wave"})
    monkeypatch.setattr(spectral, "_import_quietly", import_recorded)
    monkeypatch.delitem(sys.modules, "wave", raising=False)
    w.steps.value = "despike | wave(3)"
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    assert seen[0] is not threading.main_thread()
    seen[0].join(timeout=30)
    assert "wave" in sys.modules
