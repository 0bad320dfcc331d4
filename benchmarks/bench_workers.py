"""How clustering a lazy cube scales with dask.distributed workers, on this machine.

Writes a synthetic float32 zarr cube (default 64 bands x 1536 x 1536 = 576 MiB, in 256 x 256
blocks), then, in one run, clusters it and writes its labels (zarr, block by block) with:

* dask's local threaded scheduler (the default when no cluster is set up): the baseline;
* a ``LocalCluster`` of 1, 2 and 4 single-threaded worker processes, as
  ``spectral-clusters run --workers N`` starts.

Each setting runs twice and keeps the faster run (the machine is shared and noisy), after the
cube has been flushed to disk and read once. Reports wall time per setting, its ratio to the
threaded baseline and to one worker, and checks every setting gives the same labels. Run from
the project root:

    uv run --extra bench --extra distributed python benchmarks/bench_workers.py [--side 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dask
import numpy as np

BANDS = 64
BLOCK = 256


def make_cube(path: Path, side: int, seed: int = 0) -> None:
    """Six materials in blobs plus noise, written block by block (never whole in memory)."""
    import zarr

    rng = np.random.default_rng(seed)
    spectra = rng.random((6, BANDS)).astype(np.float32)
    z = zarr.open_array(
        str(path), mode="w", shape=(BANDS, side, side), dtype="f4", chunks=(BANDS, BLOCK, BLOCK)
    )
    for r in range(0, side, BLOCK):
        for c in range(0, side, BLOCK):
            yy, xx = np.mgrid[r : min(r + BLOCK, side), c : min(c + BLOCK, side)]
            material = ((yy // 97) * 7 + (xx // 131) * 3) % len(spectra)
            noise = rng.normal(0, 0.02, (BANDS, *material.shape)).astype(np.float32)
            z[:, r : r + BLOCK, c : c + BLOCK] = np.moveaxis(spectra[material], -1, 0) + noise


def one_run(cube_path: Path, out: Path, k: int) -> tuple[float, np.ndarray]:
    from napari_spectral_clusters import cluster_image
    from napari_spectral_clusters.io import ImageData, read_zarr, write_zarr

    t0 = time.perf_counter()
    (img,) = read_zarr(cube_path, lazy_bytes=0)
    res = cluster_image(img.data, k, channel_axis=0, random_state=0, max_refine=3)
    write_zarr(out, [ImageData("clusters", res.labels, "labels", metadata={"colors": res.colors})])
    seconds = time.perf_counter() - t0
    (back,) = read_zarr(out)
    return seconds, np.asarray(back.data)


def best_of(repeats: int, cube: Path, out: Path, k: int) -> tuple[float, np.ndarray]:
    runs = [one_run(cube, out, k) for _ in range(repeats)]
    return min(s for s, _ in runs), runs[-1][1]


def read_zarr_sum(cube: Path) -> float:
    from napari_spectral_clusters.io import read_zarr

    (img,) = read_zarr(cube, lazy_bytes=0)
    return float(img.data.sum().compute())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1536, help="cube side in pixels (1536)")
    parser.add_argument("-k", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    try:
        cube = tmp / "cube.zarr"
        make_cube(cube, args.side)
        os.sync()  # no write-back of the new cube while the first setting is timed
        with dask.config.set(scheduler="threads"):
            read_zarr_sum(cube)
        gib = BANDS * args.side**2 * 4 / 2**30
        print(
            f"{os.cpu_count()} cores; cube {BANDS} x {args.side} x {args.side} float32 "
            f"({gib:.1f} GiB) in {BLOCK} x {BLOCK} blocks; k = {args.k}",
            flush=True,
        )
        rows = []
        with dask.config.set(scheduler="threads"):
            seconds, reference = best_of(2, cube, tmp / "threads.zarr", args.k)
        rows.append({"setting": f"threads ({os.cpu_count()})", "seconds": seconds, "same": True})
        for n in args.workers:
            with (
                LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
                ) as cluster,
                Client(cluster),
            ):
                seconds, labels = best_of(2, cube, tmp / f"w{n}.zarr", args.k)
            rows.append(
                {
                    "setting": f"{n} worker(s)",
                    "workers": n,
                    "seconds": seconds,
                    "same": bool(np.array_equal(labels, reference)),
                }
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]["seconds"]
    one = next((r["seconds"] for r in rows if r.get("workers") == 1), None)
    print(f"{'setting':<14}{'seconds':>9}{'vs threads':>12}{'vs 1 worker':>13}  same labels")
    for r in rows:
        vs_one = f"{one / r['seconds']:.2f}x" if one and "workers" in r else ""
        print(
            f"{r['setting']:<14}{r['seconds']:>9.1f}{base / r['seconds']:>11.2f}x"
            f"{vs_one:>13}  {'yes' if r['same'] else 'NO'}"
        )
    if args.json:
        args.json.write_text(json.dumps({"cores": os.cpu_count(), "rows": rows}, indent=1))
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
