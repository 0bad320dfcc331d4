"""Joint clustering of lazy images against clustering their concatenation in memory (issue 19).

Eight 512 x 512 x 64 float32 scenes (``samples.synthetic_cube``, seeds 0-7, four materials,
plus small discs of two more materials: a fifth in the even images, a sixth in images 1
and 5 only, so six in all) are saved as .npy files in a temporary folder and opened as dask
arrays (chunks of 64 x 128 x 128) whose blocks are read with ``np.load(mmap_mode="r")``, so
nothing forces them into memory (see :class:`NpyFile` for why not ``da.from_array`` of the
memmap itself). For k = 6 and seeds 0-2 it compares

(a) ``cluster_images`` of the 8 lazy images, block by block
    (``SPECTRAL_CLUSTERS_READ_ONCE_SHARE=0``: never read into memory whole), with
(b) ``cluster_image`` of their pixels concatenated in memory as one (N, 1, 64) array
    (``np.concatenate`` of the 8 images' pixels, then the engine on it).

Each run is a fresh child process, (a) and (b) in turn for each seed, one after the other.
Measured: the inertia of each answer, the same way for both (float64 sum of squared
distances of every pixel to the reported centre of its label, in the input's units; the
labels are computed after the timing and the memory reading); the peak RSS of the child
above its RSS after imports, before the images are opened (``VmHWM``, reset there), and a 5 ms
sampling of ``/proc/self/status`` that splits it into anonymous memory and mapped file
pages; the wall time of the run, (b)'s including its concatenation. Targets: (a)/(b)
inertia <= 1.01 for every seed; (a)'s peak extra RSS <= one image's bytes + 64 MiB (2x an
image for 512 x 512 x 64). Run from the project root (about 4 minutes on 2 shared cores):

    uv run --locked python benchmarks/bench_joint.py [--json benchmarks/joint.json]
    uv run --locked python benchmarks/bench_joint.py --quick     # 256 x 256 images, seed 0

``--plain-from-array`` opens (a)'s images as ``da.from_array(np.load(path, mmap_mode="r"))``
instead, which dask 2024.12 and later read whole into memory at once (dask issue 11850).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
from timing import PEAK_PROBE

import napari_spectral_clusters
from napari_spectral_clusters.samples import synthetic_cube

HERE = Path(__file__).resolve().parent
MiB = 2**20
N_IMAGES = 8
BANDS = 64
K = 6
#: the two extra materials (peak nm, width nm, amplitude), as synthetic_cube's four are made
EXTRA = [(500, 25, 0.55), (760, 35, 0.65)]

PROBE = (
    PEAK_PROBE
    + r"""
import json, os, sys, threading, time
import numpy as np
import dask.array as da
from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.joint import cluster_images

args = json.loads(sys.argv[1])

class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = status(), threading.Event()
    def run(self):
        while not self.stop.wait(0.005):
            now = status()
            self.peak = {key: max(self.peak[key], now[key]) for key in now}

class NpyFile:
    # An .npy file as a chunked reader reads it (h5py, zarr): each block's bytes read with
    # os.pread into the process's own memory, band by band (the rows the block spans), the
    # file never mapped. Not da.from_array(np.load(path, mmap_mode="r")): dask >= 2024.12
    # copies an array given to from_array (x.copy(), dask issue 11850), which reads the
    # whole file into memory at once; and reading through a mapping counts every page it
    # touches (a 64 x 128 x 128 block of a band-first file touches 16 MiB for 4 MiB of data)
    # in the process's RSS while mapped: the file's page cache, not the engine's memory.
    def __init__(self, path):
        mm = np.load(path, mmap_mode="r")
        self.path, self.shape, self.dtype, self.ndim = path, mm.shape, mm.dtype, mm.ndim
        self.offset = mm.offset
        del mm
    def __getitem__(self, key):
        bands, rows, cols = (k.indices(n) for k, n in zip(key, self.shape))
        height, width = self.shape[1:]
        size = self.dtype.itemsize
        n_rows = rows[1] - rows[0]
        out = np.empty((len(range(*bands)), n_rows, len(range(*cols))), self.dtype)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, band in enumerate(range(*bands)):
                start = self.offset + (band * height + rows[0]) * width * size
                strip = np.frombuffer(os.pread(fd, n_rows * width * size, start), self.dtype)
                out[i] = strip.reshape(n_rows, width)[:, cols[0] : cols[1] : cols[2]]
        finally:
            os.close(fd)
        return out
    def __dask_tokenize__(self):
        return (self.path, self.shape, str(self.dtype))

paths, method, seed, k = args["paths"], args["method"], args["seed"], args["k"]
chunks = (-1, args["chunk"], args["chunk"])
passes = []
def progress(event):
    if event.stage == "refine":
        passes.append(event.done)

reset_peak()
base = status()
if method == "joint":
    if args["plain"]:
        images = [da.from_array(np.load(p, mmap_mode="r"), chunks=chunks) for p in paths]
    else:
        images = [da.from_array(NpyFile(p), chunks=chunks) for p in paths]
opened = status()
sampler = Sampler()
sampler.start()
t0 = time.perf_counter()
if method == "joint":
    joint = cluster_images(images, k, channel_axis=0, random_state=seed, progress=progress)
    concat_s = 0.0
    centers, counts = joint.results[0].centers, joint.total
else:
    pixels = np.concatenate(
        [np.load(p, mmap_mode="r").reshape(args["bands"], -1).T[:, None, :] for p in paths]
    )
    concat_s = time.perf_counter() - t0
    res = cluster_image(pixels, k, channel_axis=-1, random_state=seed, progress=progress)
    centers, counts = res.centers, res.counts
seconds = time.perf_counter() - t0
peak_rss = status()["VmHWM"]
sampler.stop.set()
sampler.join()
# not timed, not in the peak above: the labels, for the parent to measure the inertia
if method == "joint":
    labels = np.concatenate([np.asarray(r.labels).ravel() for r in joint.results])
else:
    labels = np.asarray(res.labels).ravel()
np.save(args["labels"], labels)
print(json.dumps({
    "seconds": seconds,
    "concat_seconds": concat_s,
    "refine_passes": max(passes) if passes else 0,
    "baseline": base,
    "after_open": opened,
    "peak_rss_bytes": peak_rss,
    "sampled_peak": sampler.peak,
    "peak_rss_with_labels_bytes": status()["VmHWM"],
    "centers": np.asarray(centers).tolist(),
    "counts": np.asarray(counts).tolist(),
}))
"""
)


def scene(seed: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """synthetic_cube's scene with small discs of two more materials: (bands, side, side)
    float32 and the (side, side) truth, materials 1..6."""
    cube, truth, wl = synthetic_cube((side, side), n_bands=BANDS, seed=seed)
    rng = np.random.default_rng(1000 + seed)
    spectra = [0.15 + a * np.exp(-0.5 * ((wl - mu) / s) ** 2) for mu, s, a in EXTRA]
    discs = {5: 3 if seed % 2 == 0 else 0, 6: 2 if seed in (1, 5) else 0}
    yy, xx = np.mgrid[:side, :side]
    for material, count in discs.items():
        for _ in range(count):
            cy, cx = rng.uniform(0.1, 0.9, 2) * side
            r = rng.uniform(0.03, 0.05) * side
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            noise = rng.normal(0, 0.02, (BANDS, int(disc.sum())))
            cube[:, disc] = (spectra[material - 5][:, None] + noise).astype(np.float32)
            truth[disc] = material
    return cube, truth


def inertia(paths, labels: np.ndarray, centers: np.ndarray) -> float:
    """Float64 sum of squared distances of every pixel to the centre of its label."""
    total, start = 0.0, 0
    for p in paths:
        x = np.load(p, mmap_mode="r").reshape(BANDS, -1)
        lab = labels[start : start + x.shape[1]].astype(np.int64)
        start += x.shape[1]
        for s in range(0, x.shape[1], 1 << 16):
            rows = np.asarray(x[:, s : s + (1 << 16)], np.float64).T
            total += float(((rows - centers[lab[s : s + (1 << 16)] - 1]) ** 2).sum())
    return total


def materials_found(truth: np.ndarray, labels: np.ndarray, k: int) -> int:
    """Materials that have a cluster of their own: >= 95% of the material in one cluster
    that is >= 95% that material."""
    table = np.zeros((int(truth.max()) + 1, k + 1), np.int64)
    np.add.at(table, (truth.astype(np.int64), labels.astype(np.int64)), 1)
    table = table[1:, 1:]
    found = 0
    for row in table:
        c = int(row.argmax())
        found += bool(row[c] >= 0.95 * row.sum() and row[c] >= 0.95 * table[:, c].sum())
    return found


def run_child(args: dict) -> dict:
    env = dict(os.environ, SPECTRAL_CLUSTERS_READ_ONCE_SHARE="0")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, env=env
    )
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"the {args['method']} child failed")
    return json.loads(out.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 x 256 images, seed 0 only")
    parser.add_argument("--side", type=int, help="image side in pixels (512)")
    parser.add_argument("--seeds", type=int, default=3, help="engine seeds 0..n-1 (3)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--plain-from-array",
        action="store_true",
        help="open (a)'s images as da.from_array(np.load(path, mmap_mode='r'))",
    )
    args = parser.parse_args(argv)
    side = args.side or (256 if args.quick else 512)
    seeds = range(1 if args.quick else args.seeds)
    chunk = max(side // 4, 1)  # 128 for 512: 16 blocks of 4 MiB an image
    image_bytes = BANDS * side * side * 4
    budget = image_bytes + 64 * MiB

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_joint_") as tmp:
        tmp = Path(tmp)
        paths, truths = [], []
        t0 = time.perf_counter()
        for s in range(N_IMAGES):
            cube, truth = scene(s, side)
            path = tmp / f"image{s}.npy"
            np.save(path, cube)
            paths.append(str(path))
            truths.append(truth.ravel())
        truth = np.concatenate(truths)
        counts = np.bincount(truth, minlength=7)[1:]
        print(
            f"{N_IMAGES} images of {side} x {side} x {BANDS} float32 "
            f"({image_bytes / MiB:.0f} MiB each) written in {time.perf_counter() - t0:.1f} s; "
            f"pixels per material {counts.tolist()}",
            flush=True,
        )
        for seed in seeds:
            # (a) first for even seeds, (b) first for odd ones
            order = ("joint", "concat") if seed % 2 == 0 else ("concat", "joint")
            row = {"seed": seed}
            for method in order:
                labels_path = tmp / f"labels_{method}.npy"
                got = run_child(
                    dict(
                        paths=paths,
                        method=method,
                        seed=seed,
                        k=K,
                        chunk=chunk,
                        bands=BANDS,
                        labels=str(labels_path),
                        plain=args.plain_from_array,
                    )
                )
                labels = np.load(labels_path)
                got["inertia"] = inertia(paths, labels, np.asarray(got["centers"]))
                got["materials_found"] = materials_found(truth, labels, K)
                base, peak = got["baseline"], got["sampled_peak"]
                got["extra_rss_bytes"] = got["peak_rss_bytes"] - base["VmRSS"]
                got["extra_anon_bytes"] = peak["RssAnon"] - base["RssAnon"]
                got["extra_file_bytes"] = peak["RssFile"] - base["RssFile"]
                got["open_bytes"] = got["after_open"]["VmRSS"] - base["VmRSS"]
                del got["centers"]
                row[method] = got
                print(
                    f"seed {seed} {method:6s}: {got['seconds']:.2f} s, "
                    f"{got['refine_passes']} passes, inertia {got['inertia']:.6g}, "
                    f"peak extra RSS {got['extra_rss_bytes'] / MiB:.0f} MiB "
                    f"(anonymous {got['extra_anon_bytes'] / MiB:.0f}, "
                    f"file pages {got['extra_file_bytes'] / MiB:.0f}; "
                    f"{got['open_bytes'] / MiB:.0f} MiB of it on opening the images)",
                    flush=True,
                )
            a, b = row["joint"], row["concat"]
            row["inertia_ratio"] = a["inertia"] / b["inertia"]
            row["time_ratio"] = a["seconds"] / b["seconds"]
            row["joint_extra_rss_per_image"] = a["extra_rss_bytes"] / image_bytes
            row["concat_extra_rss_per_image"] = b["extra_rss_bytes"] / image_bytes
            rows.append(row)

    print()
    print(
        "| seed | inertia (a)/(b) | materials (a), (b) of 6 | passes (a), (b) "
        "| time (a) | time (b): concat + cluster | time (a)/(b) "
        "| peak extra RSS (a) / image: anon + file | (b) / image: anon + file |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        a, b = row["joint"], row["concat"]
        a_anon, a_file = a["extra_anon_bytes"] / image_bytes, a["extra_file_bytes"] / image_bytes
        b_anon, b_file = b["extra_anon_bytes"] / image_bytes, b["extra_file_bytes"] / image_bytes
        print(
            f"| {row['seed']} | {row['inertia_ratio']:.5f} "
            f"| {a['materials_found']}, {b['materials_found']} "
            f"| {a['refine_passes']}, {b['refine_passes']} "
            f"| {a['seconds']:.2f} s | {b['seconds']:.2f} s: {b['concat_seconds']:.2f} + "
            f"{b['seconds'] - b['concat_seconds']:.2f} | {row['time_ratio']:.2f}x "
            f"| {row['joint_extra_rss_per_image']:.2f}: {a_anon:.2f} + {a_file:.2f} "
            f"| {row['concat_extra_rss_per_image']:.2f}: {b_anon:.2f} + {b_file:.2f} |"
        )
    worst_q = max(row["inertia_ratio"] for row in rows)
    worst_m = max(row["joint_extra_rss_per_image"] for row in rows)
    targets = {
        "inertia (a)/(b) <= 1.01 for every seed": (worst_q, 1.01, worst_q <= 1.01),
        "peak extra RSS of (a) <= one image + 64 MiB, in images": (
            worst_m,
            budget / image_bytes,
            worst_m * image_bytes <= budget,
        ),
    }
    print()
    for name, (value, limit, ok) in targets.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}: worst {value:.4f} (limit {limit:.2f})")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                    "engine": napari_spectral_clusters.__version__,
                    "numpy": np.__version__,
                    "dask": dask.__version__,
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "images": N_IMAGES,
                    "side": side,
                    "bands": BANDS,
                    "chunks": [BANDS, chunk, chunk],
                    "opened_with": "da.from_array(np.load(mmap_mode='r'))"
                    if args.plain_from_array
                    else "da.from_array(NpyFile): a np.load(mmap_mode='r') per block read",
                    "k": K,
                    "image_bytes": image_bytes,
                    "material_pixels": counts.tolist(),
                    "rows": rows,
                    "targets": {
                        name: {"worst": value, "limit": limit, "pass": ok}
                        for name, (value, limit, ok) in targets.items()
                    },
                },
                indent=1,
            )
        )
    return 0 if all(ok for *_, ok in targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
