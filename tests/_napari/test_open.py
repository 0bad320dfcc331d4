"""Every file in tests/data opened as a user opens it: ``viewer.open``, so napari builds the
layers (``npe2.read`` alone never does, and let an RGB-layer bug through)."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

PLUGIN = "napari-spectral-clusters"
DATA = Path(__file__).parents[1] / "data"
FILES = sorted(p for p in DATA.rglob("*") if p.suffix in (".png", ".mat"))


@pytest.fixture
def errors(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("napari_spectral_clusters._napari.reader.show_error", shown.append)
    return shown


def test_there_are_files_to_open():
    assert sum(p.suffix == ".png" for p in FILES) >= 60
    assert sum(p.suffix == ".mat" for p in FILES) >= 25


@pytest.mark.parametrize("folder", ["png", "matlab", "hsi"])
def test_every_file_opens_in_napari_or_is_a_notification(make_napari_viewer, errors, folder):
    viewer = make_napari_viewer()
    files = [p for p in FILES if p.is_relative_to(DATA / folder)]
    opened = 0
    for path in files:
        before, n_errors = len(viewer.layers), len(errors)
        viewer.open(str(path), plugin=PLUGIN)  # raises if napari refuses a layer
        added = list(viewer.layers)[before:]
        if added:
            opened += 1
            assert len(errors) == n_errors, (path.name, errors[n_errors:])
        else:  # nothing opened: exactly one message, naming the file
            assert len(errors) == n_errors + 1, path.name
            assert path.name in errors[-1]
        for layer in added:
            assert layer.metadata["source"] == str(path)
            if getattr(layer, "rgb", False):
                assert layer.ndim == layer.data.ndim - 1
                assert layer.data.shape[-1] in (3, 4)
                assert tuple(layer.axis_labels)[-2:] == ("y", "x")
    assert opened >= {"png": 60, "matlab": 10, "hsi": 2}[folder]


@pytest.mark.parametrize(
    ("name", "shape", "last"),
    [
        ("pngsuite/basn2c08.png", (32, 32, 3), None),
        ("pngsuite/basn6a16.png", (32, 32, 4), None),
        ("testpngs/palette-8.png", None, None),
        ("testpngs/gray-alpha-8.png", None, 4),
    ],
)
def test_colour_pngs_open_as_rgb_layers(make_napari_viewer, name, shape, last):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(DATA / "png" / name), plugin=PLUGIN)
    assert layer.rgb and layer.ndim == 2
    assert tuple(layer.axis_labels) == ("y", "x")
    if shape is not None:
        assert layer.data.shape == shape
    if last is not None:
        assert layer.data.shape[-1] == last


def test_a_layer_napari_refuses_is_a_notification_and_the_others_open(
    make_napari_viewer, errors, tmp_path
):
    """A saved layer whose recorded scale does not fit it (damaged or hand-edited file)."""
    from napari_spectral_clusters.io import ImageData
    from napari_spectral_clusters.io.mat import write_mat

    good = ImageData("cube", np.ones((4, 5, 6), np.float32), channel_axis=0)
    bad = ImageData(
        "bad", np.ones((5, 6), np.uint8), kind="labels", layer_state={"scale": [1.0, 2.0, 3.0]}
    )
    write_mat(tmp_path / "two.mat", [good, bad])
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "two.mat"), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["cube"]
    assert len(errors) == 1 and "bad" in errors[0] and "two.mat" in errors[0]


def test_an_rgb_layer_in_a_mat_file_opens_with_its_labels(make_napari_viewer, tmp_path):
    from napari_spectral_clusters.io import ImageData
    from napari_spectral_clusters.io.mat import write_mat

    rgb = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    labels = np.arange(30, dtype=np.uint8).reshape(5, 6) % 3
    write_mat(
        tmp_path / "pair.mat",
        [
            ImageData("pic", rgb, rgb=True, channel_axis=2),
            ImageData("pic clusters", labels, kind="labels"),
        ],
    )
    viewer = make_napari_viewer()
    layers = {
        layer.name: layer for layer in viewer.open(str(tmp_path / "pair.mat"), plugin=PLUGIN)
    }
    assert layers["pic"].rgb and np.array_equal(layers["pic"].data, rgb)
    assert np.array_equal(layers["pic clusters"].data, labels)


def test_samson_opens_band_first(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = {
        layer.name: layer for layer in viewer.open(str(DATA / "hsi" / "Samson.mat"), plugin=PLUGIN)
    }
    layer = layers["SamSon"]
    assert layer.data.shape == (156, 95, 95) and tuple(layer.axis_labels) == ("band", "y", "x")
    raw = scipy.io.loadmat(DATA / "hsi" / "Samson.mat")["SamSon"]
    np.testing.assert_array_equal(layer.data[:, 40, 3], raw[40, 3])


def test_after_opening_samson_its_cube_not_a_hidden_map_is_the_active_layer(
    make_napari_viewer, qtbot, tmp_path
):
    """The abundance maps go above the cube, hidden; napari made the last of them active, so
    the layer controls showed a hidden map's contrast."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 4)), name="before")
    opened = viewer.open(str(DATA / "hsi" / "Samson.mat"), plugin=PLUGIN)
    assert [layer.visible for layer in opened] == [True, False, False, False]
    qtbot.waitUntil(lambda: viewer.layers.selection.active is opened[0], timeout=2000)
    assert [layer.name for layer in viewer.layers][-1] == "Samson A (3-water)"  # order kept
    # a file whose layers are all shown: napari's choice (the last one) stands
    both = tmp_path / "two.mat"
    scipy.io.savemat(both, {"a": np.ones((6, 7)), "b": np.zeros((6, 7))})
    opened = viewer.open(str(both), plugin=PLUGIN)
    assert len(opened) == 2 and all(layer.visible for layer in opened)
    viewer.layers.selection.active = opened[0]  # as if the user picked it meanwhile
    qtbot.wait(100)
    assert viewer.layers.selection.active is opened[0]


def test_damaged_saved_metadata_opens_with_a_warning(make_napari_viewer, tmp_path, monkeypatch):
    """A labels PNG whose recorded colours were hand-edited into nonsense."""
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    warned = []
    monkeypatch.setattr("napari_spectral_clusters._napari.reader.show_warning", warned.append)
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5) % 3
    info = PngInfo()
    record = {"layer": "labels", "metadata": {"colors": [1, 2, 3, 4]}}
    info.add_text("napari-spectral-clusters", json.dumps(record))
    Image.fromarray(labels, "L").save(tmp_path / "l.png", pnginfo=info)
    (layer,) = make_napari_viewer().open(str(tmp_path / "l.png"), plugin=PLUGIN)
    np.testing.assert_array_equal(layer.data, labels)
    assert warned and "colours" in warned[0]


@pytest.mark.parametrize("rows", [-10, 0, np.nan, 2.5])
def test_nonsense_image_size_scalars_are_ignored(make_napari_viewer, tmp_path, rows):
    scipy.io.savemat(
        tmp_path / "m.mat",
        {"X": np.random.default_rng(0).random((5, 120)), "lines": rows, "cols": -12},
    )
    (layer,) = make_napari_viewer().open(str(tmp_path / "m.mat"), plugin=PLUGIN)
    assert layer.data.shape == (5, 120)


def test_a_folder_named_mat_is_a_notification(make_napari_viewer, tmp_path, errors):
    (tmp_path / "x.mat").mkdir()
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "x.mat"), plugin=PLUGIN)
    assert len(viewer.layers) == 0
    assert errors and "x.mat: it is a folder" in errors[0]
