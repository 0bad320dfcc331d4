"""The *Feature space* dock widget: pixels in feature space, linked both ways to the viewer,
and selections as actions (new cluster, mask of the next run, split)."""

import dask.array as da
import numpy as np
import pytest
from matplotlib.path import Path
from napari.layers import Labels

from napari_spectral_clusters._napari import feature_space_widget as fsw
from napari_spectral_clusters._napari.feature_space_widget import FeatureSpaceWidget
from napari_spectral_clusters._napari.sample_data import make_sample_cube
from napari_spectral_clusters._napari.widget import ClusterWidget

from .notifications import capture_notifications

PLUGIN = "napari-spectral-clusters"


def _blocks(seed=0):
    """A 60 x 80 RGB picture of four flat colours in quarters, with a little noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((60, 80, 3))
    img[:30, :40] = (200, 30, 30)
    img[:30, 40:] = (30, 200, 30)
    img[30:, :40] = (30, 30, 200)
    img[30:, 40:] = (220, 220, 40)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def docked(make_napari_viewer):
    """A viewer with the picture clustered into 4 by the clustering widget, and the feature
    space widget beside it."""
    viewer = make_napari_viewer()
    viewer.add_image(_blocks(), name="blocks", rgb=True)
    _, cw = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    _, fw = viewer.window.add_plugin_dock_widget(PLUGIN, "Feature space")
    assert isinstance(cw, ClusterWidget) and isinstance(fw, FeatureSpaceWidget)
    cw.n_clusters.value = 4
    cw.run(wait=True)
    fw.draw()
    return viewer, cw, fw


def _inside(values: np.ndarray, vertices) -> np.ndarray:
    """Direct computation: which pixels' (first two) values fall inside the polygon."""
    flat = values.reshape(-1, values.shape[-1]).astype(float)[:, :2]
    return Path(np.asarray(vertices, float)).contains_points(flat).reshape(values.shape[:-1])


def _recolored_rgb(viewer, labels_layer):
    """What the labels layer paints each pixel with, as uint8 RGB."""
    rgba = labels_layer.colormap.map(labels_layer.data)
    return np.round(rgba[..., :3] * 255).astype(np.uint8)


def test_plot_follows_the_clustering(docked):
    viewer, _, fw = docked
    labels = viewer.layers["blocks clusters"]
    assert fw.image.value is viewer.layers["blocks"]
    assert fw.clusters.value is labels  # the newest clustering of the image colours the points
    assert fw.axes.names == ("R", "G")
    assert fw.points.coords.shape == (60 * 80, 2)  # few pixels: every one
    # each point wears its pixel's cluster
    where = np.unravel_index(fw.points.index, labels.data.shape)
    assert np.array_equal(fw._point_labels, labels.data[where])
    assert fw.plot.mode == "2d"
    assert set(fw.split_label.choices) == {1, 2, 3, 4}


def test_a_polygon_selects_every_pixel_in_it_not_only_the_sample(docked, monkeypatch):
    viewer, _, fw = docked
    monkeypatch.setattr(fsw, "MAX_POINTS", 500)  # the plot shows a sample of 500 pixels
    fw.draw()
    assert len(fw.points.index) == 500
    square = [(150, 0), (255, 0), (255, 90), (150, 90)]  # high red, low green: the red quarter
    n = fw.select_polygon(square)
    expected = _inside(viewer.layers["blocks"].data, square)
    assert n == expected.sum() == 30 * 40
    assert np.array_equal(fw.selection, expected)
    layer = viewer.layers["blocks selection"]
    assert isinstance(layer, Labels) and np.array_equal(layer.data > 0, expected)
    assert viewer.layers.selection.active is viewer.layers["blocks"]  # the image stays chosen
    assert "1,200 pixels selected" in fw.status.value
    # the plot rings the plotted points whose pixels were selected
    assert len(fw._chosen_coords()) == expected.reshape(-1)[fw.points.index].sum()


def test_lasso_and_rectangle_on_the_plot_select(docked):
    viewer, _, fw = docked
    square = np.array([(0, 150), (90, 150), (90, 255), (0, 255)])  # the green quarter
    fw.plot.selected.emit(square)  # what the lasso and polygon tools emit
    assert fw.selection.sum() == _inside(viewer.layers["blocks"].data, square).sum() == 1200

    class Click:
        def __init__(self, x, y):
            self.xdata, self.ydata = x, y

    fw.tool.value = "rectangle"
    assert fw.plot.tool == "rectangle"
    fw.plot._emit_rectangle(Click(255, 90), Click(150, 0))  # dragged either way
    assert np.array_equal(fw.selection[:30, :40], np.ones((30, 40), bool))
    assert fw.selection.sum() == 1200
    fw.clear_selection()
    assert fw.selection is None and not viewer.layers["blocks selection"].data.any()


def test_selection_to_cluster_keeps_the_other_ids_and_everything_follows(docked):
    viewer, cw, fw = docked
    labels = viewer.layers["blocks clusters"]
    before = labels.data.copy()
    colors_before = _recolored_rgb(viewer, labels)
    fw.select_rectangle(150, 255, 0, 90)
    corner = np.zeros(before.shape, bool)
    corner[:15, :20] = True
    fw.selection = fw.selection & corner  # part of the red quarter
    new = fw.selection_to_cluster()
    assert new == 5
    assert np.array_equal(labels.data[corner], np.full(corner.sum(), 5))
    assert np.array_equal(labels.data[~corner], before[~corner])  # other pixels untouched
    # the new cluster has a colour of its own, the others keep theirs, in both layers
    painted = _recolored_rgb(viewer, labels)
    assert np.array_equal(painted[~corner], colors_before[~corner])
    new_color = painted[0, 0]
    assert not any(np.array_equal(new_color, c) for c in colors_before[~corner][::97])
    recolored = viewer.layers["blocks recolored"].data
    assert np.array_equal(recolored[..., :3], painted)
    # the cluster table and the plot follow
    table = cw.results.table.to_dict("list")
    assert table["label"] == [1, 2, 3, 4, 5]
    assert table["pixels"][4] == corner.sum() == 300
    assert 5 in fw._cluster_ids()
    assert labels.metadata["hand_edited"]  # a later run will not overwrite it
    # the selection became the cluster: it is cleared, its layer no longer covers the new
    # cluster's colour on the canvas
    assert fw.selection is None and "selected" not in fw.status.value
    assert not np.asarray(viewer.layers["blocks selection"].data).any()


def test_split_gives_new_ids_and_the_rest_keep_theirs(docked):
    viewer, cw, fw = docked
    labels = viewer.layers["blocks clusters"]
    # make one cluster of two materials first: merge red and green
    red, green = int(labels.data[0, 0]), int(labels.data[0, 79])
    cw.merge([red, green])
    merged = min(red, green)
    before = labels.data.copy()
    ids = fw.split(merged, 2)
    assert ids[0] == merged and len(ids) == 2 and ids[1] == int(before.max()) + 1
    inside = before == merged
    assert np.array_equal(labels.data[~inside], before[~inside])
    # the two quarters are split apart again, each in one sub-cluster
    top_left, top_right = labels.data[:30, :40], labels.data[:30, 40:]
    assert len(np.unique(top_left)) == len(np.unique(top_right)) == 1
    assert {int(top_left[0, 0]), int(top_right[0, 0])} == set(ids)
    painted = _recolored_rgb(viewer, labels)
    assert not np.array_equal(painted[0, 0], painted[0, 79])
    assert np.array_equal(viewer.layers["blocks recolored"].data[..., :3], painted)
    assert sorted(cw.results.table.to_dict("list")["label"]) == sorted({*before.ravel(), ids[1]})


def test_bad_actions_say_why(docked, monkeypatch):
    _, _, fw = docked
    errors = capture_notifications(monkeypatch, "error")
    assert fw.selection_to_cluster() is None
    assert fw.use_as_mask() is None
    assert fw.split(99, 2) is None
    assert fw.add_axis("ratio(9, 1)") is None
    assert fw.add_axis("colour") is None
    assert len(errors) == 5
    assert "select pixels first" in errors[0] and "no pixel has label 99" in errors[2]
    assert "bands 0 to 2" in errors[3] and "unknown feature axis" in errors[4]


def test_a_table_selection_lights_up_its_cloud(docked):
    viewer, cw, fw = docked
    labels = viewer.layers["blocks clusters"]
    assert fw.highlighted() is None
    label = int(labels.data[45, 60])
    cw.results.isolate({label})  # what selecting the table row does
    assert fw.highlighted() == {label}
    cw.results.isolate(set())
    assert fw.highlighted() is None
    labels.show_selected_label = True  # napari's own "show selected"
    labels.selected_label = label
    assert fw.highlighted() == {label}


def test_painting_the_selection_layer_lights_up_its_points(docked, qtbot):
    viewer, _, fw = docked
    fw.select_rectangle(150, 255, 0, 90)
    layer = viewer.layers["blocks selection"]
    layer.data = np.zeros_like(layer.data)
    assert fw.selection is not None and not fw.selection.any()
    layer.brush_size = 5
    layer.paint((45, 60), 1)  # a round brush stroke in the yellow quarter
    # napari tells of a paint before it writes the pixels: read on the next turn
    qtbot.waitUntil(lambda: fw.selection.any(), timeout=3000)
    assert fw.selection.any() and np.array_equal(fw.selection, layer.data > 0)
    chosen = fw._chosen_coords()
    assert len(chosen) == fw.selection.sum()  # every pixel is a point here
    assert (chosen[:, 0] > 180).all() and (chosen[:, 1] > 180).all()  # yellow: high R and G


def test_use_as_mask_makes_the_next_run_cluster_only_these(docked):
    viewer, cw, fw = docked
    fw.select_rectangle(150, 255, 0, 90)
    mask_layer = fw.use_as_mask()
    assert mask_layer.name == "blocks mask"  # (what a plugin gets is napari's proxy of it)
    assert cw.mask.value is viewer.layers["blocks mask"]
    fw.clear_selection()  # the mask is a copy: a new selection leaves it alone
    assert mask_layer.data.sum() == 1200
    cw.n_clusters.value = 2
    cw.run(wait=True)
    out = viewer.layers["blocks clusters"].data
    assert (out[30:, :] == 0).all() and (out[:, 40:] == 0).all()
    inside = set(np.unique(out[:30, :40]).tolist())
    assert len(inside) == 2 and 0 not in inside  # (ids kept from the last run's clusters)
    # the result shows over the mask it was clustered inside (it was hidden under it)
    layers = list(viewer.layers)
    assert layers.index(viewer.layers["blocks clusters"]) > layers.index(
        viewer.layers["blocks mask"]
    )


def test_lazy_cube_plot_and_selection_block_by_block(make_napari_viewer, monkeypatch, qtbot):
    viewer = make_napari_viewer()
    (cube, kw, _), _ = make_sample_cube()
    lazy = da.from_array(cube, chunks=(cube.shape[0], 16, 16))
    layer = viewer.add_image(lazy, **kw)
    _, fw = viewer.window.add_plugin_dock_widget(PLUGIN, "Feature space")
    monkeypatch.setattr(fsw, "MAX_POINTS_LAZY", 300)
    fw.draw()
    axis = layer.metadata["channel_axis"]
    assert fw.axes.names == ("PC1", "PC2")
    assert len(fw.points.index) == 300  # a sample read by point indexing
    lo, hi = np.percentile(fw.points.coords, [20, 80], axis=0)
    box = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
    n = fw.select_polygon(box)
    pixels = np.moveaxis(cube, axis, -1)
    coords = fw.axes(pixels.reshape(-1, pixels.shape[-1])).reshape(*pixels.shape[:-1], 2)
    expected = _inside(coords, box)
    assert n == expected.sum() > 300 and np.array_equal(fw.selection, expected)
    errors = capture_notifications(monkeypatch, "error")
    assert fw.selection_to_cluster() is None and "choose the clusters" in errors[0]
    # from the plot, a lazy cube is read in a background thread: the viewer never freezes
    fw.clear_selection()
    fw.plot.selected.emit(np.asarray(box))
    assert fw.selection is None and fw.runner.running
    qtbot.waitUntil(lambda: fw.selection is not None, timeout=20000)
    assert np.array_equal(fw.selection, expected)
    fw.draw(wait=False)
    assert fw.points is None  # not yet: being read
    qtbot.waitUntil(lambda: fw.points is not None, timeout=20000)
    assert len(fw.points.index) == 300


def test_picture_axes_3d_view_and_other_axes(docked):
    viewer, _, fw = docked
    assert fw.x_axis.choices[:3] == ("R", "G", "B")
    fw.view.value = "3d"
    fw.draw()
    assert fw.axes.names == ("R", "G", "B") and fw.plot.mode == "3d"
    assert not fw.z_axis.native.isHidden() and fw.tool.native.isHidden()
    fw.view.value = "2d"
    assert fw.add_axis("nd(0, 1)") == "nd(0, 1)"
    fw.draw()
    assert fw.axes.names == ("nd(0, 1)", "G")
    img = viewer.layers["blocks"].data.astype(float)
    expected = (img[..., 0] - img[..., 1]) / (img[..., 0] + img[..., 1])
    assert np.allclose(np.sort(fw.points.coords[:, 0]), np.sort(expected.ravel()))


def test_a_one_band_image_is_not_plotted_as_a_line(docked):
    """Every axis was that one band: the pixels drew a diagonal line labelled band 0 on
    both axes."""
    viewer, _, fw = docked
    band = viewer.add_image(_blocks()[..., 0].astype(np.float32), name="one band")
    fw.image.value = band
    for view in ("2d", "3d"):
        fw.view.value = view
        fw.draw()
        assert fw.points is None and not fw.plot.figure.axes
        assert fw.status.value.startswith("one band has one band: a plot of its pixels needs")
    fw.image.value = viewer.layers["blocks"]  # a picture again: plotted
    fw.draw()
    assert fw.points is not None and fw.axes.names[:2] == ("R", "G")


def test_follows_the_selected_layer_and_the_theme(docked):
    viewer, _, fw = docked
    other = viewer.add_image(_blocks(1)[..., 0], name="grey")
    viewer.layers.selection.active = other
    assert fw.image.value is other and fw.clusters.value is None
    viewer.layers.selection.active = viewer.layers["blocks clusters"]
    assert fw.image.value is viewer.layers["blocks"]
    assert fw.clusters.value is viewer.layers["blocks clusters"]
    viewer.theme = "light"
    light = fw.plot.colors["background"]
    viewer.theme = "dark"
    assert fw.plot.colors["background"] != light


def _in_view(widget) -> bool:
    """Whether ``widget`` is shown whole in the viewport of the scroll area it is in."""
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import QScrollArea

    scroll = next(a for a in _ancestors(widget) if isinstance(a, QScrollArea))
    top = widget.mapTo(scroll.viewport(), QPoint(0, 0)).y()
    visible = widget.isVisibleTo(scroll) and scroll.isVisible()
    return visible and 0 <= top and top + widget.height() <= scroll.viewport().height()


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_fits_a_laptop_screen_next_to_the_clustering_widget(make_napari_viewer, qtbot, size):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*size)
    QApplication.processEvents()
    viewer.add_image(_blocks(), name="blocks", rgb=True)
    clustering, cw = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    feature_space, fw = viewer.window.add_plugin_dock_widget(PLUGIN, "Feature space")
    cw.run(wait=True)
    fw.draw()
    for _ in range(5):
        QApplication.processEvents()
    assert (window.width(), window.height()) == size
    tabbed = window.tabifiedDockWidgets(clustering)
    if size == (1366, 768):
        # in tabs, the one just opened in front: one above the other, the clustering dock's
        # third of the height (~200 px) showed its table's header and none of its rows
        assert tabbed == [feature_space]
        qtbot.waitUntil(lambda: clustering.visibleRegion().isEmpty(), timeout=2000)
        assert not feature_space.visibleRegion().isEmpty()
        assert feature_space.height() > 600  # the whole height
    else:
        # one above the other, the plot's dock twice the other's (Qt gave the clustering
        # dock 90-110 px; half the height each left the plot below the feature space dock's
        # fold)
        assert tabbed == []
        heights = clustering.height(), feature_space.height()
        assert clustering.x() == feature_space.x(), (clustering.x(), feature_space.x())
        assert abs(2 * heights[0] - heights[1]) <= 20 and heights[0] >= 300, heights
        assert _in_view(cw.run_button.native)
    # what the user drew is in view whole
    assert _in_view(fw.plot)
    if tabbed:  # and the clustering tab, picked: Run, its result's rows and actions
        clustering.raise_()
        qtbot.waitUntil(lambda: feature_space.visibleRegion().isEmpty(), timeout=2000)
        for _ in range(5):
            QApplication.processEvents()
        assert clustering.height() > 600
        for widget in (cw.run_button, cw.table, cw.merge_button, cw.save_button):
            assert _in_view(widget.native), widget.name


def test_no_control_is_cut_off_at_the_right_in_the_3d_cloud(make_napari_viewer, data_dir):
    """Samson's 3-D cloud at 1366 x 768: z, Clear and Split were cut off at the dock's right
    edge (every menu was as wide as its longest choice, a band's name)."""
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import QApplication, QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    viewer.open(str(data_dir / "hsi" / "Samson.mat"), plugin=PLUGIN)
    viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    _, fw = viewer.window.add_plugin_dock_widget(PLUGIN, "Feature space")
    fw.view.value = "3d"
    fw.draw()
    for _ in range(5):
        QApplication.processEvents()
    viewport = next(a for a in _ancestors(fw.plot) if isinstance(a, QScrollArea)).viewport()
    controls = (fw.image, fw.x_axis, fw.y_axis, fw.z_axis, fw.clear_button, fw.split_button)
    for control in controls:
        right = control.native.mapTo(viewport, QPoint(control.native.width(), 0)).x()
        assert control.native.isVisible() and right <= viewport.width(), (control.name, right)


def test_docked_under_a_clustering_run_every_control_is_in_view(make_napari_viewer, data_dir):
    """Samson clustered first, then Feature space docked under the clustering dock at
    1366 x 768: its rows were 25 px wider than the room beside its scroll bar, and every menu's
    right end (its arrow) and the plot's right edge were cut off."""
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import QApplication, QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _, cw = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    (source, *_) = viewer.open(str(data_dir / "hsi" / "Samson.mat"), plugin=PLUGIN)
    cw.image.value, cw.n_clusters.value = source, 3
    cw.run(wait=True)
    _, fw = viewer.window.add_plugin_dock_widget(PLUGIN, "Feature space")
    viewer.layers.selection.active = source
    fw.draw()
    for _ in range(10):
        QApplication.processEvents()
    scroll = next(a for a in _ancestors(fw.plot) if isinstance(a, QScrollArea))
    viewport = scroll.viewport()
    assert scroll.widget().width() <= viewport.width()
    controls = (fw.image, fw.clusters, fw.view, fw.tool, fw.x_axis, fw.y_axis, fw.new_axis)
    for control in (*controls, fw.clear_button, fw.split_button):
        right = control.native.mapTo(viewport, QPoint(control.native.width(), 0)).x()
        assert control.native.isVisible() and right <= viewport.width(), (control.name, right)
    right = fw.plot.mapTo(viewport, QPoint(fw.plot.width(), 0)).x()
    assert right <= viewport.width()


def test_a_two_line_status_takes_no_room_from_the_buttons(make_napari_viewer, data_dir):
    """Tabbed beside the clustering dock at 1366 x 768, a selection's status wrapped onto a
    second line, which Qt took from the buttons under it: they were drawn 16 px high, cut in
    half (in the docs' picture too)."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    _, fw = viewer.window.add_plugin_dock_widget(PLUGIN, "Feature space", tabify=True)
    (source, *_) = viewer.open(str(data_dir / "hsi" / "Samson.mat"), plugin=PLUGIN)
    fw.image.value = source
    fw.draw()
    lo, hi = np.percentile(fw.points.coords, [55, 85], axis=0)
    mid = (lo + hi) / 2
    fw.select_polygon([(lo[0], mid[1]), (mid[0], lo[1]), (hi[0], mid[1]), (mid[0], hi[1])])
    fw.status.value += " and a longer sentence that wraps onto another line"
    from qtpy.QtWidgets import QApplication

    for _ in range(10):
        QApplication.processEvents()
    status = fw.status.native
    assert status.height() >= status.heightForWidth(status.width()) > status.fontMetrics().height()
    for button in (fw.new_cluster_button, fw.mask_button, fw.clear_button, fw.split_button):
        assert button.native.height() >= button.native.minimumSizeHint().height(), button.name
    # and a short one gives the room back: one long message did not keep it that tall
    tall = status.height()
    fw.status.value = "1 pixel selected"
    for _ in range(10):
        QApplication.processEvents()
    assert status.height() < tall and status.minimumHeight() < tall


def _ancestors(widget):
    while widget is not None:
        widget = widget.parentWidget()
        yield widget


def test_every_control_says_what_it_does(docked):
    _, _, fw = docked
    controls = [
        fw.image, fw.clusters, fw.view, fw.x_axis, fw.y_axis, fw.z_axis, fw.new_axis, fw.tool,
        fw.new_cluster_button, fw.mask_button, fw.clear_button, fw.split_label, fw.split_n,
        fw.split_button,
    ]  # fmt: skip
    for control in controls:
        assert control.tooltip and len(control.tooltip) > 15, control.name


def test_a_users_layers_of_the_same_names_are_never_written(docked):
    viewer, _, fw = docked
    hand = np.zeros((60, 80), np.uint8)
    hand[5:10, 5:10] = 1
    mine_mask = viewer.add_labels(hand.copy(), name="blocks mask")
    mine_selection = viewer.add_labels(hand.copy(), name="blocks selection")
    viewer.layers.selection.active = viewer.layers["blocks"]
    fw.select_rectangle(150, 255, 0, 90)
    made = fw.use_as_mask()
    assert np.array_equal(mine_mask.data, hand) and np.array_equal(mine_selection.data, hand)
    assert made.name == "blocks mask (2)" and made.data.sum() == 1200
    assert viewer.layers["blocks selection (2)"].data.sum() == 1200
    mine_selection.data = np.ones_like(hand)  # the user's layer does not drive the selection
    assert fw.selection.sum() == 1200
    # a second widget finds our selection layer and listens to it
    ours = viewer.layers["blocks selection (2)"]
    ours.data = np.zeros_like(hand)
    assert not fw.selection.any()


def test_another_image_has_its_own_selection(docked):
    viewer, _, fw = docked
    fw.select_rectangle(150, 255, 0, 90)
    other = viewer.add_image(_blocks(1), name="other", rgb=True)
    viewer.layers.selection.active = other
    assert fw.image.value is other and fw.selection is None
    viewer.layers["blocks selection"].data = np.ones((60, 80), np.uint8)
    assert fw.selection is None  # blocks' selection is not other's
    viewer.layers.selection.active = viewer.layers["blocks"]
    assert fw.selection.all()  # back on blocks: its selection layer as it is now


def test_removed_layers_and_a_closed_widget_are_let_go(docked, qtbot):
    viewer, _, fw = docked
    labels = viewer.layers["blocks clusters"]
    viewer.layers.remove(labels)
    assert fw.clusters.value is None and fw._followed is None and fw._point_labels is None
    assert fw._clusters_edited not in [
        c[1] for c in labels.events.data.callbacks if isinstance(c, tuple)
    ]
    assert fw.split_label.choices == ()
    viewer.layers.remove("blocks selection") if "blocks selection" in viewer.layers else None
    viewer.layers.remove("blocks recolored")
    viewer.layers.remove("blocks")
    assert fw.image.value is None and fw.points is None
    closed = FeatureSpaceWidget(viewer)

    def follows():
        return any(
            getattr(c, "__self__", None) is closed or (isinstance(c, tuple) and c[0]() is closed)
            for c in viewer.layers.events.inserted.callbacks
        )

    assert follows()
    closed.native.deleteLater()
    qtbot.waitUntil(lambda: not follows(), timeout=3000)


def test_an_edit_during_a_table_selection_shows_every_cluster_again(docked):
    viewer, cw, fw = docked
    recolored = viewer.layers["blocks recolored"]
    cw.results.isolate({3})
    assert not recolored.visible
    fw.select_rectangle(150, 255, 0, 90)
    fw.selection_to_cluster()
    assert recolored.visible and fw.highlighted() is None
