import npe2
import numpy as np

from napari_spectral_clusters._napari.sample_data import make_sample_cube, make_sample_photo


def test_sample_cube_is_deterministic_with_ground_truth():
    (cube, ckw, ckind), (gt, _, gkind) = make_sample_cube()
    (cube2, _, _), _ = make_sample_cube()
    np.testing.assert_array_equal(cube, cube2)
    assert ckind == "image" and gkind == "labels"
    assert cube.shape[1:] == gt.shape
    assert len(ckw["metadata"]["wavelengths"]) == cube.shape[0]
    assert ckw["metadata"]["seed"] == 0
    assert set(np.unique(gt)) == {1, 2, 3, 4}


def test_sample_photo_is_rgba_with_transparent_corners():
    ((photo, kw, kind),) = make_sample_photo()
    assert kind == "image" and kw["rgb"] is True
    assert photo.shape == (400, 600, 4) and photo.dtype == np.uint8
    assert photo[0, 0, 3] == 0 and photo[200, 300, 3] == 255


def test_samples_through_the_manifest():
    pm = npe2.PluginManager.instance()
    pm.discover()
    samples = dict(pm.iter_sample_data())["napari-spectral-clusters"]
    assert {s.key for s in samples} == {"cube", "photo"}
