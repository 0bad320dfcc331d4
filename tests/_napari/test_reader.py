from pathlib import Path

import npe2
import numpy as np
import pytest
import scipy.io

from napari_spectral_clusters._napari.reader import get_reader

PLUGIN = "napari-spectral-clusters"


def test_reader_declines_other_files(tmp_path):
    assert get_reader(str(tmp_path / "a.tif")) is None
    assert get_reader([str(tmp_path / "a.png"), str(tmp_path / "b.tif")]) is None


def test_samson_through_npe2(data_dir):
    layers = npe2.read([str(data_dir / "hsi" / "Samson.mat")], stack=False, plugin_name=PLUGIN)
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in layers}
    data, kw, kind = by_name["SamSon"]
    assert kind == "image"
    assert data.shape == (156, 95, 95)
    assert kw["axis_labels"] == ("band", "y", "x")
    assert kw["rgb"] is False
    assert kw["metadata"]["channel_axis"] == 0
    raw = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"]
    np.testing.assert_array_equal(data[:, 40, 3], raw[40, 3])


def test_ground_truth_through_npe2(data_dir):
    ((data, _, kind),) = npe2.read(
        [str(data_dir / "hsi" / "Indian_pines_gt.mat")], stack=False, plugin_name=PLUGIN
    )
    assert kind == "labels"
    assert data.shape == (145, 145)


def test_rgba_png_through_npe2(data_dir):
    ((data, kw, kind),) = npe2.read(
        [str(data_dir / "png" / "pngsuite" / "basn6a08.png")], stack=False, plugin_name=PLUGIN
    )
    assert kind == "image" and kw["rgb"] is True and data.shape == (32, 32, 4)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("corrupted_zlib_checksum.mat", "could not be read"),
        ("testdouble_4.2c_SOL2.mat", "holds no image"),
    ],
)
def test_bad_file_is_a_notification_not_a_crash(data_dir, name, words, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_spectral_clusters._napari.reader.show_error", shown.append)
    reader = get_reader(str(data_dir / "matlab" / name))
    assert reader(str(data_dir / "matlab" / name)) == [(None,)]
    assert len(shown) == 1
    assert shown[0].count(name) == 1 and words in shown[0]  # the file named once


def test_a_file_that_crashes_the_parser_is_a_notification_and_napari_lives_on(
    data_dir, monkeypatch
):
    shown = []
    monkeypatch.setattr("napari_spectral_clusters._napari.reader.show_error", shown.append)
    bad = str(data_dir / "hostile" / "segfault_miMATRIX_offset203.mat")
    good = str(data_dir / "hsi" / "Samson.mat")
    layers = get_reader([bad, good])([bad, good])
    assert len(shown) == 1 and "segfault_miMATRIX_offset203.mat" in shown[0]
    assert "crashed" in shown[0]
    names = [kw["name"] for _, kw, _ in layers]  # the other file opened
    assert names == ["SamSon", "Samson A (1-rock)", "Samson A (2-Tree)", "Samson A (3-water)"]


def test_several_pngs_open_as_one_stack(tmp_path):
    from napari_spectral_clusters.io import write_png

    bands = [np.full((5, 6), i * 10, np.uint8) for i in range(4)]
    paths = [str(write_png(tmp_path / f"b{i}.png", b)) for i, b in enumerate(bands)]
    ((data, kw, kind),) = get_reader(paths)(paths)
    assert kind == "image" and data.shape == (4, 5, 6)
    assert kw["metadata"]["channel_axis"] == 0
    assert kw["axis_labels"] == ("band", "y", "x")


def test_complex_data_warns_through_a_notification(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_spectral_clusters._napari.reader.show_warning", shown.append)
    scipy.io.savemat(tmp_path / "z.mat", {"z": np.ones((3, 4, 5)) * 1j})
    ((data, _, _),) = get_reader(str(tmp_path / "z.mat"))(str(tmp_path / "z.mat"))
    assert np.isrealobj(data) and shown and "complex" in shown[0]


def test_zarr_store_through_npe2(tmp_path, data_dir, monkeypatch):
    import dask.array as da

    raw = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"]  # rows x cols x bands
    da.to_zarr(da.from_array(raw, chunks=(32, 32, 156)), str(tmp_path / "samson.zarr"))
    monkeypatch.setenv("SPECTRAL_CLUSTERS_LAZY_BYTES", "1024")
    assert get_reader(str(tmp_path / "samson.zarr")) is not None
    ((data, kw, kind),) = npe2.read(
        [str(tmp_path / "samson.zarr")], stack=False, plugin_name=PLUGIN
    )
    assert kind == "image" and kw["name"] == "samson" and kw["metadata"]["channel_axis"] == 0
    assert isinstance(data, da.Array) and data.shape == (156, 95, 95)
    np.testing.assert_array_equal(data[:, 40, 3].compute(), raw[40, 3])


HOSTILE_STORES = sorted((Path(__file__).parents[1] / "data" / "hostile").glob("*.zarr"))


@pytest.mark.parametrize("store", HOSTILE_STORES, ids=[p.name for p in HOSTILE_STORES])
def test_stores_the_fuzzer_found_open_or_are_refused_and_never_freeze_napari(store, monkeypatch):
    """Mutants tools/fuzz_readers.py found: each hung napari or broke a layer. Now every
    layer the reader gives napari builds at once, or the file is refused with a message."""
    import threading

    from napari.layers import Layer

    shown = []
    monkeypatch.setattr("napari_spectral_clusters._napari.reader.show_error", shown.append)
    monkeypatch.setattr("napari_spectral_clusters._napari.reader.show_warning", shown.append)
    layers = get_reader(str(store))(str(store))
    if [len(layer) for layer in layers] == [1]:  # [(None,)]: refused
        assert any(store.name in message for message in shown)
        return
    built = []
    for data, kwargs, kind in layers:
        worker = threading.Thread(
            target=lambda d=data, kw=kwargs, k=kind: built.append(Layer.create(d, kw, k)),
            daemon=True,
        )
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), f"napari is still reading {kwargs['name']}"
    assert len(built) == len(layers)


def test_a_cube_opens_with_contrast_from_robust_percentiles(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.uniform(100, 300, (20, 30, 40))
    cube[0] *= 0.1  # a dim first band
    cube[5, 3, 4] = 60_000  # a hot pixel that whole-cube limits would stretch to
    scipy.io.savemat(tmp_path / "c.mat", {"cube": cube})
    ((_, kwargs, kind),) = get_reader(str(tmp_path / "c.mat"))(str(tmp_path / "c.mat"))
    lo, hi = kwargs["contrast_limits"]
    assert kind == "image" and hi < 1000  # not stretched to the hot pixel
    expected = np.percentile(cube, [0.5, 99.5])
    assert lo == pytest.approx(expected[0], rel=0.05) and hi == pytest.approx(
        expected[1], rel=0.05
    )
