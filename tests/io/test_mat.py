import numpy as np
import pytest
import scipy.io

from napari_spectral_clusters.io import ReadError, read_mat


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
    # abundance maps open as a 3-band image; endmember spectra (156 x 3) are not layers
    assert images["A"].data.shape == (3, 95, 95)
    assert "M" not in images and "EndMembers" not in images
    assert cube.metadata["source"] == str(path)


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
