"""Lazy cubes open in blocks coalesced from the file's storage chunks: whole chunks, whole
spectra where they fit, tens of MB (here a lowered target, to keep the files small)."""

import math

import dask.array as da
import h5py
import numpy as np
import pytest
import zarr

from napari_spectral_clusters.io import blocks, read_mat, read_zarr, write_zarr
from napari_spectral_clusters.io.blocks import block_chunks


def _assert_coalesced(chunks, shape, itemsize, storage, band_axis=None, target=None):
    """What :func:`block_chunks` promises, checked on the chunks of a dask array."""
    target = target or blocks.BLOCK_BYTES
    unit = [min(c, n) for c, n in zip(storage, shape, strict=True)]
    block = [c[0] for c in chunks]
    assert tuple(map(sum, chunks)) == tuple(shape)
    for c, u in zip(chunks, unit, strict=True):
        assert all(n == c[0] for n in c[:-1]) and c[-1] <= c[0]  # regular, as zarr writes
        assert all(n % u == 0 for n in c[:-1])  # block boundaries fall between chunks
    nbytes = itemsize * math.prod(block)
    # at most the target, unless one storage chunk is larger; and not needlessly small
    assert nbytes <= target or block == unit
    assert nbytes > target / 4 or all(len(c) == 1 for c in chunks)
    if band_axis is not None:
        whole_band = itemsize * shape[band_axis] * math.prod(unit) // unit[band_axis]
        if whole_band <= target:
            assert len(chunks[band_axis]) == 1, "a block holds whole spectra where they fit"
        else:
            assert block[:band_axis] + block[band_axis + 1 :] == (
                unit[:band_axis] + unit[band_axis + 1 :]
            )
    # then fastest axis to slowest: whole axes, one partial axis, then single chunks, so a
    # block is a run of consecutive chunks
    others = [a for a in reversed(range(len(shape))) if a != band_axis]
    partial = [a for a in others if len(chunks[a]) > 1]
    if partial:
        after = others[others.index(partial[0]) + 1 :]
        assert all(block[a] == unit[a] for a in after)


@pytest.mark.parametrize(
    "shape, itemsize, storage, band_axis",
    [
        ((200, 2000, 2000), 4, (128, 64, 64), 0),  # a MATLAB-like 3.2 GB cube
        ((2000, 2000, 200), 2, (64, 64, 200), 2),  # a zarr cube, bands last, whole per chunk
        ((224, 3000, 512), 4, (224, 1, 512), 0),  # one line per chunk (push-broom scanners)
        ((4000, 512, 512), 4, (100, 256, 256), 0),  # whole spectra fit in no block
        ((100, 3000, 3000), 4, None, 0),  # contiguous: runs of rows
        ((3000, 3000, 100), 4, None, None),
        ((160, 544, 512), 4, (8, 64, 64), 0),
        ((160, 544, 512), 4, (8, 64, 64), -3),  # counted from the end
        ((50, 40, 30), 4, (64, 64, 64), 0),  # chunks larger than the array
        ((8, 4096, 4096), 8, (4, 4096, 4096), 0),  # one chunk larger than the target
        ((300, 7), 1, (7, 7), None),
    ],
)
def test_blocks_are_whole_chunks_and_spectra_within_the_target(
    shape, itemsize, storage, band_axis
):
    chunks = block_chunks(shape, itemsize, storage, band_axis=band_axis)
    storage = storage or (1,) * len(shape)
    band = None if band_axis is None else band_axis % len(shape)
    _assert_coalesced(chunks, shape, itemsize, storage, band)


def test_a_matlab_like_cube_makes_few_blocks_of_tens_of_mb():
    chunks = block_chunks((200, 2000, 2000), 4, (128, 64, 64), band_axis=0)
    n_blocks = math.prod(map(len, chunks))
    assert n_blocks == 64  # from ~1,600 storage chunks
    assert 32 * 2**20 < 4 * math.prod(c[0] for c in chunks) <= 64 * 2**20


def test_empty_arrays_have_one_empty_block():
    assert block_chunks((0, 5), 4, (3, 5)) == ((0,), (5,))


#: A lowered target, so that files of a few hundred KB make several blocks.
TARGET = 64 * 2**10


def _assert_stored_blocks(layer, stored_as, storage, target):
    """A lazy layer's blocks, in the file's axis order, are coalesced from its ``storage``
    chunks; axis ``i`` of the layer (band, y, x) is axis ``stored_as[i]`` of the file."""
    chunks, shape = [None] * 3, [None] * 3
    for axis, stored in enumerate(stored_as):
        chunks[stored], shape[stored] = layer.chunks[axis], layer.shape[axis]
    _assert_coalesced(chunks, shape, layer.itemsize, storage, stored_as[0], target)
    assert layer.numblocks != (1, 1, 1)  # the target is met by several blocks


def _cube(bands, rows, cols):
    rng = np.random.default_rng(7)
    return rng.random((bands, rows, cols), dtype=np.float32)


@pytest.mark.parametrize(
    "band_axis_found_by, chunked",
    [("matlab_order", True), ("wavelengths", True), ("matlab_order", False)],
)
@pytest.mark.parametrize("target", [TARGET, TARGET // 8])  # whole spectra fit, or do not
def test_a_lazy_v73_cube_opens_in_coalesced_blocks(
    tmp_path, monkeypatch, band_axis_found_by, chunked, target
):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", target)
    cube = _cube(24, 60, 80)  # band, y, x
    path = tmp_path / "scene.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        if band_axis_found_by == "matlab_order":  # MATLAB: rows x cols x bands
            matlab, storage = np.moveaxis(cube, 0, -1), (5, 16, 8)  # HDF5: bands, cols, rows
        else:  # bands x rows x cols in MATLAB, told apart by the wavelength vector
            matlab, storage = cube, (16, 8, 5)  # HDF5: cols, rows, bands
            wl = f.create_dataset("wavelength", data=np.linspace(400, 900, 24)[None, :])
            wl.attrs["MATLAB_class"] = np.bytes_("double")
        ds = f.create_dataset("cube", data=matlab.T, chunks=storage if chunked else None)
        ds.attrs["MATLAB_class"] = np.bytes_("single")
    (img,) = read_mat(path, lazy_bytes=1024)
    assert isinstance(img.data, da.Array) and img.channel_axis == 0
    # the layer is band, y, x: which axis of the file each of them is
    stored_as = {"matlab_order": (0, 2, 1), "wavelengths": (2, 1, 0)}[band_axis_found_by]
    _assert_stored_blocks(img.data, stored_as, storage if chunked else (1, 1, 1), target)
    np.testing.assert_array_equal(np.asarray(img.data), cube)


@pytest.mark.parametrize("bands_last", [False, True])
@pytest.mark.parametrize("target", [TARGET, TARGET // 8])
def test_a_lazy_zarr_cube_opens_in_coalesced_blocks_and_saves(
    tmp_path, monkeypatch, bands_last, target
):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", target)
    cube = _cube(24, 60, 80)
    stored, storage = (np.moveaxis(cube, 0, -1), (8, 16, 5)) if bands_last else (cube, (5, 8, 16))
    z = zarr.open_array(  # zarr 2 and 3 alike (zarr 2 has no create_array)
        str(tmp_path / "scene.zarr"),
        mode="w",
        shape=stored.shape,
        chunks=storage,
        dtype=stored.dtype,
    )
    z[...] = stored
    (img,) = read_zarr(tmp_path / "scene.zarr", lazy_bytes=1024)
    assert isinstance(img.data, da.Array) and img.channel_axis == 0
    _assert_stored_blocks(img.data, (2, 0, 1) if bands_last else (0, 1, 2), storage, target)
    np.testing.assert_array_equal(np.asarray(img.data), cube)
    # the blocks are regular: the layer saves to zarr as it was read
    write_zarr(tmp_path / "saved.zarr", [img])
    (again,) = read_zarr(tmp_path / "saved.zarr", lazy_bytes=1024)
    np.testing.assert_array_equal(np.asarray(again.data), cube)


def test_a_header_declaring_billions_of_chunks_is_refused_before_any_block_is_made():
    from napari_spectral_clusters.io.blocks import MAX_CHUNKS

    with pytest.raises(ValueError, match="3,435,973,840 chunks"):
        block_chunks((12, 12, 2**32), 4, (6, 6, 5), band_axis=-1)
    # a contiguous array counts no storage chunks, and a big real cube is far below the cap
    assert block_chunks((100, 10**6), 8, None)
    chunks = zip((224, 20_000, 20_000), (128, 64, 64), strict=True)
    assert math.prod(-(-n // c) for n, c in chunks) < MAX_CHUNKS  # a 358 GB float32 cube
    assert block_chunks((224, 20_000, 20_000), 4, (128, 64, 64), band_axis=0)
