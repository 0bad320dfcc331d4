"""Build the sdist and wheel and check them as a lab installing from PyPI would get them.

Run from the project root, as ``.ci/run`` does:

    uv run --locked --extra release python tools/check_dist.py

1. ``uv build`` makes the sdist and the wheel; ``twine check --strict`` checks their metadata
   and that the README renders on PyPI.
2. The wheel holds the manifest, the CIE tables, the sample photo and the licence; the sdist
   holds the tests (with their data), the docs and the lock file.
3. The wheel alone (no source tree on the path: a fresh venv, run from an empty folder) with
   the ``all`` extra: ``npe2 validate napari-spectral-clusters`` passes, both samples open
   through npe2, the sample cube clusters, it is saved through the plugin's writer and read
   back through its reader, and the CLI clusters that file.

Every check prints what it saw; the first that fails stops the script with exit status 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "napari_spectral_clusters"
PLUGIN = "napari-spectral-clusters"

IN_WHEEL = [
    f"{PACKAGE}/napari.yaml",
    f"{PACKAGE}/_data/cie.npz",
    f"{PACKAGE}/_data/coffee.png",
    f"{PACKAGE}/_data/README.md",
]
IN_SDIST = ["pyproject.toml", "uv.lock", "LICENSE", "CHANGELOG.md", "README.md", "docs/conf.py"]
SDIST_FOLDERS = ["tests/", "tests/data/", "docs/", "src/"]

# Run by the wheel's own Python in the fresh venv: only installed code can be imported.
INSTALLED_CHECK = r"""
import sys, pathlib
import numpy as np
import npe2

here = pathlib.Path.cwd()
import napari_spectral_clusters as nsc
assert not pathlib.Path(nsc.__file__).is_relative_to(pathlib.Path(sys.argv[1])), nsc.__file__
print("imported from", pathlib.Path(nsc.__file__).parent)

pm = npe2.PluginManager.instance()
pm.discover()
manifest = pm.get_manifest("napari-spectral-clusters")
samples = {s.key: s for s in manifest.contributions.sample_data}
assert set(samples) == {"cube", "photo"}, samples
opened = {key: pm.commands.execute(s.command) for key, s in samples.items()}
cube, meta, kind = opened["cube"][0]
assert kind == "image" and cube.ndim == 3, (kind, cube.shape)
photo = opened["photo"][0][0]
assert photo.ndim == 3 and photo.shape[-1] == 4 and photo.dtype == np.uint8, photo.shape
print("samples through npe2:", {k: v[0][0].shape for k, v in opened.items()})

res = nsc.cluster_image(cube, 4, channel_axis=0, random_state=0)
truth = opened["cube"][1][0]
# every true material is one cluster: the contingency table has one non-zero per row
pairs = {(int(t), int(c)) for t, c in zip(truth.ravel(), res.labels.ravel())}
assert len(pairs) == len(np.unique(truth)) == 4, pairs
print("clustered the sample cube:", res.counts.tolist())

writer = next(w for w in manifest.contributions.writers if w.filename_extensions == [".mat"])
path = str(here / "cube.mat")
layers = [(cube, {"name": "sample cube", "metadata": meta["metadata"]}, "image")]
written = pm.commands.execute(writer.command, args=(path, layers))
assert pathlib.Path(path).stat().st_size > cube.nbytes // 2, written
reader = pm.commands.execute(manifest.contributions.readers[0].command, args=(path,))
back = reader(path)
np.testing.assert_array_equal(np.asarray(back[0][0]), cube)
print("saved with the plugin's writer and read back:", path)
"""


def run(*cmd, cwd=None, env=None) -> str:
    shown = (str(c) if len(str(c)) < 200 else str(c).strip().splitlines()[0] + " ..." for c in cmd)
    print("$", " ".join(shown), flush=True)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    sys.stdout.write(done.stdout[-4000:])
    if done.returncode:
        sys.stdout.write(done.stderr[-4000:])
        raise SystemExit(f"failed (exit {done.returncode}): {' '.join(map(str, cmd))}")
    return done.stdout


def check_archives(dist: Path) -> tuple[Path, Path]:
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in IN_WHEEL if n not in names]
    if not any(n.endswith("licenses/LICENSE") for n in names):
        missing.append("dist-info/licenses/LICENSE")
    if missing:
        raise SystemExit(f"{wheel.name} lacks {missing}")
    if any(n.startswith(("tests/", "benchmarks/")) for n in names):
        raise SystemExit(f"{wheel.name} carries tests or benchmarks")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        inner = {n.removeprefix(top + "/") for n in tar.getnames()}
    missing = [n for n in IN_SDIST if n not in inner]
    missing += [f for f in SDIST_FOLDERS if not any(n.startswith(f) for n in inner)]
    if missing:
        raise SystemExit(f"{sdist.name} lacks {missing}")
    print(f"{wheel.name}: {len(names)} files, holds {IN_WHEEL}")
    print(f"{sdist.name}: {len(inner)} files, holds the tests, docs and lock file")
    return wheel, sdist


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="check-dist-") as tmp:
        tmp = Path(tmp)
        dist = tmp / "dist"
        run("uv", "build", "--quiet", "--out-dir", dist, cwd=ROOT)
        wheel, sdist = check_archives(dist)
        run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)

        venv, work = tmp / "venv", tmp / "work"
        work.mkdir()
        run("uv", "venv", "--quiet", "--python", "3.11", venv)
        py = venv / "bin" / "python"
        # the caller's environment (index and certificate settings) less any path into this tree
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "UV_PROJECT")}
        env |= {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
        uv = shutil.which("uv")
        run(uv, "pip", "install", "--quiet", "--python", py, f"{wheel}[all]", env=env)
        run(venv / "bin" / "npe2", "validate", PLUGIN, cwd=work, env=env)
        run(py, "-I", "-c", INSTALLED_CHECK, ROOT, cwd=work, env=env)
        out = work / "out"
        run(
            venv / "bin" / "spectral-clusters",
            "run",
            "cube.mat",
            "-k",
            "4",
            "-o",
            out,
            cwd=work,
            env=env,
        )
        written = sorted(p.name for p in out.iterdir())
        expected = {"cube_clusters.png", "cube_recolored.png", "cube_clusters.csv"}
        if not expected <= set(written):
            raise SystemExit(f"the CLI wrote {written}, not {sorted(expected)}")
        print("the CLI wrote", written)
    print("dist checks passed")


if __name__ == "__main__":
    main()
