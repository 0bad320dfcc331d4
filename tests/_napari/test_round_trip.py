"""What a user made survives saving and reopening: ids, colours, cluster names, scale,
translate, units and parameters; hand edits are never overwritten by a new result."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari.layers import Labels

from napari_spectral_clusters._napari.sample_data import make_sample_cube, make_sample_photo

from .notifications import capture_notifications

PLUGIN = "napari-spectral-clusters"


@pytest.fixture
def edited(make_napari_viewer):
    """A clustered cube with a renamed cluster, two merged and a new id 9 painted."""
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    (cube, kw, _), _ = make_sample_cube()
    viewer.add_image(
        cube, **kw, scale=(1, 2.5, 0.5), translate=(0, 10, -4), units=("nm", "um", "um")
    )
    w.n_clusters.value = 4
    w.run(wait=True)
    w.rename(1, "soil")
    w.merge([3, 4])
    layer = viewer.layers["sample cube clusters"]
    painted = np.array(layer.data)
    painted[:5, :7] = 9
    layer.data = painted
    w.refresh()
    return viewer, w, layer


def _clustered(make_napari_viewer, image, kw: dict, k: int):
    """A new viewer with ``image`` added and clustered into ``k`` by the widget: its results
    (labels, recoloured data)."""
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    layer = viewer.add_image(image, **kw)
    w.n_clusters.value = k
    w.run(wait=True)
    return (
        viewer.layers[f"{layer.name} clusters"].data,
        viewer.layers[f"{layer.name} recolored"].data,
    )


def _sample_result(make_napari_viewer, k: int):
    """A new viewer with the widget docked and the sample cube clustered into ``k``: the
    viewer, the widget and the cube's layer."""
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    (cube, kw, _), _ = make_sample_cube()
    source = viewer.add_image(cube, **kw)
    w.n_clusters.value = k
    w.run(wait=True)
    return viewer, w, source


def _names(layer) -> dict:
    return dict(zip(layer.features["index"], layer.features["name"], strict=True))


def _rgba(layer: Labels, ids) -> np.ndarray:
    return np.array([layer.get_color(int(i)) for i in ids], dtype=float)


def test_a_painted_new_label_is_visible_in_both_layers(edited):
    viewer, _, layer = edited
    color = layer.get_color(9)
    assert color is not None and color[3] == 1  # opaque, not transparent
    recolored = viewer.layers["sample cube recolored"].data
    np.testing.assert_array_equal(recolored[0, 0], np.round(np.asarray(color[:3]) * 255))
    assert 9 in set(layer.features["index"])
    # and it differs from the other clusters' colours
    others = [tuple(layer.get_color(i)) for i in (1, 2, 3)]
    assert tuple(color) not in others


@pytest.mark.parametrize("suffix", [".png", ".mat", ".zarr"])
def test_labels_reopen_as_they_were_saved(edited, make_napari_viewer, tmp_path, suffix):
    _, _, layer = edited
    path = tmp_path / f"clusters{suffix}"
    (written,) = layer.save(str(path), plugin=PLUGIN)
    again = make_napari_viewer()
    reopened = [x for x in again.open(written, plugin=PLUGIN) if isinstance(x, Labels)]
    (back,) = reopened
    np.testing.assert_array_equal(back.data, layer.data)
    ids = np.unique(layer.data)
    np.testing.assert_allclose(_rgba(back, ids), _rgba(layer, ids), atol=1 / 255)
    assert _names(back) == _names(layer)
    assert _names(back)[1] == "soil" and 9 in _names(back)
    np.testing.assert_allclose(back.scale, layer.scale)
    np.testing.assert_allclose(back.translate, layer.translate)
    assert [str(u) for u in back.units] == [str(u) for u in layer.units] == ["micrometer"] * 2
    assert back.metadata["params"]["n_clusters"] == 4
    assert back.metadata["params"]["random_state"] == layer.metadata["params"]["random_state"]


def test_all_result_layers_reopen_from_one_mat(edited, make_napari_viewer, tmp_path):
    viewer, _, layer = edited
    recolored = viewer.layers["sample cube recolored"]
    viewer.layers.selection = {layer, recolored}
    (written,) = viewer.layers.save(str(tmp_path / "both.mat"), selected=True, plugin=PLUGIN)
    again = make_napari_viewer()
    back = {x.name: x for x in again.open(written, plugin=PLUGIN)}
    np.testing.assert_array_equal(back["sample cube recolored"].data, recolored.data)
    np.testing.assert_allclose(back["sample cube recolored"].scale, recolored.scale)
    np.testing.assert_array_equal(back["sample cube clusters"].data, layer.data)
    # the file's cluster statistics are those of the edited labels: 3 and 4 merged, 9 painted
    counts = np.bincount(layer.data.ravel(), minlength=10)[1:]
    assert counts[3] == 0 and counts[8] == 35
    for reopened in back.values():
        np.testing.assert_array_equal(reopened.metadata["counts"], counts)
        assert np.isnan(reopened.metadata["centers"][3]).all()
        assert "inertia" not in reopened.metadata


def test_a_reopened_result_beside_its_image_is_a_result_of_the_widget(
    edited, make_napari_viewer, tmp_path, monkeypatch
):
    """Opened again in another session beside the image it names, a saved result fills the
    table and plot from what the file holds (names too), and Refresh and merges work on it;
    with no result at all, Refresh says what it needs instead of doing nothing."""
    viewer, w, layer = edited
    recolored = viewer.layers["sample cube recolored"]
    viewer.layers.selection = {layer, recolored}
    (written,) = viewer.layers.save(str(tmp_path / "both.mat"), selected=True, plugin=PLUGIN)
    table_before = w.table.to_dict("list")

    again = make_napari_viewer()
    _, w2 = again.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    said = capture_notifications(monkeypatch, "info")
    w2.refresh()
    assert len(said) == 1 and "Nothing to refresh" in said[0]
    (cube, kw, _), _ = make_sample_cube()
    again.add_image(cube, **kw)
    back = {x.name: x for x in again.open(written, plugin=PLUGIN)}
    clusters = back["sample cube clusters"]
    again.layers.selection.active = clusters
    table = w2.table.to_dict("list")
    assert table["label"] == table_before["label"] == [1, 2, 3, 9]
    assert table["pixels"] == table_before["pixels"] and table["name"][0] == "soil"
    assert sorted(w2.results.shown.plotted) == [1, 2, 3, 9]  # the spectra were drawn
    w2.refresh()  # counted again from the cube: the same table
    assert w2.table.to_dict("list")["pixels"] == table_before["pixels"]
    np.testing.assert_allclose(
        clusters.metadata["centers"], layer.metadata["centers"], rtol=1e-6, equal_nan=True
    )
    w2.merge([2, 9])
    assert w2.table.to_dict("list")["label"] == [1, 2, 3]
    assert (clusters.data == 9).sum() == 0
    rgb = np.asarray(back["sample cube recolored"].data)
    assert tuple(rgb[0, 0]) == tuple(clusters.metadata["colors"][1])  # 9 wears 2's colour now
    # a file keeps no model: Save model says so, not "run a clustering first"
    errors = capture_notifications(monkeypatch, "error")
    assert w2.save_model(tmp_path / "m.npz") is None and not (tmp_path / "m.npz").exists()
    assert len(errors) == 1 and "sample cube clusters was opened from a file" in errors[0]
    assert "run the clustering of sample cube again" in errors[0]


@pytest.mark.parametrize("suffix", [".mat", ".zarr"])
def test_save_writes_the_result_in_one_file_with_no_choice_of_writer(
    edited, make_napari_viewer, tmp_path, monkeypatch, suffix
):
    """*Save…* writes the clusters and the recoloured image with this plugin's writer (File ▸
    Save Selected Layers preselects napari's own, which cannot write the clusters as PNG);
    a path it cannot write is a notification, and nothing is left behind."""
    viewer, w, layer = edited
    recolored = viewer.layers["sample cube recolored"]
    said = capture_notifications(monkeypatch, "info")
    errors = capture_notifications(monkeypatch, "error")
    written = w.save_result(tmp_path / f"result{suffix}")
    assert written and said[-1].startswith("Saved sample cube clusters and sample cube recolored")
    back = {x.name: x for x in make_napari_viewer().open(written[0], plugin=PLUGIN)}
    np.testing.assert_array_equal(back["sample cube clusters"].data, layer.data)
    np.testing.assert_array_equal(back["sample cube recolored"].data, recolored.data)
    assert _names(back["sample cube clusters"]) == _names(layer)
    np.testing.assert_array_equal(
        back["sample cube clusters"].metadata["counts"], (layer.metadata["counts"])
    )
    assert w.save_result(tmp_path / "result.tif") is None  # two layers: not a format of ours
    assert w.save_result(tmp_path / "missing" / f"result{suffix}") is None
    assert len(errors) == 2 and all(e.startswith("Cannot save result") for e in errors)
    assert sorted(p.name for p in tmp_path.glob("result*")) == [f"result{suffix}"]
    assert not (tmp_path / "missing").exists()


def test_a_result_reopened_in_the_same_session_leaves_the_original_alone(edited, tmp_path):
    """napari names the reopened copies "... [1]", while the file names the recoloured layer
    the original has: edits on the copy must not write into the original's layers."""
    viewer, w, layer = edited
    recolored = viewer.layers["sample cube recolored"]
    viewer.layers.selection = {layer, recolored}
    (written,) = viewer.layers.save(str(tmp_path / "both.mat"), selected=True, plugin=PLUGIN)
    kept = np.array(layer.data), np.array(recolored.data), dict(layer.metadata)
    copies = [x for x in viewer.open(written, plugin=PLUGIN) if isinstance(x, Labels)]
    (copy,) = copies
    assert copy.name != layer.name
    viewer.layers.selection.active = copy
    assert w.results.shown.labels == copy.name and w.results.shown.recolored == ""
    w.merge([1, 2])
    assert not (copy.data == 2).any() and (copy.data == 1).any()
    np.testing.assert_array_equal(layer.data, kept[0])
    np.testing.assert_array_equal(recolored.data, kept[1])
    np.testing.assert_array_equal(layer.metadata["counts"], kept[2]["counts"])


def test_recolored_png_keeps_scale_translate_and_pixel_size(edited, make_napari_viewer, tmp_path):
    viewer, _, _ = edited
    recolored = viewer.layers["sample cube recolored"]
    (written,) = recolored.save(str(tmp_path / "rgb.png"), plugin=PLUGIN)
    (back,) = make_napari_viewer().open(written, plugin=PLUGIN)
    np.testing.assert_array_equal(back.data, recolored.data)
    np.testing.assert_allclose(back.translate, [10, -4])
    np.testing.assert_allclose(back.scale, [2.5, 0.5])
    # the standard pHYs chunk says the pixel size to other programs: px per metre, x then y
    from PIL import Image

    with Image.open(written) as im:
        assert np.allclose(im.info["dpi"], [0.0254 / 0.5e-6, 0.0254 / 2.5e-6], rtol=1e-3)


def test_apply_model_never_overwrites_hand_edits(edited, tmp_path):
    viewer, w, layer = edited
    kept = np.array(layer.data)
    names = _names(layer)
    w.save_model(tmp_path / "m.npz")
    w.apply_model(tmp_path / "m.npz", wait=True)
    np.testing.assert_array_equal(viewer.layers["sample cube clusters"].data, kept)
    assert _names(viewer.layers["sample cube clusters"]) == names
    fresh = viewer.layers["sample cube clusters (2)"]
    assert "sample cube recolored (2)" in viewer.layers
    assert 9 not in np.unique(fresh.data)


def test_painting_alone_counts_as_an_edit(make_napari_viewer, monkeypatch):
    """The edited result is kept, the new one goes above it (it is what shows), and the
    notification says so once, not again at every later run."""
    warned = capture_notifications(monkeypatch, "warning")
    viewer, w, _ = _sample_result(make_napari_viewer, 3)
    w.run(wait=True)  # an unedited result is updated in place
    assert "sample cube clusters (2)" not in viewer.layers
    layer = viewer.layers["sample cube clusters"]
    layer.paint((3, 3), 2)  # napari's own painting, no Refresh
    painted = np.array(layer.data)
    w.run(wait=True)
    np.testing.assert_array_equal(viewer.layers["sample cube clusters"].data, painted)
    assert "sample cube clusters (2)" in viewer.layers
    order = [x.name for x in viewer.layers]
    assert order[-4:] == [
        "sample cube recolored",
        "sample cube clusters",
        "sample cube recolored (2)",
        "sample cube clusters (2)",
    ]
    assert warned == [  # the one reason that holds, not both
        "'sample cube clusters' holds your edits, so the new result is in "
        "'sample cube clusters (2)' and 'sample cube recolored (2)'."
    ]
    w.run(wait=True)  # the new result, unedited, is updated in place, with nothing to say
    assert [x.name for x in viewer.layers] == order and len(warned) == 1


@pytest.mark.parametrize("depth", [8, 16])
def test_recoloured_image_keeps_the_alpha_plane(make_napari_viewer, depth):
    """Soft, anti-aliased edges stay soft: alpha as it was, 8- and 16-bit."""
    ((photo, kw, _),) = make_sample_photo()
    photo = np.array(photo)
    xx = np.arange(photo.shape[1])[None, :].repeat(photo.shape[0], 0)
    ramp = np.clip(xx * 255 // photo.shape[1], 0, 255).astype(np.uint8)  # 0..254
    photo[..., 3] = ramp
    if depth == 16:
        photo = photo.astype(np.uint16) * 257
    labels, out = _clustered(make_napari_viewer, photo, kw, 8)
    assert out.dtype == photo.dtype
    np.testing.assert_array_equal(out[..., 3], photo[..., 3])
    assert (labels[photo[..., 3] == 0] == 0).all() and (labels[photo[..., 3] > 0] > 0).all()


def test_a_layer_we_did_not_make_is_never_replaced(make_napari_viewer, monkeypatch):
    warned = capture_notifications(monkeypatch, "warning")
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    (cube, kw, _), (gt, _, _) = make_sample_cube()
    mine = viewer.add_labels(gt, name="sample cube clusters")  # the user's own, same name
    other = viewer.add_labels(gt, name="sample cube recolored")  # and one of another kind
    viewer.add_image(cube, **kw)
    w.n_clusters.value = 3
    w.run(wait=True)
    assert mine in viewer.layers and other in viewer.layers
    np.testing.assert_array_equal(mine.data, gt)
    assert isinstance(viewer.layers["sample cube clusters (2)"], Labels)
    assert warned == [
        "'sample cube clusters' and 'sample cube recolored' are not results of this "
        "widget, so the new result is in 'sample cube clusters (2)' and "
        "'sample cube recolored (2)'."
    ]


def test_float_rgba_keeps_its_alpha(make_napari_viewer):
    ((photo, kw, _),) = make_sample_photo()
    photo = np.asarray(photo, np.float32) / 255
    labels, out = _clustered(make_napari_viewer, photo, kw, 4)
    np.testing.assert_array_equal(
        out[..., 3][labels > 0], np.round(photo[..., 3] * 255).astype(np.uint8)[labels > 0]
    )
    assert (out[..., 3][labels > 0] > 0).all()


def test_a_cube_with_its_band_axis_last_reopens_in_its_own_order(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    cube = np.random.default_rng(0).random((20, 30, 6)).astype(np.float32)
    layer = viewer.add_image(
        cube, name="c", metadata={"channel_axis": 2}, scale=(2.0, 3.0, 1.0), translate=(5, 7, 0)
    )
    (written,) = layer.save(str(tmp_path / "c.mat"), plugin=PLUGIN)
    (back,) = make_napari_viewer().open(written, plugin=PLUGIN)
    np.testing.assert_array_equal(back.data, cube)
    np.testing.assert_allclose(back.scale, [2.0, 3.0, 1.0])
    np.testing.assert_allclose(back.translate, [5, 7, 0])
    assert back.metadata["channel_axis"] == 2


def test_a_plain_3d_image_reopens_unrotated(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    stack = np.random.default_rng(0).random((4, 30, 20)).astype(np.float32)
    layer = viewer.add_image(stack, name="zstack")
    (written,) = layer.save(str(tmp_path / "z.mat"), plugin=PLUGIN)
    (back,) = make_napari_viewer().open(written, plugin=PLUGIN)
    np.testing.assert_array_equal(back.data, stack)


def test_painting_a_label_too_large_for_colours_is_a_notification(edited, monkeypatch):
    viewer, w, layer = edited
    shown = capture_notifications(monkeypatch, "error")
    before = np.array(viewer.layers["sample cube recolored"].data)
    painted = np.array(layer.data, dtype=np.int64)
    painted[0, 0] = 2**31
    layer.data = painted
    w.refresh()
    assert shown and "outside 0..65,535" in shown[0]
    np.testing.assert_array_equal(viewer.layers["sample cube recolored"].data, before)


def test_save_offers_the_folder_of_the_clustered_file_then_the_last_one_used(
    make_napari_viewer, data_dir, tmp_path, monkeypatch
):
    """Not the folder napari was started in (a code checkout, often)."""
    import shutil

    from qtpy.QtWidgets import QFileDialog

    scans, results = tmp_path / "scans", tmp_path / "results"
    scans.mkdir()
    results.mkdir()
    shutil.copy(data_dir / "hsi" / "Samson.mat", scans / "Samson.mat")
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    cube = viewer.open(str(scans / "Samson.mat"), plugin=PLUGIN)[0]  # the maps come last
    w.image.value = cube
    w.n_clusters.value = 3
    w.run(wait=True)
    offered = []

    def dialog(parent, caption, proposed, filters):
        offered.append(proposed)
        return str(results / f"run{len(offered)}.mat"), filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    assert w.results.save() and w.results.save()
    assert offered == [str(scans / "SamSon clusters.mat"), str(results / "SamSon clusters.mat")]
    assert sorted(p.name for p in results.iterdir()) == ["run1.mat", "run2.mat"]
    # a folder gone unreadable (Python 3.11's is_dir raises on EACCES): the next one
    is_dir = Path.is_dir

    def unreadable(self):
        if self == results:
            raise PermissionError(13, "Permission denied", str(self))
        return is_dir(self)

    monkeypatch.setattr(Path, "is_dir", unreadable)
    assert w.results.save_folder(cube) == scans


@pytest.mark.parametrize("suffix", [".mat", ".zarr"])
def test_napari_save_after_painting_writes_a_file_that_agrees_with_itself(
    make_napari_viewer, tmp_path, suffix
):
    """File > Save Selected Layers right after painting, without Refresh from labels: the
    file's colours, counts, table and recoloured image follow the painted labels, the means
    of the clusters painting changed are unknown (NaN), the others kept; the layers in the
    viewer are left as they are."""
    viewer, _, _ = _sample_result(make_napari_viewer, 4)
    layer = viewer.layers["sample cube clusters"]
    recolored = viewer.layers["sample cube recolored"]
    before = {key: np.array(layer.metadata[key]) for key in ("counts", "centers", "colors")}
    untouched = int(np.argmax(before["counts"])) + 1  # the biggest cluster: not painted
    painted = np.array(layer.data)
    region = (slice(0, 20), slice(0, 20))
    painted[region][painted[region] != untouched] = 5  # a new id, over other clusters
    layer.data[...] = painted  # in place, as napari's brush paints (layer.data = ... recounts)
    layer.refresh()
    kept = np.array(recolored.data)
    viewer.layers.selection = {layer, recolored}
    (written,) = viewer.layers.save(str(tmp_path / f"both{suffix}"), selected=True, plugin=PLUGIN)
    back = {x.name: x for x in make_napari_viewer().open(written, plugin=PLUGIN)}
    labels, rgb = back["sample cube clusters"], back["sample cube recolored"]
    np.testing.assert_array_equal(labels.data, painted)
    counts = np.bincount(painted.ravel(), minlength=6)[1:]
    np.testing.assert_array_equal(labels.metadata["counts"], counts)
    colors = np.asarray(labels.metadata["colors"])
    assert colors.shape == (5, 3)
    np.testing.assert_array_equal(colors[:4], before["colors"])
    np.testing.assert_array_equal(rgb.data, colors[painted - 1])  # every pixel labelled here
    centers = np.asarray(labels.metadata["centers"])
    changed = counts != np.append(before["counts"], 0)
    assert changed[4] and np.isnan(centers[changed]).all()
    np.testing.assert_array_equal(centers[~changed], before["centers"][~changed[:4]])
    assert labels.metadata["hand_edited"] and "inertia" not in labels.metadata
    table = dict(zip(labels.features["index"], labels.features["pixels"], strict=True))
    assert table[5] == counts[4] and table[untouched] == counts[untouched - 1]
    # the viewer's layers: as they were (the file follows them, they do not follow the file)
    np.testing.assert_array_equal(layer.metadata["counts"], before["counts"])
    np.testing.assert_array_equal(recolored.data, kept)
    # pixels swapped between two clusters leave the counts as they were: still repainted
    a, b = np.flatnonzero(painted == 1)[0], np.flatnonzero(painted == 2)[0]
    swapped = painted.copy()
    swapped.flat[a], swapped.flat[b] = 2, 1
    layer.data[...] = swapped
    (written,) = viewer.layers.save(str(tmp_path / f"swap{suffix}"), selected=True, plugin=PLUGIN)
    back = {x.name: x for x in make_napari_viewer().open(written, plugin=PLUGIN)}
    colors = np.asarray(back["sample cube clusters"].metadata["colors"])
    np.testing.assert_array_equal(back["sample cube recolored"].data, colors[swapped - 1])
    # and the clusters alone as an indexed PNG: id 5 in its palette, counts recounted
    (png,) = layer.save(str(tmp_path / "clusters.png"), plugin=PLUGIN)
    (alone,) = make_napari_viewer().open(png, plugin=PLUGIN)
    np.testing.assert_array_equal(alone.data, swapped)
    np.testing.assert_array_equal(alone.metadata["counts"], counts)
    np.testing.assert_array_equal(np.asarray(alone.metadata["colors"]), colors)


def test_renamed_result_layers_stay_one_result(make_napari_viewer, tmp_path):
    """Results find their layers by name: renaming the clusters, the recoloured or the
    source layer kept the table but cut the links (Refresh said the layers were gone, Save…
    left the recoloured image out)."""
    viewer, w, source = _sample_result(make_napari_viewer, 3)
    layer = viewer.layers["sample cube clusters"]
    recolored = viewer.layers["sample cube recolored"]
    layer.name, recolored.name, source.name = "my clusters", "my colours", "scan 7"
    painted = np.array(layer.data)
    painted[:4, :4] = 7
    layer.data[...] = painted
    w.refresh()
    colors = np.asarray(layer.metadata["colors"])
    np.testing.assert_array_equal(recolored.data, colors[painted - 1])  # followed the edit
    assert layer.metadata["spectral_clusters_recolored"] == "my colours"
    assert layer.metadata["spectral_clusters_source"] == "scan 7"
    written = w.save_result(tmp_path / "renamed.mat")
    back = {x.name: x for x in make_napari_viewer().open(written[0], plugin=PLUGIN)}
    assert set(back) == {"my clusters", "my colours"}
    np.testing.assert_array_equal(back["my colours"].data, recolored.data)
    w.run(wait=True)  # the edited result is kept; the new one is named after the source
    assert "scan 7 clusters" in viewer.layers
    np.testing.assert_array_equal(viewer.layers["my clusters"].data, painted)


def test_a_saved_scene_with_its_result_reopens_with_the_result_on_top(
    make_napari_viewer, tmp_path
):
    """One .mat of the cube, its clusters and its recoloured image: the recoloured image
    opened under the (opaque, larger) cube, and the widget offered it as the image to
    cluster."""
    viewer, _, source = _sample_result(make_napari_viewer, 3)
    saved = [source, viewer.layers["sample cube clusters"], viewer.layers["sample cube recolored"]]
    viewer.layers.selection = set(saved)
    (written,) = viewer.layers.save(str(tmp_path / "all.mat"), selected=True, plugin=PLUGIN)
    again = make_napari_viewer()
    _, w2 = again.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    again.open(written, plugin=PLUGIN)
    # as the widget lays them out: the cube at the bottom, the clusters on top
    assert [x.name for x in again.layers] == [x.name for x in viewer.layers]
    assert w2.image.value is again.layers["sample cube"]


def test_columns_a_user_added_to_the_clusters_table_are_kept(make_napari_viewer, tmp_path):
    """A column added to the clusters layer's features (a note per cluster) survives a
    rename, Refresh from labels after painting and napari's Save Selected Layers, row by
    cluster id; a cluster the table had no row for gets an empty cell."""
    viewer, w, _ = _sample_result(make_napari_viewer, 4)
    layer = viewer.layers["sample cube clusters"]
    notes = {0: "", 1: "nuclei", 2: "cytoplasm", 3: "dust", 4: "membrane"}
    layer.features = layer.features.assign(note=[notes[i] for i in layer.features["index"]])
    w.rename(2, "cyto")
    assert dict(zip(layer.features["index"], layer.features["note"], strict=True)) == notes
    assert _names(layer)[2] == "cyto"
    painted = np.array(layer.data)
    painted[:8, :8] = 6  # a new id
    layer.data[...] = painted
    (written,) = viewer.layers.save(str(tmp_path / "painted.mat"), selected=False, plugin=PLUGIN)
    back = {x.name: x for x in make_napari_viewer().open(written, plugin=PLUGIN)}
    saved = back["sample cube clusters"].features
    by_id = dict(zip(saved["index"], saved["note"], strict=True))
    assert {i: by_id[i] for i in notes if i in by_id} == {
        i: n for i, n in notes.items() if i in by_id
    }
    assert set(by_id) == {0, *np.unique(painted[painted > 0]).tolist()}
    assert by_id[6] == ""  # no note for the painted id
    assert dict(zip(saved["index"], saved["name"], strict=True))[2] == "cyto"
    w.refresh()
    refreshed = dict(zip(layer.features["index"], layer.features["note"], strict=True))
    assert refreshed[1] == "nuclei" and refreshed[2] == "cytoplasm"
    assert refreshed[6] == ""
    # the notes are the user's edits: a new run goes beside them, and they stay as they are
    layer.features = layer.features.assign(kind=pd.Categorical(["bg", "a", "b", "c", "d", "e"]))
    w.run(wait=True)
    assert "sample cube clusters (2)" in viewer.layers
    assert "note" not in viewer.layers["sample cube clusters (2)"].features
    assert dict(zip(layer.features["index"], layer.features["note"], strict=True))[1] == "nuclei"
    w.refresh()  # a categorical column of the user's is kept too (it failed to fill)
    assert list(layer.features["kind"])[:2] == ["bg", "a"]


def test_notes_added_to_a_clusters_table_are_hand_edits(make_napari_viewer):
    """A column of the user's own in the clusters table (nothing painted, renamed or
    merged) makes the layer the user's: a new run goes beside it, and the notes stay."""
    viewer, w, _ = _sample_result(make_napari_viewer, 3)
    layer = viewer.layers["sample cube clusters"]
    before = np.array(layer.data)
    layer.features = layer.features.assign(note=["", "a", "b", "c"])
    w.n_clusters.value = 4
    w.run(wait=True)
    assert "sample cube clusters (2)" in viewer.layers
    np.testing.assert_array_equal(layer.data, before)
    assert list(layer.features["note"]) == ["", "a", "b", "c"]
