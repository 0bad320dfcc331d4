import numpy as np
import pytest
from PIL import Image

from napari_spectral_clusters.io import ReadError, read_png, write_png


@pytest.mark.parametrize(
    ("name", "shape", "rgb"),
    [
        ("basn6a08.png", (32, 32, 4), True),
        ("rgb-alpha-8.png", (256, 256, 4), True),
        ("basn2c08.png", (32, 32, 3), True),
        ("basn0g08.png", (32, 32), False),
        ("basn3p08.png", (32, 32, 3), True),
        ("ftbbn3p08.png", (32, 32, 4), True),
    ],
)
def test_real_pngs(data_dir, name, shape, rgb):
    img = read_png(data_dir / "png" / name)
    assert img.data.shape == shape
    assert img.data.dtype == np.uint8
    assert img.rgb is rgb
    assert img.kind == "image"
    ref = np.asarray(Image.open(data_dir / "png" / name).convert("RGBA"))
    if rgb:
        np.testing.assert_array_equal(img.data, ref[..., : shape[-1]])


def test_alpha_kept(data_dir):
    img = read_png(data_dir / "png" / "basn6a08.png")
    alpha = img.data[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255


@pytest.mark.parametrize("name", ["malformed1.mat", "testhdf5_7.4_GLNX86.mat"])
def test_not_a_png_is_a_clear_error(data_dir, tmp_path, name):
    fake = tmp_path / "fake.png"
    fake.write_bytes((data_dir / "matlab" / name).read_bytes())
    with pytest.raises(ReadError, match=r"fake\.png"):
        read_png(fake)


def test_truncated_png_is_a_clear_error(data_dir, tmp_path):
    cut = tmp_path / "cut.png"
    whole = (data_dir / "png" / "rgb-alpha-8.png").read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ReadError, match=r"cut\.png"):
        read_png(cut)


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
    back = np.asarray(Image.open(path))
    np.testing.assert_array_equal(back, data)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
