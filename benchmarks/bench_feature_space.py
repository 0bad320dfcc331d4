"""The feature-space core on an image of 1 M pixels: the points a plot draws
(:func:`feature_points`) and a polygon selection over every pixel (:func:`select_polygon`),
each beside a baseline run in the same process — the least numpy/matplotlib code that does the
same job on arrays already in memory (a reshape, and ``Path.contains_points`` on all pixels).
The ratios are what to watch (the machine is shared; absolute times drift). Run:

    uv run python benchmarks/bench_feature_space.py [--side 1000] [--repeat 5]

Targets (issue 17): a 1 M-pixel image's points in under a second, a selection within a few
times the bare contains_points call.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from matplotlib.path import Path
from timing import best

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
    out = {}
    print(f"{n:,} pixels; best of {args.repeat}")
    for name, (ours, base) in rows.items():
        ms = f"{ours * 1e3:8.1f} ms   baseline {base * 1e3:8.1f} ms"
        print(f"{name:24s} {ms}   x{ours / base:.2f}")
        out[name] = {"seconds": ours, "baseline_seconds": base, "ratio": ours / base}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
