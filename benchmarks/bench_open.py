"""What crash containment costs when opening a normal MATLAB v4-v7 file (issue 14).

Run from the project root (well under a minute):

    uv run --locked python benchmarks/bench_open.py [--json FILE]

``read_mat`` parses v4-v7 files in a child process (``io/contained.py``), so a file that
crashes scipy's compiled parser cannot take napari or a CLI batch down. This times, in one
process and alternately (the machine is shared and noisy): the first ``read_mat`` of a session
(which starts the child), then for each file the best of 5 of ``read_mat`` against the same
parse in this process (``parse_v5``, what ``read_mat`` did before), and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io
from timing import best

from napari_spectral_clusters.io import read_mat
from napari_spectral_clusters.io.inputs import eager_bytes
from napari_spectral_clusters.io.mat5 import parse_v5

HERE = Path(__file__).resolve().parent
SAMSON = HERE.parent / "tests" / "data" / "hsi" / "Samson.mat"
SMALL = HERE.parent / "tests" / "data" / "matlab" / "test3dmatrix_6.1_SOL2.mat"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    big = Path("/tmp/bench_open_cube.mat")
    cube = np.random.default_rng(0).random((512, 512, 100)).astype(np.float32)  # 105 MB
    scipy.io.savemat(big, {"cube": cube})
    files = [SMALL, SAMSON, big]
    t0 = time.perf_counter()
    read_mat(SMALL)
    first = time.perf_counter() - t0
    print(f"first read_mat of a session (starts the parser's child): {first:.2f} s")
    rows = {}
    print(f"{'file':28s} {'MB':>7s} {'in-process s':>13s} {'contained s':>12s} {'ratio':>6s}")
    for path in files:
        inproc = best(lambda p=path: parse_v5(p, limit=eager_bytes()))
        contained = best(lambda p=path: read_mat(p))
        size = path.stat().st_size / 1e6
        rows[path.name] = {"mb": size, "in_process": inproc, "contained": contained}
        print(
            f"{path.name:28s} {size:7.1f} {inproc:13.4f} {contained:12.4f} "
            f"{contained / inproc:6.1f}"
        )
    big.unlink()
    if args.json:
        args.json.write_text(json.dumps({"first_open": first, "files": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
