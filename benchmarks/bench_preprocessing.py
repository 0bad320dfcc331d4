"""What the spectral preprocessing pipeline buys and costs (issue 18).

    uv run --locked python benchmarks/bench_preprocessing.py [--quick]

1. Raman-like scenes (``samples.raman_scene``: three materials under random sloped
   baselines, brightness 0.3-3x and cosmic-ray spikes), scene seeds 0-9: the adjusted Rand
   index of the clusters against the truth, raw spectra against the pipeline.
2. Cost on the 1024x1024x128 float32 benchmark cube (``bench_engine.synthetic_scene``), in
   this one process: clustering with and without pipelines, as ratios to the plain run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import synthetic_scene

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.samples import raman_scene

PIPELINE = "despike | savgol(9, 3, deriv=2) | snv"
COSTS = ["none", "savgol(9, 2) | snv", PIPELINE, "baseline(modpoly, poly_order=2) | snv"]


def quality(seeds) -> None:
    print(f"## Raman-like scenes, k = 3: ARI against the truth (pipeline: {PIPELINE})")
    print(f"{'scene seed':>10s} {'raw':>8s} {'pipeline':>9s}")
    raw_all, ours_all = [], []
    for seed in seeds:
        cube, truth = raman_scene(seed)
        raw = cluster_image(cube, 3, random_state=seed).labels
        ours = cluster_image(cube, 3, random_state=seed, preprocessing=PIPELINE).labels
        a, b = (adjusted_rand_score(truth.ravel(), lab.ravel()) for lab in (raw, ours))
        raw_all.append(a)
        ours_all.append(b)
        print(f"{seed:10d} {a:8.3f} {b:9.3f}")
    print(f"worst: raw {max(raw_all):.3f} (best of raw), pipeline {min(ours_all):.3f}")
    print(f"{'PASS' if min(ours_all) >= 0.95 else 'FAIL'}  pipeline ARI >= 0.95 on every scene")


def cost(side: int) -> None:
    cube = synthetic_scene((side, side), 128, 8, seed=3)
    print(f"\n## cost on {side}x{side}x128 float32, k = 8 (seconds, one run each)")
    base = None
    for spec in COSTS:
        if spec.startswith("baseline") and side > 256:
            n = side * side
            print(f"{spec:42s} skipped: one pybaselines fit per pixel ({n:,} of them)")
            continue
        t0 = time.perf_counter()
        cluster_image(cube, 8, preprocessing=spec)
        seconds = time.perf_counter() - t0
        base = base or seconds
        print(f"{spec:42s} {seconds:8.2f} s {seconds / base:6.1f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 scenes, a 256x256 cube")
    args = parser.parse_args(argv)
    quality(range(3) if args.quick else range(10))
    cost(256 if args.quick else 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
