"""``spectral-clusters``: the command-line front end over the same pure functions."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

__all__ = ["main"]

DEMO_SCREENSHOT = "spectral-clusters-demo.png"


def _pipeline(text: str):
    """--preprocess: a pipeline, checked before any file is read."""
    from .spectral import Pipeline, PreprocessingError

    try:
        if text.strip().endswith(".json"):
            return Pipeline.from_file(text.strip())
        return Pipeline.parse(text)
    except PreprocessingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _wavelength_range(text: str) -> tuple[float, float]:
    """--wavelengths: first-last nm, checked before any file is read."""
    from .wavelengths import parse_wavelength_range

    try:
        return parse_wavelength_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """The ``spectral-clusters`` command: ``demo`` (napari with the sample cube and one
    clustering) or ``run`` (cluster files headless); their options are listed below.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program's name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 all done, 1 some inputs failed, 2 nothing to do or bad options.
    """
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
            "With --joint, one clustering is fitted over all inputs and labels each of them\n"
            "(shared ids and colours), plus joint_model.npz and joint_clusters.csv.\n"
            "A .mat or .zarr input is clustered on its largest image (the spectral cube).\n"
            "Big v7.3 .mat and zarr cubes are read, clustered and written block by block.\n"
            "Each output appears only once complete: an interrupted run leaves none half-done.\n"
            "Before clustering anything the run checks the options, --model, the inputs, the\n"
            "output folder and every output name: it refuses to replace an existing file\n"
            "(unless --overwrite) or an input. Bad files are reported and skipped; the others\n"
            "still complete.\n"
            "Files holding only labels (a ground truth beside its cube) are skipped, not\n"
            "failed (only such files: nothing to do).\n"
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
        "--preprocess",
        "--preprocessing",
        dest="preprocessing",
        type=_pipeline,
        metavar="SPEC",
        help="what is clustered: none (as given), standardize (per band), unit (spectral "
        "shape) or pca, or a pipeline of per-spectrum steps ending in one of those, e.g. "
        "'range(450, 900) | savgol(11, 2, deriv=1) | snv' (steps: range, drop, savgol, "
        "baseline, despike, snv, vector, area, max, minmax), or a JSON file of steps",
    )
    run.add_argument(
        "--wavelengths",
        type=_wavelength_range,
        metavar="FIRST-LAST",
        help="band wavelengths in nm, spread evenly from FIRST to LAST, for cubes whose "
        "files give none (e.g. 401-889, or 0.401-0.889 um): true colours, and --preprocess "
        "ranges in nm; a "
        "file's own wavelengths are kept",
    )
    run.add_argument(
        "--model",
        type=Path,
        metavar="FILE",
        help="apply a saved clustering (STEM_model.npz) instead of fitting one, so "
        "each cluster means the same material in every file (with the steps it was "
        "fitted with: no --preprocess)",
    )
    run.add_argument(
        "--joint",
        action="store_true",
        help="fit one clustering over all inputs (a sample of each, by pixel count; the "
        "inputs are read one at a time) and label each with it: shared ids and colours; "
        "writes each input's outputs without a model, plus joint_model.npz and "
        "joint_clusters.csv (every input's pixels per cluster)",
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
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback (outputs are written whole)
        print(
            "spectral-clusters: interrupted; outputs written before it are complete, none "
            "was left half-written",
            file=sys.stderr,
        )
        return 130


def _run(args) -> int:
    """Check everything knowable before clustering anything, in seconds whatever the inputs'
    size (options, --model, the inputs, the output folder, every output name), then cluster
    the inputs one by one: no run computes for minutes, then stops on what it could have
    checked first. A bad input is still found only when read, and skipped (exit status 1)."""
    from .batch import expand_inputs
    from .model import ClusterModel, ModelError

    problem = _bad_option(args)
    if problem:
        return _refuse(problem)
    if args.preprocessing is None:
        args.preprocessing = _pipeline("none")
    model = None
    if args.model is not None:
        try:
            model = ClusterModel.load(args.model)
        except ModelError as exc:  # missing, a folder, unreadable, not a model, damaged
            return _refuse(f"cannot use --model: {exc}")
    files, unmatched = expand_inputs(args.inputs)
    for item in unmatched:
        print(f"spectral-clusters: no .mat, .png or .zarr input matches {item}", file=sys.stderr)
    if not files:
        return _refuse("nothing to do")
    if unmatched:
        return _refuse("nothing was clustered: correct or leave out the inputs above")
    # the folders -o makes, removed again if the run writes nothing into them
    made = [p for p in (args.out, *args.out.parents) if not p.exists()]
    try:
        problem = _prepare_out(args.out)
        if problem:
            return _refuse(problem)
        return _run_into(args, files, model)
    finally:
        for folder in made:
            try:
                folder.rmdir()  # only if empty: nothing of the run's or anyone's in it
            except OSError:
                break


def _run_into(args, files, model) -> int:
    """:func:`_run` once its inputs and output folder are known to be usable."""
    from .batch import find_conflicts, unique_stems

    stems = unique_stems(files)
    conflicts = find_conflicts(
        files,
        stems,
        args.out,
        fmt=args.format,
        with_model=model is None and not args.joint,
        overwrite=args.overwrite,
    )
    if conflicts:
        _report_conflicts(conflicts)
        return 2
    if args.joint:
        return _run_jointly(args, files, stems)
    if not (args.scheduler or args.workers):
        return _run_files(args, files, stems, model, lazy=False)
    with ExitStack() as stack:
        try:  # only starting the cluster: errors of the run itself are reported per file
            client = stack.enter_context(_dask_client(args.scheduler, args.workers))
        except (ImportError, OSError, TimeoutError, ValueError) as exc:
            return _refuse(f"cannot use a dask cluster: {exc}")
        workers = len(client.scheduler_info()["workers"])
        print(f"on dask cluster {client.scheduler.address} ({workers} workers)", file=sys.stderr)
        return _run_files(args, files, stems, model, lazy=True)


def _refuse(reason: str) -> int:
    """Say why the run does not start; exit status 2 (bad options, nothing to do)."""
    print(f"spectral-clusters: {reason}", file=sys.stderr)
    return 2


def _bad_option(args) -> str | None:
    """What is wrong with the numbers given (options, SPECTRAL_CLUSTERS_LAZY_BYTES), if any."""
    from .io.layers import lazy_threshold

    if args.model is None and args.clusters < 1:
        return "-k must be at least 1"
    if args.seed < 0:  # numpy's generators take no negative seeds
        return f"--seed must be 0 or more, not {args.seed}"
    if args.joint and args.model is not None:
        return "--joint fits one clustering; --model applies one: choose one of them"
    if args.model is not None and args.preprocessing is not None:
        return (
            "--preprocess has no effect with --model: a model applies the steps it was fitted with"
        )
    if args.joint and (args.scheduler or args.workers):
        return "--joint runs on this machine (no --scheduler or --workers)"
    if args.workers is not None and args.workers < 1:
        return f"--workers must be at least 1, not {args.workers}"
    try:
        lazy_threshold()
    except ValueError:
        value = os.environ.get("SPECTRAL_CLUSTERS_LAZY_BYTES")
        return f"SPECTRAL_CLUSTERS_LAZY_BYTES must be a number of bytes, not {value!r}"
    return None


def _prepare_out(out: Path) -> str | None:
    """Create the output folder if missing and check that files can be made in it: why not,
    if they cannot."""
    if out.exists() and not out.is_dir():
        return f"-o {out} is a file, not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        # the very operation every input's outputs start with (a hidden staging folder)
        with tempfile.TemporaryDirectory(prefix=".spectral-clusters-check-", dir=out):
            pass
    except OSError as exc:
        return f"cannot write into -o {out}: {exc.strerror or exc}"
    return None


def _report_conflicts(conflicts) -> None:
    print(
        f"spectral-clusters: would overwrite {len(conflicts)} file(s); nothing was clustered:",
        file=sys.stderr,
    )
    for c in conflicts:
        what = "is an input of this run" if c.replaces_input else "exists"
        print(f"  {c.output} {what} (an output of {c.source})", file=sys.stderr)
    if not all(c.replaces_input for c in conflicts):
        print("use --overwrite to replace existing outputs, or another -o", file=sys.stderr)
    if any(c.replaces_input for c in conflicts):
        print("inputs are never replaced: write to another -o", file=sys.stderr)


@contextmanager
def _dask_client(address: str | None, workers: int | None):
    """A dask.distributed client of the cluster at ``address``, or of a new local cluster of
    ``workers`` processes (closed again afterwards). While it is open, every dask computation
    of the engine runs there."""
    import dask
    from dask.distributed import Client, LocalCluster

    if address:
        # not dask's default until connected: a scheduler never reached would otherwise stay
        # the default, and every later dask computation in this process would wait on it
        client = Client(address, timeout=10, set_as_default=False)
        with client, client.as_current(), dask.config.set(scheduler=client.get):
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _run_files(args, files, stems, model, *, lazy: bool) -> int:
    import time

    from .batch import LabelsOnly, cluster_file, describe_error
    from .io import reason_without_name

    failed, skipped = [], []
    start = time.perf_counter()
    for i, (path, stem) in enumerate(zip(files, stems, strict=True), start=1):
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
                wavelength_range=args.wavelengths,
            )
            status = (
                f"{report.n_clusters} clusters of {report.layer} "
                f"({time.perf_counter() - t0:.1f} s)"
            )
        except LabelsOnly as exc:  # a ground truth beside its cube: nothing to do
            skipped.append(path)
            status = f"skipped: {exc}"
        except Exception as exc:  # one bad file must not stop the batch
            failed.append((path, reason_without_name(describe_error(exc), path.name)))
            status = f"FAILED: {failed[-1][1]}"
        print(_progress_line(i, len(files), path, stem, status), file=sys.stderr)
    done = len(files) - len(failed) - len(skipped)
    print(
        f"clustered {done} of {len(files)} file(s) into {args.out} "
        f"in {time.perf_counter() - start:.1f} s"
        + _skipped_note(len(skipped))
        + (f"; {len(failed)} failed:" if failed else "")
    )
    for path, reason in failed:
        print(f"  {path}: {reason}")
    return 1 if failed else 0 if done else 2  # 2: only labels, nothing to do


def _progress_line(done: int, total: int, path: Path, stem: str, status: str) -> str:
    """One input's line while a batch runs: a bar, the count, the file (and the stem its
    outputs are named by, when that is not the file's own) and what became of it. A failure
    whose reason names the file already ("FAILED: x.png is empty (0 bytes)") names it once."""
    name = path.name if stem == path.stem else f"{path.name} (as {stem}_*)"
    said = status if status.startswith(f"FAILED: {path.name}") else f"{name}: {status}"
    return f"{_bar(done, total)} {done}/{total} {said}"


def _skipped_note(n: int) -> str:
    return f"; skipped {n} holding labels only" if n else ""


def _run_jointly(args, files, stems) -> int:
    import time

    from .batch import JOINT_OUTPUTS, cluster_jointly
    from .io import reason_without_name
    from .kmeans import ClusteringError

    taken = [name for name in JOINT_OUTPUTS if (args.out / name).exists()]
    if taken and not args.overwrite:
        return _refuse(
            f"would overwrite {', '.join(taken)} in {args.out}; nothing was clustered "
            "(use --overwrite, or another -o)"
        )
    start = time.perf_counter()
    done = []
    stem_of = dict(zip(files, stems, strict=True))

    def on_file(report):
        done.append(report)
        reason = reason_without_name(report.error, report.source.name) if report.error else ""
        status = (
            f"FAILED: {reason}"
            if report.error
            else f"skipped: {report.skipped}"
            if report.skipped
            else f"{report.n_clusters} clusters"
        )
        stem = stem_of.get(report.source, report.source.stem)
        line = _progress_line(len(done), len(files), report.source, stem, status)
        print(line, file=sys.stderr)

    try:
        reports, written = cluster_jointly(
            files,
            args.out,
            stems,
            n_clusters=args.clusters,
            random_state=args.seed,
            preprocessing=args.preprocessing,
            overwrite=args.overwrite,
            fmt=args.format,
            on_file=on_file,
            wavelength_range=args.wavelengths,
        )
    except ClusteringError as exc:  # the joint fit itself: no file has a result
        print(f"spectral-clusters: cannot cluster the files jointly: {exc}", file=sys.stderr)
        return 1
    failed = [r for r in reports if r.error]
    skipped = [r for r in reports if r.skipped]
    print(
        f"clustered {len(files) - len(failed) - len(skipped)} of {len(files)} file(s) jointly "
        f"into {args.out} in {time.perf_counter() - start:.1f} s"
        + _skipped_note(len(skipped))
        + (f"; {len(failed)} failed:" if failed else "")
    )
    for report in failed:
        print(f"  {report.source}: {reason_without_name(report.error, report.source.name)}")
    if not written:
        return 2 if skipped and not failed else 1  # 2: only labels, nothing to do
    return 1 if failed else 0


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _demo(args, argv: list[str]) -> int:
    # napari is imported only here: `run` on a headless machine never needs it
    from ._napari.demo import has_display, rerun_under_xvfb, run_demo

    if not has_display():
        extra = [] if args.screenshot else ["--screenshot", DEMO_SCREENSHOT]
        rerun_under_xvfb(["-m", "napari_spectral_clusters.cli", *argv, *extra])
    return run_demo(args.clusters, args.screenshot)


if __name__ == "__main__":
    sys.exit(main())
