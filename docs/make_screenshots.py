"""Regenerate the pictures in the docs from the running plugin, so they stay true.

Run from the project root:  uv run --extra all python docs/make_screenshots.py
(on a machine without a display it re-runs itself under xvfb-run).

- images/demo.png     the `spectral-clusters demo` command: sample cube, clusters, recoloured
- images/samson.png   the real Samson scene (156 bands, 401-889 nm): true colour, clusters
- images/photo.png    the RGBA sample photo reduced to 8 colours, transparent border kept
- images/widget-1366x768.png, images/widget-1920x1080.png   napari with the clustering
  widget docked on a laptop screen and a desktop one, after clustering Samson
- images/photo-rgb-space.png   the Feature space widget: the photo's pixels in RGB space (3-D),
  coloured by its 8 clusters, beside the recoloured photo (the walkthrough's plot, improved)
- images/samson-feature-space.png   Samson's pixels on PC1/PC2 coloured by 4 clusters, with a
  region drawn on the plot and its pixels selected over the image
"""

import subprocess
import sys
from pathlib import Path

import numpy as np

from napari_spectral_clusters._napari.demo import rerun_under_xvfb

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
SAMSON = HERE.parent / "tests" / "data" / "hsi" / "Samson.mat"
#: Samson's band centres: the file stores none; the dataset's description gives 156 bands
#: evenly spread over 401-889 nm, entered as a user would, in the widget's wavelengths field.
SAMSON_WAVELENGTHS = "401-889"


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    rerun_under_xvfb([__file__])
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
    for size in ((1366, 768), (1920, 1080)):
        widget_figure(*size)
    for figure in ("photo_rgb_space_figure", "samson_feature_space_figure"):
        subprocess.run([sys.executable, __file__, figure], check=True)


def _viewer_with_widget():
    import napari

    viewer = napari.Viewer(show=False)
    viewer.window._qt_window.resize(1300, 800)
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-spectral-clusters", "KMeans clustering"
    )
    _forget_settings(widget)
    return viewer, widget


def _forget_settings(widget) -> None:
    """The widget as a new user finds it: pictures independent of the settings it saved."""
    widget.random_state.value = 0
    widget.preprocessing.value = "none"
    widget.palette.value = "auto"
    widget.steps.value = ""


def samson_figure() -> None:
    viewer, widget = _viewer_with_widget()
    layers = viewer.open(SAMSON, plugin="napari-spectral-clusters")
    (cube,) = [layer for layer in layers if layer.name == "SamSon"]
    for layer in layers:  # the abundance maps (Samson A (1-rock)...): not in this picture
        if layer is not cube:
            viewer.layers.remove(layer)
    widget.image.value = cube
    widget.set_wavelengths(SAMSON_WAVELENGTHS)
    widget.true_colour()
    widget.n_clusters.value = 3
    widget.run(wait=True)
    _grid_shot(viewer, IMAGES / "samson.png")
    viewer.close()


def photo_figure() -> None:
    viewer, widget = _viewer_with_widget()
    (photo,) = _open_sample_photo(viewer)
    widget.image.value = photo
    widget.n_clusters.value = 8
    widget.run(wait=True)
    _grid_shot(viewer, IMAGES / "photo.png")
    viewer.close()


def widget_figure(width: int = 1366, height: int = 768) -> None:
    """The whole window at a screen's size: the widget must fit without growing it."""
    import napari

    viewer = napari.Viewer(show=True)
    window = viewer.window._qt_window
    window.resize(width, height)
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-spectral-clusters", "KMeans clustering"
    )
    _forget_settings(widget)
    layers = viewer.open(SAMSON, plugin="napari-spectral-clusters")
    (cube,) = [layer for layer in layers if layer.name == "SamSon"]
    widget.image.value = cube
    widget.set_wavelengths(SAMSON_WAVELENGTHS)
    widget.n_clusters.value = 4
    widget.run(wait=True)
    _window_shot(viewer, IMAGES / f"widget-{width}x{height}.png", (width, height))
    viewer.close()


def _laptop_with_both_widgets():
    """A 1366 x 768 window with the clustering widget and the Feature space widget (on top,
    tabbed with it)."""
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-spectral-clusters", "KMeans clustering"
    )
    _forget_settings(widget)
    _, space = viewer.window.add_plugin_dock_widget(
        "napari-spectral-clusters", "Feature space", tabify=True
    )
    return viewer, widget, space


def _open_sample_photo(viewer) -> list:
    """File > Open Sample > RGBA photograph: the CC0 cup with its transparent border."""
    return viewer.open_sample("napari-spectral-clusters", "photo")


def _close_notifications(window) -> None:
    """Notifications stack over the canvas, two at a time drawn over each other in a still
    picture; what they say is in the pages' text."""
    from qtpy.QtWidgets import QWidget

    for child in window.findChildren(QWidget):
        if type(child).__name__ == "NapariQtNotification":
            child.close()


def _window_shot(viewer, path: Path, size=(1366, 768)) -> None:
    """The whole window once every pending layout and scroll has happened; it must not have
    grown beyond the screen it was sized for."""
    from qtpy.QtWidgets import QApplication

    for _ in range(10):  # the widget's "next turn" layouts and scrolls run here
        QApplication.processEvents()
    window = viewer.window._qt_window
    _close_notifications(window)
    for _ in range(3):
        QApplication.processEvents()
    if (window.width(), window.height()) != tuple(size):
        raise SystemExit(f"the window grew to {window.width()}x{window.height()}")
    window.grab().save(str(path))
    print(f"wrote {path}")


def photo_rgb_space_figure() -> None:
    viewer, widget, space = _laptop_with_both_widgets()
    (photo,) = _open_sample_photo(viewer)
    widget.image.value = photo
    widget.n_clusters.value = 8
    widget.run(wait=True)
    viewer.layers[f"{photo.name} clusters"].visible = False  # the recoloured photo shows
    space.view.value = "3d"
    space.draw()
    _window_shot(viewer, IMAGES / "photo-rgb-space.png")
    viewer.close()


def samson_feature_space_figure() -> None:
    viewer, widget, space = _laptop_with_both_widgets()
    layers = viewer.open(SAMSON, plugin="napari-spectral-clusters")
    (cube,) = [layer for layer in layers if layer.name == "SamSon"]
    # the abundance maps open hidden (removing a layer from a shown viewer crashed Mesa's GL
    # draw under Xvfb here: segmentation fault in glDrawArrays)
    assert not any(layer.visible for layer in layers if layer is not cube)
    widget.image.value = cube
    widget.set_wavelengths(SAMSON_WAVELENGTHS)
    widget.n_clusters.value = 4
    widget.run(wait=True)
    viewer.layers["SamSon clusters"].visible = False
    viewer.layers["SamSon recolored"].visible = False  # the selection shows over the cube
    space.image.value = cube
    space.draw()
    # a region drawn around the densest part of the cloud, as a lasso would
    lo, hi = np.percentile(space.points.coords, [55, 85], axis=0)
    mid = (lo + hi) / 2
    space.select_polygon([(lo[0], mid[1]), (mid[0], lo[1]), (hi[0], mid[1]), (mid[0], hi[1])])
    _window_shot(viewer, IMAGES / "samson-feature-space.png")
    viewer.close()


def _grid_shot(viewer, path: Path) -> None:
    _close_notifications(viewer.window._qt_window)
    getattr(viewer, "canvas", viewer).grid.enabled = True
    viewer.reset_view()
    viewer.screenshot(str(path), canvas_only=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) > 1:  # one figure, by its function's name
        rerun_under_xvfb([__file__, *sys.argv[1:]])
        globals()[sys.argv[1]]()
    else:
        main()
