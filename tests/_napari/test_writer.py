import npe2
import numpy as np
import pytest
from PIL import Image

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.io import read_png
from napari_spectral_clusters.samples import sample_photo

PLUGIN = "napari-spectral-clusters"


def test_labels_png_write_then_read(tmp_path):
    res = cluster_image(sample_photo(), 8)
    path = tmp_path / "clusters.png"
    written = npe2.write(
        str(path), [(res.labels, {"name": "clusters"}, "labels")], plugin_name=PLUGIN
    )
    assert written == [str(path)]
    back = read_png(path)
    np.testing.assert_array_equal(back.data, res.labels)


def test_labels_png_16_bit(tmp_path):
    labels = np.arange(300 * 4, dtype=np.uint16).reshape(30, 40) % 300
    npe2.write(str(tmp_path / "l.png"), [(labels, {}, "labels")], plugin_name=PLUGIN)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "l.png")), labels)


def test_rgba_png_write_then_read_keeps_alpha(tmp_path):
    res = cluster_image(sample_photo(), 8)
    path = tmp_path / "recolored.png"
    npe2.write(str(path), [(res.recolored, {"rgb": True}, "image")], plugin_name=PLUGIN)
    back = read_png(path)
    assert back.rgb
    np.testing.assert_array_equal(back.data, res.recolored)
    assert (back.data[..., 3] == 0).any()


@pytest.fixture
def save_errors(monkeypatch):
    shown = []
    monkeypatch.setattr("napari_spectral_clusters._napari.writer.show_error", shown.append)
    return shown


def test_non_rgb_image_is_refused(tmp_path, save_errors):
    from napari_spectral_clusters._napari.writer import write_rgb_png

    assert write_rgb_png(str(tmp_path / "c.png"), np.zeros((3, 4, 5), np.float32), {}) == []
    assert len(save_errors) == 1 and "c.png" in save_errors[0] and "only RGB" in save_errors[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("nofolder/x.png", np.ones((4, 5), np.uint8), "does not exist"),
        ("file.txt/x.png", np.ones((4, 5), np.uint8), "is not a folder"),
        ("adir.png", np.ones((4, 5), np.uint8), "is a folder"),
        ("cube.png", np.ones((3, 4, 5), np.uint8), "only 2-D labels"),
        ("neg.png", np.full((4, 5), -3, np.int32), "0..65535"),
        ("huge.png", np.full((4, 5), 2**40, np.int64), "colours are kept for labels up to"),
        ("huge.mat", np.full((4, 5), 2**40, np.int64), "colours are kept for labels up to"),
    ],
)
def test_a_labels_layer_that_cannot_be_saved_is_a_notification(
    tmp_path, save_errors, name, data, words
):
    from napari_spectral_clusters._napari import writer

    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "adir.png").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    write = writer.write_labels_png if name.endswith(".png") else writer.write_mat_layers
    args = (data, {"name": "lab"}) if name.endswith(".png") else ([(data, {}, "labels")],)
    assert write(str(tmp_path / name), *args) == []
    assert len(save_errors) == 1 and words in save_errors[0], save_errors
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


# --- round trips of what the widget makes, through napari's plugin machinery --------------


@pytest.fixture
def samson_result(data_dir):
    import scipy.io

    cube = np.moveaxis(scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"], -1, 0)
    return cube, cluster_image(cube, 3, channel_axis=0, random_state=4)


def _cluster_layers(cube, res):
    """The layer tuples the widget builds (Labels with colormap, recoloured RGB, the cube)."""
    from napari.layers import Image, Labels

    from napari_spectral_clusters._napari._colors import label_colormap

    meta = {
        "params": res.params,
        "centers": res.centers,
        "colors": res.colors,
        "counts": res.counts,
        "inertia": res.inertia,
    }
    labels = Labels(
        res.labels, name="SamSon clusters", colormap=label_colormap(res.colors), metadata=meta
    )
    rgb = Image(res.recolored, name="SamSon recolored", rgb=True, metadata=meta)
    src = Image(
        cube,
        name="SamSon",
        metadata={"channel_axis": 0, "wavelengths": np.linspace(401, 889, 156)},
    )
    return src, labels, rgb


def test_cluster_labels_png_round_trip(tmp_path, samson_result):
    cube, res = samson_result
    _, labels, rgb = _cluster_layers(cube, res)
    (path,) = npe2.write(
        str(tmp_path / "c.png"), [labels.as_layer_data_tuple()], plugin_name=PLUGIN
    )
    ((data, kw, kind),) = npe2.read([path], stack=False, plugin_name=PLUGIN)
    assert kind == "labels"
    np.testing.assert_array_equal(data, res.labels)
    back = Image.open(path)
    assert back.mode == "P"  # an indexed PNG whose palette is the cluster colours
    palette = np.asarray(back.getpalette()[: 3 * 4]).reshape(4, 3)
    np.testing.assert_array_equal(palette[1:], res.colors)
    for label, color in enumerate(res.colors, start=1):
        np.testing.assert_allclose(kw["colormap"][label][:3], color / 255)
    assert kw["metadata"]["params"] == res.params
    np.testing.assert_allclose(kw["metadata"]["centers"], res.centers)

    (path,) = npe2.write(str(tmp_path / "r.png"), [rgb.as_layer_data_tuple()], plugin_name=PLUGIN)
    ((data, kw, kind),) = npe2.read([path], stack=False, plugin_name=PLUGIN)
    assert kind == "image" and kw["rgb"]
    np.testing.assert_array_equal(data, res.recolored)
    assert kw["metadata"]["params"] == res.params


def test_all_layers_into_one_mat_and_back(tmp_path, samson_result, data_dir):
    import scipy.io

    cube, res = samson_result
    layers = _cluster_layers(cube, res)
    (path,) = npe2.write(
        str(tmp_path / "all.mat"),
        [lay.as_layer_data_tuple() for lay in layers],
        plugin_name=PLUGIN,
    )
    # a MATLAB user sees the cube as MATLAB stores it, labels, colours, centres, parameters
    m = scipy.io.loadmat(path)
    raw = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"]
    np.testing.assert_array_equal(m["SamSon"], raw)
    np.testing.assert_array_equal(m["SamSon_clusters"], res.labels)
    np.testing.assert_array_equal(m["SamSon_clusters_colors"], res.colors)
    np.testing.assert_allclose(m["SamSon_clusters_centers"], res.centers)
    assert m["SamSon_wavelengths"].shape == (156, 1)
    import json

    assert json.loads(str(m["SamSon_clusters_metadata"][0]))["metadata"]["params"] == res.params

    back = {
        kw["name"]: (data, kw, kind)
        for data, kw, kind in npe2.read([path], stack=False, plugin_name=PLUGIN)
    }
    assert set(back) == {"SamSon", "SamSon clusters", "SamSon recolored"}
    data, kw, kind = back["SamSon"]
    assert kind == "image" and data.shape == (156, 95, 95)
    np.testing.assert_array_equal(data, cube)
    np.testing.assert_allclose(kw["metadata"]["wavelengths"], np.linspace(401, 889, 156))
    data, kw, kind = back["SamSon clusters"]
    assert kind == "labels"
    np.testing.assert_array_equal(data, res.labels)
    assert kw["colormap"][1][:3] == pytest.approx(tuple(res.colors[0] / 255))
    data, kw, kind = back["SamSon recolored"]
    assert kind == "image" and kw["rgb"]
    np.testing.assert_array_equal(data, res.recolored)


def test_a_painted_labels_layer_keeps_its_own_colours(tmp_path):
    from napari.layers import Labels

    painted = np.zeros((10, 12), np.uint8)
    painted[2:5, 3:7] = 3
    layer = Labels(painted)
    (path,) = npe2.write(
        str(tmp_path / "p.png"), [layer.as_layer_data_tuple()], plugin_name=PLUGIN
    )
    rgba = np.asarray(Image.open(path).convert("RGBA"))
    expected = np.round(layer.colormap.map(np.array([3]))[0, :3] * 255)
    np.testing.assert_array_equal(rgba[3, 4, :3], expected)
    assert rgba[0, 0, 3] == 0  # background is transparent


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch, save_errors):
    import scipy.io

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(scipy.io, "savemat", broken)
    from napari_spectral_clusters._napari.writer import write_mat_layers

    assert (
        write_mat_layers(str(tmp_path / "x.mat"), [(np.zeros((4, 4), np.uint8), {}, "labels")])
        == []
    )
    assert save_errors == ["Cannot save x.mat: disk full"]
    assert list(tmp_path.iterdir()) == []


def test_arrays_too_big_for_v5_go_to_v73(tmp_path, monkeypatch):
    import h5py

    from napari_spectral_clusters.io import mat

    monkeypatch.setattr(mat, "V5_LIMIT", 1000)
    cube = np.random.default_rng(0).random((6, 20, 30)).astype(np.float32)
    (path,) = npe2.write(
        str(tmp_path / "big.mat"),
        [(cube, {"name": "cube", "metadata": {"channel_axis": 0}}, "image")],
        plugin_name=PLUGIN,
    )
    with h5py.File(path, "r") as f:  # MATLAB's v7.3 layout: axes reversed
        assert f["cube"].shape == (6, 30, 20)
    ((data, _, kind),) = npe2.read([path], stack=False, plugin_name=PLUGIN)
    assert kind == "image"
    np.testing.assert_array_equal(data, cube)


@pytest.mark.parametrize("suffix", [".zarr", ".mat"])
def test_lazy_cluster_layers_are_saved_block_by_block(
    tmp_path, samson_result, suffix, monkeypatch
):
    """What the widget makes from a lazy cube: dask layers, streamed to disk, read back."""
    import dask.array as da
    from napari.layers import Image, Labels

    from napari_spectral_clusters import lazy

    monkeypatch.setattr(lazy, "READ_ONCE_SHARE", 0.0)  # as for a cube bigger than memory
    cube, _ = samson_result
    res = cluster_image(da.from_array(cube, chunks=(156, 32, 32)), 3, channel_axis=0)
    computed = []

    def counted(block, block_info=None):
        computed.append(block.shape)
        return block

    lazy_labels = res.labels.map_blocks(counted, dtype=res.labels.dtype)
    labels = Labels(lazy_labels, name="SamSon clusters", metadata={"colors": res.colors})
    rgb = Image(res.recolored, name="SamSon recolored", rgb=True)
    assert isinstance(labels.data, da.Array)
    computed.clear()  # napari itself computed the view when it made the layer
    (path,) = npe2.write(
        str(tmp_path / f"clusters{suffix}"),
        [labels.as_layer_data_tuple(), rgb.as_layer_data_tuple()],
        plugin_name=PLUGIN,
    )
    blocks = [shape for shape in computed if shape != (0, 0)]  # (0, 0): dask's dtype probe
    assert max(blocks) <= (32, 32) and len(blocks) == 9  # each block once, never the whole
    back = {
        kw["name"]: (data, kind)
        for data, kw, kind in npe2.read([path], stack=False, plugin_name=PLUGIN)
    }
    data, kind = back["SamSon clusters"]
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), res.labels.compute())
    data, kind = back["SamSon recolored"]
    np.testing.assert_array_equal(np.asarray(data), res.recolored.compute())


def test_saving_over_the_file_a_shown_layer_came_from_is_refused(
    make_napari_viewer, tmp_path, data_dir
):
    """The widget's *Save…* and File ▸ Save onto the cube's own file replaced the cube with
    the clusters: an input file is never written over (as the CLI refuses to)."""
    import hashlib
    import shutil
    import warnings

    from napari.plugins.io import save_layers
    from napari.utils.notifications import notification_manager

    from napari_spectral_clusters._napari.widget import ClusterWidget
    from napari_spectral_clusters._napari.writer import write_labels_png

    cube_file = tmp_path / "Samson.mat"
    shutil.copy(data_dir / "hsi" / "Samson.mat", cube_file)
    photo_file = tmp_path / "pic.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (8, 1))[..., None].repeat(3, -1)).save(
        photo_file
    )
    originals = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (cube_file, photo_file)}
    viewer = make_napari_viewer()
    # what napari shows (the writer runs through napari's plugin machinery, which at napari
    # 0.5 does not see a patched module attribute)
    start = len(notification_manager.records)

    class Said:
        def __getitem__(self, i):
            return self.all()[i]

        def __len__(self):
            return len(self.all())

        def all(self):
            said = [str(r.message) for r in notification_manager.records[start:]]
            return [text for text in said if text.startswith("Cannot save")]

    save_errors = Said()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    assert isinstance(w, ClusterWidget)
    cube = viewer.open(str(cube_file), plugin=PLUGIN)[0]
    (photo,) = viewer.open(str(photo_file), plugin=PLUGIN)
    w.image.value = cube
    w.n_clusters.value = 3
    w.run(wait=True)
    clusters = viewer.layers["SamSon clusters"]
    assert w.save_result(str(cube_file)) is None
    assert "Samson.mat" in save_errors[-1] and "SamSon was opened from it" in save_errors[-1]
    recolored = viewer.layers["SamSon recolored"]
    with warnings.catch_warnings():  # napari >= 0.6 warns that nothing was written
        warnings.simplefilter("ignore", UserWarning)
        assert save_layers(str(cube_file), [clusters, recolored], plugin=PLUGIN) == []
    # (one layer through napari 0.5's save_layers: its own IndexError when a writer refuses)
    assert write_labels_png(str(photo_file), np.asarray(clusters.data), {"name": "c"}) == []
    assert "pic was opened from it" in save_errors[-1]
    assert len(save_errors) == 3
    for path, digest in originals.items():  # the inputs are as they were
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
    # another name is written, and the cube's own file still opens as the cube
    assert w.save_result(str(tmp_path / "result.mat")) == [str(tmp_path / "result.mat")]
    assert photo.name == "pic"
    again = viewer.open(str(cube_file), plugin=PLUGIN)[0]
    np.testing.assert_array_equal(again.data, cube.data)
    # a saved result opened, edited and saved again over its own file: allowed, it holds
    # the layers written
    for name in ("SamSon clusters", "SamSon recolored"):
        viewer.layers.remove(name)
    reopened = viewer.open(str(tmp_path / "result.mat"), plugin=PLUGIN)
    assert sorted(layer.name for layer in reopened) == ["SamSon clusters", "SamSon recolored"]
    edited = next(layer for layer in reopened if layer.name == "SamSon clusters")
    edited.data[:5, :5] = 2
    written = save_layers(str(tmp_path / "result.mat"), reopened, plugin=PLUGIN)
    assert written == [str(tmp_path / "result.mat")] and len(save_errors) == 3
    back = {layer.name: layer for layer in viewer.open(written[0], plugin=PLUGIN)}
    assert (np.asarray(back["SamSon clusters [1]"].data)[:5, :5] == 2).all()
