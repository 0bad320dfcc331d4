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
    """The README's first command on a headless machine: napari under Xvfb, a screenshot;
    the user's saved widget settings are left as they were (the demo sets its own k)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # Qt's and napari's settings: here
    saved = tmp_path / "config" / "napari-spectral-clusters" / "kmeans-widget.ini"
    saved.parent.mkdir(parents=True)
    saved.write_text("[General]\nn_clusters=6\nrandom_state=11\n")
    exe = shutil.which("spectral-clusters", path=os.path.dirname(sys.executable))
    proc = subprocess.run(
        [exe, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert saved.read_text() == "[General]\nn_clusters=6\nrandom_state=11\n"
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


def test_a_failed_inputs_name_is_not_said_twice_on_its_line(tmp_path, data_dir):
    notes, empty = tmp_path / "notes.txt", tmp_path / "empty.png"
    notes.write_text("not an image")
    empty.write_bytes(b"")
    for joint in ((), ("--joint",)):
        out = tmp_path / f"out{len(joint)}"
        samson = data_dir / "hsi" / "Samson.mat"
        proc = _run("run", notes, empty, samson, "-k", 3, *joint, "-o", out)
        assert proc.returncode == 1
        failed = [line for line in proc.stderr.splitlines() if "FAILED" in line]
        assert len(failed) == 2, proc.stderr
        # "notes.txt: FAILED: notes.txt: not a ..." once; the file is named at the front
        assert failed[0].count("notes.txt") == 1 and "not a .mat, .png or .zarr" in failed[0]
        assert failed[1].count("empty.png") == 1, failed[1]
        assert "empty.png: FAILED: it is empty (0 bytes)" in failed[1]
        # one progress line per input, counted the same way in both kinds of run
        progress = [line.split()[1] for line in proc.stderr.splitlines() if line[:1] == "["]
        assert progress == ["1/3", "2/3", "3/3"], proc.stderr


def test_run_on_a_folder_with_a_broken_file(tmp_path, inputs, data_dir):
    import csv

    import scipy.io

    from napari_spectral_clusters import cluster_image
    from napari_spectral_clusters.io import read_png

    out = tmp_path / "out"
    proc = _run("run", inputs, "-k", 3, "--seed", 5, "-o", out)
    assert proc.returncode == 1  # one input failed ...
    # the summary line names the file once: "<path>: it could not be read ..."
    (line,) = [line for line in proc.stdout.splitlines() if "malformed1.mat" in line]
    assert line.count("malformed1.mat") == 1 and ": it could not be read" in line, line
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
    with open(out / "basn6a08_clusters.csv") as f:  # a picture's features are its colours
        header = next(csv.reader(f))
    assert header[4:] == ["mean_R", "mean_G", "mean_B", "std_R", "std_G", "std_B"]
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
    assert proc.returncode == 2 and "would overwrite" in proc.stderr
    assert f"{out / 'basn6a08_clusters.png'} exists" in proc.stderr
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
    lazy = {"SPECTRAL_CLUSTERS_LAZY_BYTES": "1024", "SPECTRAL_CLUSTERS_READ_ONCE_SHARE": "0"}
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


def test_a_file_that_crashes_the_parser_fails_alone_and_the_batch_goes_on(tmp_path, data_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(data_dir / "hostile" / "segfault_miMATRIX_offset203.mat", folder / "a_bad.mat")
    shutil.copy(data_dir / "hsi" / "Samson.mat", folder / "b_good.mat")
    proc = _run("run", folder, "-k", 3, "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert "a_bad.mat: it is damaged" in proc.stdout and "crashed" in proc.stdout
    assert "clustered 1 of 2 file(s)" in proc.stdout
    assert (tmp_path / "out" / "b_good_clusters.png").exists()
    assert not list((tmp_path / "out").glob("a_bad*"))


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


def test_an_interrupt_while_moving_outputs_in_leaves_none_of_them(tmp_path, data_dir, monkeypatch):
    import os

    from napari_spectral_clusters import batch

    out = tmp_path / "out"
    out.mkdir()
    real_link, calls = os.link, []

    def link_then_interrupt(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # two outputs are in place when Ctrl-C arrives
            raise KeyboardInterrupt
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        batch.cluster_file(data_dir / "png" / "pngsuite" / "basn6a08.png", out, n_clusters=3)
    assert len(calls) == 3
    assert list(out.iterdir()) == []


def test_a_run_racing_another_on_one_folder_never_replaces_its_outputs(
    tmp_path, data_dir, monkeypatch
):
    from napari_spectral_clusters import batch

    out = tmp_path / "out"
    out.mkdir()
    real_write = batch._write_outputs

    def another_run_writes_meanwhile(outputs, *args):
        real_write(outputs, *args)
        (out / "basn6a08_recolored.png").write_bytes(b"the other run's picture")

    monkeypatch.setattr(batch, "_write_outputs", another_run_writes_meanwhile)
    with pytest.raises(batch.BatchError, match=r"basn6a08_recolored\.png exists.*none of its"):
        batch.cluster_file(data_dir / "png" / "pngsuite" / "basn6a08.png", out, n_clusters=3)
    assert [p.name for p in out.iterdir()] == ["basn6a08_recolored.png"]
    assert (out / "basn6a08_recolored.png").read_bytes() == b"the other run's picture"


def test_outputs_get_the_users_normal_permissions(tmp_path, data_dir):
    import os

    from napari_spectral_clusters import batch

    umask = os.umask(0o022)
    try:
        report = batch.cluster_file(
            data_dir / "png" / "pngsuite" / "basn6a08.png", tmp_path, n_clusters=3
        )
    finally:
        os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in report.outputs}
    assert modes and all(mode == 0o644 for mode in modes.values()), modes


def test_a_big_v73_cube_on_local_workers(tmp_path, data_dir):
    """HDF5-backed dask arrays go to worker processes, and results stream back to .mat."""
    import scipy.io

    from napari_spectral_clusters.io import read_mat
    from napari_spectral_clusters.io.mat import write_mat73

    raw = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"].astype(np.float32)
    write_mat73(tmp_path / "samson73.mat", {"cube": raw})
    lazy = {"SPECTRAL_CLUSTERS_LAZY_BYTES": "1024", "SPECTRAL_CLUSTERS_READ_ONCE_SHARE": "0"}
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


# --- everything knowable is checked before anything is clustered ---------------------------


@pytest.fixture
def clustered(monkeypatch):
    return _record_clustering(monkeypatch)


def _record_clustering(monkeypatch) -> list:
    """The images the CLI clusters (or labels with a model) from now on; a test that expects
    none asserts the list is empty (an error raised here is reported as a failed input)."""
    from napari_spectral_clusters import batch

    calls = []

    def record(image, *args, **kwargs):
        calls.append(image.shape)
        raise AssertionError("nothing may be clustered")

    monkeypatch.setattr(batch, "cluster_image", record)
    monkeypatch.setattr(batch, "apply_model", record)
    return calls


def _main(*args) -> int:
    from napari_spectral_clusters import cli

    return cli.main([str(a) for a in args])


def test_existing_outputs_stop_the_run_before_anything_is_clustered(
    tmp_path, inputs, clustered, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    old = {
        "Samson_clusters.png": b"old",  # auto writes Samson (an in-memory cube) as PNG ...
        "basn6a08_model.npz": b"old",
        "Samson_clusters.mat": b"old",  # ... so its .mat names are free
        "malformed1_clusters.png": b"old",  # unreadable: it will fail and write nothing
    }
    for name, content in old.items():
        (out / name).write_bytes(content)
    assert _main("run", inputs, "-k", 3, "-o", out) == 2
    err = capsys.readouterr().err
    assert "would overwrite 2 file(s); nothing was clustered" in err
    assert f"\n  {out / 'Samson_clusters.png'} exists (an output of " in err
    assert f"\n  {out / 'basn6a08_model.npz'} exists (an output of " in err
    assert "Samson_clusters.mat" not in err and "malformed1" not in err
    assert "--overwrite" in err
    assert clustered == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


@pytest.mark.parametrize("kind", ["zarr", "v7.3 mat"])
def test_a_lazy_cube_is_checked_against_the_names_it_will_write_without_reading_it(
    tmp_path, data_dir, monkeypatch, clustered, capsys, kind
):
    """Big cubes are written as .mat: an old PNG is no conflict, an old .mat is, and finding
    out reads no block of the cube."""
    import dask.array as da
    import scipy.io

    from napari_spectral_clusters.io.mat import write_mat73

    raw = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"].astype(np.float32)
    if kind == "zarr":
        cube = tmp_path / "cube.zarr"
        da.to_zarr(da.from_array(raw, chunks=(32, 32, 156)), str(cube))
    else:
        cube = write_mat73(tmp_path / "cube.mat", {"cube": raw})
    monkeypatch.setenv("SPECTRAL_CLUSTERS_LAZY_BYTES", "1024")

    def no_reading(*args, **kwargs):
        raise AssertionError("the cube was read")

    monkeypatch.setattr(da.Array, "__array__", no_reading)
    monkeypatch.setattr(da.Array, "compute", no_reading)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cube_clusters.png").write_bytes(b"old")
    (out / "cube_recolored.mat").write_bytes(b"old")
    assert _main("run", cube, "-o", out) == 2
    err = capsys.readouterr().err
    assert "would overwrite 1 file(s)" in err and f"{out / 'cube_recolored.mat'} exists" in err
    assert "cube_clusters.png" not in err
    assert clustered == []


def test_an_output_that_would_replace_an_input_is_refused_even_with_overwrite(
    tmp_path, data_dir, monkeypatch, capsys
):
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(data_dir / "png" / "pngsuite" / "basn6a08.png", folder)
    assert _main("run", folder, "-k", 2, "-o", folder) == 0  # outputs beside the inputs
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    capsys.readouterr()
    clustered = _record_clustering(monkeypatch)
    # the folder now holds basn6a08_clusters.png and _recolored.png as inputs too
    assert _main("run", folder, "-k", 2, "-o", folder, "--overwrite") == 2
    err = capsys.readouterr().err
    assert f"{folder / 'basn6a08_clusters.png'} is an input of this run" in err
    assert f"{folder / 'basn6a08_recolored.png'} is an input of this run" in err
    assert "inputs are never replaced" in err
    assert clustered == []
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_inputs_with_one_name_write_separate_outputs(tmp_path, inputs, capsys):
    """x.mat and x.png would both write x_clusters.csv: the second gets a suffix no other
    input has as its own name (x_2.png is an input, so x_3), and nothing is overwritten."""
    import csv

    folder = tmp_path / "same names"
    folder.mkdir()
    shutil.copy(inputs / "Samson.mat", folder / "x.mat")
    shutil.copy(inputs / "basn6a08.png", folder / "x.png")
    shutil.copy(inputs / "basn6a08.png", folder / "x_2.png")
    out = tmp_path / "out"
    assert _main("run", folder, "-k", 2, "-o", out) == 0
    err = capsys.readouterr().err
    assert "x.png (as x_3_*)" in err and "x_2.png:" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}_{what}"
        for stem in ("x", "x_2", "x_3")
        for what in ("clusters.png", "recolored.png", "clusters.csv", "model.npz")
    )
    with open(out / "x_clusters.csv") as f:
        assert sum(int(row["pixels"]) for row in csv.DictReader(f)) == 95 * 95  # the cube


@pytest.mark.parametrize(
    ("names", "stems"),
    [
        (["a.mat", "a.png"], ["a", "a_2"]),
        (["a.png", "b/a.png", "a_2.png"], ["a", "a_3", "a_2"]),
        (["a_2.png", "a.png", "b/a.png"], ["a_2", "a", "a_3"]),
        (["Scene.png", "scene.mat"], ["Scene", "scene_2"]),  # one file on macOS and Windows
        (["a.png", "b.png"], ["a", "b"]),
    ],
)
def test_unique_stems(names, stems):
    from pathlib import Path

    from napari_spectral_clusters.batch import unique_stems

    assert unique_stems([Path(n) for n in names]) == stems


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-k", 0], "-k must be at least 1"),
        (["--seed", -1], "--seed must be 0 or more, not -1"),
        (["--workers", 0], "--workers must be at least 1, not 0"),
        (["--model", "{tmp}/missing.npz"], "missing.npz does not exist (in "),
        (["--model", "{tmp}"], "is a folder; choose a model file (.npz)"),
        (["--model", "{tmp}/garbage.npz"], "garbage.npz is not a readable model file"),
        (["-o", "{tmp}/garbage.npz"], "is a file, not a folder"),
        (["-o", "{tmp}/garbage.npz/out"], "cannot write into -o"),
        (["{tmp}/typo.png"], "no .mat, .png or .zarr input matches"),
        (["--scheduler", "nowhere"], "cannot use a dask cluster"),
        (["SPECTRAL_CLUSTERS_LAZY_BYTES=lots"], "SPECTRAL_CLUSTERS_LAZY_BYTES must be"),
    ],
)
def test_bad_options_are_one_line_errors_before_any_input_is_read(
    tmp_path, inputs, monkeypatch, capsys, args, message
):
    from napari_spectral_clusters import batch

    (tmp_path / "garbage.npz").write_bytes(b"garbage")
    args = [str(a).format(tmp=tmp_path) for a in args]
    for setting in [a for a in args if "=" in a]:
        monkeypatch.setenv(*setting.split("="))
        args.remove(setting)
    if "-o" not in args:
        args += ["-o", tmp_path / "out"]
    monkeypatch.setattr(batch, "read_image", None)  # calling it would fail the test
    assert _main("run", inputs / "basn6a08.png", *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert all(line.startswith("spectral-clusters: ") for line in err.splitlines()), err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_bad_model_or_output_folder_is_one_line_without_a_traceback(tmp_path, inputs):
    """The installed command, as users see it."""
    png = inputs / "basn6a08.png"
    for args in (["--model", tmp_path], ["-o", png / "out"]):
        proc = _run("run", png, *args, *(["-o", tmp_path / "out"] if "-o" not in args else []))
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stdout == ""
    assert not (tmp_path / "out").exists()


def test_cluster_file_checks_its_outputs_before_clustering(tmp_path, data_dir, clustered):
    import scipy.io

    from napari_spectral_clusters import batch

    out = tmp_path / "out"
    out.mkdir()
    (out / "basn6a08_clusters.csv").write_text("old")
    png = data_dir / "png" / "pngsuite" / "basn6a08.png"
    with pytest.raises(batch.BatchError, match=r"would overwrite basn6a08_clusters\.csv"):
        batch.cluster_file(png, out, n_clusters=3)
    scipy.io.savemat(tmp_path / "volume.mat", {"cube": np.ones((6, 5, 4, 3))})
    with pytest.raises(batch.BatchError, match="3-D labels cannot be saved as PNG"):
        batch.cluster_file(tmp_path / "volume.mat", out, n_clusters=3, fmt="png")
    assert clustered == []


def test_run_with_a_preprocessing_pipeline_and_a_bad_one(tmp_path, inputs, data_dir):
    import scipy.io

    from napari_spectral_clusters import cluster_image
    from napari_spectral_clusters.io import read_png

    spec = "range(10, 140, index=True) | savgol(7, 2) | snv"
    out = tmp_path / "out"
    proc = _run("run", inputs / "Samson.mat", "-k", 3, "--preprocess", spec, "-o", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cube = scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"]
    expected = cluster_image(np.moveaxis(cube, -1, 0), 3, channel_axis=0, preprocessing=spec)
    np.testing.assert_array_equal(read_png(out / "Samson_clusters.png").data, expected.labels)
    # the model replays the steps on the next file
    again = tmp_path / "again"
    proc = _run("run", inputs / "Samson.mat", "--model", out / "Samson_model.npz", "-o", again)
    assert proc.returncode == 0
    np.testing.assert_array_equal(read_png(again / "Samson_clusters.png").data, expected.labels)
    proc = _run("run", inputs, "--preprocess", "savgol(4, 2) | snv", "-o", tmp_path / "bad")
    assert proc.returncode == 2 and "savgol(4, 2): the window must be an odd number" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "bad").exists()


def _scenes(folder, data_dir):
    """Two cubes of the same four materials in other sizes, a broken .mat and a PNG of
    other channels (3 colours, not 16 bands)."""
    from napari_spectral_clusters.io import ImageData, write_mat
    from napari_spectral_clusters.samples import synthetic_cube

    folder.mkdir()
    truths = {}
    for seed, shape in ((1, (64, 64)), (2, (48, 80))):
        cube, truth, wl = synthetic_cube(shape, n_bands=16, seed=seed)
        image = ImageData("cube", cube, channel_axis=0, metadata={"wavelengths": wl})
        write_mat(folder / f"scene{seed}.mat", [image])
        truths[f"scene{seed}"] = truth
    shutil.copy(data_dir / "matlab" / "malformed1.mat", folder)
    shutil.copy(data_dir / "png" / "pngsuite" / "basn2c08.png", folder)
    return truths


def test_joint_run_on_a_folder_with_a_broken_file_shares_ids(tmp_path, data_dir, capsys):
    import csv

    from napari_spectral_clusters import ClusterModel
    from napari_spectral_clusters.io import read_png

    truths = _scenes(tmp_path / "in", data_dir)
    out = tmp_path / "out"
    assert _main("run", tmp_path / "in", "--joint", "-k", 4, "-o", out) == 1
    said = capsys.readouterr()
    assert "clustered 2 of 4 file(s) jointly" in said.out
    assert "malformed1.mat" in said.out and "basn2c08.png" in said.out
    # why the picture cannot share the cubes' clusters
    assert "has 3 channels (bands), the others have" in said.out
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            f"scene{i}_{kind}"
            for i in (1, 2)
            for kind in ("clusters.png", "recolored.png", "clusters.csv")
        ]
        + ["joint_model.npz", "joint_clusters.csv"]
    )  # no model per input, nothing for the failed ones
    labels = {stem: read_png(out / f"{stem}_clusters.png").data for stem in truths}
    majority = {
        stem: {int(m): int(np.bincount(labels[stem][t == m]).argmax()) for m in np.unique(t)}
        for stem, t in truths.items()
    }
    assert majority["scene1"] == majority["scene2"]  # one material, one id, in both files
    assert len(set(majority["scene1"].values())) == 4
    with open(out / "joint_clusters.csv") as f:
        rows = list(csv.DictReader(f))
    for stem in truths:
        counts = np.bincount(labels[stem].ravel(), minlength=5)[1:]
        assert [int(r[f"pixels_{stem}"]) for r in rows] == counts.tolist()
    assert [int(r["pixels"]) for r in rows] == [
        int(r["pixels_scene1"]) + int(r["pixels_scene2"]) for r in rows
    ]
    model = ClusterModel.load(out / "joint_model.npz")
    assert model.n_clusters == 4
    assert [r["color"] for r in rows] == ["#{:02x}{:02x}{:02x}".format(*c) for c in model.colors]
    # a second run refuses to replace the joint outputs
    assert _main("run", tmp_path / "in", "--joint", "-k", 4, "-o", out) == 2


def test_joint_run_refuses_a_model_or_a_cluster(tmp_path, inputs, capsys):
    assert _main("run", inputs, "--joint", "--model", tmp_path / "m.npz", "-o", tmp_path) == 2
    assert "--joint" in capsys.readouterr().err
    assert _main("run", inputs, "--joint", "--workers", 2, "-o", tmp_path / "o") == 2
    assert "this machine" in capsys.readouterr().err


def test_a_scheduler_never_reached_does_not_hang_later_lazy_work(tmp_path, inputs, capsys):
    """The client of a wrong --scheduler stays 'connecting' as dask's default: later lazy
    clustering in the same process (a napari session, a notebook) must not wait on it."""
    from concurrent.futures import ThreadPoolExecutor

    import dask.array as da

    assert _main("run", inputs / "basn6a08.png", "--scheduler", "nowhere", "-o", tmp_path) == 2
    assert "cannot use a dask cluster" in capsys.readouterr().err
    cube = np.random.default_rng(0).random((4, 16, 16))
    lazy = da.from_array(cube, chunks=(4, 8, 8))
    with ThreadPoolExecutor(1) as pool:  # a hang fails the test instead of stopping the suite
        res = pool.submit(cluster_image, lazy, 2, channel_axis=0).result(timeout=120)
    assert np.asarray(res.labels).shape == (16, 16)


def test_run_gives_wavelengths_to_a_cube_whose_file_has_none(tmp_path, inputs, data_dir):
    import csv

    import scipy.io

    from napari_spectral_clusters import cluster_image
    from napari_spectral_clusters.io import read_png

    steps = "range(450, 900) | snv"  # a range in nm: Samson.mat gives no wavelengths
    proc = _run("run", inputs / "Samson.mat", "-k", 3, "--preprocess", steps, "-o", tmp_path / "a")
    assert proc.returncode == 1 and "give the wavelengths" in proc.stdout
    out = tmp_path / "b"
    proc = _run(
        "run", inputs / "Samson.mat", inputs / "basn6a08.png", "-k", 3, "--preprocess", steps,
        "--wavelengths", "401-889", "-o", out,
    )  # fmt: skip
    # the picture has colours, not bands: its range step is refused; the cube is clustered
    assert proc.returncode == 1 and "clustered 1 of 2" in proc.stdout, proc.stdout
    cube = np.moveaxis(scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"], -1, 0)
    wavelengths = np.linspace(401, 889, 156)
    expected = cluster_image(cube, 3, channel_axis=0, preprocessing=steps, wavelengths=wavelengths)
    np.testing.assert_array_equal(read_png(out / "Samson_clusters.png").data, expected.labels)
    np.testing.assert_array_equal(read_png(out / "Samson_recolored.png").data, expected.recolored)
    with open(out / "Samson_clusters.csv") as f:
        header = next(csv.reader(f))
    assert "mean_401" in header and "mean_889" in header  # columns named by wavelength
    proc = _run("run", inputs / "Samson.mat", "--wavelengths", "889-401", "-o", tmp_path / "c")
    assert proc.returncode == 2 and "--wavelengths" in proc.stderr and "larger last" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "c").exists()


def test_given_wavelengths_never_replace_a_files_own(tmp_path):
    import scipy.io

    from napari_spectral_clusters.batch import read_image

    cube = np.random.default_rng(0).random((20, 30, 8))
    own = np.arange(400.0, 480.0, 10.0)
    scipy.io.savemat(tmp_path / "with.mat", {"cube": cube, "wavelengths": own})
    scipy.io.savemat(tmp_path / "without.mat", {"cube": cube})
    kept = read_image(tmp_path / "with.mat", wavelength_range=(500, 900))
    np.testing.assert_array_equal(np.ravel(kept.metadata["wavelengths"]), own)
    given = read_image(tmp_path / "without.mat", wavelength_range=(500, 900))
    np.testing.assert_array_equal(given.metadata["wavelengths"], np.linspace(500, 900, 8))
    assert given.metadata["wavelength_source"] == "given on the command line: 500-900 nm"
    assert "wavelengths" not in read_image(tmp_path / "without.mat").metadata


@pytest.mark.parametrize("joint", [False, True], ids=["one by one", "joint"])
def test_a_ground_truth_beside_its_cube_is_skipped_not_failed(tmp_path, data_dir, joint):
    folder = tmp_path / "in"
    folder.mkdir()
    for src in ("hsi/Samson.mat", "hsi/Indian_pines_gt.mat"):
        shutil.copy(data_dir / src, folder)
    out = tmp_path / "out"
    proc = _run("run", folder, "-k", 3, "-o", out, *(["--joint"] if joint else []))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped: Indian_pines_gt.mat holds only labels" in proc.stderr
    assert (
        "clustered 1 of 2 file(s)" in proc.stdout
        and "skipped 1 holding labels only" in proc.stdout
    )
    assert (out / "Samson_clusters.png").exists() and not list(out.glob("Indian_pines_gt*"))
    only_labels = _run(
        "run",
        folder / "Indian_pines_gt.mat",
        "-o",
        tmp_path / "none",
        *(["--joint"] if joint else []),
    )
    assert only_labels.returncode == 2, only_labels.stdout  # nothing to do
    assert "skipped 1 holding labels only" in only_labels.stdout


def test_a_results_folder_run_again_skips_its_clusters_pngs(tmp_path, inputs, capsys):
    """The clusters PNGs a run writes hold labels (napari opens them as Labels): run again
    on the results folder, they are skipped like a ground truth, not clustered into junk."""
    picture = inputs / "basn6a08.png"
    out = tmp_path / "out"
    assert _main("run", picture, "-k", 3, "-o", out) == 0
    assert (out / "basn6a08_clusters.png").exists()
    capsys.readouterr()
    again = tmp_path / "again"
    assert _main("run", out, "-k", 3, "-o", again) == 0
    said = capsys.readouterr()
    assert "skipped: basn6a08_clusters.png holds only labels" in said.err
    assert "skipped 1 holding labels only" in said.out
    assert not list(again.glob("*_clusters_clusters*"))
    assert (again / "basn6a08_recolored_clusters.png").exists()  # a picture: clustered


def test_preprocess_with_a_model_is_refused(tmp_path, inputs, capsys):
    """A model applies the steps it was fitted with: --preprocess beside it would be ignored."""
    out = tmp_path / "out"
    assert _main("run", inputs / "basn6a08.png", "-k", 3, "-o", out) == 0
    capsys.readouterr()
    model = out / "basn6a08_model.npz"
    args = ("run", inputs / "basn6a08.png", "--model", model, "--preprocess", "unit")
    assert _main(*args, "-o", tmp_path / "m") == 2
    assert "--preprocess has no effect with --model" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert _main("run", inputs / "basn6a08.png", "--model", model, "-o", tmp_path / "m") == 0


def test_ctrl_c_is_a_line_and_status_130_not_a_traceback(tmp_path, inputs, capsys, monkeypatch):
    from napari_spectral_clusters import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert _main("run", inputs, "-k", 3, "-o", tmp_path / "out") == 130
    err = capsys.readouterr().err
    assert err == (
        "spectral-clusters: interrupted; outputs written before it are complete, none was "
        "left half-written\n"
    )


def test_a_clustering_error_is_said_without_its_class_name(tmp_path, capsys):
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(flat)
    assert _main("run", flat, "-k", 3, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "only 1 distinct pixel value(s), fewer than the 3 clusters" in err
    assert "TooFewDistinct" not in err and "ClusteringError" not in err


def test_joint_pictures_with_and_without_transparency_share_clusters(tmp_path, data_dir):
    """Alpha is transparency in a joint run too, as in a run of one file: an RGB and an RGBA
    picture share their colour clusters, and the transparent pixels are left unlabelled."""
    from napari_spectral_clusters.io import read_png

    rgb, rgba = data_dir / "png/pngsuite/basn2c08.png", data_dir / "png/pngsuite/basn6a08.png"
    out = tmp_path / "out"
    assert _main("run", rgb, rgba, "--joint", "-k", 4, "-o", out) == 0
    alpha = np.asarray(Image.open(rgba))[..., 3]
    labels = read_png(out / "basn6a08_clusters.png").data
    np.testing.assert_array_equal(labels == 0, alpha == 0)
    for name in ("basn2c08", "basn6a08"):
        shown = read_png(out / f"{name}_clusters.png")
        assert shown.metadata["colors"].shape == (4, 3)  # the shared clustering's colours
    assert read_png(out / "basn2c08_clusters.png").data.min() == 1  # opaque: all labelled


def test_joint_pictures_of_another_bit_depth_are_refused_not_blackened(tmp_path, data_dir, capsys):
    """A 16-bit picture beside 8-bit ones: joined as stored, the 8-bit pictures were all
    near black beside it and made one cluster. The odd one out is refused with the reason,
    the others share their clusters; cluster_images itself refuses the two."""
    from napari_spectral_clusters.cluster import ClusteringError
    from napari_spectral_clusters.io import read_png
    from napari_spectral_clusters.joint import cluster_images

    suite = data_dir / "png/pngsuite"
    files = [suite / "basn2c08.png", suite / "basn6a08.png", suite / "basn2c16.png"]
    out = tmp_path / "out"
    assert _main("run", *files, "--joint", "-k", 4, "-o", out) == 1
    said = capsys.readouterr().out
    assert "basn2c16.png: it holds 16-bit values, the others have 8-bit: not on one" in said
    assert "clustered 2 of 3 file(s) jointly" in said
    labels = read_png(out / "basn2c08_clusters.png").data
    assert len(np.unique(labels)) == 4  # the 8-bit picture's colours, four clusters
    assert not (out / "basn2c16_clusters.png").exists()
    eight, sixteen = (read_png(f).data for f in (files[0], files[2]))
    with pytest.raises(ClusteringError, match=r"different depths \(8-bit, 16-bit\)"):
        cluster_images([eight, sixteen], 4, channel_axis=-1)


def test_a_joint_fit_that_cannot_be_made_is_an_error_message(tmp_path, data_dir, capsys):
    """Steps that do not fit the joined pictures (a savgol window longer than 3 colours)
    ended the joint run with a traceback."""
    suite = data_dir / "png/pngsuite"
    files = [suite / "basn2c08.png", suite / "basn6a08.png"]
    out = tmp_path / "out"
    assert _main("run", *files, "--joint", "-k", 4, "-o", out, "--preprocess", "savgol(9, 2)") == 1
    said = capsys.readouterr().err
    assert "cannot cluster the files jointly" in said and "longer than 3" in said
    assert "Traceback" not in said
    assert not out.exists() or not list(out.iterdir())


def test_a_run_that_writes_nothing_leaves_no_folder_behind(tmp_path, inputs, capsys):
    """-o's folders are made for the run and removed again when nothing was written in them
    (every input failed); a folder that was there, or holds anything, stays."""
    out = tmp_path / "new" / "out"
    assert _main("run", inputs / "malformed1.mat", "-k", 3, "-o", out) == 1
    assert not (tmp_path / "new").exists()
    there = tmp_path / "there"
    there.mkdir()
    assert _main("run", inputs / "malformed1.mat", "-k", 3, "-o", there) == 1
    assert there.is_dir() and not list(there.iterdir())
    assert _main("run", inputs / "basn6a08.png", "-k", 3, "-o", out) == 0
    assert (out / "basn6a08_clusters.png").exists()


def test_joint_inputs_of_other_channels_are_told_what_the_others_have(tmp_path):
    import scipy.io

    from napari_spectral_clusters.batch import cluster_jointly

    rng = np.random.default_rng(0)
    files = []
    for n in (5, 5, 7, 9):
        path = tmp_path / f"cube{len(files)}_{n}.mat"
        scipy.io.savemat(path, {"cube": rng.random((12, 12, n)).astype(np.float32)})
        files.append(path)
    out = tmp_path / "out"
    out.mkdir()
    reports, _ = cluster_jointly(files, out, [p.stem for p in files], n_clusters=2)
    assert [r.error for r in reports[:2]] == [None, None]
    assert "has 7 channels (bands), 2 of the 3 others have 5" in reports[2].error
    assert "has 9 channels (bands), 2 of the 3 others have 5" in reports[3].error
    # one band is said so ("has 1 channels" before)
    grey = tmp_path / "grey.mat"
    scipy.io.savemat(grey, {"cube": rng.random((12, 12)).astype(np.float32)})
    (tmp_path / "out2").mkdir()
    reports, _ = cluster_jointly(
        [*files[:2], grey], tmp_path / "out2", ["a", "b", "g"], n_clusters=2
    )
    assert "has 1 channel (band), the others have 5" in reports[2].error, reports[2].error
