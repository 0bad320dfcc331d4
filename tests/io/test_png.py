import struct
import zlib

import numpy as np
import png  # pypng: an independent decoder to check ours against
import pytest
from PIL import Image

from napari_spectral_clusters.io import ReadError, read_png, write_png
from napari_spectral_clusters.io.png import read_png_stack

from ..conftest import DATA

ALL_PNGS = sorted((DATA / "png").rglob("*.png"))


def _reference_rgba(path):
    """pypng's decoding as RGBA at the file's depth (8 bits for 1-8-bit files)."""
    with open(path, "rb") as f:
        reader = png.Reader(file=f)
        width, height, rows, _ = reader.asRGBA() if _bit_depth(path) == 16 else reader.asRGBA8()
        return np.vstack([np.asarray(r) for r in rows]).reshape(height, width, 4)


def _bit_depth(path):
    return path.read_bytes()[24]


def test_the_whole_png_suite_is_here():
    assert len(ALL_PNGS) > 70


@pytest.mark.parametrize("path", ALL_PNGS, ids=lambda p: p.name)
def test_every_real_png_opens_with_the_right_values(path):
    img = read_png(path)
    ref = _reference_rgba(path)
    data = img.data
    assert data.dtype == (np.uint16 if _bit_depth(path) == 16 else np.uint8)
    assert img.kind == "image"
    if img.rgb:
        assert data.ndim == 3 and data.shape[2] in (3, 4)
        np.testing.assert_array_equal(data, ref[..., : data.shape[2]])
        if data.shape[2] == 3:  # no alpha channel means every pixel is opaque
            assert (ref[..., 3] == ref[..., 3].max()).all()
    else:
        assert data.ndim == 2
        np.testing.assert_array_equal(data, ref[..., 0])
        assert (ref[..., 0] == ref[..., 1]).all()  # truly greyscale
        assert (ref[..., 3] == ref[..., 3].max()).all()  # and opaque


def test_sixteen_bit_colour_kept_at_sixteen_bits():
    img = read_png(DATA / "png" / "testpngs" / "rgb-16.png")
    assert img.data.dtype == np.uint16 and img.rgb
    assert np.any(img.data % 257 != 0)  # not 8-bit values scaled up


def test_alpha_kept():
    img = read_png(DATA / "png" / "pngsuite" / "basn6a08.png")
    alpha = img.data[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255


def test_animated_png_opens_as_frames(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]
    images = [Image.fromarray(f) for f in frames]
    images[0].save(tmp_path / "a.png", save_all=True, append_images=images[1:], duration=100)
    img = read_png(tmp_path / "a.png")
    assert img.data.shape == (3, 12, 16, 3) and img.rgb
    assert img.axis_labels == ("frame", "y", "x", "channel")
    np.testing.assert_array_equal(img.data, np.stack(frames))


def test_greyscale_files_stack_into_a_cube(tmp_path):
    rng = np.random.default_rng(1)
    bands = [rng.integers(0, 65535, (10, 14), dtype=np.uint16) for _ in range(5)]
    paths = [write_png(tmp_path / f"scene_band{i}.png", b) for i, b in enumerate(bands)]
    img = read_png_stack(paths)
    assert img.data.shape == (5, 10, 14) and img.data.dtype == np.uint16
    assert img.channel_axis == 0 and img.axis_labels == ("band", "y", "x")
    assert img.name == "scene_band"
    np.testing.assert_array_equal(img.data, np.stack(bands))


def test_stack_of_different_sizes_is_refused(tmp_path):
    a = write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    b = write_png(tmp_path / "b.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(ReadError, match=r"cannot stack a\.png"):
        read_png_stack([a, b])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_decompression_bomb_is_refused_with_its_size(tmp_path):
    bomb = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\0" * 400_001 * 10)  # a few rows; the header claims 10^10 pixels
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
    with pytest.raises(ReadError, match=r"bomb\.png is 100000 x 100000 pixels \(37\.3 GiB"):
        read_png(bomb)


@pytest.mark.parametrize("name", ["malformed1.mat", "testhdf5_7.4_GLNX86.mat"])
def test_not_a_png_is_a_clear_error(tmp_path, name):
    fake = tmp_path / "fake.png"
    fake.write_bytes((DATA / "matlab" / name).read_bytes())
    # what it is, and the name it opens under
    with pytest.raises(
        ReadError, match=r"^fake\.png is a MATLAB .*, not a PNG file; rename it to fake\.mat$"
    ):
        read_png(fake)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_png_is_a_clear_error(tmp_path, keep):
    cut = tmp_path / "cut.png"
    whole = (DATA / "png" / "testpngs" / "rgb-alpha-16.png").read_bytes()
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(ReadError, match=r"cut\.png") as raised:
        read_png(cut)
    # what went wrong, without Python's class names (pypng's was there twice)
    message = str(raised.value)
    head = "cut.png could not be read as a PNG image (corrupt or truncated?): "
    assert message.startswith(head) and "Error:" not in message
    reason = message[len(head) :]
    assert "Chunk" in reason and "IDAT" in reason, reason  # pypng's reason, once


@pytest.mark.parametrize(
    "data",
    [
        np.arange(60, dtype=np.uint8).reshape(6, 10),
        (np.arange(60, dtype=np.uint16) * 1000).reshape(6, 10),
        np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, (6, 10, 4), dtype=np.uint8),
    ],
)
def test_write_then_read(tmp_path, data):
    path = write_png(tmp_path / "out.png", data)
    np.testing.assert_array_equal(read_png(path).data, data)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_16_bit_rgba_written_and_read_at_16_bits(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 65536, (6, 7, 4), dtype=np.uint16)
    state = {"scale": [2.0, 0.25], "units": ["micrometer", "micrometer"], "translate": [1, 2]}
    write_png(tmp_path / "deep.png", data, metadata={"seed": 3}, layer_state=state)
    back = read_png(tmp_path / "deep.png")
    assert back.rgb and back.data.dtype == np.uint16
    np.testing.assert_array_equal(back.data, data)
    assert back.metadata["seed"] == 3 and back.layer_state == state
    from PIL import Image

    with Image.open(tmp_path / "deep.png") as im:  # pHYs: 4e6 px/m along x, 5e5 along y
        np.testing.assert_allclose(im.info["dpi"], [4e6 * 0.0254, 5e5 * 0.0254], rtol=1e-6)


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = write_png(tmp_path / "p.png", np.zeros((3, 3), np.uint8))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
