import npe2
import numpy as np
import pytest
from PIL import Image

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.io import read_png
from napari_spectral_clusters.samples import sample_photo

PLUGIN = "napari-spectral-clusters"


def test_labels_png_write_then_read(tmp_path):
    res = cluster_image(sample_photo(), 8)
    path = tmp_path / "clusters.png"
    written = npe2.write(
        str(path), [(res.labels, {"name": "clusters"}, "labels")], plugin_name=PLUGIN
    )
    assert written == [str(path)]
    back = read_png(path)
    np.testing.assert_array_equal(back.data, res.labels)


def test_labels_png_16_bit(tmp_path):
    labels = np.arange(300 * 4, dtype=np.uint16).reshape(30, 40) % 300
    npe2.write(str(tmp_path / "l.png"), [(labels, {}, "labels")], plugin_name=PLUGIN)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "l.png")), labels)


def test_rgba_png_write_then_read_keeps_alpha(tmp_path):
    res = cluster_image(sample_photo(), 8)
    path = tmp_path / "recolored.png"
    npe2.write(str(path), [(res.recolored, {"rgb": True}, "image")], plugin_name=PLUGIN)
    back = read_png(path)
    assert back.rgb
    np.testing.assert_array_equal(back.data, res.recolored)
    assert (back.data[..., 3] == 0).any()


def test_non_rgb_image_is_refused(tmp_path):
    with pytest.raises(ValueError, match="only RGB"):
        npe2.write(
            str(tmp_path / "c.png"),
            [(np.zeros((3, 4, 5), np.float32), {"rgb": False}, "image")],
            plugin_name=PLUGIN,
        )
    assert not list(tmp_path.iterdir())
