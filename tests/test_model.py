import pickle

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_spectral_clusters import (
    ClusteringError,
    ClusterModel,
    ModelError,
    apply_model,
    cluster_image,
)
from napari_spectral_clusters.samples import synthetic_cube


@pytest.mark.parametrize("preprocessing", ["none", "unit", "standardize", "pca"])
def test_a_saved_model_labels_another_image_the_same_way(tmp_path, preprocessing):
    cube_a, gt, _ = synthetic_cube((64, 64), 32, seed=1)
    cube_b, _, _ = synthetic_cube((64, 64), 32, seed=2)  # same scene, other noise
    fit = cluster_image(cube_a, 4, channel_axis=0, preprocessing=preprocessing)
    path = fit.model.save(tmp_path / "scene.npz")
    model = ClusterModel.load(path)
    np.testing.assert_array_equal(model.centers, fit.model.centers)
    np.testing.assert_array_equal(model.colors, fit.colors)
    assert model.params["preprocessing"] == preprocessing

    again = apply_model(cube_a, model, channel_axis=0)
    np.testing.assert_array_equal(again.labels, fit.labels)
    other = apply_model(cube_b, model, channel_axis=0)
    assert adjusted_rand_score(gt.ravel(), other.labels.ravel()) > 0.99
    # the same material gets the same label number in both images
    for material in range(1, 5):
        assert np.median(other.labels[gt == material]) == np.median(fit.labels[gt == material])
    np.testing.assert_array_equal(other.colors, fit.colors)


def test_mismatched_bands_and_wavelengths_are_clear_errors():
    cube, _, wl = synthetic_cube((16, 16), 8)
    fit = cluster_image(cube, 2, channel_axis=0)
    model = ClusterModel(fit.model.features, fit.model.centers, fit.colors, {}, wavelengths=wl)
    with pytest.raises(ClusteringError, match=r"fitted on 8 channels.*this image has 7"):
        apply_model(cube[:7], model, channel_axis=0)
    with pytest.raises(ClusteringError, match="wavelengths differ"):
        apply_model(cube, model, channel_axis=0, wavelengths=wl + 50)
    apply_model(cube, model, channel_axis=0, wavelengths=wl)  # the right ones pass


def test_empty_clusters_have_nan_centres():
    cube, gt, _ = synthetic_cube((32, 32), 8)
    model = cluster_image(cube, 4, channel_axis=0).model
    only_one = np.where((gt == 1)[None], cube, cube[:, gt == 1][:, :1, None])
    res = apply_model(only_one, model, channel_axis=0)
    assert (res.counts > 0).sum() == 1
    assert np.isnan(res.centers[res.counts == 0]).all()


def _save_edited(tmp_path, model, **changes):
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def model():
    cube, _, _ = synthetic_cube((16, 16), 8)
    return cluster_image(cube, 3, channel_axis=0).model


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"centers": np.zeros((3, 5), np.float32)}, "centres of shape"),
        ({"colors": np.zeros((2, 3), np.uint8)}, "colours of shape"),
        ({"centers": np.full((3, 8), np.nan, np.float32)}, "non-finite"),
        ({"params": np.array("{not json")}, "damaged"),
        ({"format": np.array("something else")}, "not a napari-spectral-clusters model"),
        # issue 14: every field checked for shape and finiteness, never garbage labels
        ({"offset": np.full(8, np.nan)}, "non-finite offsets"),
        ({"offset": np.full(8, np.inf)}, "non-finite offsets"),
        ({"scale": np.full(8, np.nan)}, "non-finite"),
        ({"scale": np.zeros(8)}, "not positive"),
        ({"components": np.ones(8)}, "components of shape"),
        ({"components": np.full((3, 8), np.inf)}, "non-finite"),
        ({"wavelengths": np.full(8, np.nan)}, "non-finite"),
        ({"offset": np.zeros((2, 4))}, "offsets of shape"),
        ({"params": np.array("[" * 100_000 + "]" * 100_000)}, "damaged"),
    ],
)
def test_hand_edited_model_files_give_clear_errors(tmp_path, model, changes, message):
    with pytest.raises(ModelError, match=message):
        ClusterModel.load(_save_edited(tmp_path, model, **changes))


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    np.savez(
        path,
        format=np.array("napari-spectral-clusters model 1"),
        centers=np.array([Evil()], dtype=object),
    )
    with pytest.raises(ModelError):
        ClusterModel.load(path)
    assert not marker.exists()
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelError, match="not a readable model file"):
        ClusterModel.load(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path, model):
    import zipfile

    path = model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("padding.npy", b"\0" * (300 * 2**20))  # 300 MB of zeros: ~300 KB packed
    assert path.stat().st_size < 2 * 2**20
    with pytest.raises(ModelError, match="would unpack to 300 MB"):
        ClusterModel.load(path)


def test_a_header_declaring_a_huge_array_is_a_clear_error(tmp_path, model):
    import zipfile

    path = model.save(tmp_path / "m.npz")
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }"
    header = header.ljust(117) + b"\n"
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("huge.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    with pytest.raises(ModelError, match="not a readable model file"):
        ClusterModel.load(path)


def test_truncated_model_file(tmp_path, model):
    path = model.save(tmp_path / "m.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelError):
        ClusterModel.load(path)


@pytest.mark.parametrize("max_refine", [1, 10])
def test_the_model_gives_back_its_own_labels_even_before_convergence(max_refine):
    # a continuous spread of pixels, where every pass still moves some across the borders
    img = np.random.default_rng(4).random((60, 70, 3))
    fit = cluster_image(img, 7, max_refine=max_refine, tol=0.0)
    np.testing.assert_array_equal(apply_model(img, fit.model).labels, fit.labels)
    # the reported centres are still the means of the labelled clusters
    for lab in range(1, 8):
        np.testing.assert_allclose(fit.centers[lab - 1], img[fit.labels == lab].mean(axis=0))
