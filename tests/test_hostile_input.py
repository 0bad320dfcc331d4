"""Property tests on hostile input (issue 14): the readers, the model loader and the engine
either give a result that holds its promises or raise their own clear error — never another
exception, a crash, or garbage labels — and numpy and dask input agree."""

import tracemalloc
import warnings

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_spectral_clusters import ClusteringError, cluster_image
from napari_spectral_clusters.io import ReadError, read_mat, read_png
from napari_spectral_clusters.model import ClusterModel, ModelError

from .conftest import DATA

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- readers: any bytes --------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAT_HEADER = b"MATLAB 5.0 MAT-file".ljust(124, b" ") + b"\x00\x01IM"
SEEDS = [
    (DATA / "png" / "pngsuite" / "basn6a08.png").read_bytes(),
    (DATA / "matlab" / "test3dmatrix_6.1_SOL2.mat").read_bytes(),
]


@st.composite
def mutated(draw, prefix: bytes):
    """A real file with bytes overwritten, or the format's header followed by random bytes."""
    if draw(st.booleans()):
        base = bytearray(draw(st.sampled_from(SEEDS)))
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(base) - 1))
            base[at] = draw(st.integers(0, 255))
        return bytes(base[: draw(st.integers(1, len(base)))])
    return prefix + draw(st.binary(max_size=400))


def _reads_or_refuses(read, path):
    try:
        result = read(path)
    except (ReadError, FileNotFoundError):
        return None
    return result


def _read_bytes(tmp_path, name: str, data: bytes, read):
    """``data`` written to ``name`` and read; the images (None if refused). The input file
    is never modified."""
    path = tmp_path / name
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _reads_or_refuses(read, path)
    assert path.read_bytes() == data
    return [result] if result is not None and not isinstance(result, list) else result or []


@SETTINGS
@given(data=mutated(PNG_SIGNATURE))
def test_any_bytes_named_png_read_or_give_a_read_error(tmp_path, data):
    for img in _read_bytes(tmp_path, "x.png", data, read_png):
        assert np.asarray(img.data).ndim in (2, 3, 4)


@SETTINGS
@given(data=mutated(MAT_HEADER))
def test_any_bytes_named_mat_read_or_give_a_read_error(tmp_path, data):
    for img in _read_bytes(tmp_path, "x.mat", data, read_mat):
        assert np.asarray(img.data).size > 0


# --- the model loader ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    rng = np.random.default_rng(0)
    cube = rng.random((6, 10, 10))
    path = tmp_path_factory.mktemp("m") / "m.npz"
    cluster_image(cube, 3, channel_axis=0).model.save(path)
    return path.read_bytes()


@SETTINGS
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6))
def test_a_damaged_model_loads_validated_or_gives_a_model_error(tmp_path, model_bytes, flips):
    raw = bytearray(model_bytes)
    for at, value in flips:
        raw[at % len(raw)] = value
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(raw))
    try:
        model = ClusterModel.load(path)
    except ModelError:
        return
    assert np.isfinite(model.centers).all() and model.colors.shape == (model.n_clusters, 3)
    assert np.isfinite(model.features.offset).all()


# --- the engine ----------------------------------------------------------------------------

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e3, 1e3),
    st.sampled_from([0.0, 1.0, 1e14, -1e14, 3e38, 1e300]),
)


@SETTINGS
@given(
    image=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5)),
        elements=values,
    ),
    k=st.integers(1, 12),
    lazy=st.booleans(),
)
def test_the_engine_clusters_or_refuses_clearly(image, k, lazy):
    data = da.from_array(image, chunks=(3, 3, -1)) if lazy else image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cluster_image(data, k, channel_axis=-1, reduce_k=True, random_state=0)
    except ClusteringError as exc:
        # refused only with a reason: nothing finite, or values beyond float32's reach
        finite = image[np.isfinite(image).all(axis=-1)]
        assert finite.size == 0 or np.abs(finite).max() > 1e15, exc
        return
    labels = np.asarray(res.labels)
    finite = np.isfinite(image).all(axis=-1)
    assert labels.shape == image.shape[:2]
    assert ((labels == 0) == ~finite).all()  # exactly the non-finite pixels are left out
    assert labels.max() <= res.n_clusters <= k
    recolored = np.asarray(res.recolored)
    # RGBA exactly when a pixel is left out: see-through there, opaque elsewhere
    assert recolored.shape == (*labels.shape, 3 if finite.all() else 4)
    if not finite.all():
        assert (recolored[..., 3] == np.where(finite, 255, 0)).all()
    for lab in np.unique(labels[labels > 0]):
        assert (recolored[labels == lab][:, :3] == res.colors[lab - 1]).all()


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("scale", [3e38, 1e300])
def test_values_too_large_for_float32_are_refused_the_same_way_numpy_and_dask(lazy, scale):
    image = np.random.default_rng(0).random((4, 5, 3)) * scale
    if scale < 1e39:
        image = image.astype(np.float32)
    data = da.from_array(image, chunks=(2, 5, 3)) if lazy else image
    with pytest.raises(ClusteringError, match="too large for the engine's float32"):
        cluster_image(data, 2, channel_axis=-1)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_value_too_large_found_by_a_pass_thread_is_refused(monkeypatch, seed):
    """An image converted chunk by chunk in a pass's threads: one pixel beyond float32 (seldom
    in the sample) is found by the thread reading its chunk, and refused with the reason."""
    from napari_spectral_clusters import pixels

    monkeypatch.setattr(pixels, "CACHE_BYTES", 0)
    monkeypatch.setattr(pixels, "CHUNK_BYTES", 64 * 1024)
    image = np.random.default_rng(seed).random((300, 300, 4))
    image[250, 17, 2] = 1e300
    samples, real_sample = [], pixels.Pixels.sample

    def sample(self, *args, **kwargs):
        drawn = real_sample(self, *args, **kwargs)
        samples.append(drawn[0])
        return drawn

    monkeypatch.setattr(pixels.Pixels, "sample", sample)
    with pytest.raises(ClusteringError, match="too large for the engine's float32"):
        cluster_image(image, 3, channel_axis=-1, random_state=seed)
    assert samples and all(np.abs(x).max() < 2 for x in samples)  # not found by the sample


def test_a_few_pixels_of_very_many_bands_need_no_bands_squared_memory():
    image = np.random.default_rng(0).random((1, 3, 100_000))
    tracemalloc.start()
    res = cluster_image(image, 2, channel_axis=-1, preprocessing="pca")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sorted(np.unique(res.labels)) == [1, 2]
    assert peak < 100 * 2**20  # a 100,000^2 covariance would be 80 GB


@pytest.mark.parametrize("lazy", [False, True])
def test_more_clusters_than_pixels_is_a_clear_error_or_a_warned_reduction(lazy):
    image = np.random.default_rng(0).random((3, 3, 4))
    data = da.from_array(image, chunks=(2, 2, 4)) if lazy else image
    with pytest.raises(ClusteringError, match="9 distinct pixel"):
        cluster_image(data, 20, channel_axis=-1)
    with pytest.warns(UserWarning, match="9"):
        res = cluster_image(data, 20, channel_axis=-1, reduce_k=True)
    assert res.n_clusters == 9


@pytest.mark.parametrize("lazy", [False, True])
def test_complex_input_is_refused_the_same_way_numpy_and_dask(lazy):
    image = np.random.default_rng(0).random((4, 5, 3)) + 1j
    data = da.from_array(image, chunks=(2, 5, 3)) if lazy else image
    with pytest.raises(ClusteringError, match="cannot cluster complex values"):
        cluster_image(data, 2, channel_axis=-1)


def test_plus_and_minus_infinity_in_one_image_warn_of_nothing():
    """A finite sum means every value is; inf + -inf is NaN, numpy's 'invalid value' warning,
    which napari shows as a notification: the pixels are left out without a word."""
    import warnings

    from napari_spectral_clusters import cluster_image

    cube = np.random.default_rng(0).random((20, 30, 4))
    cube[0, 0, 1], cube[5, 5, 2] = np.inf, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cluster_image(cube, 3, channel_axis=-1, max_samples=600)
    assert res.labels[0, 0] == 0 and res.labels[5, 5] == 0
    assert (res.labels > 0).sum() == 600 - 2
