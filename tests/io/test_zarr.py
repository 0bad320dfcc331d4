"""Zarr stores in and out, and lazy layers written block by block (zarr and v7.3 .mat)."""

import dask.array as da
import h5py
import numpy as np
import pytest

from napari_spectral_clusters.io import ImageData, ReadError, read_mat, read_zarr, write_zarr
from napari_spectral_clusters.io._image_data import store_blocks
from napari_spectral_clusters.io.mat import write_mat
from napari_spectral_clusters.samples import synthetic_cube


@pytest.fixture
def cube():
    data, gt, wl = synthetic_cube((60, 80), 24, seed=2)
    return data, gt, wl


@pytest.mark.parametrize("bands_last", [False, True])
def test_a_converted_cube_opens_lazily_band_axis_first(tmp_path, cube, bands_last):
    data, _, _ = cube
    stored = np.moveaxis(data, 0, -1) if bands_last else data
    da.to_zarr(da.from_array(stored, chunks=16), str(tmp_path / "scene.zarr"))
    (img,) = read_zarr(tmp_path / "scene.zarr", lazy_bytes=1024)
    assert img.name == "scene" and img.kind == "image" and img.channel_axis == 0
    assert isinstance(img.data, da.Array)  # big arrays are not read
    assert img.axis_labels == ("band", "y", "x")
    np.testing.assert_array_equal(img.data.compute(), data)
    (small,) = read_zarr(tmp_path / "scene.zarr")  # under the lazy size: read at once
    assert isinstance(small.data, np.ndarray)
    np.testing.assert_array_equal(small.data, data)


def test_a_group_with_wavelengths_and_ground_truth(tmp_path, cube):
    import zarr

    data, gt, wl = cube
    path = tmp_path / "scene.zarr"
    da.to_zarr(da.from_array(np.moveaxis(data, 0, -1)), str(path), component="scans/reflectance")
    da.to_zarr(da.from_array(wl), str(path), component="scans/wavelength")
    da.to_zarr(da.from_array(gt.astype(np.uint8)), str(path), component="gt")
    zarr.open_group(str(path), mode="r+")  # a group: arrays found at every level
    images = read_zarr(path)
    assert [(i.name, i.kind) for i in images] == [("scans.reflectance", "image"), ("gt", "labels")]
    np.testing.assert_array_equal(images[0].data, data)
    np.testing.assert_array_equal(images[0].metadata["wavelengths"], wl)
    np.testing.assert_array_equal(images[1].data, gt)


def test_not_a_store_is_a_clear_error(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ReadError, match="not a zarr store"):
        read_zarr(tmp_path / "empty.zarr")
    with pytest.raises(FileNotFoundError):
        read_zarr(tmp_path / "missing.zarr")


def _clusters(gt, chunks=20):
    colors = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25]], np.uint8)
    labels = da.from_array(gt.astype(np.uint8), chunks=chunks)
    meta = {"colors": colors[: int(gt.max())], "n_clusters": int(gt.max())}
    return ImageData("cube clusters", labels, kind="labels", metadata=meta)


@pytest.mark.parametrize("write, read", [(write_zarr, read_zarr), (write_mat, read_mat)])
def test_lazy_layers_round_trip_and_reopen_as_saved(tmp_path, cube, write, read):
    data, gt, wl = cube
    layers = [
        ImageData(
            "cube",
            da.from_array(data, chunks=(24, 20, 20)),
            channel_axis=0,
            metadata={"wavelengths": wl, "channel_axis": 0},
        ),
        _clusters(gt),
    ]
    path = write(tmp_path / f"saved{'.zarr' if write is write_zarr else '.mat'}", layers)
    if write is write_mat:  # lazy layers make a v7.3 file, as MATLAB stores arrays
        with h5py.File(path) as f:
            np.testing.assert_array_equal(f["cube"][()], np.moveaxis(data, 0, -1).T)
    images = read(path, lazy_bytes=1024)
    by_name = {i.name: i for i in images}
    cube_back, labels_back = by_name["cube"], by_name["cube clusters"]
    assert cube_back.channel_axis == 0 and isinstance(cube_back.data, da.Array)
    np.testing.assert_array_equal(np.asarray(cube_back.data), data)
    np.testing.assert_array_equal(cube_back.metadata["wavelengths"], wl)
    assert labels_back.kind == "labels"
    np.testing.assert_array_equal(np.asarray(labels_back.data), gt)
    np.testing.assert_array_equal(labels_back.metadata["colors"], layers[1].metadata["colors"])
    assert labels_back.metadata["n_clusters"] == int(gt.max())


def test_blocks_are_computed_once_each_a_few_at_a_time():
    computed = []

    def counted(block, block_info=None):
        computed.append(block_info[0]["chunk-location"])
        return block

    arr = da.from_array(np.arange(100 * 120).reshape(100, 120), chunks=(25, 40))
    lazy = arr.map_blocks(counted, dtype=arr.dtype)
    out = np.zeros(arr.shape, arr.dtype)
    seen_when_put = []

    def put(where, block):
        assert block.shape <= (25, 40)
        seen_when_put.append(len(computed))
        out[where] = block

    store_blocks(lazy, put, batch=3)
    np.testing.assert_array_equal(out, arr.compute())
    assert sorted(computed) == sorted(np.ndindex(4, 3))  # 12 blocks, each computed once
    # never more than a batch computed ahead of what was stored
    assert all(n - i <= 3 for i, n in enumerate(seen_when_put))


class Boom(RuntimeError):
    pass


def _fails_on_the_last_block(block, block_info=None):
    if block_info[0]["chunk-location"] == (2, 3):
        raise Boom("disk unplugged")
    return block


@pytest.mark.parametrize("write, suffix", [(write_zarr, ".zarr"), (write_mat, ".mat")])
def test_an_interrupted_write_leaves_no_output_and_keeps_the_old_one(
    tmp_path, cube, write, suffix
):
    _, gt, _ = cube
    path = tmp_path / f"clusters{suffix}"
    failing = _clusters(gt)
    failing = ImageData(
        failing.name,
        failing.data.map_blocks(_fails_on_the_last_block, dtype=np.uint8),
        kind="labels",
        metadata=failing.metadata,
    )
    with pytest.raises(Boom):
        write(path, [failing])
    assert list(tmp_path.iterdir()) == []  # nothing presented as complete, no partial left

    write(path, [_clusters(gt)])  # a complete earlier result...
    with pytest.raises(Boom):
        write(path, [failing])  # ...survives a failed overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    (back,) = (read_zarr if suffix == ".zarr" else read_mat)(path)
    np.testing.assert_array_equal(np.asarray(back.data), gt)
