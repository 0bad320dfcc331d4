import re

import numpy as np
import pytest
import scipy.io

from napari_spectral_clusters.io import ReadError, read_mat
from napari_spectral_clusters.io.mat import write_mat73

from ..conftest import DATA


def test_samson_cube_band_axis_first_and_same_values(data_dir):
    path = data_dir / "hsi" / "Samson.mat"
    raw = scipy.io.loadmat(path)
    images = {img.name: img for img in read_mat(path)}
    cube = images["SamSon"]
    assert cube.kind == "image"
    assert cube.data.shape == (156, 95, 95)
    assert cube.data.dtype == np.float64
    assert cube.axis_labels == ("band", "y", "x")
    assert cube.channel_axis == 0 and cube.metadata["channel_axis"] == 0
    # the spectrum of pixel (row 10, col 70) is MATLAB's SamSon(11, 71, :)
    np.testing.assert_array_equal(cube.data[:, 10, 70], raw["SamSon"][10, 70, :])
    # endmember spectra (156 x 3) are not layers
    assert "M" not in images and "EndMembers" not in images and "A" not in images
    assert cube.metadata["source"] == str(path)
    # the 3 abundance maps open as 2-D images named after the file's material names (cell
    # `cood`), hidden, so the scene stays in view and they show at every band
    maps = [img for img in images.values() if img.metadata.get("variable") == "A"]
    assert [m.name for m in maps] == ["A (1-rock)", "A (2-Tree)", "A (3-water)"]
    for i, m in enumerate(maps):
        assert m.data.shape == (95, 95) and m.channel_axis is None
        np.testing.assert_array_equal(m.data, raw["A"][:, :, i])
        assert m.metadata["plane"] == i and m.layer_state == {"visible": False}


def test_abundance_maps_beside_a_scene_open_one_by_one(tmp_path):
    rng = np.random.default_rng(0)
    scene = rng.random((10, 12, 20))
    maps = rng.random((10, 12, 4))
    maps /= maps.sum(axis=2, keepdims=True)  # fractions of 4 materials: they sum to one
    swir = rng.random((10, 12, 30))  # more planes than a stack of maps: a cube
    multi = rng.random((10, 12, 8))  # a few bands that are not fractions: a cube too
    path = tmp_path / "s.mat"
    scipy.io.savemat(
        path,
        {"scene": scene, "maps": maps, "swir": swir, "multi": multi, "W": rng.random((4, 12))},
    )
    images = read_mat(path)
    names = [img.name for img in images]
    # the maps last, on top of the scene: one shown is drawn over it
    assert names[-4:] == [f"maps {i + 1}" for i in range(4)]  # no list of names: numbered
    by_name = {img.name: img for img in images}
    for i in range(4):
        np.testing.assert_array_equal(by_name[f"maps {i + 1}"].data, maps[:, :, i])
    assert by_name["scene"].data.shape == (20, 10, 12)
    assert by_name["swir"].data.shape == (30, 10, 12)
    assert by_name["multi"].data.shape == (8, 10, 12) and by_name["multi"].channel_axis == 0
    assert "W" not in by_name  # 4 x 12: one row per map, spectra-like, as before
    # alone, the same array is a 4-band cube (nothing to share a slider with)
    scipy.io.savemat(path, {"maps": maps})
    (alone,) = read_mat(path)
    assert alone.data.shape == (4, 10, 12) and alone.channel_axis == 0


def test_maps_are_named_only_after_the_one_list_of_as_many_names(tmp_path):
    rng = np.random.default_rng(1)
    maps = rng.random((6, 7, 3))
    maps /= maps.sum(axis=2, keepdims=True)
    scene = rng.random((6, 7, 40))
    names = np.array([["soil"], ["tree"], ["water"]], dtype=object)
    path = tmp_path / "s.mat"
    scipy.io.savemat(path, {"scene": scene, "A": maps, "cood": names})
    assert [img.name for img in read_mat(path)][-3:] == ["A (soil)", "A (tree)", "A (water)"]
    authors = np.array([["Ann"], ["Bo"], ["Cy"]], dtype=object)  # which list is meant?
    scipy.io.savemat(path, {"scene": scene, "A": maps, "cood": names, "who": authors})
    assert [img.name for img in read_mat(path)][-3:] == ["A 1", "A 2", "A 3"]
    scipy.io.savemat(path, {"scene": scene, "A": maps, "cood": names[:2]})  # too short
    assert [img.name for img in read_mat(path)][-3:] == ["A 1", "A 2", "A 3"]


def test_ground_truth_only_file_opens_as_labels(data_dir):
    (gt,) = read_mat(data_dir / "hsi" / "Indian_pines_gt.mat")
    raw = scipy.io.loadmat(data_dir / "hsi" / "Indian_pines_gt.mat")["y"]
    assert gt.kind == "labels"
    assert gt.data.shape == (145, 145)
    assert np.issubdtype(gt.data.dtype, np.integer)
    np.testing.assert_array_equal(gt.data, raw)
    assert gt.data.max() == 16


@pytest.mark.parametrize("name", ["test3dmatrix_6.1_SOL2.mat", "test3dmatrix_7.4_GLNX86.mat"])
def test_matlab_versions_open_the_same(data_dir, name):
    (img,) = read_mat(data_dir / "matlab" / name)
    raw = scipy.io.loadmat(data_dir / "matlab" / name)["test3dmatrix"]
    assert raw.shape == (2, 3, 4)
    np.testing.assert_array_equal(img.data, np.moveaxis(raw, -1, 0))


def test_arrays_inside_cells_are_found(data_dir):
    images = read_mat(data_dir / "matlab" / "SheppLogan3D_cell.mat")
    names = [img.name for img in images]
    assert "SheppLogan3D[8]" in names
    assert all(name.startswith("SheppLogan3D[") for name in names)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("corrupted_zlib_checksum.mat", "corrupted_zlib_checksum.mat could not be read"),
        ("malformed1.mat", "malformed1.mat could not be read"),
        ("testdouble_4.2c_SOL2.mat", r"holds no image: testdouble \(1x9 float64\)"),
        ("testcell_7.4_GLNX86.mat", r"holds no image: testcell \(1x4 cell\)"),
    ],
)
def test_unusable_files_give_a_clear_message(data_dir, name, match):
    with pytest.raises(ReadError, match=match):
        read_mat(data_dir / "matlab" / name)


def test_flattened_unmixing_cube_is_reshaped(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.integers(0, 4000, (7, 5, 12)).astype(np.uint16)  # rows x cols x bands
    # unmixing datasets store bands x pixels, pixels in MATLAB (column-major) order
    flat = cube.reshape(-1, 12, order="F").T
    scipy.io.savemat(tmp_path / "u.mat", {"Y": flat, "nRow": 7, "nCol": 5, "nBand": 12})
    (img,) = read_mat(tmp_path / "u.mat")
    assert img.data.dtype == np.uint16
    np.testing.assert_array_equal(img.data, np.moveaxis(cube, -1, 0))


def test_wavelengths_pick_the_spectral_axis(tmp_path):
    cube = np.random.default_rng(1).random((20, 8, 8))  # bands first, square image
    wl = np.linspace(400, 700, 20)
    scipy.io.savemat(tmp_path / "c.mat", {"cube": cube, "wavelength": wl, "cube_gt": np.eye(8)})
    images = {img.name: img for img in read_mat(tmp_path / "c.mat")}
    np.testing.assert_array_equal(images["cube"].data, cube)
    np.testing.assert_array_equal(images["cube"].metadata["wavelengths"], wl)
    assert images["cube"].metadata["wavelength_unit"] == "nm"
    assert images["cube_gt"].kind == "labels"
    assert "wavelength" not in images


@pytest.fixture
def cube_in_every_version(tmp_path):
    """The same rows x cols x bands cube, wavelengths and ground truth in four file versions."""
    rng = np.random.default_rng(7)
    cube = rng.random((9, 11, 6))  # rows x cols x bands, as MATLAB users store cubes
    wl = np.linspace(450.0, 700.0, 6)
    gt = rng.integers(0, 3, (9, 11)).astype(np.uint8)
    variables = {"cube": cube, "wavelength": wl}
    paths = {}
    paths["v4"] = tmp_path / "v4.mat"
    # v4 holds only matrices: the cube goes in as bands x pixels (column-major pixel order)
    # with its size in scalars, as unmixing datasets store cubes
    flat = cube.reshape(-1, 6, order="F").T
    v4 = {"cube": flat, "lines": 9, "cols": 11, "wavelength": wl, "gt": gt.astype(float)}
    scipy.io.savemat(paths["v4"], v4, format="4")
    paths["v5"] = tmp_path / "v5.mat"
    scipy.io.savemat(paths["v5"], {**variables, "gt": gt}, format="5")
    paths["v5z"] = tmp_path / "v5z.mat"
    scipy.io.savemat(paths["v5z"], {**variables, "gt": gt}, do_compression=True)
    paths["v73"] = write_mat73(tmp_path / "v73.mat", {**variables, "gt": gt})
    return cube, wl, gt, paths


def test_every_matlab_version_opens_identically(cube_in_every_version):
    cube, wl, gt, paths = cube_in_every_version
    for version, path in paths.items():
        images = {img.name: img for img in read_mat(path)}
        assert set(images) == {"cube", "gt"}, version
        np.testing.assert_array_equal(images["cube"].data, np.moveaxis(cube, -1, 0))
        np.testing.assert_array_equal(images["cube"].metadata["wavelengths"], wl)
        assert images["cube"].axis_labels == ("band", "y", "x")
        assert images["gt"].kind == "labels"
        np.testing.assert_array_equal(images["gt"].data, gt)


def test_v73_is_readable_by_plain_h5py_as_matlab_stores_it(cube_in_every_version):
    import h5py

    cube, _, _, paths = cube_in_every_version
    with h5py.File(paths["v73"], "r") as f:
        assert f["cube"].shape == cube.shape[::-1]
        assert f["cube"].attrs["MATLAB_class"] == b"double"
        np.testing.assert_array_equal(f["cube"][()].T, cube)
    assert paths["v73"].read_bytes()[:10] == b"MATLAB 7.3"


def test_real_v73_file_lists_what_it_holds(data_dir):
    with pytest.raises(ReadError, match=r"holds no image: testdouble \(1x9 double\)"):
        read_mat(data_dir / "matlab" / "testhdf5_7.4_GLNX86.mat")


def test_v73_structs_and_cells(tmp_path):
    import h5py

    cube = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3)
    path = tmp_path / "s.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        grp = f.create_group("scene")
        grp.attrs["MATLAB_class"] = np.bytes_("struct")
        ds = grp.create_dataset("radiance", data=cube.T)
        ds.attrs["MATLAB_class"] = np.bytes_("uint16")
        refs = f.create_group("#refs#")
        inner = refs.create_dataset("a", data=cube[..., 0].T.astype(np.float32))
        inner.attrs["MATLAB_class"] = np.bytes_("single")
        cell = f.create_dataset("c", data=np.array([[inner.ref]], dtype=h5py.ref_dtype))
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
    images = {img.name: img for img in read_mat(path)}
    np.testing.assert_array_equal(images["scene.radiance"].data, np.moveaxis(cube, -1, 0))
    assert images["scene.radiance"].data.dtype == np.uint16
    np.testing.assert_array_equal(images["c[1]"].data, cube[..., 0])


LAZY_PROBE = """
import resource, sys
import re

import numpy as np
from napari_spectral_clusters.io import read_mat

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(img,) = read_mat(sys.argv[1], lazy_bytes=2**20)
band = np.asarray(img.data[17])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(type(img.data).__module__, img.data.shape, float(band[3, 5]), (after - before) * 1024)
"""


def test_big_v73_cube_opens_lazily(tmp_path):
    """A 170 MB cube opens as a dask array; reading one band costs a few MB, not the cube."""
    import subprocess
    import sys

    import h5py

    rows, cols, bands = 512, 544, 160
    path = tmp_path / "big.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset("cube", shape=(bands, cols, rows), dtype="f4", chunks=(8, 64, 64))
        ds.attrs["MATLAB_class"] = np.bytes_("single")
        for b in range(bands):
            ds[b] = np.full((cols, rows), b, np.float32) + np.arange(rows, dtype=np.float32)
    cube_bytes = rows * cols * bands * 4
    out = subprocess.run(
        [sys.executable, "-c", LAZY_PROBE, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    module, rss_growth = out[0], int(out[-1])
    assert module.startswith("dask")
    assert float(out[-2]) == 17 + 3  # band 17, row 3: value = band + row
    assert rss_growth < cube_bytes / 10, (rss_growth, cube_bytes)


# What each real MATLAB file holds for a user: layers, or the reason it has none.
REAL_FILES = {
    "SheppLogan3D_cell.mat": "layers",
    "big_endian.mat": "layers",
    "little_endian.mat": "layers",
    "logical_sparse.mat": "layers",
    "test3dmatrix_6.1_SOL2.mat": "layers",
    "test3dmatrix_6.5.1_GLNX86.mat": "layers",
    "test3dmatrix_7.1_GLNX86.mat": "layers",
    "test3dmatrix_7.4_GLNX86.mat": "layers",
    "testmatrix_4.2c_SOL2.mat": "layers",
    "testmulti_4.2c_SOL2.mat": "layers",
    "testsparse_7.4_GLNX86.mat": "layers",
    "corrupted_zlib_checksum.mat": "could not be read",
    "corrupted_zlib_data.mat": "could not be read",
    "malformed1.mat": "could not be read",
    "test_empty_struct.mat": "holds no image",
    "test_mat4_le_floats.mat": "holds no image",
    "testbool_8_WIN64.mat": "holds no image",
    "testcell_7.4_GLNX86.mat": "holds no image",
    "testcellnest_7.4_GLNX86.mat": "holds no image",
    "testcomplex_7.4_GLNX86.mat": "holds no image",
    "testdouble_4.2c_SOL2.mat": "holds no image",
    "testemptycell_7.4_GLNX86.mat": "holds no image",
    "testfunc_7.4_GLNX86.mat": "holds no image",
    "testhdf5_7.4_GLNX86.mat": "holds no image",
    "testobject_7.4_GLNX86.mat": "holds no image",
    "testonechar_7.4_GLNX86.mat": "holds no image",
    "teststruct_7.4_GLNX86.mat": "holds no image",
    "teststructarr_7.4_GLNX86.mat": "holds no image",
    "teststructnest_7.4_GLNX86.mat": "holds no image",
}


def test_every_real_matlab_file_is_listed(data_dir):
    assert {p.name for p in (data_dir / "matlab").glob("*.mat")} == set(REAL_FILES)


@pytest.mark.parametrize(("name", "expect"), REAL_FILES.items())
def test_every_real_matlab_file_opens_or_says_why(data_dir, name, expect):
    import warnings

    path = data_dir / "matlab" / name
    if expect != "layers":
        with pytest.raises(ReadError, match=f"{re.escape(name)} .*{expect}"):
            read_mat(path)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray complex-data warning for non-layers
        images = read_mat(path)
    assert images
    for img in images:
        assert img.kind in ("image", "labels")
        assert img.data.ndim >= 2 and min(img.data.shape) >= 2
        assert img.data.dtype.isnative
        assert len(img.axis_labels) == img.data.ndim


def test_big_endian_values(data_dir):
    (img,) = read_mat(data_dir / "matlab" / "big_endian.mat")
    ref = scipy.io.loadmat(data_dir / "matlab" / "big_endian.mat")["floats"]
    np.testing.assert_array_equal(img.data, ref)


def test_complex_cube_opens_as_magnitude_with_a_warning(tmp_path):
    cube = np.ones((4, 5, 6)) * (3 + 4j)
    scipy.io.savemat(tmp_path / "z.mat", {"z": cube})
    with pytest.warns(UserWarning, match="z is complex; opening its magnitude"):
        (img,) = read_mat(tmp_path / "z.mat")
    np.testing.assert_array_equal(img.data, np.full((6, 4, 5), 5.0))


def test_logical_mask_opens_as_labels(tmp_path):
    mask = np.zeros((6, 7), bool)
    mask[2:4, 1:5] = True
    scipy.io.savemat(tmp_path / "m.mat", {"roi": mask})
    (img,) = read_mat(tmp_path / "m.mat")
    assert img.kind == "labels"
    np.testing.assert_array_equal(img.data, mask.astype(np.uint8))


def test_uint16_and_nan_kept(tmp_path):
    cube = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    flt = np.ones((6, 6, 4))
    flt[1, 2, 3] = np.nan
    scipy.io.savemat(tmp_path / "k.mat", {"counts": cube, "refl": flt})
    images = {img.name: img for img in read_mat(tmp_path / "k.mat")}
    assert images["counts"].data.dtype == np.uint16
    assert np.isnan(images["refl"].data[3, 1, 2])


SHARED_HSI = DATA.parent.parent.parent / "shared" / "data" / "hsi"


@pytest.mark.skipif(
    not (SHARED_HSI / "jasperRidge2_R198.mat").exists(),
    reason="Jasper Ridge (4 MB) is read from ../shared/data, beside the checkout",
)
def test_jasper_ridge_opens_as_the_cube_a_user_expects():
    path = SHARED_HSI / "jasperRidge2_R198.mat"
    raw = scipy.io.loadmat(path)
    (cube,) = read_mat(path)
    assert cube.data.shape == (198, 100, 100) and cube.data.dtype == np.uint16
    # pixel p of Y is MATLAB's (p mod lines, p div lines): column-major
    for p in (0, 1, 99, 100, 4321, 9999):
        np.testing.assert_array_equal(cube.data[:, p % 100, p // 100], raw["Y"][:, p])
