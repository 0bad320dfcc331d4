"""Cluster a cube larger than memory, out of core, and measure time and peak memory.

Writes a synthetic float32 cube as a MATLAB v7.3 (HDF5) file — by default twice the memory
the machine has available — opens it with the plugin's reader (lazily, as dask), clusters it
with ``cluster_image`` in a fresh process and reports wall time per stage and that process's
peak RSS, then deletes the file. Run from the project root:

    uv run python benchmarks/bench_bigger_than_memory.py [--gib 48] [--dir /var/tmp] [--keep]

It needs that much free disk. ``--gib 2`` gives a quick check of the same code path.
``--drop-caches`` (root only) empties the page cache before the clustering process starts,
so the cube is read from disk, not partly from the memory its writing left it in.

The peak is the child's ``VmHWM`` (``/proc/self/status``), reset through
``/proc/self/clear_refs`` as the child starts. Runs before 2026-12-03 reported ``ru_maxrss``,
which Linux carries over fork and exec: at least the parent's RSS at the fork (the parent
holds the cube writer's noise tiles), an overestimate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from timing import PEAK_PROBE

BANDS = 64
CHUNK = 512  # pixels a side of one HDF5 chunk (64 bands x 512 x 512 float32 = 64 MiB)

PROBE = (
    PEAK_PROBE
    + r"""
import json, resource, sys, time
import numpy as np
reset_peak()
t0 = time.perf_counter()
from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.io import read_mat
(img,) = read_mat(sys.argv[1], lazy_bytes=2**28)
events = []
res = cluster_image(img.data, 8, channel_axis=0, max_refine=int(sys.argv[2]),
                    progress=lambda e: events.append((e.stage, e.done, time.perf_counter() - t0)))
# np.asarray: a cube that fits in memory is read once and its labels are numpy
corner = np.asarray(res.labels[:1024, :1024])
print(json.dumps({
    "lazy": type(img.data).__module__,
    "shape": list(img.data.shape),
    "seconds": time.perf_counter() - t0,
    "events": events,
    "counts": res.counts.tolist(),
    "inertia": res.inertia,
    "corner_labels": sorted(set(corner.ravel().tolist())),
    "peak_rss_bytes": status()["VmHWM"],
    "peak_rss_measure": "VmHWM after clear_refs",
    # what earlier runs reported, for comparison: includes the parent's RSS at the fork
    "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""
)


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def material_map(cols: np.ndarray, rows: np.ndarray, n_materials: int = 8) -> np.ndarray:
    """The material (0 .. n_materials - 1) of each pixel: rectangular blobs of 131 x 97."""
    return ((rows // 97) * 7 + (cols // 131) * 3) % n_materials


def material_counts(side: int, n_materials: int = 8) -> np.ndarray:
    """Pixels of each material in a cube of ``side`` x ``side`` (what write_cube writes)."""
    cols, rows = np.mgrid[:side, :side]
    return np.bincount(material_map(cols, rows, n_materials).ravel(), minlength=n_materials)


def write_cube(
    path: Path,
    side: int,
    seed: int = 0,
    *,
    bands: int = BANDS,
    chunks: tuple[int, int, int] = (BANDS, CHUNK, CHUNK),
    tile: int = CHUNK,
    n_materials: int = 8,
    name: str = "cube",
) -> float:
    """A (side x side x bands) MATLAB v7.3 cube of ``n_materials`` materials in blobs plus
    noise, written ``tile`` x ``tile`` pixels at a time (a multiple of the HDF5 ``chunks``,
    which are in the file's (band, column, row) order); returns the seconds it took."""
    if tile % chunks[1] or tile % chunks[2]:
        raise ValueError(f"tile {tile} is not a multiple of the chunks {chunks}")
    rng = np.random.default_rng(seed)
    # noise tiles drawn once and cycled: drawing fresh noise for 50 GB would take longer
    # than the clustering being measured
    tiles = rng.normal(0, 0.01, (4, bands, tile, tile)).astype(np.float32)
    wl = np.linspace(0, 1, bands)
    spectra = np.stack(
        [
            0.2 + 0.5 * rng.random() * np.exp(-0.5 * ((wl - rng.random()) / 0.15) ** 2)
            for _ in range(n_materials)
        ]
    ).astype(np.float32)
    t0 = time.perf_counter()
    with h5py.File(path, "w", userblock_size=512) as f:
        # MATLAB's v7.3 layout: axes reversed, so MATLAB sees rows x cols x bands
        ds = f.create_dataset(name, shape=(bands, side, side), dtype="f4", chunks=chunks)
        ds.attrs["MATLAB_class"] = np.bytes_("single")
        for c0 in range(0, side, tile):
            for r0 in range(0, side, tile):
                cols, rows = min(tile, side - c0), min(tile, side - r0)
                # built directly in the file's (band, col, row) order: no transposed copy
                xx, yy = np.mgrid[c0 : c0 + cols, r0 : r0 + rows]
                material = material_map(xx, yy, n_materials)
                noise = tiles[(r0 // tile + c0 // tile) % len(tiles), :, :cols, :rows]
                ds[:, c0 : c0 + cols, r0 : r0 + rows] = spectra.T[:, material] + noise
    with open(path, "r+b") as fh:
        fh.write(
            b"MATLAB 7.3 MAT-file, benchmark cube, HDF5 schema 1.00 .".ljust(116, b" ")
            + bytes(8)
            + b"\x00\x02IM"
        )
    return time.perf_counter() - t0


def drop_page_cache() -> bool:
    """Write dirty pages out and empty the page cache (root only); whether it was done."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError as exc:
        print(f"page cache not dropped: {exc}", flush=True)
        return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, help="cube size (default: 2x available memory)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--refine", type=int, default=2, help="refinement passes (2)")
    parser.add_argument("--keep", action="store_true", help="keep the cube file")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="cluster the cube a --keep run left instead of writing one",
    )
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="empty the page cache before clustering (root: sync; echo 3 > drop_caches)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    target = int(args.gib * 2**30) if args.gib else 2 * available_bytes()
    side = int(np.sqrt(target / (BANDS * 4)))
    path = args.dir / "bigger_than_memory.mat"
    print(
        f"RAM {ram / 2**30:.1f} GiB, available {available_bytes() / 2**30:.1f} GiB; "
        f"writing a {side} x {side} x {BANDS} float32 cube "
        f"({side * side * BANDS * 4 / 2**30:.1f} GiB) to {path}",
        flush=True,
    )
    try:
        if args.reuse and path.exists():
            write_s = None
            print("reusing the cube already there", flush=True)
        else:
            write_s = write_cube(path, side)
            print(f"written in {write_s:.0f} s", flush=True)
        dropped = drop_page_cache() if args.drop_caches else False
        if dropped:
            print("page cache dropped", flush=True)
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path), str(args.refine)],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return 2
        result = json.loads(out.stdout)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    # from the shape read, not the size asked for: a reused cube may differ
    result.update(
        cube_bytes=int(np.prod(result["shape"])) * 4,
        ram_bytes=ram,
        write_seconds=write_s,
        page_cache_dropped=dropped,
        date=time.strftime("%Y-%m-%d %H:%M"),
    )
    print(json.dumps({k: v for k, v in result.items() if k != "events"}, indent=1))
    for stage, done, t in result["events"]:
        print(f"  {t:8.1f} s  {stage} {done}")
    ok = result["peak_rss_bytes"] < ram / 4
    print(
        f"{'PASS' if ok else 'FAIL'}  peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB "
        f"< a quarter of RAM ({ram / 4 / 2**30:.1f} GiB) for a "
        f"{result['cube_bytes'] / 2**30:.1f} GiB cube"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
