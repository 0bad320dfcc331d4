"""The feature-space core on an image of 1 M pixels: the points a plot draws
(:func:`feature_points`) and a polygon selection over every pixel (:func:`select_polygon`),
each beside a baseline run in the same process — the least numpy/matplotlib code that does the
same job on arrays already in memory (a reshape, and ``Path.contains_points`` on all pixels).
The ratios are what to watch (the machine is shared; absolute times drift). Run:

    uv run python benchmarks/bench_feature_space.py [--side 1000] [--repeat 5]

The *Feature space* widget's 2-D draw is timed whole (the points, the density picture coloured
by cluster, and the matplotlib canvas drawn off screen) beside a bare ``np.histogram2d`` of the
same pixels drawn the same way; a highlight (a cluster selected in the table) redraws from the
computed points.

Targets (issue 17): a 1 M-pixel image drawn in under a second, a selection answering within a
tenth of a second (and within a few times the bare contains_points call).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.path import Path
from timing import best

from napari_spectral_clusters.cluster import cluster_image
from napari_spectral_clusters.density import DensityGrid, density_rgba
from napari_spectral_clusters.feature_space import feature_points, select_polygon
from napari_spectral_clusters.samples import synthetic_cube


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cube, _, _ = synthetic_cube((args.side, args.side), 3, seed=0)
    image = np.ascontiguousarray(np.moveaxis(cube, 0, -1))  # a 3-channel picture
    n = args.side**2
    axes, points = feature_points(image, ["R", "G"], max_points=n)
    lo, hi = np.percentile(points.coords, [20, 70], axis=0)
    vertices = np.array([(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])])
    polygon = Path(vertices)

    rows = {}
    rows["points (all pixels)"] = (
        best(lambda: feature_points(image, ["R", "G"], max_points=n), args.repeat),
        best(lambda: image.reshape(n, 3)[:, :2].astype(np.float64), args.repeat),
    )
    rows["points (200k sample)"] = (
        best(lambda: feature_points(image, ["R", "G"]), args.repeat),
        best(lambda: image.reshape(n, 3)[:, :2].astype(np.float64), args.repeat),
    )
    rows["PC1/PC2 points (200k)"] = (
        best(lambda: feature_points(image, ["PC1", "PC2"]), args.repeat),
        best(lambda: image.reshape(n, 3)[:, :2].astype(np.float64), args.repeat),
    )
    xy = image.reshape(n, 3)[:, :2].astype(np.float64)
    rows["polygon selection"] = (
        best(lambda: select_polygon(image, axes, vertices), args.repeat),
        best(lambda: polygon.contains_points(xy), args.repeat),
    )
    labels = cluster_image(image, 8, max_samples=4000).labels.reshape(-1)
    colors = np.random.default_rng(0).integers(0, 256, (8, 3), dtype=np.uint8)
    rows["2-D draw (points, density, canvas)"] = (
        best(lambda: _draw_ours(image, labels, colors, n), args.repeat),
        best(lambda: _draw_bare(image, n), args.repeat),
    )
    # a highlight or selection redraws the picture in place on the same canvas (set_data)
    figure = Figure(figsize=(4, 3))
    canvas = FigureCanvasAgg(figure)
    shown = figure.add_subplot().imshow(np.zeros((256, 256, 4)), origin="lower", aspect="auto")
    canvas.draw()
    selection = select_polygon(image, axes, vertices).reshape(-1)
    plotted = labels[points.index]

    grid = DensityGrid(points.coords, weight=points.weight)  # binned once per draw

    def redraw_ours():
        shown.set_data(grid.picture(plotted, colors, highlight={3}))
        canvas.draw()

    def redraw_bare():  # a bare picture of the selected pixels, on the same canvas
        counts, _, _ = np.histogram2d(*xy[selection].T, bins=256)
        shown.set_data(np.log1p(counts.T))
        canvas.draw()

    rows["highlight redraw in place"] = (
        best(redraw_ours, args.repeat),
        best(redraw_bare, args.repeat),
    )
    out = {}
    print(f"{n:,} pixels; best of {args.repeat}")
    for name, (ours, base) in rows.items():
        ms = f"{ours * 1e3:8.1f} ms   baseline {base * 1e3:8.1f} ms"
        print(f"{name:36s} {ms}   x{ours / base:.2f}")
        out[name] = {"seconds": ours, "baseline_seconds": base, "ratio": ours / base}
    print(json.dumps(out))


def _show(picture) -> None:
    """Draw a density picture on an off-screen canvas, as the widget's plot does."""
    rgba, extent = picture
    figure = Figure(figsize=(4, 3))
    canvas = FigureCanvasAgg(figure)
    figure.add_subplot().imshow(rgba, origin="lower", extent=extent, aspect="auto")
    canvas.draw()


def _draw_ours(image, labels, colors, n) -> None:
    _, points = feature_points(image, ["R", "G"], max_points=n)
    _show(density_rgba(points.coords, labels[points.index], colors, weight=points.weight))


def _draw_bare(image, n) -> None:
    xy = image.reshape(n, 3)[:, :2].astype(np.float64)
    counts, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=256)
    _show((np.log1p(counts.T), (xe[0], xe[-1], ye[0], ye[-1])))


if __name__ == "__main__":
    main()
