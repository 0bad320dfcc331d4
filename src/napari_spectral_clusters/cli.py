"""``spectral-clusters``: the command-line front end over the same pure functions."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from contextlib import contextmanager
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
    run = sub.add_parser(
        "run",
        help="cluster files headless and write labels, recoloured pictures and tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Cluster every input with the same engine as the napari widget and write, per\n"
            "input STEM, into --out:\n"
            "  STEM_clusters.png   labels 1..k as an indexed PNG (palette = cluster colours;\n"
            "                      16-bit greyscale above 255 labels; see --format)\n"
            "  STEM_recolored.png  every pixel in its cluster's colour (alpha kept)\n"
            "  STEM_clusters.csv   label, pixels, fraction, colour, mean and std per band\n"
            "  STEM_model.npz      the fitted clustering, for --model on other files\n"
            "A .mat or .zarr input is clustered on its largest image (the spectral cube).\n"
            "Big v7.3 .mat and zarr cubes are read, clustered and written block by block.\n"
            "Each output appears only once complete: an interrupted run leaves none half-done.\n"
            "Bad files are reported and skipped; the others still complete.\n"
            "Exit status: 0 all done, 1 some inputs failed, 2 nothing to do or bad options."
        ),
    )
    run.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=".mat/.png files, .zarr stores, folders (their .mat, .png, .zarr) or glob patterns",
    )
    run.add_argument(
        "-k",
        "--clusters",
        type=int,
        default=8,
        help="number of clusters (8; ignored with --model)",
    )
    run.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder (created if missing)",
    )
    run.add_argument("--seed", type=int, default=0, help="random seed (0): same seed, same labels")
    run.add_argument(
        "--preprocessing",
        default="none",
        choices=["none", "standardize", "unit", "pca"],
        help="features to cluster: as given (none), per-band standardised, "
        "unit-length spectra (shape, not brightness), or principal components",
    )
    run.add_argument(
        "--model",
        type=Path,
        metavar="FILE",
        help="apply a saved clustering (STEM_model.npz) instead of fitting one, so "
        "each cluster means the same material in every file",
    )
    run.add_argument(
        "--format",
        default="auto",
        choices=["auto", "png", "mat", "zarr"],
        help="labels and recoloured image as PNG, MATLAB .mat or zarr; auto (default): PNG "
        "for 2-D images, .mat (v7.3, streamed) for cubes with more axes and big lazy inputs",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (default: refuse, per file)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the dask.distributed cluster at ADDRESS (e.g. tcp://10.0.0.5:8786); "
        "needs the 'distributed' extra",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="start a local dask.distributed cluster of N worker processes for the run",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args, argv if argv is not None else sys.argv[1:])
    return _run(args)


def _run(args) -> int:
    from .batch import expand_inputs
    from .model import ClusterModel, ModelError

    files, unmatched = expand_inputs(args.inputs)
    for item in unmatched:
        print(f"spectral-clusters: no .mat, .png or .zarr input matches {item}", file=sys.stderr)
    if not files:
        print("spectral-clusters: nothing to do", file=sys.stderr)
        return 2
    model = None
    if args.model is not None:
        try:
            model = ClusterModel.load(args.model)
        except (ModelError, FileNotFoundError) as exc:
            print(f"spectral-clusters: cannot use --model: {exc}", file=sys.stderr)
            return 2
    if model is None and args.clusters < 1:
        print("spectral-clusters: -k must be at least 1", file=sys.stderr)
        return 2
    if not (args.scheduler or args.workers):
        return _run_files(args, files, model, lazy=False)
    try:
        with _dask_client(args.scheduler, args.workers) as client:
            workers = len(client.scheduler_info()["workers"])
            print(
                f"on dask cluster {client.scheduler.address} ({workers} workers)", file=sys.stderr
            )
            return _run_files(args, files, model, lazy=True)
    except (ImportError, OSError, TimeoutError) as exc:
        print(f"spectral-clusters: cannot use a dask cluster: {exc}", file=sys.stderr)
        return 2


@contextmanager
def _dask_client(address: str | None, workers: int | None):
    """A dask.distributed client of the cluster at ``address``, or of a new local cluster of
    ``workers`` processes (closed again afterwards). While it is open, every dask computation
    of the engine runs there."""
    from dask.distributed import Client, LocalCluster

    if address:
        with Client(address, timeout=10) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _run_files(args, files, model, *, lazy: bool) -> int:
    import time

    from .batch import cluster_file, describe_error, unique_stems

    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    start = time.perf_counter()
    for i, (path, stem) in enumerate(zip(files, unique_stems(files), strict=True), start=1):
        t0 = time.perf_counter()
        try:
            report = cluster_file(
                path,
                args.out,
                n_clusters=args.clusters,
                random_state=args.seed,
                preprocessing=args.preprocessing,
                model=model,
                overwrite=args.overwrite,
                stem=stem,
                lazy=lazy,
                fmt=args.format,
            )
            status = (
                f"{report.n_clusters} clusters of {report.layer} "
                f"({time.perf_counter() - t0:.1f} s)"
            )
        except Exception as exc:  # one bad file must not stop the batch
            failed.append((path, describe_error(exc)))
            status = f"FAILED: {describe_error(exc)}"
        print(f"{_bar(i, len(files))} {i}/{len(files)} {path.name}: {status}", file=sys.stderr)
    done = len(files) - len(failed)
    print(
        f"clustered {done} of {len(files)} file(s) into {args.out} "
        f"in {time.perf_counter() - start:.1f} s" + (f"; {len(failed)} failed:" if failed else "")
    )
    for path, reason in failed:
        print(f"  {path}: {reason}")
    return 1 if failed else 0


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


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
    widget.random_state.value = 0  # the demo is the same whatever the user's saved settings
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
