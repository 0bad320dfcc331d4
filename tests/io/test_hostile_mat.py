"""Damaged and hostile MATLAB files (issue 14): a clear ReadError or a warning, never a crash of
this process, an unbounded allocation, a file outside the one opened, or garbage values."""

import shutil
import warnings

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from napari_spectral_clusters.io import ReadError, read_mat
from napari_spectral_clusters.io.contained import parse_contained
from napari_spectral_clusters.io.mat import write_mat73

from ..conftest import DATA

HOSTILE = DATA / "hostile"


def test_a_file_that_crashes_scipys_parser_gives_an_error_and_the_next_file_opens(tmp_path):
    # test3dmatrix_6.1_SOL2.mat with the byte at offset 203 changed from 0x02 to 0x0E: a data
    # element's type becomes miMATRIX, and scipy.io.loadmat dies with SIGSEGV in-process
    path = HOSTILE / "segfault_miMATRIX_offset203.mat"
    with pytest.raises(ReadError, match=r"segfault_miMATRIX_offset203\.mat is damaged.*crashed"):
        read_mat(path)
    # the child that crashed is replaced: the next files open, the same one fails the same way
    (cube,) = read_mat(DATA / "matlab" / "test3dmatrix_6.1_SOL2.mat")
    assert cube.data.shape == (4, 2, 3)
    with pytest.raises(ReadError, match="crashed"):
        read_mat(path)


def _v5_sparse_with_row_index(tmp_path, row: int):
    """A 4x4 sparse variable saved by scipy, then its second row index patched to ``row``."""
    path = tmp_path / "sparse.mat"
    m = scipy.sparse.csc_matrix(([5.0, 7.0], ([0, 3], [1, 1])), shape=(4, 4))
    scipy.io.savemat(path, {"s": m}, do_compression=False)
    raw = bytearray(path.read_bytes())
    # the row indices (ir) are an miINT32 element of two values: tag (5, 8), then 0 and 3
    at = raw.index(np.array([5, 8, 0, 3], "<i4").tobytes())
    raw[at + 12 : at + 16] = np.array([row], "<i4").tobytes()
    path.write_bytes(bytes(raw))
    return path


def test_an_undamaged_sparse_variable_opens(tmp_path):
    (img,) = read_mat(_v5_sparse_with_row_index(tmp_path, 2))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[2, 1] = 5.0, 7.0
    np.testing.assert_array_equal(img.data, expected)


@pytest.mark.parametrize("row", [40, 10**8, -5])
def test_a_sparse_row_index_past_the_end_is_refused_not_written(tmp_path, row):
    # unchecked, toarray() writes the value 7 at the file's chosen offset past its buffer
    with pytest.raises(ReadError, match="sparse variable s is damaged"):
        read_mat(_v5_sparse_with_row_index(tmp_path, row))


def test_a_tiny_file_declaring_a_huge_sparse_matrix_is_refused(tmp_path):
    path = tmp_path / "huge.mat"
    big = scipy.sparse.csc_matrix(([1.0], ([5], [7])), shape=(100_000, 100_000))
    scipy.io.savemat(path, {"big": big})
    assert path.stat().st_size < 500_000  # its 100,001 column starts
    with pytest.raises(ReadError, match=r"100000x100000 would take 74\.5 GiB"):
        read_mat(path)


def test_a_file_needing_more_than_the_eager_cap_is_refused(monkeypatch):
    monkeypatch.setenv("SPECTRAL_CLUSTERS_EAGER_BYTES", str(2**20))
    with pytest.raises(ReadError, match=r"Samson.mat needs more memory than the 0\.0 GiB"):
        read_mat(DATA / "hsi" / "Samson.mat")


def test_a_parse_that_takes_too_long_is_stopped_and_the_next_one_runs():
    with pytest.raises(ReadError, match="took longer than 0 s and was stopped"):
        parse_contained("mat-v5", DATA / "hsi" / "Samson.mat", timeout=1e-4)
    arrays, extras = parse_contained("mat-v5", DATA / "hsi" / "Samson.mat")
    assert arrays["SamSon"].shape == (95, 95, 156)
    assert "SamSon (95x95x156 float64)" in extras["description"]


def test_input_files_are_not_modified(tmp_path):
    path = tmp_path / "crash.mat"
    shutil.copy(HOSTILE / "segfault_miMATRIX_offset203.mat", path)
    before = path.read_bytes()
    with pytest.raises(ReadError):
        read_mat(path)
    assert path.read_bytes() == before


# --- v7.3 (HDF5) ------------------------------------------------------------------------------


def _v73(tmp_path, name="f.mat"):
    path = tmp_path / name
    write_mat73(path, {"cube": np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)})
    return path


def _read_warned(path):
    """The images of ``path`` and every warning said while reading it, as one text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = read_mat(path)
    return images, " ".join(str(w.message) for w in caught)


def test_external_and_soft_links_are_not_followed(tmp_path):
    secret = tmp_path / "other.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.full((5, 6), 42.0)
        f["data"].attrs["MATLAB_class"] = np.bytes_("double")
    path = _v73(tmp_path)
    with h5py.File(path, "a") as f:
        f["stolen"] = h5py.ExternalLink(str(secret), "/data")
        f["alias"] = h5py.SoftLink("/cube")
    images, said = _read_warned(path)
    assert [img.name for img in images] == ["cube"]
    assert "did not follow external link stolen" in said
    assert "did not follow soft link alias" in said


def test_a_cell_that_holds_itself_is_read_once(tmp_path):
    path = _v73(tmp_path)
    with h5py.File(path, "a") as f:
        cell = f.create_dataset("loop", shape=(1, 2), dtype=h5py.ref_dtype)
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
        cell[0, 0] = cell.ref  # a reference cycle
        cell[0, 1] = f["cube"].ref
    images = read_mat(path)
    assert [img.name for img in images] == ["cube"]  # reached twice, listed once


def test_deep_nesting_is_cut_with_a_warning_not_a_recursion_error(tmp_path):
    path = _v73(tmp_path)
    with h5py.File(path, "a") as f:
        g = f
        for i in range(200):
            g = g.create_group(f"g{i}")
        g["deep"] = np.ones((4, 4))
        g["deep"].attrs["MATLAB_class"] = np.bytes_("double")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = read_mat(path)
    assert [img.name for img in images] == ["cube"]
    assert any("nested more than" in str(w.message) for w in caught)


def test_a_string_dataset_claiming_to_be_double_is_skipped(tmp_path):
    path = _v73(tmp_path)
    with h5py.File(path, "a") as f:
        f["fake"] = np.array([b"abc", b"def"])
        f["fake"].attrs["MATLAB_class"] = np.bytes_("double")
        f["txt"] = np.array([[1e300, -5]])  # a "char" of codes no character has
        f["txt"].attrs["MATLAB_class"] = np.bytes_("char")
    images = read_mat(path)
    assert [img.name for img in images] == ["cube"]


def test_a_damaged_v73_sparse_matrix_is_refused(tmp_path):
    path = _v73(tmp_path)
    with h5py.File(path, "a") as f:
        g = f.create_group("s")
        g.attrs["MATLAB_class"] = np.bytes_("double")
        g.attrs["MATLAB_sparse"] = np.uint64(4)
        g["ir"] = np.array([40], np.uint64)  # row 40 of 4
        g["jc"] = np.array([0, 1, 1, 1, 1], np.uint64)
        g["data"] = np.array([7.0])
    with pytest.raises(ReadError, match=r"f\.mat: sparse variable s is damaged"):
        read_mat(path)


def test_a_truncated_v73_file_gives_a_read_error(tmp_path):
    path = _v73(tmp_path)
    cut = tmp_path / "cut.mat"
    cut.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ReadError, match=r"cut\.mat"):
        read_mat(cut)


def test_a_truncated_v5_file_says_what_went_wrong_without_class_names(tmp_path, data_dir):
    """It said "...(corrupt or truncated?): OSError: could not read bytes"."""
    cut = tmp_path / "cut.mat"
    whole = (data_dir / "hsi" / "Samson.mat").read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ReadError) as raised:
        read_mat(cut)
    message = str(raised.value)
    assert message.startswith("cut.mat could not be read as a MATLAB file (corrupt or trunc")
    assert "Error" not in message and message.endswith("could not read bytes")


def test_datasets_stored_in_other_files_are_not_read(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(16, dtype="<f8").tobytes())
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.full((4, 4), 42.0)
    path = _v73(tmp_path)
    with h5py.File(path, "a") as f:
        ds = f.create_dataset("raw", shape=(4, 4), dtype="<f8", external=[(str(secret), 0, 128)])
        ds.attrs["MATLAB_class"] = np.bytes_("double")
        layout = h5py.VirtualLayout(shape=(4, 4), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "data", shape=(4, 4))
        vds = f.create_virtual_dataset("virtual", layout)
        vds.attrs["MATLAB_class"] = np.bytes_("double")
    images, said = _read_warned(path)
    assert [img.name for img in images] == ["cube"]
    assert "did not read raw: its data is stored in another file" in said
    assert "did not read virtual" in said
