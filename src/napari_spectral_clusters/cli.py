"""``spectral-clusters``: the command-line front end over the same pure functions."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

DEMO_SCREENSHOT = "spectral-clusters-demo.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="spectral-clusters",
        description="Cluster the pixels of spectral cubes (.mat) and pictures (.png) with KMeans.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="open napari with the sample cube, dock the widget and run one clustering",
        description=(
            "Open napari with the synthetic sample cube, dock the KMeans widget and cluster it. "
            "On a machine without a display it runs under Xvfb (xvfb-run) and writes a "
            f"screenshot to {DEMO_SCREENSHOT} instead of showing a window."
        ),
    )
    demo.add_argument(
        "--screenshot",
        metavar="FILE",
        type=Path,
        help="save viewer.screenshot() to FILE and exit instead of showing napari",
    )
    demo.add_argument("-k", "--clusters", type=int, default=4, help="number of clusters (4)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args, argv if argv is not None else sys.argv[1:])
    return 2  # pragma: no cover - argparse rejects unknown commands first


def _has_display() -> bool:
    return sys.platform != "linux" or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def _demo(args, argv: list[str]) -> int:
    if not _has_display():
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            print(
                "spectral-clusters demo: no display and no xvfb-run; install xvfb "
                "(apt-get install xvfb) or run on a desktop.",
                file=sys.stderr,
            )
            return 1
        extra = [] if args.screenshot else ["--screenshot", DEMO_SCREENSHOT]
        cmd = [
            xvfb,
            "-a",
            "-s",
            "-screen 0 1280x1024x24",
            sys.executable,
            "-m",
            "napari_spectral_clusters.cli",
            *argv,
            *extra,
        ]
        os.execv(xvfb, cmd)
    import napari

    viewer = napari.Viewer(show=args.screenshot is None, title="napari-spectral-clusters demo")
    viewer.open_sample("napari-spectral-clusters", "cube")
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-spectral-clusters", "KMeans clustering"
    )
    widget.image.value = viewer.layers["sample cube"]
    widget.n_clusters.value = args.clusters
    widget.run(wait=True)
    # napari 0.9 moved the grid to viewer.canvas; older versions have viewer.grid.
    getattr(viewer, "canvas", viewer).grid.enabled = True
    viewer.reset_view()
    if args.screenshot is not None:
        viewer.window._qt_window.resize(1200, 800)
        viewer.screenshot(str(args.screenshot), canvas_only=False)
        print(f"screenshot written to {args.screenshot}")
        viewer.close()
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
