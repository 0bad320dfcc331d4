"""The napari demo (``spectral-clusters demo``) and running napari where there is no display.

One copy of the Xvfb logic for the demo and ``docs/make_screenshots.py``: on a Linux machine
without a display, the command re-runs itself under ``xvfb-run`` (napari needs an X server
and OpenGL; Qt's offscreen platform fails with a GL error).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from . import PLUGIN

__all__ = ["SCREEN", "has_display", "rerun_under_xvfb", "run_demo"]

#: The virtual screen napari gets under Xvfb: large enough for every screenshot size.
SCREEN = "1920x1080x24"


def has_display() -> bool:
    """Whether napari can open a window here (always, off Linux)."""
    return sys.platform != "linux" or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def rerun_under_xvfb(args: list[str]) -> None:
    """Without a display, replace this process by ``xvfb-run python ARGS...``; with one,
    return. Exits with a message when there is neither a display nor xvfb-run."""
    if has_display():
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        sys.exit(
            "no display and no xvfb-run: install xvfb (apt-get install xvfb) or run on a desktop"
        )
    os.execv(xvfb, [xvfb, "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, *args])


def run_demo(clusters: int, screenshot: Path | None) -> int:
    """napari with the sample cube clustered into ``clusters``; with ``screenshot``, the
    window is saved there and closed instead of shown."""
    import napari

    viewer = napari.Viewer(show=screenshot is None, title="napari-spectral-clusters demo")
    viewer.open_sample(PLUGIN, "cube")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "KMeans clustering")
    widget.image.value = viewer.layers["sample cube"]
    widget.use_defaults()  # the same demo whatever the user's saved settings (left as they are)
    widget.n_clusters.value = clusters
    widget.run(wait=True)
    # napari 0.9 moved the grid to viewer.canvas; older versions have viewer.grid.
    getattr(viewer, "canvas", viewer).grid.enabled = True
    viewer.reset_view()
    if screenshot is not None:
        viewer.window._qt_window.resize(1366, 768)
        viewer.screenshot(str(screenshot), canvas_only=False)
        print(f"screenshot written to {screenshot}")
        viewer.close()
        return 0
    napari.run()
    return 0
