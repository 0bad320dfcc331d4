import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters._napari.sample_data import make_sample_cube


def test_help_lists_demo():
    out = subprocess.run(
        [sys.executable, "-m", "napari_spectral_clusters.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "demo" in out


@pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("xvfb-run") is None,
    reason="the headless demo runs napari under xvfb-run on Linux",
)
def test_demo_without_display_writes_a_screenshot(tmp_path):
    """The README's first command on a headless machine: napari under Xvfb, a screenshot."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    exe = shutil.which("spectral-clusters", path=os.path.dirname(sys.executable))
    proc = subprocess.run(
        [exe, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    shot = np.asarray(Image.open(tmp_path / "spectral-clusters-demo.png").convert("RGB"))
    assert shot.shape[0] > 400 and shot.shape[1] > 600
    # the recoloured image is on screen: every one of the 4 cluster colours covers pixels
    (cube, kw, _), _ = make_sample_cube()
    expected = cluster_image(cube, 4, channel_axis=0, wavelengths=kw["metadata"]["wavelengths"])
    for color in expected.colors:
        assert np.count_nonzero((shot == color).all(axis=-1)) > 500, color


# --- spectral-clusters run: the installed command, in a subprocess ---------------------------

EXE = shutil.which("spectral-clusters", path=os.path.dirname(sys.executable))


def _run(*args, cwd=None, env=None):
    return subprocess.run(
        [EXE, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )


@pytest.fixture
def inputs(tmp_path, data_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    for src in ("hsi/Samson.mat", "png/pngsuite/basn6a08.png", "matlab/malformed1.mat"):
        shutil.copy(data_dir / src, folder)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_run_on_a_folder_with_a_broken_file(tmp_path, inputs, data_dir):
    import csv

    import scipy.io

    from napari_spectral_clusters import cluster_image
    from napari_spectral_clusters.io import read_png

    out = tmp_path / "out"
    proc = _run("run", inputs, "-k", 3, "--seed", 5, "-o", out)
    assert proc.returncode == 1  # one input failed ...
    assert "malformed1.mat" in proc.stdout and "could not be read" in proc.stdout
    assert "clustered 2 of 3 file(s)" in proc.stdout
    assert "3/3" in proc.stderr  # progress, one line per file
    # ... and the good ones still completed, with the widget's engine and the same seed
    cube = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"]
    expected = cluster_image(np.moveaxis(cube, -1, 0), 3, channel_axis=0, random_state=5)
    labels = read_png(out / "Samson_clusters.png")
    assert labels.kind == "labels"
    np.testing.assert_array_equal(labels.data, expected.labels)
    np.testing.assert_array_equal(labels.metadata["colors"], expected.colors)
    recolored = read_png(out / "Samson_recolored.png").data
    np.testing.assert_array_equal(recolored, expected.recolored)
    with open(out / "Samson_clusters.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["pixels"]) for r in rows] == expected.counts.tolist()
    assert float(rows[0]["mean_band10"]) == pytest.approx(expected.centers[0, 10], rel=1e-6)
    photo = read_png(out / "basn6a08_recolored.png").data
    assert photo.shape == (32, 32, 4) and (photo[..., 3] == 0).any()  # alpha kept
    assert not list(out.glob("malformed1*"))


def test_run_applies_a_saved_model_and_checks_it(tmp_path, inputs):
    first = tmp_path / "first"
    assert _run("run", inputs / "Samson.mat", "-k", 3, "-o", first).returncode == 0
    again = tmp_path / "again"
    proc = _run(
        "run",
        inputs / "Samson.mat",
        inputs / "basn6a08.png",
        "--model",
        first / "Samson_model.npz",
        "-o",
        again,
    )
    from napari_spectral_clusters.io import read_png

    np.testing.assert_array_equal(
        read_png(again / "Samson_clusters.png").data, read_png(first / "Samson_clusters.png").data
    )
    assert proc.returncode == 1
    assert "fitted on 156 channels" in proc.stdout  # the PNG has 3 colours, not 156 bands
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    proc = _run("run", inputs / "Samson.mat", "--model", bad, "-o", tmp_path / "x")
    assert proc.returncode == 2 and "cannot use --model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_refuses_to_overwrite_unless_asked(tmp_path, inputs):
    out = tmp_path / "out"
    png = inputs / "basn6a08.png"
    assert _run("run", png, "-k", 2, "-o", out).returncode == 0
    before = (out / "basn6a08_clusters.png").read_bytes()
    proc = _run("run", png, "-k", 4, "-o", out)
    assert proc.returncode == 1 and "would overwrite" in proc.stdout
    assert (out / "basn6a08_clusters.png").read_bytes() == before
    assert _run("run", png, "-k", 4, "-o", out, "--overwrite").returncode == 0
    assert (out / "basn6a08_clusters.png").read_bytes() != before


def test_run_with_a_glob_and_nothing_to_do(tmp_path, inputs):
    out = tmp_path / "out"
    assert _run("run", f"{inputs}/*.png", "-k", 2, "-o", out).returncode == 0
    assert sorted(p.name for p in out.iterdir())[0] == "basn6a08_clusters.csv"
    proc = _run("run", f"{inputs}/*.tif", "-o", out)
    assert proc.returncode == 2 and "nothing to do" in proc.stderr


def test_run_help_documents_the_outputs():
    out = _run("run", "--help").stdout
    for word in (
        "_clusters.png",
        "_recolored.png",
        "_clusters.csv",
        "_model.npz",
        "--model",
        "--seed",
        "--preprocessing",
        "Exit status",
    ):
        assert word in out


def test_run_on_a_local_dask_cluster_gives_the_same_labels(tmp_path, inputs):
    from napari_spectral_clusters.io import read_png

    plain, dist = tmp_path / "plain", tmp_path / "dist"
    assert _run("run", inputs / "Samson.mat", "-k", 3, "-o", plain).returncode == 0
    proc = _run("run", inputs / "Samson.mat", "-k", 3, "-o", dist, "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    assert "(2 workers)" in proc.stderr
    a = read_png(plain / "Samson_clusters.png").data
    b = read_png(dist / "Samson_clusters.png").data
    # the lazy path draws its sample differently: the same clusters, nearly every pixel
    assert np.mean(a == b) > 0.99


def test_run_with_an_unreachable_scheduler_says_so(tmp_path, inputs):
    proc = _run("run", inputs / "basn6a08.png", "-o", tmp_path, "--scheduler", "tcp://127.0.0.1:9")
    assert proc.returncode == 2 and "cannot use a dask cluster" in proc.stderr


def test_a_big_zarr_cube_is_clustered_and_written_block_by_block(tmp_path, data_dir):
    """A folder with a zarr store (opened lazily, as big stores are): streamed .mat or zarr."""
    import dask.array as da
    import h5py
    import scipy.io

    from napari_spectral_clusters.io import read_mat, read_zarr

    raw = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"]
    folder = tmp_path / "in"
    da.to_zarr(da.from_array(raw, chunks=(32, 32, 156)), str(folder / "samson.zarr"))
    lazy = {"SPECTRAL_CLUSTERS_LAZY_BYTES": "1024"}
    proc = _run("run", folder, "-k", 3, "-o", tmp_path / "auto", env=lazy)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "auto"
    assert sorted(p.name for p in out.iterdir()) == [
        "samson_clusters.csv",
        "samson_clusters.mat",
        "samson_model.npz",
        "samson_recolored.mat",
    ]
    assert h5py.is_hdf5(out / "samson_clusters.mat")  # v7.3: written block by block
    (labels,) = read_mat(out / "samson_clusters.mat")
    expected = cluster_image(np.moveaxis(raw, -1, 0), 3, channel_axis=0).labels
    assert labels.kind == "labels" and np.mean(np.asarray(labels.data) == expected) > 0.99

    proc = _run(
        "run", folder / "samson.zarr", "-k", 3, "-o", tmp_path / "z", "--format", "zarr", env=lazy
    )
    assert proc.returncode == 0, proc.stderr
    (labels_z,) = read_zarr(tmp_path / "z" / "samson_clusters.zarr")
    np.testing.assert_array_equal(np.asarray(labels_z.data), np.asarray(labels.data))
    (rgb,) = read_zarr(tmp_path / "z" / "samson_recolored.zarr")
    assert rgb.rgb and rgb.data.shape == (95, 95, 3)
    np.testing.assert_array_equal(
        np.asarray(rgb.data), labels_z.metadata["colors"][np.asarray(labels_z.data) - 1]
    )


def test_a_failure_while_writing_leaves_none_of_that_inputs_outputs(
    tmp_path, data_dir, monkeypatch
):
    from napari_spectral_clusters import batch

    def unplugged(*args, **kwargs):
        raise OSError("disk unplugged")

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(batch, "write_png", unplugged)  # after the labels PNG was written
    with pytest.raises(OSError, match="unplugged"):
        batch.cluster_file(data_dir / "png" / "pngsuite" / "basn6a08.png", out, n_clusters=3)
    assert list(out.iterdir()) == []  # not the labels alone, and no staging folder left
    monkeypatch.undo()
    report = batch.cluster_file(data_dir / "png" / "pngsuite" / "basn6a08.png", out, n_clusters=3)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in report.outputs)


def test_a_big_v73_cube_on_local_workers(tmp_path, data_dir):
    """HDF5-backed dask arrays go to worker processes, and results stream back to .mat."""
    import scipy.io

    from napari_spectral_clusters.io import read_mat
    from napari_spectral_clusters.io.mat import write_mat73

    raw = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"].astype(np.float32)
    write_mat73(tmp_path / "samson73.mat", {"cube": raw})
    lazy = {"SPECTRAL_CLUSTERS_LAZY_BYTES": "1024"}
    proc = _run(
        "run", tmp_path / "samson73.mat", "-k", 3, "-o", tmp_path / "out", "--workers", 2, env=lazy
    )
    assert proc.returncode == 0, proc.stderr
    (labels,) = read_mat(tmp_path / "out" / "samson73_clusters.mat")
    (rgb,) = read_mat(tmp_path / "out" / "samson73_recolored.mat")
    expected = cluster_image(np.moveaxis(raw, -1, 0), 3, channel_axis=0).labels
    assert np.mean(np.asarray(labels.data) == expected) > 0.99
    np.testing.assert_array_equal(
        np.asarray(rgb.data), labels.metadata["colors"][np.asarray(labels.data) - 1]
    )
