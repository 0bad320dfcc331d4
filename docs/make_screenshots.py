"""Regenerate the pictures in the docs from the running plugin, so they stay true.

Run from the project root:  uv run --extra all python docs/make_screenshots.py
(on a machine without a display it re-runs itself under xvfb-run).

- images/demo.png     the `spectral-clusters demo` command: sample cube, clusters, recoloured
- images/samson.png   the real Samson scene (156 bands, 401-889 nm): true colour, clusters
- images/photo.png    the RGBA sample photo reduced to 8 colours, transparent border kept
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
SAMSON = HERE.parent / "tests" / "data" / "hsi" / "Samson.mat"
PHOTO = HERE.parent / "src" / "napari_spectral_clusters" / "_data" / "coffee.png"
#: Samson's band centres: the file stores none; the dataset's description gives 156 bands
#: evenly spread over 401-889 nm.
SAMSON_WAVELENGTHS = np.linspace(401.0, 889.0, 156)


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    if sys.platform == "linux" and not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        os.execv(xvfb, [xvfb, "-a", "-s", "-screen 0 1280x1024x24", sys.executable, __file__])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_spectral_clusters.cli",
            "demo",
            "--screenshot",
            str(IMAGES / "demo.png"),
        ],
        check=True,
    )
    samson_figure()
    photo_figure()


def _viewer_with_widget():
    import napari

    viewer = napari.Viewer(show=False)
    viewer.window._qt_window.resize(1300, 800)
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-spectral-clusters", "KMeans clustering"
    )
    widget.random_state.value = 0  # pictures independent of saved settings
    widget.preprocessing.value = "none"
    widget.palette.value = "auto"
    return viewer, widget


def samson_figure() -> None:
    viewer, widget = _viewer_with_widget()
    layers = viewer.open(SAMSON, plugin="napari-spectral-clusters")
    (cube,) = [layer for layer in layers if layer.name == "SamSon"]
    viewer.layers.remove("A")  # the abundance maps: not part of this picture
    cube.metadata["wavelengths"] = SAMSON_WAVELENGTHS
    widget.image.value = cube
    widget.true_colour()
    widget.n_clusters.value = 3
    widget.run(wait=True)
    _grid_shot(viewer, IMAGES / "samson.png")
    viewer.close()


def photo_figure() -> None:
    viewer, widget = _viewer_with_widget()
    # opened as a user opens a picture (File > Open), through the plugin's reader
    (photo,) = viewer.open(PHOTO, plugin="napari-spectral-clusters")
    widget.image.value = photo
    widget.n_clusters.value = 8
    widget.run(wait=True)
    _grid_shot(viewer, IMAGES / "photo.png")
    viewer.close()


def _grid_shot(viewer, path: Path) -> None:
    getattr(viewer, "canvas", viewer).grid.enabled = True
    viewer.reset_view()
    viewer.screenshot(str(path), canvas_only=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
