import threading

import numpy as np
import pytest
from napari.layers import Image, Labels
from superqt import QCollapsible

from napari_spectral_clusters import cluster_image, label_statistics
from napari_spectral_clusters._napari.sample_data import make_sample_cube, make_sample_photo
from napari_spectral_clusters._napari.widget import ClusterWidget
from napari_spectral_clusters.color import MIN_DELTA_E, delta_e
from napari_spectral_clusters.recolor import recolor

from .notifications import capture_notifications

PLUGIN = "napari-spectral-clusters"


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    assert isinstance(widget, ClusterWidget)
    return viewer, widget


def _notifications(monkeypatch, kind: str) -> list[str]:
    """What the widget shows as ``show_<kind>`` notifications, in order."""
    return capture_notifications(monkeypatch, kind)


@pytest.fixture
def errors(monkeypatch):
    return _notifications(monkeypatch, "error")


def _add_cube(viewer, **kwargs):
    (cube, kw, _), (gt, _, _) = make_sample_cube()
    layer = viewer.add_image(cube, **kw, **kwargs)
    return layer, gt


def _colormap_rgb(labels_layer):
    """The colours napari paints each pixel of a labels layer with, as uint8 RGB."""
    rgba = labels_layer.colormap.map(labels_layer.data)
    return np.round(rgba[..., :3] * 255).astype(np.uint8), rgba[..., 3]


def test_cluster_a_cube(viewer_and_widget):
    viewer, w = viewer_and_widget
    src, gt = _add_cube(viewer, scale=(1, 2.0, 0.5), translate=(0, 10, -4))
    before = src.data.copy()
    assert w.image.value is src  # the active layer is the default
    w.n_clusters.value = 4
    w.random_state.value = 3
    w.run(wait=True)

    labels = viewer.layers["sample cube clusters"]
    rgb = viewer.layers["sample cube recolored"]
    assert isinstance(labels, Labels) and isinstance(rgb, Image) and rgb.rgb
    assert labels.data.shape == gt.shape and rgb.data.shape == (*gt.shape, 3)
    assert len(np.unique(labels.data)) == 4
    # the labels layer paints each pixel in the recoloured image's colour
    colors, alpha = _colormap_rgb(labels)
    np.testing.assert_array_equal(colors, rgb.data)
    assert (alpha == 1).all()
    # both overlay the source: same world transform for the spatial axes
    for layer in (labels, rgb):
        np.testing.assert_allclose(layer.scale, [2.0, 0.5])
        np.testing.assert_allclose(layer.translate, [10, -4])
    # placed above the source, recoloured then labels
    names = [layer.name for layer in viewer.layers]
    i = names.index("sample cube")
    assert names[i + 1 : i + 3] == ["sample cube recolored", "sample cube clusters"]
    assert labels.metadata["params"]["random_state"] == 3
    assert labels.metadata["params"]["n_clusters"] == 4
    np.testing.assert_array_equal(src.data, before)


def test_cluster_an_rgba_photo(viewer_and_widget):
    viewer, w = viewer_and_widget
    ((photo, kw, _),) = make_sample_photo()
    viewer.add_image(photo, **kw)
    w.n_clusters.value = 8
    w.run(wait=True)
    labels = viewer.layers["coffee clusters"].data
    rgba = viewer.layers["coffee recolored"].data
    transparent = photo[..., 3] == 0
    assert rgba.shape == photo.shape
    assert (labels[transparent] == 0).all() and (rgba[transparent, 3] == 0).all()
    assert set(np.unique(labels[~transparent])) == set(range(1, 9))
    colors, _ = _colormap_rgb(viewer.layers["coffee clusters"])
    np.testing.assert_array_equal(colors[~transparent], rgba[~transparent, :3])


def test_rerun_replaces_results(viewer_and_widget):
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    w.n_clusters.value = 3
    w.run(wait=True)
    n_layers = len(viewer.layers)
    first = viewer.layers["sample cube clusters"]
    first.opacity = 0.3  # a user's choice survives a rerun
    w.n_clusters.value = 5
    w.run(wait=True)
    assert len(viewer.layers) == n_layers
    assert viewer.layers["sample cube clusters"] is first
    assert first.data.max() == 5
    assert first.opacity == 0.3
    colors, _ = _colormap_rgb(first)
    np.testing.assert_array_equal(colors, viewer.layers["sample cube recolored"].data)


def test_no_image_layer_says_so(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    assert w.run() is None
    assert len(viewer.layers) == 0
    assert errors and "No image layer" in errors[0]
    assert w.preview_steps() is None  # said nothing before
    assert len(errors) == 2 and "Preview steps" in errors[1] and "open a cube" in errors[1]


def test_too_many_clusters_says_so_and_changes_nothing(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    img = np.zeros((20, 20, 3), np.uint8)
    img[:10] = 255
    viewer.add_image(img, name="two colours", rgb=True)
    w.n_clusters.value = 4
    w.run(wait=True)
    assert [layer.name for layer in viewer.layers] == ["two colours"]
    assert errors and "only 2 distinct" in errors[0]
    assert w.run_button.enabled and not w.running


def test_band_axis_can_be_overridden(viewer_and_widget):
    viewer, w = viewer_and_widget
    rng = np.random.default_rng(0)
    # a (y, x, band) cube without reader metadata: "auto" would take axis 0 as bands
    gt = np.zeros((20, 30), int)
    gt[:, 15:] = 1
    cube = np.array([[0.1] * 6, [0.9] * 6])[gt] + rng.normal(0, 0.01, (20, 30, 6))
    viewer.add_image(cube, name="yxb")
    assert list(w.channel_axis.choices) == ["auto", "none", 0, 1, 2]
    w.channel_axis.value = 2
    w.n_clusters.value = 2
    w.run(wait=True)
    labels = viewer.layers["yxb clusters"].data
    assert labels.shape == (20, 30)
    assert len(np.unique(labels[:, :15])) == 1 and len(np.unique(labels[:, 15:])) == 1
    assert labels[0, 0] != labels[0, -1]


def test_save_a_model_and_apply_it_to_another_layer(viewer_and_widget, tmp_path, errors):
    from napari_spectral_clusters.samples import synthetic_cube

    viewer, w = viewer_and_widget
    _, gt = _add_cube(viewer)
    w.n_clusters.value = 4
    w.run(wait=True)
    fitted = viewer.layers["sample cube clusters"].data.copy()
    path = w.save_model(tmp_path / "scene.npz")
    assert path.exists()

    other, _, wl = synthetic_cube(seed=5)  # the same scene seen again, other noise
    viewer.add_image(other, name="second", metadata={"channel_axis": 0, "wavelengths": wl})
    w.image.value = viewer.layers["second"]
    w.model_file.value = path
    w.apply_model(wait=True)
    applied = viewer.layers["second clusters"].data
    # the same material gets the same label number in both layers
    for material in range(1, 5):
        assert np.all(applied[gt == material] == fitted[gt == material][0])
    assert not errors

    viewer.add_image(other[:10], name="ten bands", metadata={"channel_axis": 0})
    w.image.value = viewer.layers["ten bands"]
    w.apply_model(wait=True)
    assert "ten bands clusters" not in viewer.layers
    assert errors and "fitted on 64 channels" in errors[-1]


def test_true_colour_view_and_cluster_colours(viewer_and_widget, monkeypatch):
    from napari_spectral_clusters.color import spectra_to_rgb

    infos = _notifications(monkeypatch, "info")
    viewer, w = viewer_and_widget
    src, _ = _add_cube(viewer, scale=(1, 3.0, 3.0))
    w.true_colour()
    view = viewer.layers["sample cube true colour"]
    assert view.rgb and view.data.shape == (128, 128, 3)
    np.testing.assert_allclose(view.scale, [3.0, 3.0])
    expected = spectra_to_rgb(src.data, src.metadata["wavelengths"], channel_axis=0)
    np.testing.assert_array_equal(view.data, expected.rgb)
    assert infos and "true colour" in infos[-1]
    # without wavelengths the picture is false colour, and its name says so
    bare = viewer.add_image(src.data, name="no wavelengths")
    w.image.value = bare
    w.true_colour()
    assert "no wavelengths false colour" in viewer.layers
    assert "no wavelengths true colour" not in viewer.layers
    assert "false colour" in infos[-1]

    w.image.value = src
    w.n_clusters.value = 4
    w.run(wait=True)
    labels = viewer.layers["sample cube clusters"]
    assert labels.metadata["params"]["colors"] == "true colour of each centre spectrum"
    # made again after a run, the view comes above the opaque result layers, active, and
    # below the user's own shapes
    shapes = viewer.add_shapes([[[0, 0], [0, 50], [50, 50], [50, 0]]], name="outline")
    w.true_colour()
    assert viewer.layers.selection.active is view
    assert viewer.layers.index("sample cube recolored") < viewer.layers.index(view)
    assert viewer.layers.index("sample cube clusters") < viewer.layers.index(view)
    assert viewer.layers.index(view) < viewer.layers.index(shapes)
    w.palette.value = "categorical"
    w.run(wait=True)
    from napari_spectral_clusters.color import categorical_colors

    np.testing.assert_array_equal(labels.metadata["colors"], categorical_colors(4))
    colors, _ = _colormap_rgb(labels)
    np.testing.assert_array_equal(colors, viewer.layers["sample cube recolored"].data)


def _select_rows(w, rows):
    from qtpy.QtCore import QItemSelectionModel

    table = w.table.native
    table.clearSelection()
    for row in rows:
        table.selectionModel().select(
            table.model().index(row, 1),
            QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
        )


def test_cluster_table_selection_merge_and_refresh(viewer_and_widget):
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    w.n_clusters.value = 4
    w.run(wait=True)
    labels = viewer.layers["sample cube clusters"]
    counts = labels.metadata["counts"]
    table = w.table.to_dict("list")
    assert table["label"] == [1, 2, 3, 4]
    assert table["pixels"] == counts.tolist()
    swatches = [w.table.native.item(r, 0).background().color().getRgb()[:3] for r in range(4)]
    assert swatches == [tuple(map(int, c)) for c in labels.metadata["colors"]]
    assert list(labels.features["pixels"]) == [0, *counts.tolist()]

    rgb = viewer.layers["sample cube recolored"]
    drawn_before = _colormap_rgb(labels)
    _select_rows(w, [1])  # isolate cluster 2: what the user sees, both layers
    assert w.selected_labels() == [2]
    _, alpha = _colormap_rgb(labels)
    assert (alpha[labels.data == 2] == 1).all() and (alpha[labels.data != 2] == 0).all()
    assert not rgb.visible  # the recoloured layer shows every cluster: out of the way
    swatch = w.table.native.item(1, 0)
    assert not swatch.isSelected()  # keeps its colour, not the selection's grey
    assert swatch.background().color().getRgb()[:3] == tuple(
        map(int, labels.metadata["colors"][1])
    )
    _select_rows(w, [1, 3])
    _, alpha = _colormap_rgb(labels)
    assert (alpha[np.isin(labels.data, [2, 4])] == 1).all()
    assert (alpha[np.isin(labels.data, [1, 3])] == 0).all()
    _select_rows(w, [])
    assert rgb.visible
    np.testing.assert_array_equal(_colormap_rgb(labels)[0], drawn_before[0])
    np.testing.assert_array_equal(_colormap_rgb(labels)[1], drawn_before[1])
    _select_rows(w, [0])
    assert not rgb.visible
    w.run(wait=True)  # a new result while one is isolated: the old view comes back first
    assert rgb.visible

    _select_rows(w, [2, 3])
    assert "inertia" in labels.metadata
    before_merge = np.array(labels.data)
    w.merge(w.selected_labels())
    assert set(np.unique(labels.data)) == {1, 2, 3}
    assert w.table.to_dict("list")["pixels"][2] == counts[2] + counts[3]
    # what a saved file says follows the merge: counts, means and spreads of the labels now
    # (cluster 4 has no pixel left), no inertia of a clustering the labels no longer are
    cube = viewer.layers["sample cube"].data
    np.testing.assert_array_equal(
        labels.metadata["counts"], [counts[0], counts[1], counts[2] + counts[3], 0]
    )
    merged = np.moveaxis(cube, 0, -1)[labels.data == 3].astype(np.float64)
    # pooled from the clustering's spreads, which a pass sums in float32 products: their
    # rounding follows the BLAS kernel the CPU gets (1.7e-6 of two of 64 spreads on another
    # machine's OpenBLAS, numpy 1.24), not this test's data
    np.testing.assert_allclose(labels.metadata["centers"][2], merged.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(labels.metadata["std"][2], merged.std(axis=0), rtol=1e-5)
    assert np.isnan(labels.metadata["centers"][3]).all()
    assert "inertia" not in labels.metadata and labels.metadata["hand_edited"]
    rgb_meta = viewer.layers["sample cube recolored"].metadata
    np.testing.assert_array_equal(rgb_meta["counts"], labels.metadata["counts"])
    assert w.status.value == f"3 clusters of {int(counts.sum()):,} pixels, edited by hand"
    colors, _ = _colormap_rgb(labels)
    np.testing.assert_array_equal(colors, viewer.layers["sample cube recolored"].data)

    merged_data = np.array(labels.data)
    labels.data = before_merge  # undone: the clustering's statistics and inertia come back
    w.refresh()
    np.testing.assert_array_equal(labels.metadata["counts"], counts)
    assert "inertia" in labels.metadata
    labels.data = np.zeros_like(merged_data)  # everything erased: a table of nothing
    w.refresh()
    assert (labels.metadata["counts"] == 0).all() and w.table.to_dict("list")["label"] == []
    labels.data = merged_data
    w.refresh()

    painted = np.array(labels.data)
    painted[:10, :10] = 9  # the user paints a new cluster
    labels.data = painted
    w.refresh()
    assert w.table.to_dict("list")["label"] == [1, 2, 3, 9]
    assert w.table.to_dict("list")["pixels"][-1] == 100
    recolored = viewer.layers["sample cube recolored"].data
    assert len({tuple(c) for c in recolored[:10, :10].reshape(-1, 3)}) == 1
    assert tuple(recolored[0, 0]) not in {tuple(c) for c in labels.metadata["colors"][:3]}


def test_wavelengths_entered_after_a_run_go_on_its_plot(viewer_and_widget):
    """Typed in after a run, the wavelengths are the spectra plot's axis at once (it kept
    band numbers until the next run)."""
    viewer, w = viewer_and_widget
    src, _ = _add_cube(viewer)
    bare = viewer.add_image(np.asarray(src.data), name="no wavelengths")
    w.image.value = bare
    w.n_clusters.value = 3
    w.run(wait=True)
    ax = w.plot.figure.axes[0]
    assert ax.get_xlabel() == "band"
    n = bare.data.shape[0]
    wl = w.set_wavelengths("400-700")
    assert wl is not None and len(wl) == n
    ax = w.plot.figure.axes[0]
    assert ax.get_xlabel() == "wavelength (nm)"
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), np.linspace(400, 700, n))


def test_mask_layers_restrict_the_clustering(viewer_and_widget):
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    inside = np.zeros((128, 128), np.uint8)
    inside[20:80, 30:100] = 1
    viewer.add_labels(inside, name="roi")
    w.reset_choices()
    w.mask.value = viewer.layers["roi"]
    w.image.value = viewer.layers["sample cube"]
    w.preprocessing.value = "unit"
    w.n_clusters.value = 3
    w.run(wait=True)
    labels = viewer.layers["sample cube clusters"]
    assert (labels.data[inside == 0] == 0).all() and (labels.data[inside == 1] > 0).all()
    assert labels.metadata["params"]["preprocessing"] == "unit"

    viewer.add_shapes([[[0, 0], [0, 50], [50, 50], [50, 0]]], name="box")
    w.reset_choices()
    w.mask.value = viewer.layers["box"]
    w.run(wait=True)
    assert (labels.data[:50, :50] > 0).all() and (labels.data[60:, 60:] == 0).all()


def test_pixels_left_out_show_the_image_below_the_recoloured_layer(clustered, tmp_path):
    """Clustered only inside a region, the recoloured layer is see-through outside it (RGBA),
    not black over the scene: after a run that updates an RGB one in place, after painting,
    and in the saved file."""
    viewer, w = clustered
    recolored = viewer.layers["sample cube recolored"]
    assert recolored.rgb and recolored.data.shape == (128, 128, 3)  # every pixel clustered
    inside = np.zeros((128, 128), np.uint8)
    inside[20:80, 30:100] = 1
    viewer.add_labels(inside, name="roi")
    w.reset_choices()
    w.mask.value = viewer.layers["roi"]
    w.run(wait=True)
    assert viewer.layers["sample cube recolored"] is recolored  # updated in place
    assert recolored.rgb and recolored.data.shape == (128, 128, 4)
    np.testing.assert_array_equal(recolored.data[..., 3], np.where(inside, 255, 0))
    labels = viewer.layers["sample cube clusters"]
    labels.data[0:5, 0:5] = 2  # painted where the region left pixels out
    # saved with napari's File > Save (the plugin's writer) before any Refresh: the painted
    # pixels are drawn, not kept as see-through as the region's outside was
    viewer.layers.selection = {labels, recolored}
    (painted,) = viewer.layers.save(str(tmp_path / "painted.zarr"), selected=True, plugin=PLUGIN)
    from napari_spectral_clusters._napari.reader import get_reader

    back = {data[1]["name"]: data[0] for data in get_reader(painted)(painted)}
    saved = np.asarray(back["sample cube recolored"])
    assert saved.shape == (128, 128, 4) and (saved[0:5, 0:5, 3] == 255).all()
    assert saved[6, 6, 3] == 0
    w.refresh()
    assert recolored.data.shape == (128, 128, 4)
    assert (recolored.data[0:5, 0:5, 3] == 255).all() and recolored.data[6, 6, 3] == 0
    np.testing.assert_array_equal(recolored.data[0, 0, :3], labels.metadata["colors"][1])
    written = w.save_result(tmp_path / "result.zarr")
    back = {data[1]["name"]: data[0] for data in get_reader(written[0])(written[0])}
    np.testing.assert_array_equal(np.asarray(back["sample cube recolored"]), recolored.data)


def test_pixels_erased_from_a_result_become_see_through(clustered):
    viewer, w = clustered
    recolored = viewer.layers["sample cube recolored"]
    assert recolored.data.shape == (128, 128, 3)
    labels = viewer.layers["sample cube clusters"]
    kept = np.array(labels.data[10:20, 10:20])
    labels.data[10:20, 10:20] = 0  # erased with napari's eraser
    w.refresh()
    assert recolored.data.shape == (128, 128, 4)
    alpha = recolored.data[..., 3]
    assert (alpha[10:20, 10:20] == 0).all() and (alpha == 255).sum() == 128 * 128 - 100
    labels.data[10:20, 10:20] = kept  # painted back: every pixel labelled, RGB again
    w.refresh()
    assert recolored.data.shape == (128, 128, 3)


def _hold_at_first_report(w, stage_word: str) -> list[tuple[int, int]]:
    """Record the engine's ``stage_word`` reports, holding the worker thread at the first one
    until Cancel is pressed, so the test does not race a fast machine to the last pass."""
    from qtpy.QtCore import Qt

    reports = []

    def record(stage, done, total):  # runs in the worker thread (direct connection)
        if stage_word in stage:
            reports.append((done, total))
            if len(reports) == 1:
                assert w.runner.cancelled.wait(timeout=30)

    w.runner.relay.reported.connect(record, Qt.ConnectionType.DirectConnection)
    return reports


def test_cancel_stops_promptly_and_changes_nothing(viewer_and_widget, qtbot):
    viewer, w = viewer_and_widget
    rng = np.random.default_rng(0)
    big = rng.random((16, 1500, 1500), dtype=np.float32)  # several seconds of work
    viewer.add_image(big, name="big", metadata={"channel_axis": 0})
    w.n_clusters.value = 16
    passes = _hold_at_first_report(w, "fit")
    w.run()
    # wait until the engine reports progress: it is running, past its set-up
    qtbot.waitUntil(lambda: bool(passes), timeout=30_000)
    assert w.running and not w.run_button.enabled
    assert w.run() is None  # a second run cannot start while one is going
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=30_000)
    done, total = passes[-1]
    assert done < total  # stopped at the next report, not after every pass
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert w.status.value == "cancelled" and w.run_button.enabled


def test_cancel_stops_apply_model_too(viewer_and_widget, qtbot, tmp_path):
    viewer, w = viewer_and_widget
    rng = np.random.default_rng(0)
    path = cluster_image(rng.random((64, 64, 16)), 16).model.save(tmp_path / "m.npz")
    big = rng.random((16, 3000, 3000), dtype=np.float32)  # one pass: seconds of work
    viewer.add_image(big, name="big", metadata={"channel_axis": 0})
    blocks = _hold_at_first_report(w, "blocks")
    w.apply_model(path)
    qtbot.waitUntil(lambda: bool(blocks), timeout=30_000)
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=30_000)
    done, total = blocks[-1]
    assert done < total  # stopped part-way, not after labelling every block
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert w.status.value == "cancelled"


def test_cancel_stops_suggest_k_and_says_so(viewer_and_widget, qtbot):
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    sweeps = _hold_at_first_report(w, "sweep")
    w.suggest_k(ks=range(2, 9))
    qtbot.waitUntil(lambda: bool(sweeps), timeout=30_000)
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=30_000)
    assert sweeps[-1][0] < sweeps[-1][1]  # stopped part-way
    assert w.status.value == "cancelled" and w.last_sweep is None


def test_settings_persist_between_sessions(make_napari_viewer, monkeypatch, qtbot):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    _add_cube(viewer)
    w.n_clusters.value = 5
    w.random_state.value = 42
    w.preprocessing.value = "pca"
    w.run(wait=True)
    said = capture_notifications(monkeypatch, "info")
    fresh = ClusterWidget(viewer)
    assert (fresh.n_clusters.value, fresh.random_state.value) == (5, 42)
    assert fresh.preprocessing.value == "pca"
    qtbot.wait(50)
    assert said == []  # no steps: nothing to say
    fresh.steps.value = "savgol(9, 2) | snv"
    fresh.palette.value = "categorical"
    fresh.run(wait=True)
    said.clear()
    again = ClusterWidget(viewer)  # steps that fit one kind of cube come back, and say so
    assert again.steps.value == "savgol(9, 2) | snv"
    qtbot.waitUntil(lambda: bool(said), timeout=5_000)
    assert len(said) == 1 and "savgol(9, 2) | snv" in said[0] and "last session" in said[0]

    # the demo's widget: its own defaults, not the user's, which it leaves as they were
    said.clear()
    demo = ClusterWidget(viewer)
    demo.use_defaults()
    qtbot.wait(50)
    assert said == []  # its steps are gone before the widget would speak of them
    assert (demo.n_clusters.value, demo.random_state.value) == (8, 0)
    assert (demo.preprocessing.value, demo.steps.value) == ("none", "")
    assert demo.palette.value == "auto"
    demo.run(wait=True)
    after = ClusterWidget(viewer)
    assert (after.n_clusters.value, after.random_state.value) == (5, 42)
    assert (after.steps.value, after.palette.value) == ("savgol(9, 2) | snv", "categorical")


def test_table_names_its_layer_and_goes_with_it(viewer_and_widget):
    viewer, w = viewer_and_widget
    assert w.results.caption.value.startswith("Layer: none")
    src, _ = _add_cube(viewer)
    w.n_clusters.value = 3
    w.run(wait=True)
    assert w.results.caption.value == "Layer: sample cube clusters"
    viewer.layers["sample cube clusters"].name = "moss"
    assert w.results.caption.value == "Layer: moss"
    recolored = viewer.layers["sample cube recolored"]
    w.table.native.selectRow(0)  # one cluster shown: the recoloured layer steps aside
    assert not recolored.visible
    viewer.layers.remove("moss")
    # the table and plot described a layer that is gone: they go too, and what the
    # selection hid is shown again
    assert w.results.shown is None
    assert w.table.native.rowCount() == 0
    assert w.plot.axes.get_lines() == [] and not w.plot.axes.axison  # no empty 0-1 axes
    assert w.results.caption.value.startswith("Layer: none")
    assert recolored.visible
    assert [layer.name for layer in viewer.layers] == [src.name, "sample cube recolored"]
    w.run(wait=True)  # and a new run fills them again
    assert w.table.native.rowCount() == 3 and len(w.plot.axes.get_lines()) == 3
    assert w.results.caption.value == "Layer: sample cube clusters"


def test_spectra_plot_and_suggest_k(viewer_and_widget):
    viewer, w = viewer_and_widget
    src, _ = _add_cube(viewer)
    w.n_clusters.value = 4
    w.run(wait=True)
    labels = viewer.layers["sample cube clusters"]
    lines = w.plot.axes.get_lines()
    assert len(lines) == 4
    for line, color, center in zip(
        lines, labels.metadata["colors"], labels.metadata["centers"], strict=True
    ):
        np.testing.assert_allclose(line.get_color(), color / 255)
        np.testing.assert_allclose(line.get_xdata(), src.metadata["wavelengths"])
        np.testing.assert_allclose(line.get_ydata(), center)
    assert w.plot.axes.get_xlabel() == "wavelength (nm)"

    w.n_clusters.value = 6
    w.suggest_k(ks=range(2, 7), wait=True)
    np.testing.assert_array_equal(w.last_sweep["k"], [2, 3, 4, 5, 6])
    assert "suggested k = 4" in w.status.value
    # marked in the plot, and one click to use it
    marks = [
        line
        for line in w.sweep_plot.figure.axes[0].get_lines()
        if line.get_label().startswith("suggested")
    ]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == 4
    # inertia above, silhouette below (on twin axes their points hid each other at k = 2)
    top, below = w.sweep_plot.figure.axes
    np.testing.assert_allclose(top.get_lines()[0].get_ydata(), w.last_sweep["inertia"])
    np.testing.assert_allclose(below.get_lines()[0].get_ydata(), w.last_sweep["silhouette"])
    assert below.get_ylabel() == "silhouette" and below.get_xlabel() == "clusters k"
    assert below.get_position().y1 <= top.get_position().y0
    # a sweep of two k: matplotlib's own ticks would be 2.0, 2.2, ... 3.0
    w.sweep_plot.show_sweep([2, 3], [10.0, 6.0], [0.5, 0.4])
    w.sweep_plot.figure.canvas.draw()  # (tick positions are chosen when drawn)
    ticks = w.sweep_plot.figure.axes[0].get_xticks()
    assert len(ticks) and np.array_equal(ticks, np.round(ticks))  # no k = 2.5
    w.panel.show_sweep(w.last_sweep)
    # the sweep has its own tab: the spectra are still there, and the sweep's tab is open
    assert w.plots.currentWidget() is w.sweep_plot
    assert len(w.plot.axes.get_lines()) == 4
    shown = not w.use_k_button.native.isHidden()  # (the test viewer's window is not shown)
    assert shown and w.use_k_button.text == "Use k = 4"
    w.use_k_button.changed.emit(True)
    assert w.n_clusters.value == 4 and w.use_k_button.native.isHidden()
    assert [layer.name for layer in viewer.layers][-2:] == [
        "sample cube recolored",
        "sample cube clusters",
    ]


def test_rgb_source_plots_its_centre_colours(viewer_and_widget):
    viewer, w = viewer_and_widget
    ((photo, kw, _),) = make_sample_photo()
    viewer.add_image(photo, **kw)
    w.n_clusters.value = 3
    w.run(wait=True)
    assert w.plot.axes.get_xlabel() == "colour channel (R, G, B)"
    centers = viewer.layers["coffee clusters"].metadata["centers"]
    np.testing.assert_allclose([line.get_ydata() for line in w.plot.axes.get_lines()], centers)


def test_rename_and_recolour_a_cluster(viewer_and_widget):
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    w.n_clusters.value = 3
    w.run(wait=True)
    w.rename(2, "vegetation")
    table = w.table.to_dict("list")
    assert table["name"][1] == "vegetation" and table["name"][0] == "cluster 1"
    labels = viewer.layers["sample cube clusters"]
    assert list(labels.features["name"])[2] == "vegetation"
    w.recolour(2, (10, 200, 30))
    colors, _ = _colormap_rgb(labels)
    recolored = viewer.layers["sample cube recolored"].data
    np.testing.assert_array_equal(colors, recolored)
    assert tuple(recolored[labels.data == 2][0]) == (10, 200, 30)
    assert w.table.native.item(1, 0).background().color().getRgb()[:3] == (10, 200, 30)
    assert w.table.to_dict("list")["name"][1] == "vegetation"  # the name survives


def test_layer_list_follows_add_rename_remove(viewer_and_widget):
    viewer, w = viewer_and_widget
    layer, _ = _add_cube(viewer)
    assert layer in w.image.choices
    layer.name = "renamed cube"
    shown = [w.image.native.itemText(i) for i in range(w.image.native.count())]
    assert "renamed cube" in shown and "sample cube" not in shown
    assert w.image.native.currentText() == "renamed cube"
    viewer.layers.remove(layer)
    assert layer not in w.image.choices


def test_results_follow_a_rotated_and_affine_transformed_source(viewer_and_widget):
    viewer, w = viewer_and_widget
    affine = np.array([[1, 0, 0, 0], [0, 0.8, 0.2, 5], [0, -0.1, 1.1, -3], [0, 0, 0, 1.0]])
    src, _ = _add_cube(viewer, rotate=30, affine=affine)
    w.n_clusters.value = 2
    w.run(wait=True)
    for name in ("sample cube clusters", "sample cube recolored"):
        layer = viewer.layers[name]
        # the same data pixel lands on the same world point as in the source
        for y, x in [(0, 0), (10, 100), (127, 64)]:
            np.testing.assert_allclose(
                layer.data_to_world((y, x)), src.data_to_world((0, y, x))[1:], atol=1e-9
            )


@pytest.mark.parametrize("read_once", [False, True])
def test_a_lazy_layer_is_clustered_lazily(viewer_and_widget, monkeypatch, read_once):
    """Block by block, or read once when it fits in memory: the same clusters either way."""
    import dask.array as da

    from napari_spectral_clusters import lazy

    monkeypatch.setattr(lazy, "READ_ONCE_SHARE", 0.25 if read_once else 0.0)
    viewer, w = viewer_and_widget
    cube, kw, labels = _cluster_lazily(viewer, w)
    # block by block: computed as napari shows it; read once: computed with the clustering
    assert isinstance(labels.data, da.Array) != read_once
    eager = cluster_image(cube, 4, channel_axis=0, wavelengths=kw["metadata"]["wavelengths"])
    np.testing.assert_array_equal(np.asarray(labels.data), eager.labels)
    assert w.table.to_dict("list")["pixels"] == eager.counts.tolist()
    # naming a cluster edits no label: the clustering's statistics and status stay, and
    # neither it, a new colour nor a merge reads the cube again (worked out from the table)
    recounts, recount = _recounts(monkeypatch)
    status, inertia = w.status.value, labels.metadata["inertia"]
    w.rename(1, "soil")
    w.recolour(2, (255, 0, 0))
    assert labels.metadata["inertia"] == inertia and w.status.value == status
    np.testing.assert_array_equal(labels.metadata["counts"], eager.counts)
    w.merge([2, 4])
    assert recounts == []
    merged = np.where(eager.labels == 4, 2, eager.labels)
    assert np.array_equal(labels.data, merged)
    expected = recount(cube, merged, channel_axis=0)
    assert w.table.to_dict("list")["pixels"] == expected["count"].tolist()
    np.testing.assert_allclose(labels.metadata["centers"][:3], expected["mean"], rtol=1e-5)
    np.testing.assert_allclose(labels.metadata["std"][:3], expected["std"], rtol=1e-4)
    assert w.table.to_dict("list")["name"][0] == "soil"
    # labels painted since the table was counted: a rename counts them again
    labels.brush_size = 5
    labels.paint((2, 2), 3)
    assert recounts == [] and (labels.data[1:4, 1:4] == 3).all()
    w.rename(3, "water")
    assert recounts == [da.Array]  # the cube as it is: read block by block, not whole
    assert w.table.to_dict("list")["pixels"] == (
        recount(cube, np.asarray(labels.data), channel_axis=0)["count"].tolist()
    )
    assert w.table.to_dict("list")["pixels"] != expected["count"].tolist()


def test_painted_lazy_labels_are_counted_again_and_kept(viewer_and_widget, monkeypatch):
    """napari paints lazy labels too (each stroke a new dask graph): a rename after it counts
    the table again, and the labels count as edited by hand (a rerun keeps them)."""
    import dask.array as da

    from napari_spectral_clusters import lazy
    from napari_spectral_clusters._napari.layer_rules import has_hand_edits

    monkeypatch.setattr(lazy, "READ_ONCE_SHARE", 0.0)
    viewer, w = viewer_and_widget
    cube, _, labels = _cluster_lazily(viewer, w)
    assert isinstance(labels.data, da.Array) and not has_hand_edits(labels)
    recounts, recount = _recounts(monkeypatch)
    w.rename(1, "soil")
    assert recounts == []
    painted = labels.data.copy()
    painted[:6, :6] = 3  # as a brush stroke does: a new graph, the same array type
    labels.data = painted
    assert isinstance(labels.data, da.Array) and has_hand_edits(labels)
    w.rename(2, "water")
    assert recounts == [da.Array]
    expected = recount(cube, np.asarray(labels.data), channel_axis=0)
    assert w.table.to_dict("list")["pixels"] == expected["count"].tolist()


def test_a_lazy_recount_runs_in_the_background_and_cancel_keeps_the_table(
    viewer_and_widget, monkeypatch, infos, tmp_path
):
    """Refresh on a lazy cube counts its blocks in the worker thread, with the progress bar
    and Cancel: the viewer's thread is free meanwhile (it presses Cancel here), a cancelled
    recount leaves the table as it was, and Save… then saves nothing."""
    from napari_spectral_clusters import cluster, lazy

    monkeypatch.setattr(lazy, "READ_ONCE_SHARE", 0.0)
    monkeypatch.setattr(cluster, "RECOUNT_BATCH", 1)  # a report after every block
    viewer, w = viewer_and_widget
    cube, _, labels = _cluster_lazily(viewer, w)
    before = w.table.to_dict("list")
    painted = labels.data.copy()
    painted[:6, :6] = 3
    labels.data = painted
    armed = [True]

    def press_cancel(stage, done, total):  # queued: runs in the viewer's thread
        if stage == "blocks" and armed and armed.pop():
            w.cancel()

    # connected first: Qt calls a signal's slots in order, and the hold blocks the worker
    w.runner.relay.reported.connect(press_cancel)
    held = _hold_at_first_report(w, "blocks")  # the worker waits there for Cancel
    assert w.refresh() is False
    n_blocks = int(np.prod(viewer.layers["sample cube"].data.numblocks[1:]))
    assert held == [(0, n_blocks)] and not w.running
    assert w.table.to_dict("list") == before
    assert infos[-1] == "Recount of sample cube clusters cancelled; its table is as it was."
    assert w.status.value == "recounting sample cube clusters: cancelled"
    armed.append(True)
    _hold_at_first_report(w, "blocks")  # again, for the recount Save… starts
    out = tmp_path / "out"
    out.mkdir()
    assert w.save_result(out / "result.mat") is None
    assert infos[-1].startswith("Nothing saved") and not list(out.iterdir())

    # uninterrupted: every block counted, and the table follows the painted labels
    assert w.refresh() is True
    assert held[-1] == (n_blocks, n_blocks)
    expected = label_statistics(cube, np.asarray(labels.data), channel_axis=0)
    assert w.table.to_dict("list")["pixels"] == expected["count"].tolist()
    assert w.table.to_dict("list")["pixels"] != before["pixels"]
    assert w.status.value.endswith("edited by hand")


def _during_recount(w, action):
    """Do ``action()`` in the viewer's thread while the next recount's worker is held at its
    first report (it goes on once the action is done)."""
    from qtpy.QtCore import Qt

    go, done = threading.Event(), []

    def act(stage, count, total):  # queued: the viewer's thread, in the refresh's wait
        if stage == "blocks" and not done:
            done.append(True)
            try:
                action()
            finally:
                go.set()

    def hold(stage, count, total):  # the worker thread
        if stage == "blocks" and count == 0 and not go.is_set():
            assert go.wait(timeout=30)

    w.runner.relay.reported.connect(act)  # first: Qt calls a signal's slots in order
    w.runner.relay.reported.connect(hold, Qt.ConnectionType.DirectConnection)
    return done


@pytest.mark.parametrize("edit", ["merge", "paint", "paint then merge", "rename painted"])
def test_labels_edited_while_a_lazy_recount_runs_end_up_counted(
    viewer_and_widget, monkeypatch, errors, edit
):
    """The viewer stays usable while a lazy cube is recounted: labels merged, painted (in
    place) or renamed meanwhile are what the table, the metadata and the recoloured image
    follow when it ends, not the labels it started from."""
    from napari_spectral_clusters import cluster, lazy

    monkeypatch.setattr(lazy, "READ_ONCE_SHARE", 0.0)
    monkeypatch.setattr(cluster, "RECOUNT_BATCH", 1)
    viewer, w = viewer_and_widget
    cube, _, labels = _cluster_lazily(viewer, w)
    recolored = viewer.layers["sample cube recolored"]
    labels.data = np.array(labels.data)  # numpy labels: painting changes them in place
    if edit in ("paint then merge", "rename painted"):
        labels.paint((40, 40), 3)

    def action():
        if edit in ("merge", "paint then merge"):
            w.merge([2, 4])
        if edit == "paint":
            labels.brush_size = 9
            labels.paint((20, 20), 1 if labels.data[20, 20] != 1 else 2)
        if edit == "rename painted":
            w.rename(2, "water")  # painted: its refresh needs the recount under way

    before = labels.data.copy()
    done = _during_recount(w, action)
    assert w.refresh(edited=True) is True
    assert done and not errors and not w.running
    now = np.asarray(labels.data)
    assert not np.array_equal(now, before) or edit == "rename painted"
    expected = label_statistics(cube, now, channel_axis=0)
    table = w.table.to_dict("list")
    assert table["label"] == expected["label"].tolist()
    assert table["pixels"] == expected["count"].tolist()
    np.testing.assert_array_equal(
        labels.metadata["counts"][expected["label"] - 1], expected["count"]
    )
    colors = np.asarray(w.results.shown.colors, dtype=np.uint8)
    np.testing.assert_array_equal(recolored.data, recolor(now, colors, None))
    if edit == "rename painted":
        assert "water" in table["name"]


def test_a_lazy_recount_whose_layers_are_closed_meanwhile_is_dropped(
    viewer_and_widget, monkeypatch, infos, errors
):
    from napari_spectral_clusters import cluster, lazy

    monkeypatch.setattr(cluster, "RECOUNT_BATCH", 1)
    monkeypatch.setattr(lazy, "READ_ONCE_SHARE", 0.0)
    viewer, w = viewer_and_widget
    _cluster_lazily(viewer, w)
    before = w.table.to_dict("list")
    assert before["label"] == [1, 2, 3, 4]
    _during_recount(w, lambda: viewer.layers.remove("sample cube clusters"))
    assert w.refresh() is False and not errors
    assert infos[-1].startswith("Recount of sample cube clusters dropped: its layers were closed")
    # the table went with its layer, and the dropped count does not bring it back
    assert w.table.to_dict("list") == {} and w.results.shown is None


def _cluster_lazily(viewer, w):
    """The sample cube added as a dask array and clustered into 4: (cube, its layer's keyword
    arguments, the clusters layer)."""
    import dask.array as da

    (cube, kw, _), _ = make_sample_cube()
    viewer.add_image(da.from_array(cube, chunks=(64, 32, 32)), **kw)
    w.n_clusters.value = 4
    w.run(wait=True)
    return cube, kw, viewer.layers["sample cube clusters"]


def _recounts(monkeypatch):
    """The kinds of image the results section counts statistics of from now on (a list that
    fills as it does), and the function that counts them."""
    from napari_spectral_clusters._napari import results_section

    recounts, recount = [], results_section.label_statistics
    monkeypatch.setattr(
        results_section,
        "label_statistics",
        lambda image, *a, **k: recounts.append(type(image)) or recount(image, *a, **k),
    )
    return recounts, recount


@pytest.fixture
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    from napari_spectral_clusters._napari.worker import close_clients

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster
        close_clients()  # and dask goes back to its local scheduler


def test_cluster_on_a_dask_cluster_with_its_progress_and_cancel(
    viewer_and_widget, dask_cluster, qtbot
):

    import dask.array as da
    from distributed import get_task_stream

    from napari_spectral_clusters._napari.worker import connect

    viewer, w = viewer_and_widget
    (cube, kw, _), _ = make_sample_cube()
    layer = viewer.add_image(da.from_array(cube, chunks=(cube.shape[0], 32, 32)), **kw)
    n_blocks = int(np.prod(layer.data.numblocks))
    reported = []
    w.runner.relay.reported.connect(
        lambda stage, done, total: reported.append((stage, done, total))
    )
    w.scheduler.value = dask_cluster.scheduler_address
    w.n_clusters.value = 4
    client = connect(dask_cluster.scheduler_address)  # what Run connects to
    with get_task_stream(client) as stream:
        w.run(wait=True)
    labels = viewer.layers[f"{layer.name} clusters"]
    assert isinstance(labels.data, da.Array)
    expected = cluster_image(cube, 4, channel_axis=0, wavelengths=kw["metadata"]["wavelengths"])
    np.testing.assert_array_equal(np.asarray(labels.data), expected.labels)
    # progress came from the cluster's futures, block by block, and its workers did the work
    assert ("blocks", n_blocks, n_blocks) in reported
    assert sum("_block_sums" in str(t["key"]) for t in stream.data) >= n_blocks

    blocks = _hold_at_first_report(w, "blocks")
    w.n_clusters.value = 3
    w.run()
    assert w.status.value.endswith(f" on {dask_cluster.scheduler_address}…")  # where it runs
    qtbot.waitUntil(lambda: bool(blocks), timeout=60_000)
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert w.status.value == "cancelled"
    assert labels.data is viewer.layers[f"{layer.name} clusters"].data  # nothing changed
    # the futures left were cancelled on the cluster
    qtbot.waitUntil(
        lambda: not client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)),
        timeout=10_000,
    )


def test_an_unreachable_scheduler_is_a_notification(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    w.scheduler.value = "tcp://127.0.0.1:9"
    w.run(wait=True)
    assert len(errors) == 1 and "cannot reach the dask scheduler" in errors[0]
    assert len(viewer.layers) == 1 and w.status.value == "not clustered"


# --- misuse is a notification, never a traceback -----------------------------------------


@pytest.fixture
def clustered(viewer_and_widget):
    """The sample cube clustered into 3."""
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    w.n_clusters.value = 3
    w.run(wait=True)
    return viewer, w


@pytest.fixture
def infos(monkeypatch):
    return _notifications(monkeypatch, "info")


@pytest.mark.parametrize("field", ["", "."])
def test_model_buttons_without_a_file_say_what_to_do(clustered, errors, field, tmp_path):
    _, w = clustered
    assert w.save_model(field) is None and "Choose a file name" in errors[-1]
    assert w.apply_model(field) is None and "Choose a model file" in errors[-1]
    assert w.save_model(tmp_path / "nofolder" / "m.npz") is None
    assert "does not exist" in errors[-1]


def test_removed_result_layers_are_a_notification(clustered, errors, infos):
    viewer, w = clustered
    viewer.layers.remove("sample cube recolored")
    w.merge([1, 2])  # the labels layer alone carries on
    assert not errors and 2 not in np.unique(viewer.layers["sample cube clusters"].data)
    viewer.layers.remove("sample cube clusters")  # its table and plot go with it
    assert w.table.native.rowCount() == 0
    w.table.native.selectRow(0)  # no KeyError from the selection handler
    infos.clear()
    w.refresh()
    w.merge([1, 3])
    assert not errors
    assert infos[0].startswith("Nothing to refresh") and infos[1].startswith("Nothing to merge")


def test_a_replaced_source_is_a_notification_on_refresh(clustered, errors):
    viewer, w = clustered
    viewer.layers.remove("sample cube")
    viewer.add_image(np.random.default_rng(0).random((16, 30, 40)), name="sample cube")
    w.refresh()
    assert errors and "does not match" in errors[-1]


def test_source_removed_while_clustering_drops_the_result(viewer_and_widget, infos, qtbot):
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    w.n_clusters.value = 3
    worker = w.run()
    viewer.layers.remove("sample cube")
    qtbot.waitUntil(lambda: not w.running, timeout=30_000)
    assert worker is not None
    assert [layer.name for layer in viewer.layers] == []
    assert infos and "was removed" in infos[-1]


def test_more_clusters_than_pixels_is_a_clear_error(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    viewer.add_image(np.random.default_rng(0).random((5, 3, 2)), name="tiny", rgb=False)
    w.n_clusters.value = 19
    w.run(wait=True)
    assert errors and "ask for at most 6" in errors[-1]
    assert "tiny clusters" not in viewer.layers


def test_damaged_metadata_falls_back_to_defaults(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    cube = np.random.default_rng(0).random((5, 20, 20))
    viewer.add_image(cube, name="c", metadata={"channel_axis": 7, "wavelengths": "abc"})
    w.n_clusters.value = 2
    w.run(wait=True)
    assert not errors
    assert viewer.layers["c clusters"].data.shape == (20, 20)


@pytest.mark.parametrize("color", ["red", (300, -5, 2), (1, 2), 7])
def test_recolour_with_a_bad_colour_says_so(clustered, errors, color):
    viewer, w = clustered
    before = np.array(viewer.layers["sample cube recolored"].data)
    w.recolour(1, color)
    assert errors and "0 to 255" in errors[-1]
    assert errors[-1].endswith(f"not {color!r}.")  # what was given, not an empty array
    np.testing.assert_array_equal(viewer.layers["sample cube recolored"].data, before)


def test_the_docked_widget_fits_a_laptop_screen_without_growing_the_window(make_napari_viewer):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1366, 768)
    QApplication.processEvents()
    before = (window.width(), window.height())
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    _add_cube(viewer)
    w.n_clusters.value = 4
    w.run(wait=True)  # a table and a plot to show too
    for _ in range(5):
        QApplication.processEvents()
    assert (window.width(), window.height()) == before == (1366, 768)
    assert w.native.minimumSizeHint().height() < 768 - 100
    # the sections in the order of the work; the rarely needed one starts collapsed
    boxes = [box for box in w.native.findChildren(QCollapsible)]
    assert [b.text() for b in boxes] == ["Input", "Clustering", "Results", "Reuse and scale"]
    assert [b.isExpanded() for b in boxes] == [True, True, True, False]


def test_every_control_says_what_it_does(viewer_and_widget):
    _, w = viewer_and_widget
    controls = [
        w.image,
        w.channel_axis,
        w.wavelengths,
        w.mask,
        w.together,
        w.true_colour_button,
        w.stack_button,
        w.keep_ids,
        w.n_clusters,
        w.suggest_button,
        w.use_k_button,
        w.steps,
        w.preview_button,
        w.preprocessing,
        w.palette,
        w.random_state,
        w.run_button,
        w.cancel_button,
        w.table,
        w.merge_button,
        w.refresh_button,
        w.model_file,
        w.save_model_button,
        w.apply_model_button,
        w.scheduler,
    ]
    missing = [c.name for c in controls if len(c.tooltip or "") < 20]
    assert missing == []


def test_the_band_axis_says_what_auto_chose(viewer_and_widget):
    viewer, w = viewer_and_widget
    layer, _ = _add_cube(viewer)
    w.image.value = layer
    assert w.channel_axis.native.currentText() == f"auto (band: {layer.data.shape[0]} bands)"


def test_the_plot_follows_the_theme_appears_with_a_result_and_uses_cluster_names(
    viewer_and_widget,
):
    from matplotlib.colors import to_hex

    viewer, w = viewer_and_widget
    assert not w.plot.isVisible()  # nothing to show yet: no empty axes
    _add_cube(viewer)
    w.n_clusters.value = 3
    w.run(wait=True)
    assert w.plot.isVisibleTo(w.native)
    viewer.theme = "dark"
    dark = to_hex(w.plot.figure.get_facecolor())
    viewer.theme = "light"
    light = to_hex(w.plot.figure.get_facecolor())
    assert dark != light and light != "#000000"
    # a plot of two axes (the k sweep) restyles both: the lower one kept the old background
    w.sweep_plot.show_sweep([2, 3, 4], [10.0, 6.0, 5.0], [0.5, 0.4, 0.3])
    viewer.theme = "dark"
    assert len(w.sweep_plot.figure.axes) == 2
    assert {to_hex(ax.get_facecolor()) for ax in w.sweep_plot.figure.axes} == {dark}
    viewer.theme = "light"
    w.rename(1, "soil")
    legend = [t.get_text() for t in w.plot.figure.axes[0].get_legend().get_texts()]
    assert legend[0] == "soil" and "cluster 1" not in legend


def test_layers_classify_menu_opens_the_widget(make_napari_viewer):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer()

    def actions(menu, path=""):
        for action in menu.actions():
            text = action.text().replace("&", "")
            if action.menu() is not None:
                yield from actions(action.menu(), f"{path}/{text}")
            else:
                yield f"{path}/{text}", action

    found = dict(actions(viewer.window._qt_window.menuBar()))
    item = next(a for p, a in found.items() if p.startswith("/Layers/Classify/KMeans clustering"))
    item.trigger()
    QApplication.processEvents()
    window = viewer.window  # napari < 0.6 has only the private mapping of docks by name
    docks = window.dock_widgets if hasattr(type(window), "dock_widgets") else window._dock_widgets
    assert any("KMeans clustering" in name for name in docks)


def test_model_buttons_ask_with_a_save_or_open_dialog_when_the_field_is_empty(
    clustered, tmp_path, monkeypatch, qtbot
):
    from qtpy.QtWidgets import QFileDialog

    _, w = clustered
    asked = []

    def save_dialog(*args, **kwargs):
        asked.append("save")
        return str(tmp_path / "picked.npz"), ""

    def open_dialog(*args, **kwargs):
        asked.append("open")
        return str(tmp_path / "picked.npz"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", open_dialog)
    w.model_file.value = ""
    w.save_model_button.changed.emit(True)
    assert asked == ["save"] and (tmp_path / "picked.npz").exists()
    w.model_file.value = ""
    w.apply_model_button.changed.emit(True)
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert asked == ["save", "open"]
    assert str(w.model_file.value).endswith("picked.npz")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    w.model_file.value = ""
    assert w.reuse.model_button("apply") is None  # cancelled: nothing happens


def test_wavelengths_entered_in_the_widget_make_true_colour_reachable(
    viewer_and_widget, data_dir, errors
):
    import scipy.io

    viewer, w = viewer_and_widget
    cube = np.moveaxis(scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"], -1, 0)
    layer = viewer.add_image(cube, name="SamSon", metadata={"channel_axis": 0})
    w.image.value = layer
    assert w.wavelengths.value == ""  # Samson stores no wavelength vector
    assert w.set_wavelengths("401 \u2013 889 nm") is not None
    np.testing.assert_allclose(layer.metadata["wavelengths"], np.linspace(401, 889, 156))
    np.testing.assert_array_equal(layer.data, cube)  # the data itself is untouched
    viewer.dims.set_current_step(0, 78)  # the band slider says the wavelength now
    assert viewer.dims.axis_labels[0] == f"{np.linspace(401, 889, 156)[78]:.4g} nm"
    w.true_colour()
    assert "SamSon true colour" in viewer.layers
    w.n_clusters.value = 3
    w.run(wait=True)
    assert w.plot.figure.axes[0].get_xlabel() == "wavelength (nm)"
    for bad in ("889-401", "blue", "400-nan"):
        assert w.set_wavelengths(bad) is None
        assert "Wavelengths" in errors[-1]
    np.testing.assert_allclose(layer.metadata["wavelengths"], np.linspace(401, 889, 156))


def test_a_files_own_wavelengths_are_shown_and_never_replaced_by_an_even_spread(
    viewer_and_widget,
):
    viewer, w = viewer_and_widget
    layer, _ = _add_cube(viewer)
    own = np.asarray(layer.metadata["wavelengths"]).copy()
    w.image.value = layer
    assert w.wavelengths.value == f"{own[0]:g}-{own[-1]:g}"
    w.set_wavelengths()  # leaving the entry as shown: nothing changes
    np.testing.assert_array_equal(layer.metadata["wavelengths"], own)
    assert w.set_wavelengths("400-900") is None  # nor does typing an even spread over them
    np.testing.assert_array_equal(layer.metadata["wavelengths"], own)


def test_a_notification_says_why_true_colours_gave_way_to_a_palette(
    viewer_and_widget, monkeypatch
):
    infos = _notifications(monkeypatch, "info")
    viewer, w = viewer_and_widget
    wl = np.linspace(400, 700, 31)
    levels = np.array([0.50, 0.51, 0.9])  # two greys a hair apart: true colours look alike
    rng = np.random.default_rng(0)
    cube = levels[rng.integers(0, 3, (40, 40))][None] * np.ones((31, 1, 1))
    layer = viewer.add_image(cube, name="greys", metadata={"channel_axis": 0, "wavelengths": wl})
    w.image.value = layer
    w.palette.value = "auto"
    w.n_clusters.value = 3
    w.run(wait=True)
    said = [m for m in infos if m.startswith("greys: cluster colours from a categorical")]
    assert len(said) == 1 and "(true colours of" in said[0], infos
    w.random_state.value = 1
    w.keep_ids.value = False  # numbered anew: the palette's own colours again
    w.run(wait=True)  # the same reason again: said once, not at every run
    assert [m for m in infos if m.startswith("greys: cluster colours")] == said


def test_a_rerun_keeping_ids_says_which_wear_earlier_and_which_palette_colours(
    viewer_and_widget, monkeypatch
):
    """k = 3 in true colours, then k = 4, whose two greys a hair apart send the run's own
    colours to the palette: ids 1-3 keep their true colours, the new one wears a palette
    colour, and that is what is said (not "cluster colours from a categorical palette")."""
    infos = _notifications(monkeypatch, "info")
    viewer, w = viewer_and_widget
    wl = np.linspace(400, 700, 31)
    levels = np.array([0.50, 0.51, 0.9, 0.2])
    rng = np.random.default_rng(0)
    cube = levels[rng.integers(0, 4, (40, 40))][None] * np.ones((31, 1, 1))
    layer = viewer.add_image(cube, name="greys", metadata={"channel_axis": 0, "wavelengths": wl})
    w.image.value, w.palette.value, w.n_clusters.value = layer, "auto", 3
    w.run(wait=True)
    before = viewer.layers["greys clusters"].metadata["colors"].copy()
    assert not [m for m in infos if m.startswith("greys:")], infos  # true colours, silently
    w.n_clusters.value = 4
    w.run(wait=True)
    said = [m for m in infos if m.startswith("greys:")]
    assert said == ["greys: earlier colours for kept id(s) 1-3; palette colours for new id(s) 4"]
    np.testing.assert_array_equal(viewer.layers["greys clusters"].metadata["colors"][:3], before)


def test_the_table_plot_and_actions_follow_the_selected_result_layer(viewer_and_widget):
    viewer, w = viewer_and_widget
    cube, _ = _add_cube(viewer)
    w.image.value = cube
    w.n_clusters.value = 4
    w.run(wait=True)
    ((photo, kw, _),) = make_sample_photo()
    photo_layer = viewer.add_image(photo, **kw)
    w.image.value = photo_layer
    w.n_clusters.value = 3
    w.run(wait=True)
    assert w.table.to_dict("list")["label"] == [1, 2, 3]  # the photo's, shown last
    viewer.layers.selection.active = viewer.layers["sample cube clusters"]
    table = w.table.to_dict("list")
    assert table["label"] == [1, 2, 3, 4]
    assert sum(table["pixels"]) == cube.data.shape[1] * cube.data.shape[2]
    photo_labels = viewer.layers[f"{photo_layer.name} clusters"].data.copy()
    w.merge([3, 4])  # acts on the selected result, not the last run
    assert set(np.unique(viewer.layers["sample cube clusters"].data)) == {1, 2, 3}
    np.testing.assert_array_equal(viewer.layers[f"{photo_layer.name} clusters"].data, photo_labels)
    viewer.layers.selection.active = viewer.layers[f"{photo_layer.name} recolored"]
    assert w.table.to_dict("list")["label"] == [1, 2, 3]


def test_a_one_band_image_plots_each_clusters_histogram(viewer_and_widget):
    viewer, w = viewer_and_widget
    rng = np.random.default_rng(0)
    grey = np.concatenate([rng.normal(10, 1, (20, 40)), rng.normal(50, 2, (20, 40))])
    layer = viewer.add_image(grey, name="grey")
    w.image.value = layer
    w.n_clusters.value = 2
    w.run(wait=True)
    ax = w.plot.figure.axes[0]
    assert ax.get_xlabel() == "value"
    patches = [p for p in ax.patches]
    assert len(patches) == 2  # one filled histogram per cluster
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["cluster 1", "cluster 2"]


def test_a_clicked_pixels_spectrum_is_plotted_against_its_clusters_mean(viewer_and_widget):
    viewer, w = viewer_and_widget
    cube, _ = _add_cube(viewer, scale=(1, 2.0, 2.0))
    w.image.value = cube
    w.n_clusters.value = 4
    w.run(wait=True)
    labels = viewer.layers["sample cube clusters"]
    y, x = 40, 70
    spectrum = w.show_pixel((2.0 * y, 2.0 * x))  # world coordinates: the layer's scale applies
    np.testing.assert_allclose(spectrum, cube.data[:, y, x])
    lines = w.plot.figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == [
        f"cluster {labels.data[y, x]}",
        f"pixel ({y}, {x})",
    ]
    np.testing.assert_allclose(lines[1].get_ydata(), cube.data[:, y, x])
    members = cube.data[:, labels.data == labels.data[y, x]]
    np.testing.assert_allclose(lines[0].get_ydata(), members.mean(axis=1), rtol=1e-5)
    assert w.show_pixel((-50.0, 3.0)) is None  # outside the image: nothing changes


def test_spectral_steps_in_the_widget_recover_the_materials_and_are_saved(
    viewer_and_widget, tmp_path
):
    from sklearn.metrics import adjusted_rand_score

    from napari_spectral_clusters.model import ClusterModel
    from napari_spectral_clusters.samples import raman_scene

    viewer, w = viewer_and_widget
    cube, truth = raman_scene(0)
    layer = viewer.add_image(np.moveaxis(cube, -1, 0), name="raman", metadata={"channel_axis": 0})
    w.image.value = layer
    w.n_clusters.value = 3
    w.preprocessing.value = "none"
    w.steps.value = "despike | savgol(9, 3, deriv=2) | snv"
    w.run(wait=True)
    labels = viewer.layers["raman clusters"].data
    assert adjusted_rand_score(truth.ravel(), labels.ravel()) >= 0.95
    assert w.plot.figure.axes[0].lines[0].get_xdata().shape == (cube.shape[-1],)  # input bands
    saved = ClusterModel.load(w.save_model(tmp_path / "m.npz"))
    assert saved.params["steps"] == "despike | savgol(9, 3, deriv=2) | snv"


@pytest.mark.parametrize(
    ("steps", "says"),
    [
        ("savgol(4, 2)", "savgol(4, 2): the window must be an odd number of bands"),
        ("savgol(201, 2)", "longer than 64"),
        ("range(600, 900) | snv", "selects bands by wavelength"),
        ("snv | pca", "pca is chosen under 'features'"),
    ],
)
def test_bad_spectral_steps_are_named_before_run(viewer_and_widget, errors, steps, says):
    viewer, w = viewer_and_widget
    (cube, kw, _), _ = make_sample_cube()
    kw["metadata"] = {k: v for k, v in kw["metadata"].items() if k != "wavelengths"}
    viewer.add_image(cube, **kw)
    w.steps.value = steps
    assert w.run(wait=True) is None
    assert errors and says in errors[-1] and errors[-1].startswith("Spectral steps")
    assert len(viewer.layers) == 1 and w.status.value == "spectral steps do not fit"


def test_the_status_stops_saying_the_steps_do_not_fit_once_they_do(viewer_and_widget, errors):
    viewer, w = viewer_and_widget
    layer, _ = _add_cube(viewer)
    w.image.value = layer
    w.n_clusters.value = 3
    w.run(wait=True)
    done = w.status.value
    assert done.startswith("3 clusters of")
    w.steps.value = "savgol(4, 2)"
    assert w.check_steps() is None and w.status.value == "spectral steps do not fit"
    w.steps.value = "savgol(5, 2)"  # mended: the status before comes back
    assert w.check_steps() is not None and w.status.value == done
    w.steps.value = "savgol(4, 2)"
    w.check_steps()
    w.steps.value = ""  # or cleared
    w.check_steps()
    assert w.status.value == done


def test_preview_steps_plots_a_sample_and_a_clicked_pixel_before_and_after(viewer_and_widget):
    viewer, w = viewer_and_widget
    layer, _ = _add_cube(viewer)
    wl = np.asarray(layer.metadata["wavelengths"])
    w.image.value = layer
    w.steps.value = f"range({float(wl[10])!r}, {float(wl[40])!r}) | vector"
    preview = w.preview_steps(position=(0, 5, 7))
    assert preview["x_after"].shape == (31,) and preview["mean_after"].shape == (31,)
    np.testing.assert_allclose(
        preview["mean"], np.asarray(layer.data).mean(axis=(1, 2)), rtol=0.05
    )
    spectrum = np.asarray(layer.data)[:, 5, 7]
    np.testing.assert_allclose(preview["pixel"], spectrum)
    expected = spectrum[10:41] / np.linalg.norm(spectrum[10:41])
    np.testing.assert_allclose(preview["pixel_after"], expected, rtol=1e-5)
    assert w.plots.currentWidget() is w.panel.steps and len(w.panel.steps.figure.axes) == 2
    top, bottom = w.panel.steps.figure.axes  # the kept bands line up under themselves
    assert top.get_xlim() == bottom.get_xlim() and top.get_xlim()[0] <= wl[0]


def test_after_a_run_on_a_laptop_screen_the_status_and_results_are_in_view(
    make_napari_viewer, qtbot
):
    """At 1366 x 768 the Results start below the fold: a run scrolls them into view, and the
    status line says what was done in words."""
    import re

    from qtpy.QtCore import QRect
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    cube, _ = _add_cube(viewer)
    w.image.value = cube
    w.n_clusters.value = 4
    w.steps.value = "savgol(9, 2) | snv"  # the steps editor open: a taller Clustering section
    w.steps_editor.select(0)  # ... with a step's form
    seen = []  # the progress bar as each of the engine's reports reaches the GUI
    w.runner.relay.reported.connect(
        lambda *_: seen.append((w.progress_bar.visible, w.progress_bar.native.format()))
    )
    assert not w.progress_bar.visible
    w.run(wait=True)
    assert seen and all(visible for visible, _ in seen)
    assert any(re.fullmatch(r"\w[\w ]*: \d+ of \d+", text) for _, text in seen)
    assert not w.progress_bar.visible  # gone once the run is over
    pixels = cube.data.shape[1] * cube.data.shape[2]
    assert re.fullmatch(
        rf"4 clusters of {pixels:,} pixels in \d+\.\d s, after 2 spectral steps \(savgol, snv\)",
        w.status.value,
    )
    scroll = w.native.findChild(QScrollArea)
    view = scroll.viewport()

    def in_view(widget) -> bool:
        top_left = widget.mapTo(view, widget.rect().topLeft())
        return view.rect().contains(QRect(top_left, widget.size()))

    def table_rows_show() -> bool:  # not only its header
        table = w.table.native
        top = table.mapTo(view, table.rect().topLeft()).y()
        return 0 <= top < view.height() - 100

    qtbot.waitUntil(
        lambda: in_view(w.status.native) and in_view(w.run_button.native) and table_rows_show()
    )


def _on_a_laptop_screen(make_napari_viewer):
    """The widget docked in a 1366 x 768 window on the sample cube with spectral steps (a
    taller Clustering section), and whether a widget shows whole in its scroll area."""
    from qtpy.QtCore import QRect
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    w.remember_settings = False
    cube, _ = _add_cube(viewer)
    w.image.value = cube
    w.steps.value = "savgol(9, 2) | snv"
    view = w.native.findChild(QScrollArea).viewport()

    def in_view(widget) -> bool:
        top_left = widget.mapTo(view, widget.rect().topLeft())
        return view.rect().contains(QRect(top_left, widget.size()))

    return w, in_view


def test_suggest_k_on_a_laptop_screen_shows_the_button_that_uses_it(make_napari_viewer, qtbot):
    """After Suggest k, *Use k = ...* and the status line naming the suggestion are in view
    (scrolled to Run's row, the button was above the fold at 1366 x 768)."""
    w, in_view = _on_a_laptop_screen(make_napari_viewer)
    w.steps_editor.select(0)  # the steps editor with a step's form: taller still
    w.n_clusters.value = 6
    w.run(wait=True)  # a filled table: room to scroll Run's row to the top
    w.suggest_k(ks=range(2, 5), wait=True)
    assert w.status.value.startswith("suggested k = ") and w.use_k_button.visible
    qtbot.waitUntil(lambda: in_view(w.use_k_button.native) and in_view(w.status.native))


def test_preview_steps_on_a_laptop_screen_brings_its_plot_into_view(make_napari_viewer, qtbot):
    """The plots sit below the Results: Preview steps scrolls to what it drew."""
    w, in_view = _on_a_laptop_screen(make_napari_viewer)
    qtbot.waitUntil(lambda: in_view(w.preview_button.native))
    assert not in_view(w.plots)  # below the fold
    preview = w.preview_steps()
    assert preview is not None and len(preview["mean_after"]) == len(preview["x_after"])
    assert w.plots.currentWidget() is w.panel.steps
    qtbot.waitUntil(lambda: in_view(w.plots))


def test_run_with_steps_that_do_not_fit_shows_them_on_a_laptop_screen(
    make_napari_viewer, qtbot, monkeypatch
):
    """Scrolled down to the results, Run with a mistyped step said so in a status line and
    a steps field both out of view."""
    from qtpy.QtWidgets import QScrollArea

    errors = _notifications(monkeypatch, "error")
    w, in_view = _on_a_laptop_screen(make_napari_viewer)
    w.n_clusters.value = 6
    w.run(wait=True)
    # (the status of a run after steps says so: one without them read the same)
    assert w.status.value.endswith(" s, after 2 spectral steps (savgol, snv)"), w.status.value
    qtbot.waitUntil(lambda: in_view(w.table.native))
    scroll = w.native.findChild(QScrollArea)
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    qtbot.waitUntil(lambda: not in_view(w.steps.native))  # (napari 0.5: the status shows)
    w.steps.value = "frobnicate(3)"
    assert w.run() is None
    assert errors[-1].startswith("Spectral steps: ") and "frobnicate" in errors[-1]
    assert w.status.value == "spectral steps do not fit"
    qtbot.waitUntil(lambda: in_view(w.steps.native) and in_view(w.status.native))


def test_an_empty_steps_editor_takes_one_row(viewer_and_widget):
    _, w = viewer_and_widget
    editor = w.steps_editor
    w.steps.value = ""  # (hidden: not shown even once the dock is; visible needs a window)
    assert editor.step_list.isHidden() and editor._edit_row.native.isHidden()
    assert w.preview_button.native.isHidden()
    w.steps.value = "snv"
    assert not editor.step_list.isHidden() and not editor._edit_row.native.isHidden()
    assert not w.preview_button.native.isHidden() and editor.step_list.count() == 1


def test_shift_click_on_the_canvas_plots_that_pixels_spectrum(viewer_and_widget):
    """The route a click takes: napari calls the viewer's mouse callbacks with the event."""
    from types import SimpleNamespace

    from napari.utils.interactions import mouse_press_callbacks

    viewer, w = viewer_and_widget
    cube, _ = _add_cube(viewer)
    w.image.value = cube
    w.n_clusters.value = 4
    w.run(wait=True)
    y, x = 40, 70

    def press(*modifiers):
        event = SimpleNamespace(
            type="mouse_press",
            modifiers=modifiers,
            position=(0.0, float(y), float(x)),
            view_direction=None,
            dims_displayed=[1, 2],
            handled=False,
        )
        mouse_press_callbacks(viewer, event)

    press()  # a plain click is napari's, not a spectrum
    assert all(line.get_label() != f"pixel ({y}, {x})" for line in _spectra_lines(w))
    press("Shift")
    assert [line.get_label() for line in _spectra_lines(w)][-1] == f"pixel ({y}, {x})"
    np.testing.assert_allclose(_spectra_lines(w)[-1].get_ydata(), cube.data[:, y, x])


def _spectra_lines(w):
    axes = w.plot.figure.axes
    return axes[0].get_lines() if axes else []


def test_the_classify_menu_opens_the_widget_on_the_selected_layer(make_napari_viewer):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer()
    (cube, kw, _), _ = make_sample_cube()
    # "a" would be the widget's first choice and "c", the last added, napari's selection
    chosen = [viewer.add_image(cube, **{**kw, "name": name}) for name in "abc"][1]
    viewer.layers.selection.active = chosen
    menu = next(
        a.menu()
        for a in viewer.window._qt_window.menuBar().actions()
        if a.text().replace("&", "") == "Layers"
    )
    classify = next(a.menu() for a in menu.actions() if a.text().replace("&", "") == "Classify")
    next(a for a in classify.actions() if "KMeans clustering" in a.text()).trigger()
    QApplication.processEvents()
    assert _docked_cluster_widget(viewer).image.value.name == "b"


def _docked_cluster_widget(viewer) -> ClusterWidget:
    from qtpy.QtWidgets import QWidget

    found = [
        getattr(qwidget, "_magic_widget", None)
        for qwidget in viewer.window._qt_window.findChildren(QWidget)
    ]
    (widget,) = [f for f in found if isinstance(f, ClusterWidget)]
    return widget


def test_wavelengths_entered_in_the_widget_are_in_the_saved_file(viewer_and_widget, tmp_path):
    from napari_spectral_clusters.io import read_mat

    viewer, w = viewer_and_widget
    (cube, _, _), _ = make_sample_cube()
    layer = viewer.add_image(cube, name="scan", metadata={"channel_axis": 0})
    w.image.value = layer
    assert w.set_wavelengths("450-850") is not None
    w.n_clusters.value = 4
    w.run(wait=True)
    path = tmp_path / "scan.mat"
    viewer.layers.selection = {layer, viewer.layers["scan clusters"]}
    viewer.layers.save(str(path), selected=True, plugin=PLUGIN)
    back = {img.name: img for img in read_mat(path)}
    expected = np.linspace(450, 850, cube.shape[0])
    np.testing.assert_allclose(back["scan"].metadata["wavelengths"], expected)
    assert back["scan"].channel_axis == 0
    np.testing.assert_allclose(back["scan clusters"].metadata["wavelengths"], expected)


def _material_ids(labels, truth) -> dict:
    return {int(m): int(np.bincount(labels[truth == m]).argmax()) for m in np.unique(truth)}


def test_layers_clustered_together_share_ids_colours_and_a_table(viewer_and_widget):
    from napari_spectral_clusters.samples import synthetic_cube

    viewer, w = viewer_and_widget
    cube, truth = _add_cube(viewer)
    other_cube, other_truth, wl = synthetic_cube((96, 80), seed=5)  # the same materials
    other = viewer.add_image(
        other_cube, name="second scan", metadata={"channel_axis": 0, "wavelengths": wl}
    )
    viewer.add_image(other_cube[:10], name="ten bands")  # other bands: not offered
    w.image.value = cube
    w.together.reset_choices()
    assert [layer.name for layer in w.together.choices] == ["second scan"]
    w.together.value = [other]
    w.n_clusters.value = 4
    w.run(wait=True)
    first = viewer.layers["sample cube clusters"]
    second = viewer.layers["second scan clusters"]
    assert "second scan recolored" in viewer.layers
    assert _material_ids(first.data, truth) == _material_ids(second.data, other_truth)
    np.testing.assert_array_equal(first.metadata["colors"], second.metadata["colors"])
    table = w.table.to_dict("list")  # the chosen layer's result, with every layer's pixels
    per_layer = {"sample cube": first.data, "second scan": second.data}
    for name, labels in per_layer.items():
        counts = np.bincount(labels.ravel(), minlength=5)
        assert table[f"in {name}"] == [int(counts[v]) for v in table["label"]]
    assert w.status.value.startswith("4 clusters of ") and "in 2 layers" in w.status.value
    # a merge counts this layer's pixels again: its rows hold the centres all layers share
    w.merge([1, 2])
    recount = label_statistics(cube.data, first.data, channel_axis=0)
    np.testing.assert_allclose(first.metadata["centers"][0], recount["mean"][0], rtol=1e-6)


def test_an_edit_of_a_joint_result_is_made_in_every_layer_clustered_together(
    viewer_and_widget, monkeypatch
):
    """Merging, renaming or recolouring a cluster in one layer of a joint clustering left the
    others as they were: an id no longer meant one material in all of them."""
    from napari_spectral_clusters.samples import synthetic_cube

    infos = _notifications(monkeypatch, "info")
    viewer, w = viewer_and_widget
    cube, _ = _add_cube(viewer)
    other_cube, _, wl = synthetic_cube((96, 80), seed=5)
    other = viewer.add_image(
        other_cube, name="second scan", metadata={"channel_axis": 0, "wavelengths": wl}
    )

    def run_together(k):
        w.image.value = cube
        w.together.reset_choices()
        w.together.value = [other]
        w.n_clusters.value = k
        w.run(wait=True)

    run_together(4)
    first = viewer.layers["sample cube clusters"]
    second = viewer.layers["second scan clusters"]
    before = np.array(second.data)
    status = w.status.value

    w.merge([1, 2])
    np.testing.assert_array_equal(second.data, np.where(before == 2, 1, before))
    assert infos[-1] == "Also merged in second scan clusters, clustered together with it."
    # the table is the edited layer's still, every layer's column counted as it is now
    assert w.results.shown.labels == "sample cube clusters"
    table = w.table.to_dict("list")
    assert table["label"] == [1, 3, 4]
    for name, labels in {"sample cube": first.data, "second scan": second.data}.items():
        counts = np.bincount(np.asarray(labels).ravel(), minlength=5)
        assert table[f"in {name}"] == [int(counts[v]) for v in table["label"]], name
    # its own pixels (128 x 128), not the last partner's (96 x 80)
    assert w.status.value != status and "3 clusters of 16,384 pixels" in w.status.value

    w.rename(3, "grass")
    w.recolour(4, (250, 10, 10))
    for layer in (first, second):
        names = dict(zip(layer.features["index"], layer.features["name"], strict=True))
        assert names[3] == "grass", layer.name
        np.testing.assert_array_equal(layer.metadata["colors"][3], (250, 10, 10))
        recolored = viewer.layers[layer.name.replace("clusters", "recolored")].data
        assert (recolored[np.asarray(layer.data) == 4] == (250, 10, 10)).all(), layer.name
    assert w.table.to_dict("list")["name"][1] == "grass"
    assert "of 16,384 pixels" in w.status.value  # still the edited layer's own

    # a second joint run of the same layers: its edits leave the first run's layers alone
    kept = {layer.name: np.array(layer.data) for layer in (first, second)}
    run_together(5)
    new_first = viewer.layers["sample cube clusters (2)"]
    new_second = viewer.layers["second scan clusters (2)"]
    again = np.array(new_second.data)
    w.merge([3, 4])
    assert infos[-1] == "Also merged in second scan clusters (2), clustered together with it."
    np.testing.assert_array_equal(new_second.data, np.where(again == 4, 3, again))
    assert not (np.asarray(new_first.data) == 4).any()
    for layer in (first, second):
        np.testing.assert_array_equal(layer.data, kept[layer.name])


def test_a_run_keeps_the_input_the_user_chose(viewer_and_widget):
    """A run's result layers set the widget's image back to the active layer (the one added
    last), so after a joint run *together with* emptied and Run clustered one layer alone."""
    from napari_spectral_clusters.samples import synthetic_cube

    viewer, w = viewer_and_widget
    cube, _ = _add_cube(viewer)
    other_cube, _, wl = synthetic_cube((96, 80), seed=5)
    other = viewer.add_image(
        other_cube, name="second scan", metadata={"channel_axis": 0, "wavelengths": wl}
    )
    assert viewer.layers.selection.active is other
    w.image.value = cube  # chosen in the widget, not in the layer list
    w.n_clusters.value = 4
    w.run(wait=True)
    assert "sample cube clusters" in viewer.layers
    assert w.image.value is cube

    w.together.reset_choices()
    w.together.value = [other]
    w.run(wait=True)
    assert w.image.value is cube
    assert w.together.value == [other]
    w.status.value = ""
    w.n_clusters.value = 3
    w.run(wait=True)  # Run again: both layers again, together
    assert w.status.value.startswith("3 clusters of ") and "in 2 layers" in w.status.value
    assert len(np.unique(viewer.layers["second scan clusters"].data)) == 3

    viewer.layers.selection.active = other  # made active in the layer list: followed
    assert w.image.value is other
    viewer.layers.selection.active = cube
    assert w.image.value is cube

    # a layer hidden as it became active (a file's abundance maps) is not taken later,
    # once shown, when a run's layers are added or a layer is renamed
    maps = viewer.add_image(
        np.random.default_rng(0).random((8, 128, 128), np.float32),
        name="abundances",
        visible=False,
        metadata={"channel_axis": 0},
    )
    assert viewer.layers.selection.active is maps and w.image.value is cube
    maps.visible = True
    w.together.value = []
    w.run(wait=True)
    assert w.image.value is cube
    other.name = "second scan, renamed"
    assert w.image.value is cube


def test_an_rgba_picture_clustered_together_with_an_rgb_one(viewer_and_widget, data_dir):
    """The widget offered an RGBA picture under *together with* an RGB one, then refused it
    ("different numbers of channels (bands): 3, 4"): its opaque pixels now share the RGB
    picture's clusters, its transparent ones stay unlabelled and transparent."""
    from napari_spectral_clusters.io.png import read_png

    viewer, w = viewer_and_widget
    rgb = read_png(data_dir / "png" / "pngsuite" / "basn2c08.png").data
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :10] = 0
    picture = viewer.add_image(rgb, name="picture", rgb=True)
    with_alpha = viewer.add_image(np.dstack([rgb, alpha]), name="cut out", rgb=True)
    w.image.value = picture
    w.together.reset_choices()
    assert [layer.name for layer in w.together.choices] == ["cut out"]
    w.together.value = [with_alpha]
    w.n_clusters.value = 4
    w.run(wait=True)
    first = viewer.layers["picture clusters"].data
    second = viewer.layers["cut out clusters"].data
    assert (second[:, :10] == 0).all()
    np.testing.assert_array_equal(first[:, 10:], second[:, 10:])
    recolored = viewer.layers["cut out recolored"].data
    np.testing.assert_array_equal(recolored[..., 3], alpha)
    assert "in 2 layers" in w.status.value


def test_a_rerun_keeps_the_ids_names_and_colours_of_the_same_materials(viewer_and_widget):
    viewer, w = viewer_and_widget
    cube, _ = _add_cube(viewer)
    w.image.value = cube
    w.n_clusters.value = 3
    w.run(wait=True)
    labels = viewer.layers["sample cube clusters"]
    before, colors = labels.data.copy(), labels.metadata["colors"].copy()
    w.rename(2, "coating")
    w.n_clusters.value = 4
    w.random_state.value = 11
    w.run(wait=True)
    after = viewer.layers["sample cube clusters (2)"]  # the renamed result is kept
    for old in (1, 2, 3):  # most of an old cluster's pixels keep its id and colour
        assert np.bincount(after.data[before == old]).argmax() == old
        np.testing.assert_array_equal(after.metadata["colors"][old - 1], colors[old - 1])
    assert 4 in np.unique(after.data)  # the new cluster takes a new id
    worn = after.metadata["colors"]  # and a colour of its own
    assert min(delta_e(worn[i], worn[j]) for i in range(4) for j in range(i)) >= MIN_DELTA_E
    table = w.table.to_dict("list")
    assert table["name"][table["label"].index(2)] == "coating"
    assert w.status.value.startswith("4 clusters of 16,384 pixels")
    w.n_clusters.value = 1  # ids 1-4 are kept, one of them holds every pixel
    w.run(wait=True)
    assert w.status.value.startswith("1 cluster of 16,384 pixels"), w.status.value
    w.n_clusters.value = 4
    w.run(wait=True)
    w.keep_ids.value = False  # numbered by size again
    w.run(wait=True)
    latest = viewer.layers["sample cube clusters (2)"].data
    counts = np.bincount(latest.ravel(), minlength=5)[1:]
    assert list(counts) == sorted(counts, reverse=True)


def test_channel_layers_stack_into_one_cube_with_their_wavelengths(viewer_and_widget, errors):
    from napari_spectral_clusters.samples import synthetic_cube

    cube, truth, wl = synthetic_cube((64, 64), n_bands=12)
    viewer, w = viewer_and_widget
    # a lambda stack a reader split into channels, listed out of order, named by nm
    order = [3, 0, 2, 1, *range(4, cube.shape[0])]
    planes = [viewer.add_image(cube[i], name=f"Ch{i} {wl[i]:.1f}nm") for i in order]
    stacked = w.stack_selected(planes)
    assert stacked is not None and w.image.value.name == stacked.name
    assert stacked.data.shape == cube.shape and not isinstance(stacked.data, np.ndarray)
    np.testing.assert_allclose(stacked.metadata["wavelengths"], np.round(wl, 1))
    np.testing.assert_array_equal(np.asarray(stacked.data), cube)  # bands back in nm order
    assert not any(p.visible for p in planes)
    np.testing.assert_array_equal(planes[0].data, cube[3])  # the channels are untouched
    w.n_clusters.value = 4
    w.run(wait=True)
    labels = viewer.layers[f"{stacked.name} clusters"].data
    assert len(set(_material_ids(np.asarray(labels), truth).values())) == 4
    assert w.stack_selected([planes[0]]) is None and "two or more" in errors[-1]
    viewer.add_image(cube[0, :10], name="small")
    assert w.stack_selected([planes[1], viewer.layers["small"]]) is None
    assert "different shapes" in errors[-1]


def test_a_long_layer_name_does_not_widen_the_dock(make_napari_viewer):
    """Docks never shrink below their rows (VerticalScroll): a layer named after its file
    must not set that width through the image menu or the Results caption."""
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    scroll = w.native.findChild(QScrollArea)
    short = scroll.minimumSizeHint().width()
    name = "20230911_sample_A_VNIR_1000-2500nm_radiance_calibrated_reflectance_v3"
    (data, kw, _), _ = make_sample_cube()
    cube = viewer.add_image(data, **{**kw, "name": name})
    w.image.value, w.n_clusters.value = cube, 3
    w.run(wait=True)
    assert w.results.caption.value == f"Layer: {name} clusters"
    assert scroll.minimumSizeHint().width() <= short + 20, (short, scroll.minimumSizeHint())


def test_while_a_job_runs_on_a_laptop_screen_cancel_and_its_progress_are_in_view(
    make_napari_viewer, qtbot
):
    from qtpy.QtCore import QRect
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    cube, _ = _add_cube(viewer)
    w.image.value = cube
    scroll = w.native.findChild(QScrollArea)
    view = scroll.viewport()

    def in_view(widget) -> bool:
        top_left = widget.mapTo(view, widget.rect().topLeft())
        return view.rect().contains(QRect(top_left, widget.size()))

    qtbot.waitUntil(lambda: in_view(w.image.native))  # the dock opens at its top ...
    assert not in_view(w.status.native)  # ... with the run's status below the fold
    shown = (w.cancel_button.native, w.progress_bar.native, w.status.native)
    w.run(wait=True)  # a result: the table and Reuse below the run make the dock longer
    qtbot.wait(300)  # the result is brought into view on the next turns of the event loop
    # scrolled just past the run row (reading the table), and to the bottom (Apply model)
    for scrolled_to in ("past the run row", "bottom"):
        bar = scroll.verticalScrollBar()
        status = w.status.native
        below = status.mapTo(scroll.widget(), status.rect().bottomLeft()).y() + 1
        bar.setValue(bar.maximum() if scrolled_to == "bottom" else min(below, bar.maximum()))
        qtbot.wait(50)
        assert not all(in_view(widget) for widget in shown), scrolled_to
        reports = _hold_at_first_report(w, "fit")
        w.run()
        qtbot.waitUntil(lambda held=reports: bool(held), timeout=30_000)
        qtbot.waitUntil(lambda: all(in_view(widget) for widget in shown))
        w.cancel()  # (the earlier run's recorder holds nothing any more: once only)
        qtbot.waitUntil(lambda: not w.running, timeout=30_000)


def test_the_status_line_follows_the_result_selected(viewer_and_widget):
    """Selecting another result refilled the table but left the last run's status; a result
    painted since its count says so."""
    viewer, w = viewer_and_widget
    (cube, kw, _), _ = make_sample_cube()
    first = viewer.add_image(cube, **{**kw, "name": "scan A"})
    w.image.value = first
    w.n_clusters.value = 4
    w.run(wait=True)
    second = viewer.add_image(cube[:, :20], **{**kw, "name": "scan B"})
    w.image.value = second
    w.n_clusters.value = 2
    w.run(wait=True)
    a, b = viewer.layers["scan A clusters"], viewer.layers["scan B clusters"]
    n, m = a.data.size, b.data.size
    assert w.status.value.startswith(f"2 clusters of {m:,} pixels in ")  # ... seconds
    viewer.layers.selection.active = a
    assert w.status.value == f"4 clusters of {n:,} pixels in scan A clusters"
    corner = a.data[:3, :3]
    corner[...] = np.where(corner == 4, 3, 4)  # napari's brush: in place, no recount
    viewer.layers.selection.active = b
    assert w.status.value == f"2 clusters of {m:,} pixels in scan B clusters"
    viewer.layers.selection.active = a
    assert w.status.value.endswith("(painted since it was counted: press Refresh from labels)")
    w.refresh()
    viewer.layers.selection.active = b
    viewer.layers.selection.active = a
    assert w.status.value == f"4 clusters of {n:,} pixels in scan A clusters"


def test_a_view_chosen_as_the_image_stays_chosen(viewer_and_widget):
    """The user picks the true-colour view to cluster: layers added (a points layer, the
    run's own results) leave the choice alone, so a second run clusters it again."""
    viewer, w = viewer_and_widget
    (cube, kw, _), _ = make_sample_cube()
    viewer.add_image(cube, **kw)
    w.true_colour()
    view = viewer.layers["sample cube true colour"]
    w.image.value = view
    viewer.add_points()
    assert w.image.value is view
    w.n_clusters.value = 3
    w.run(wait=True)
    assert "sample cube true colour clusters" in viewer.layers
    assert w.image.value is view


def test_a_result_layer_moved_up_lands_just_above_its_anchor(make_napari_viewer):
    """put_layer moves an existing layer to just above the given one, from below it too
    (napari's move counts places before the move: it landed one too low, under the mask a
    re-run was clustered inside)."""
    from napari_spectral_clusters._napari.result_layers import put_layer

    viewer = make_napari_viewer()
    for name in ("result", "source", "mask", "top"):
        viewer.add_image(np.zeros((4, 4)), name=name)
    put_layer(viewer, "result", "image", np.ones((4, 4)), {}, above=viewer.layers["mask"])
    assert [layer.name for layer in viewer.layers] == ["source", "mask", "result", "top"]
    np.testing.assert_array_equal(viewer.layers["result"].data, 1)
    put_layer(viewer, "result", "image", np.ones((4, 4)), {}, above=viewer.layers["source"])
    assert [layer.name for layer in viewer.layers] == ["source", "result", "mask", "top"]


def test_kept_ids_that_are_not_1_to_k_are_said_once(viewer_and_widget, infos):
    """k = 8 then k = 3 with *keep cluster ids*: the three clusters keep the ids of the
    materials they match, not 1..3, which a script reading the labels may assume; the user
    is told once, with how to number them 1 to k."""
    viewer, w = viewer_and_widget
    cube, _ = _add_cube(viewer)
    w.image.value = cube
    w.keep_ids.value = True
    w.n_clusters.value = 8
    w.run(wait=True)
    assert not any("are kept from the earlier run" in said for said in infos)
    w.n_clusters.value = 3
    w.run(wait=True)
    ids = np.unique(viewer.layers["sample cube clusters"].data)
    ids = ids[ids > 0]
    assert len(ids) == 3
    assert ids.tolist() != [1, 2, 3]  # (the sample cube at seed 0: 1, 2 and 7)
    told = [said for said in infos if "are kept from the earlier run" in said]
    assert len(told) == 1 and ", ".join(map(str, ids)) in told[0]
    assert "untick 'keep cluster ids'" in told[0]
    w.run(wait=True)
    assert len([s for s in infos if "are kept from the earlier run" in s]) == 1
    w.keep_ids.value = False
    w.run(wait=True)
    ids = np.unique(viewer.layers["sample cube clusters"].data)
    assert ids[ids > 0].tolist() == [1, 2, 3]


def test_a_new_id_painted_shows_its_colour_at_once_and_the_status_says_refresh(
    viewer_and_widget,
):
    """Painting with an id no cluster has drew nothing (its colour was transparent) and the
    status still told the run's counts, until *Refresh from labels*."""
    viewer, w = viewer_and_widget
    _add_cube(viewer)
    w.n_clusters.value = 4
    w.run(wait=True)
    labels = viewer.layers["sample cube clusters"]
    viewer.layers.selection.active = labels
    assert "painted since" not in w.status.value
    labels.selected_label = 5  # napari's label box, or its "new" button (the next free id)
    labels.brush_size = 3
    labels.paint((6, 6), 5)
    colors, alpha = _colormap_rgb(labels)
    assert (labels.data == 5).sum() > 0 and (alpha[labels.data == 5] == 1).all()
    new_colour = colors[labels.data == 5][0]
    old = {tuple(c) for c in colors[(labels.data > 0) & (labels.data < 5)]}
    assert tuple(new_colour) not in old  # its own colour, not another cluster's
    assert "(painted since it was counted: press Refresh from labels)" in w.status.value
    # a table row isolated: the other clusters drawn clear, the picked id too; all back after
    w.results.isolate({1})
    hidden = _colormap_rgb(labels)[1]
    assert (hidden[labels.data == 2] == 0).all() and (hidden[labels.data == 5] == 0).all()
    w.results.isolate(set())
    colors, alpha = _colormap_rgb(labels)
    assert (alpha[labels.data > 0] == 1).all()
    np.testing.assert_array_equal(colors[labels.data == 5][0], new_colour)
    # Refresh gives it the colour it was painted with, and the table counts it
    w.refresh()
    colors_after, _ = _colormap_rgb(labels)
    np.testing.assert_array_equal(colors_after[labels.data == 5][0], new_colour)
    assert 5 in w.table.to_dict("list")["label"]
    assert "painted since" not in w.status.value
