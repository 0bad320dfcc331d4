"""The spectral preprocessing pipeline: each step against a reference, the pipeline's text,
its errors, and what it buys on Raman-like spectra (baselines, brightness, cosmic rays)."""

import json
import re

import dask.array as da
import numpy as np
import pytest
from pybaselines import Baseline
from scipy.signal import savgol_filter
from sklearn.metrics import adjusted_rand_score

from napari_spectral_clusters import ClusteringError, apply_model, cluster_image
from napari_spectral_clusters import lazy as lazy_engine
from napari_spectral_clusters.model import ClusterModel
from napari_spectral_clusters.samples import raman_scene
from napari_spectral_clusters.spectral import Pipeline, PreprocessingError, despike

WL = np.linspace(500, 1100, 121)  # 5 nm steps


def _spectra(n=20, bands=121, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, bands)) * 3 + np.linspace(0, 2, bands)).astype(np.float32)


def test_savgol_is_scipys_with_the_wavelength_step():
    x = _spectra()
    out = Pipeline.parse("savgol(11, 2, deriv=1)").bind(121, WL)(x)
    ref = savgol_filter(x.astype(np.float64), 11, 2, deriv=1, delta=5.0, axis=1)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("step", "by_hand"),
    [
        ("snv", lambda x: (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)),
        ("vector", lambda x: x / np.sqrt((x**2).sum(1, keepdims=True))),
        ("area", lambda x: x / np.abs(x).sum(1, keepdims=True)),
        ("max", lambda x: x / np.abs(x).max(1, keepdims=True)),
        (
            "minmax",
            lambda x: (
                (x - x.min(1, keepdims=True)) / (x.max(1, keepdims=True) - x.min(1, keepdims=True))
            ),
        ),
    ],
)
def test_normalisations_as_computed_by_hand(step, by_hand):
    x = _spectra().astype(np.float64)
    out = Pipeline.parse(step).bind(121)(x)
    np.testing.assert_allclose(out, by_hand(x), rtol=1e-5, atol=1e-6)


def test_a_constant_spectrum_does_not_become_nan():
    x = np.ones((2, 10))
    for step in ("snv", "vector", "area", "max", "minmax"):
        assert np.isfinite(Pipeline.parse(step).bind(10)(x)).all()


def test_baseline_is_pybaselines_subtracted():
    x = _spectra(n=5).astype(np.float64)
    out = Pipeline.parse("baseline(asls, lam=1e4, p=0.02)").bind(121, WL)(x)
    fitter = Baseline(x_data=WL)
    ref = np.stack([s - fitter.asls(s, lam=1e4, p=0.02)[0] for s in x])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_despike_removes_known_spikes_and_leaves_the_rest():
    rng = np.random.default_rng(1)
    clean = (np.sin(np.linspace(0, 6, 200)) * 5 + 10)[None].repeat(3, 0)
    clean += rng.normal(0, 0.05, clean.shape)
    spiky = clean.copy()
    spikes = [(0, 40), (1, 120), (2, 41), (2, 160)]
    for row, at in spikes:
        spiky[row, at] += 80
    out = despike(spiky, threshold=3.5, width=2)
    for row, at in spikes:
        assert abs(out[row, at] - clean[row, at]) < 0.5  # the spike is gone
    far = np.ones(200, bool)
    for _, at in spikes:
        far[max(at - 4, 0) : at + 5] = False
    np.testing.assert_allclose(out[:, far], spiky[:, far], rtol=1e-6)  # the rest as it was


def test_range_and_drop_select_bands_by_wavelength_or_index():
    bound = Pipeline.parse("range(600, 1000) | drop(700, 750)").bind(121, WL)
    keep = (WL >= 600) & (WL <= 1000) & ~((WL >= 700) & (WL <= 750))
    np.testing.assert_array_equal(bound.wavelengths, WL[keep])
    np.testing.assert_array_equal(bound.bands, np.flatnonzero(keep))
    x = _spectra()
    np.testing.assert_array_equal(bound(x), x[:, keep])
    by_index = Pipeline.parse("range(10, 19, index=True)").bind(121)
    np.testing.assert_array_equal(by_index.bands, np.arange(10, 20))


def test_the_text_the_json_and_a_file_give_the_same_pipeline(tmp_path):
    text = "range(450, 900) | savgol(11, 2, deriv=1) | baseline(asls, lam=100000.0) | snv | pca"
    p = Pipeline.parse(text)
    assert p.spec == text and p.space == "pca" and len(p.steps) == 4
    assert Pipeline.parse(p.to_json()) == p
    path = tmp_path / "steps.json"
    path.write_text(json.dumps(p.to_json()))
    assert Pipeline.from_file(path) == p
    path.write_text(json.dumps(text.split(" | ")))  # a list of the steps as text
    assert Pipeline.from_file(path) == p
    for name in ("none", "standardize", "unit", "pca"):  # today's names keep working
        assert Pipeline.parse(name) == Pipeline((), name)


@pytest.mark.parametrize(
    ("spec", "n", "wl", "says"),
    [
        ("savgol(10, 2)", 121, WL, "savgol(10, 2): the window must be an odd number"),
        ("savgol(201, 2)", 121, WL, "longer than 121"),
        ("savgol(5, 5)", 121, WL, "the order"),
        ("range(100, 200)", 121, WL, "outside the wavelengths"),
        ("range(600, 900)", 121, None, "selects bands by wavelength"),
        ("range(2000, 120, index=True)", 121, WL, "band numbers go from 0 to 120"),
        ("snv", 1, None, "snv needs at least 2 bands, not 1"),
        ("range(3, 3, index=True) | vector", 121, WL, "vector needs at least 2 bands"),
        ("range(-5, 3, index=True)", 121, WL, "band numbers go from 0 to 120, not -5-3"),
        ("range(10, 50, index=True) | drop(0, 200, index=True)", 121, WL, "0 to 120"),
        ("drop(600)", 121, WL, "pairs of limits"),
        ("smooth(3)", 121, WL, "unknown step 'smooth'"),
        ("snv | pca | snv", 121, WL, "only be the last step"),
        ("savgol(11, __import__('os'))", 121, WL, "arguments are numbers or words"),
        ("baseline(magic)", 121, WL, "the methods are"),
        ("baseline(asls, lamda=3)", 121, WL, "baseline(asls, lamda=3)"),
        ("despike(threshold=-1)", 121, WL, "despike(threshold=-1)"),
        ("range(1e999, 2)", 121, WL, "is not a number"),
        ("savgol(99999999999999999999, 2)", 121, WL, "bands is longer than 121"),
        ("range(" + "9" * 400 + ", 2)", 121, WL, "is not a number"),
        ("despike(threshold=" + "9" * 400 + ")", 121, WL, "a finite threshold"),
    ],
)
def test_bad_steps_say_which_and_why(spec, n, wl, says):
    with pytest.raises(PreprocessingError, match=None) as caught:
        Pipeline.parse(spec).bind(n, wl)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("baseline(magic)", "the methods are asls"),
        ("savgol(10, 2)", "an odd number"),
        ("savgol(11, 2) || snv", "a | with no step on one side"),
        ("savgol(11, 2) | snv |", "a | with no step on one side"),
        ("| snv", "a | with no step on one side"),
    ],
)
def test_what_needs_no_data_is_refused_as_it_is_written(spec, says):
    """Before any cube is read: the command line refuses it before its first file."""
    with pytest.raises(PreprocessingError, match=re.escape(says)):
        Pipeline.parse(spec)


PIPELINE = "despike | savgol(9, 3, deriv=2) | snv"


@pytest.mark.parametrize("seed", range(3))
def test_the_pipeline_recovers_materials_that_raw_spectra_mix(seed):
    cube, truth = raman_scene(seed)
    raw = cluster_image(cube, 3, random_state=seed)
    prepared = cluster_image(cube, 3, random_state=seed, preprocessing=PIPELINE)
    assert adjusted_rand_score(truth.ravel(), raw.labels.ravel()) < 0.5
    assert adjusted_rand_score(truth.ravel(), prepared.labels.ravel()) >= 0.95
    # centres and spreads stay in the input's units and bands
    assert prepared.centers.shape == (3, cube.shape[-1])
    for k in range(3):
        np.testing.assert_allclose(
            prepared.centers[k], cube[prepared.labels == k + 1].mean(axis=0), rtol=1e-4
        )


def test_a_saved_model_replays_the_steps(tmp_path):
    cube, _ = raman_scene(0)
    wl = np.linspace(600, 1400, cube.shape[-1])
    spec = "range(650, 1350) | " + PIPELINE
    res = cluster_image(cube, 3, preprocessing=spec, wavelengths=wl)
    path = res.model.save(tmp_path / "m.npz")
    model = ClusterModel.load(path)
    assert model.params["steps"] == "range(650, 1350) | despike | savgol(9, 3, deriv=2) | snv"
    again = apply_model(cube, model, wavelengths=wl)
    np.testing.assert_array_equal(again.labels, res.labels)
    with pytest.raises(ClusteringError, match="selects bands by wavelength"):
        apply_model(cube, model)  # a file without wavelengths


def test_a_model_saved_with_band_numbers_past_the_last_still_loads(tmp_path):
    """Before band numbers past the last band were refused, they were clipped: a model saved
    then (range(5, 40, index=True) on 20 bands) loads and labels as it did."""
    cube = _spectra(n=300, bands=20).reshape(15, 20, 20)
    res = cluster_image(cube, 3, preprocessing="range(5, 19, index=True) | snv")
    path = res.model.save(tmp_path / "m.npz")
    with np.load(path) as f:
        arrays = dict(f)
    params = json.loads(str(arrays["params"]))
    params["steps"] = "range(5, 40, index=True) | snv"  # as an earlier version saved it
    arrays["params"] = np.array(json.dumps(params))
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    np.testing.assert_array_equal(apply_model(cube, ClusterModel.load(old)).labels, res.labels)
    with pytest.raises(ClusteringError, match="band numbers go from 0 to 19"):
        cluster_image(cube, 3, preprocessing="range(5, 40, index=True) | snv")  # typed: refused


def test_a_lazy_cube_is_preprocessed_block_by_block_alike(monkeypatch):
    monkeypatch.setattr(lazy_engine, "READ_ONCE_SHARE", 0.0)
    cube, _ = raman_scene(1)
    eager = cluster_image(cube, 3, preprocessing=PIPELINE)
    lazy = cluster_image(da.from_array(cube, chunks=(10, 20, -1)), 3, preprocessing=PIPELINE)
    np.testing.assert_array_equal(np.asarray(lazy.labels), eager.labels)
    np.testing.assert_allclose(lazy.centers, eager.centers, rtol=1e-5, atol=1e-6)


def test_a_bad_pipeline_is_a_clear_error_before_clustering():
    cube, _ = raman_scene(0)
    with pytest.raises(ClusteringError, match=r"preprocessing: savgol\(201, 2\)"):
        cluster_image(cube, 3, preprocessing="savgol(201, 2)")
    with pytest.raises(ValueError, match="unknown step"):
        cluster_image(cube, 3, preprocessing="smooth")


@pytest.mark.parametrize(
    "steps",
    [
        "savgol(" + "-" * 3000 + "5, 2)",  # too deep for the parser
        "savgol(5, 2, deriv=1, deriv='a')",
        "baseline(asls, max_iter=-1)",
        "baseline(asls, lam=nan)",
        "x" * 300 + ".json",
        "range(0, 20, index='False')",
        "despike(width=1e300)",
        "savgol(11, 2, deriv=True)",
        "a" * 20_000,
    ],
)
def test_a_damaged_models_steps_are_a_model_error_never_a_crash(tmp_path, steps):
    import zipfile

    from napari_spectral_clusters.model import ModelError

    cube, _ = raman_scene(0, side=12)
    path = cluster_image(cube, 2).model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    params = json.loads(str(arrays["params"]))
    params["steps"] = steps
    arrays["params"] = np.array(json.dumps(params))
    np.savez(tmp_path / "bad.npz", **arrays)
    assert zipfile.is_zipfile(tmp_path / "bad.npz")
    with pytest.raises(ModelError, match="preprocessing cannot be used"):
        ClusterModel.load(tmp_path / "bad.npz")
    with pytest.raises(PreprocessingError):  # and the same text given directly
        Pipeline.parse(steps).bind(cube.shape[-1], WL[: cube.shape[-1]] * 0 + WL[0])


@pytest.mark.parametrize(
    "text",
    [
        "range(0, 20, index=True) | snv",
        "baseline(asls, lam=1e-05, p=0.5) | despike(threshold=2.5, width=3) | pca",
        "drop(-1.5, 2, 7, 9, index=True) | savgol(7, 3, deriv=2) | minmax",
    ],
)
def test_a_spec_saved_in_a_model_reads_back_as_the_same_pipeline(text):
    p = Pipeline.parse(text)
    assert Pipeline.parse(p.spec) == p
    assert Pipeline.parse(p.to_json()) == p


def test_snv_of_flat_spectra_is_zero_and_despike_finds_a_spike_in_flat_counts():
    flat = np.array([[0.1] * 64, [0.3] * 64, [0.7] * 64], dtype=np.float32)
    np.testing.assert_array_equal(Pipeline.parse("snv").bind(64)(flat), 0)
    counts = np.full((1, 40), 5.0)
    counts[0, 10] = 500
    assert despike(counts)[0, 10] == pytest.approx(5.0)


def test_savgol_never_reaches_across_dropped_bands():
    with pytest.raises(PreprocessingError, match="put it before them"):
        Pipeline.parse("drop(700, 750) | savgol(5, 2, deriv=1)").bind(121, WL)
    Pipeline.parse("savgol(5, 2, deriv=1) | drop(700, 750)").bind(121, WL)  # the other order


def test_sweep_k_says_when_the_steps_do_not_fit():
    from napari_spectral_clusters import sweep_k

    cube, _ = raman_scene(0, side=12)
    with pytest.raises(ClusteringError, match="selects bands by wavelength"):
        sweep_k(cube, ks=range(2, 4), preprocessing="range(450, 900) | snv")


@pytest.mark.parametrize("lazy", [False, True])
def test_steps_that_make_pixels_alike_leave_no_empty_cluster(lazy):
    # three brightnesses of one spectrum and a second spectrum: after "max" two points
    # remain (a rounding error apart is one point), so k = 3 cannot be met
    shape = np.linspace(1, 2, 16)
    img = np.empty((30, 30, 16))
    img[:10], img[10:20], img[20:] = shape, 2 * shape, 3 * shape
    img[:, :5] = shape[::-1]
    data = da.from_array(img, chunks=(10, 30, 16)) if lazy else img
    with pytest.raises(ClusteringError, match="only 2 distinct points after the spectral steps"):
        cluster_image(data, 3, preprocessing="max")
    with pytest.warns(UserWarning, match="clustering into 2 clusters instead"):
        result = cluster_image(data, 3, preprocessing="max", reduce_k=True)
    assert result.n_clusters == 2 and sorted(np.asarray(result.counts)) == [150, 750]
    labels = np.asarray(result.labels)
    assert (labels[:, :5] == labels[0, 0]).all() and (labels[:, 5:] != labels[0, 0]).all()
    # without the step the brightnesses are three materials
    assert cluster_image(data, 4, preprocessing="none").n_clusters == 4


@pytest.mark.parametrize("spec", ["savgol(9, 2)", "savgol(9, 2, deriv=1) | snv", "baseline(asls)"])
def test_steps_cluster_a_mask_that_leaves_chunks_empty(data_dir, spec):
    """A mask of the first 10 columns leaves chunks of Samson without a pixel inside:
    scipy's Savitzky-Golay filter refused their 0 rows (a LAPACK error, from the widget's
    "only inside" and the feature space's Split)."""
    import scipy.io

    cube = np.moveaxis(scipy.io.loadmat(data_dir / "hsi" / "Samson.mat")["SamSon"], -1, 0)
    mask = np.zeros(cube.shape[1:], bool)
    mask[:, :10] = True
    wl = np.linspace(401, 889, cube.shape[0])
    res = cluster_image(cube, 2, channel_axis=0, mask=mask, preprocessing=spec, wavelengths=wl)
    labels = np.asarray(res.labels)
    assert not labels[~mask].any() and labels[mask].all()
    assert np.bincount(labels[mask])[1:].tolist() == res.counts.tolist()
    # the same clustering as of those pixels alone, cut out as a cube of their own
    alone = cluster_image(
        np.ascontiguousarray(cube[:, :, :10]),
        2,
        channel_axis=0,
        preprocessing=spec,
        wavelengths=wl,
    )
    assert adjusted_rand_score(labels[mask], np.asarray(alone.labels).ravel()) > 0.99


@pytest.mark.parametrize(
    "spec", ["savgol(5, 2)", "baseline(asls)", "despike", "snv", "range(1, 8, index=True)"]
)
def test_every_step_takes_no_spectra(spec):
    bound = Pipeline.parse(spec).bind(10, None)
    out = bound(np.zeros((0, 10), np.float32))
    assert out.shape == (0, bound.n_out) and out.dtype == np.float32


def test_slow_libraries_are_imported_ahead_in_the_background(monkeypatch):
    """Checking a baseline step imported pybaselines on the viewer's thread (2 s frozen):
    the steps' text starts the import in a thread as soon as it names such a step."""
    import sys
    import threading

    from napari_spectral_clusters import spectral

    monkeypatch.setattr(spectral, "SLOW_IMPORTS", {"wave(": "wave"})
    monkeypatch.delitem(sys.modules, "wave", raising=False)
    assert spectral.import_ahead("despike | snv") == []  # names none
    assert spectral.import_ahead("despike | wave(3)") == ["wave"]
    for thread in threading.enumerate():
        if thread.name == "import wave":
            thread.join(timeout=30)
    assert "wave" in sys.modules
    assert spectral.import_ahead("wave(3)") == []  # imported already
