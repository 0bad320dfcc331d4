"""Hostile PNGs, zarr stores and saved-layer metadata (issue 14): a clear ReadError or a
warning, never a hang, an unhandled exception, a file outside the one opened, or a huge
allocation from a tiny file."""

import json
import os
import threading
import warnings

import h5py
import numpy as np
import pytest
import scipy.io
import zarr
from PIL import Image

from napari_spectral_clusters.io import ReadError, read_mat, read_png, read_zarr, write_png
from napari_spectral_clusters.io.layers import MAX_LAYERS
from napari_spectral_clusters.io.png import TEXT_KEY


def _reads_within(seconds, read, *args):
    """Run ``read`` in a thread; fail (not hang the suite) if it does not return in time."""
    out = {}

    def run():
        try:
            out["value"] = read(*args)
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{read.__name__} blocked on {args}"
    return out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize(("name", "read"), [("pipe.png", read_png), ("pipe.mat", read_mat)])
def test_a_fifo_is_refused_not_read(tmp_path, name, read):
    os.mkfifo(tmp_path / name)
    out = _reads_within(10, read, tmp_path / name)
    assert isinstance(out.get("error"), ReadError)
    assert "not a regular file" in str(out["error"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def _store_without_a_chunk(tmp_path):
    """A small zarr store, and the path of one of its chunk files, removed."""
    z = zarr.open_array(
        str(tmp_path / "s.zarr"), mode="w", shape=(4, 4), chunks=(2, 2), dtype="f8"
    )
    z[...] = 1.0
    chunk = next(p for p in (tmp_path / "s.zarr").rglob("*") if p.is_file() and p.name[0] in "0c")
    chunk.unlink()
    return chunk


def test_a_zarr_chunk_that_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(_store_without_a_chunk(tmp_path))
    out = _reads_within(10, read_zarr, tmp_path / "s.zarr")
    assert isinstance(out.get("error"), ReadError)
    assert "not a regular file" in str(out["error"])


def test_a_zarr_chunk_linking_outside_the_store_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 32)
    _store_without_a_chunk(tmp_path).symlink_to(secret)
    with pytest.raises(ReadError, match="links outside the store"):
        read_zarr(tmp_path / "s.zarr")


def test_an_apng_of_many_frames_on_a_big_canvas_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAL_CLUSTERS_EAGER_BYTES", str(64 * 2**20))
    frames = [Image.new("RGBA", (2000, 2000), (i, 0, 0, 255)) for i in range(5)]
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:])
    with pytest.raises(ReadError, match=r"5 frames of 2000 x 2000 \(0\.1 GiB decoded\)"):
        read_png(tmp_path / "a.png")


@pytest.mark.parametrize("colors", [[300], 5, "red", [[1, 2]], [[0, 0, 1e400]], [[-1, 0, 0]]])
def test_hostile_saved_colours_are_dropped_not_trusted(tmp_path, colors):
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    path = write_png(tmp_path / "l.png", labels)
    # rewrite the file's metadata as a damaged or hostile writer would
    saved = {"layer": "labels", "metadata": {"colors": colors}, "layer_state": {}}
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(TEXT_KEY, json.dumps(saved))
    Image.fromarray(labels).save(path, pnginfo=info)
    with pytest.warns(UserWarning, match="cluster colours are damaged"):
        img = read_png(path)
    assert img.kind == "labels"
    np.testing.assert_array_equal(img.data, labels)
    assert "colors" not in img.metadata


def test_saved_labels_holding_nan_open_as_an_image_with_a_warning(tmp_path):
    arr = np.array([[0.0, 1.0], [np.nan, 2.0]])
    scipy.io.savemat(tmp_path / "m.mat", {"x": arr, "x_metadata": json.dumps({"layer": "labels"})})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (img,) = read_mat(tmp_path / "m.mat")
    assert img.kind == "image"
    np.testing.assert_array_equal(img.data, arr)
    assert any("not labels" in str(w.message) for w in caught)


@pytest.mark.parametrize("value", [np.nan, np.inf, -4.0, 1j, 2.5])
def test_odd_lines_and_cols_leave_the_arrays_as_they_are(tmp_path, value):
    pixels = np.arange(3 * 12, dtype=float).reshape(3, 12)
    scipy.io.savemat(tmp_path / "m.mat", {"Y": pixels, "lines": value, "cols": 4.0})
    (img,) = read_mat(tmp_path / "m.mat")
    assert img.data.shape == (3, 12)


def test_a_file_of_thousands_of_variables_opens_a_bounded_number_of_layers(tmp_path):
    scipy.io.savemat(tmp_path / "m.mat", {f"v{i}": np.full((3, 3), i) for i in range(2000)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = read_mat(tmp_path / "m.mat")
    assert len(images) == MAX_LAYERS
    assert any(
        f"holds 2000 images; opening the first {MAX_LAYERS}" in str(w.message) for w in caught
    )


def test_a_tiny_store_declaring_a_huge_2d_array_is_not_computed(tmp_path):
    # 10^6 x 10^6 float64 declared (8 TB), no chunk written: only the metadata exists. One
    # plane is far more than napari may read at once: not opened, and nothing was read
    zarr.open_array(
        str(tmp_path / "s.zarr"), mode="w", shape=(10**6, 10**6), chunks=(1000, 1000), dtype="f8"
    )
    with (
        pytest.warns(UserWarning, match="one plane of it is 1000000 x 1000000"),
        pytest.raises(ReadError, match="holds no image"),
    ):
        read_zarr(tmp_path / "s.zarr")
    # a big 2-D array napari can show stays lazy: its labels-or-image kind is decided
    # without computing it
    zarr.open_array(
        str(tmp_path / "t.zarr"), mode="w", shape=(20_000, 30_000), chunks=(1000, 1000), dtype="u1"
    )
    (img,) = read_zarr(tmp_path / "t.zarr")
    assert img.data.shape == (20_000, 30_000) and hasattr(img.data, "dask")


def test_a_huge_16_bit_png_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    from napari_spectral_clusters.io.png import PNG16_PIXELS

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    side = int(PNG16_PIXELS**0.5) + 1  # just past the limit; a header and an empty IDAT
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
    (tmp_path / "big16.png").write_bytes(data + chunk(b"IEND", b""))
    with pytest.raises(ReadError, match="16-bit PNG of 4097 x 4097 pixels"):
        read_png(tmp_path / "big16.png")


@pytest.mark.parametrize("where", ["filters", "compressor"])
def test_a_zarr_store_whose_codec_would_unpickle_is_refused_without_running_it(tmp_path, where):
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    store = tmp_path / "evil.zarr"
    store.mkdir()
    codec = {"id": "pickle", "protocol": 5}
    meta = {
        "zarr_format": 2, "shape": [2, 2], "chunks": [2, 2], "dtype": "<f8", "order": "C",
        "fill_value": 0.0, "compressor": codec if where == "compressor" else None,
        "filters": [codec] if where == "filters" else None,
    }  # fmt: skip
    (store / ".zarray").write_text(json.dumps(meta))
    (store / "0.0").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ReadError):
        read_zarr(store)
    assert not marker.exists()


def test_a_symlink_loop_in_a_store_or_as_a_file_is_a_read_error(tmp_path):
    store = tmp_path / "s.zarr"
    zarr.open_array(str(store), mode="w", shape=(4, 4), chunks=(2, 2), dtype="f8")[...] = 1.0
    (store / "loop").symlink_to(store / "loop")
    with pytest.raises(ReadError):
        read_zarr(store)
    (tmp_path / "a.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(ReadError, match=r"a\.png cannot be opened"):
        read_png(tmp_path / "a.png")


def test_a_file_named_for_another_format_says_what_it_is(tmp_path):
    """A PNG saved as .mat, a MATLAB file saved as .png: the error names what the file is
    and the name it opens under, instead of the wrong parser's complaint."""
    photo = tmp_path / "photo.mat"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(photo, format="PNG")
    with pytest.raises(ReadError) as raised:
        read_mat(photo)
    assert str(raised.value) == (
        "photo.mat is a PNG picture, not a MATLAB file; rename it to photo.png"
    )
    photo.rename(tmp_path / "photo.png")
    assert read_png(tmp_path / "photo.png").data.shape == (4, 5, 3)  # and so it opens

    cube = tmp_path / "cube.png"
    scipy.io.savemat(cube, {"cube": np.ones((3, 4, 5))}, format="5")
    with pytest.raises(ReadError, match=r"^cube.png is a MATLAB file, not a PNG file; rename"):
        read_png(cube)
    jpeg = tmp_path / "scan.mat"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(jpeg, format="JPEG")
    with pytest.raises(ReadError) as raised:  # not one this plugin opens: no new name
        read_mat(jpeg)
    assert str(raised.value) == "scan.mat is a JPEG picture, not a MATLAB file"
    plain = tmp_path / "plain.png"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ReadError) as raised:
        read_png(plain)
    assert str(raised.value) == "plain.png is an HDF5 file, not a PNG file"
    unknown = tmp_path / "noise.png"
    unknown.write_bytes(bytes(range(64)))
    with pytest.raises(ReadError, match="is not a PNG file"):
        read_png(unknown)


@pytest.mark.parametrize("name, read", [("empty.mat", read_mat), ("empty.png", read_png)])
def test_an_empty_file_is_said_to_be_empty(tmp_path, name, read):
    path = tmp_path / name
    path.touch()
    with pytest.raises(ReadError) as raised:
        read(path)
    assert str(raised.value) == f"{name} is empty (0 bytes)"
