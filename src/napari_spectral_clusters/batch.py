"""Headless batch clustering: files in, labels / recoloured picture / cluster table out.

The same pure functions as the widget (readers, :func:`cluster_image`, :func:`apply_model`,
writers), so the same input and seed give the same labels. Which files a run will write is
known before anything is clustered (:func:`output_paths`, :func:`find_conflicts`).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._arrays import is_lazy
from .cluster import ClusteringError, ClusterResult, apply_model, cluster_image
from .io import ImageData, ReadError, read_mat, read_png, read_zarr
from .io.files import move_in_together, written_whole
from .io.layers import lazy_threshold
from .io.mat import write_mat
from .io.png import write_labels_png, write_png
from .io.zarr import write_zarr
from .model import ClusterModel
from .spectral import PreprocessingError
from .wavelengths import given_wavelengths

__all__ = [
    "JOINT_OUTPUTS",
    "BatchError",
    "Conflict",
    "FileReport",
    "LabelsOnly",
    "cluster_file",
    "cluster_jointly",
    "expand_inputs",
    "find_conflicts",
    "output_format",
    "output_paths",
    "planned_format",
    "read_image",
    "unique_stems",
    "write_table",
]

SUFFIXES = (".mat", ".png", ".zarr")

#: Output formats of the labels and recoloured image: ``auto`` is PNG for 2-D images that fit
#: in memory, ``.mat`` for cubes with extra axes and for inputs opened lazily (streamed).
FORMATS = ("auto", "png", "mat", "zarr")


#: What a joint run writes besides each input's outputs: the shared model and one table.
JOINT_OUTPUTS = ("joint_model.npz", "joint_clusters.csv")
#: Pixels drawn from the inputs of a joint run to fit the shared clustering, in all.
JOINT_SAMPLE = 200_000


class BatchError(ValueError):
    """One input could not be processed; the message says which and why."""


class LabelsOnly(BatchError):
    """An input holds labels only (a ground truth beside its cube): nothing to cluster. A
    batch skips it; it is not a failure."""


@dataclass
class FileReport:
    """What happened to one input."""

    source: Path
    outputs: list[Path] = field(default_factory=list)
    layer: str = ""
    n_clusters: int = 0
    error: str | None = None
    counts: np.ndarray | None = None  # pixels per cluster (joint runs)
    skipped: str | None = None  # why it was left out, not failed (labels only)


def expand_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their ``.mat``/``.png`` files, ``.zarr`` stores) and glob patterns ->
    inputs (a ``.zarr`` store is one input, though a folder).

    Returns the files, in order and without repeats, and the items that matched nothing.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_spectral_clusters.batch import expand_inputs
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("b.png", "a.mat", "notes.txt"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> files, unmatched = expand_inputs([str(folder), str(folder / "*.png"), "missing.mat"])
    >>> [f.name for f in files], unmatched
    (['a.mat', 'b.png'], ['missing.mat'])
    """
    files: list[Path] = []
    unmatched = []
    for item in items:
        path = Path(item)
        if path.is_dir() and not _is_input(path):
            found = sorted(p for p in path.iterdir() if _is_input(p))
        elif path.exists():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item) if _is_input(Path(p)))
        if not found:
            unmatched.append(item)
        files.extend(p for p in found if p not in files)
    return files, unmatched


def _is_input(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in SUFFIXES and (path.is_dir() if suffix == ".zarr" else path.is_file())


def read_image(
    path: Path, *, lazy_bytes: int | None = None, wavelength_range: tuple | None = None
) -> ImageData:
    """The image to cluster: for ``.mat`` and ``.zarr``, the largest image (cubes first).

    ``lazy_bytes`` is passed to the .mat and zarr readers (arrays above it open lazily).
    ``wavelength_range``: ``(first, last)`` nm, spread evenly over the bands of a cube whose file
    gives none (a file's own wavelengths are kept; pictures have colours, not bands).
    """
    suffix = path.suffix.lower()
    if suffix == ".png":
        img = read_png(path)
        if img.kind != "image":  # a clusters PNG this plugin wrote (a results folder)
            raise LabelsOnly(f"{path.name} holds only labels, no image to cluster")
        return img
    if suffix not in (".mat", ".zarr"):
        raise BatchError(f"{path.name}: not a .mat, .png or .zarr input")
    read = read_mat if suffix == ".mat" else read_zarr
    images = [img for img in read(path, lazy_bytes=lazy_bytes) if img.kind == "image"]
    if not images:
        raise LabelsOnly(f"{path.name} holds only labels, no image to cluster")
    img = max(images, key=lambda img: (img.channel_axis is not None, img.data.size))
    if wavelength_range is None or img.rgb or img.channel_axis is None:
        return img
    if img.metadata.get("wavelengths") is not None:
        return img
    n_bands = img.data.shape[img.channel_axis]
    given = given_wavelengths(*wavelength_range, n_bands, "given on the command line")
    return dataclasses.replace(img, metadata={**img.metadata, **given})


def labels_ndim(img: ImageData) -> int:
    """Axes of the labels ``img`` clusters into: all of its axes but the channel axis."""
    return img.data.ndim - (img.channel_axis is not None)


def output_format(img: ImageData, fmt: str = "auto", *, streamed: bool | None = None) -> str:
    """The format of ``img``'s labels and recoloured image: ``fmt``, or for ``auto`` PNG when
    the labels are 2-D and the image is in memory, else ``.mat`` (see :data:`FORMATS`).

    ``streamed`` says whether the image is clustered block by block; default: whether its
    data is lazy, as the readers open big arrays.
    """
    if fmt != "auto":
        return fmt
    if streamed is None:
        streamed = is_lazy(img.data)
    return "png" if labels_ndim(img) == 2 and not streamed else "mat"


def planned_format(path: Path) -> str:
    """The format ``auto`` chooses for the input ``path`` (:func:`output_format`), found
    without reading its cube.

    Every array opens lazily, and its size says whether the run will stream it (the readers'
    rule). Only what decides which array is the image is read: 2-D planes and small arrays,
    a PNG picture, a whole MATLAB v5 file (scipy reads no less; v5 arrays are under 2 GiB).

    Raises
    ------
    BatchError, ReadError, OSError
        The input cannot be read.
    """
    img = read_image(path, lazy_bytes=0)
    streamed = is_lazy(img.data) and img.data.nbytes > lazy_threshold()
    return output_format(img, "auto", streamed=streamed)


def output_paths(out_dir: Path, stem: str, fmt: str, *, with_model: bool = True) -> list[Path]:
    """The files one input writes: labels and recoloured image in ``fmt`` (``png``, ``mat``
    or ``zarr``), the cluster table, and the model when one is fitted.

    Examples
    --------
    >>> from napari_spectral_clusters.batch import output_paths
    >>> from pathlib import Path
    >>> [p.name for p in output_paths(Path("out"), "scan", "png")]
    ['scan_clusters.png', 'scan_recolored.png', 'scan_clusters.csv', 'scan_model.npz']
    """
    paths = [
        out_dir / f"{stem}_clusters.{fmt}",
        out_dir / f"{stem}_recolored.{fmt}",
        out_dir / f"{stem}_clusters.csv",
    ]
    if with_model:
        paths.append(out_dir / f"{stem}_model.npz")
    return paths


@dataclass(frozen=True)
class Conflict:
    """An output that would replace a file: an existing one, or one of the run's inputs."""

    output: Path
    source: Path  # the input that would write it
    replaces_input: bool


def find_conflicts(
    files: list[Path],
    stems: list[str],
    out_dir: Path,
    *,
    fmt: str = "auto",
    with_model: bool = True,
    overwrite: bool = False,
) -> list[Conflict]:
    """Outputs of ``files`` (written as ``stems``) that would replace a file: any that is one
    of the inputs, and unless ``overwrite`` any that exists. Found in seconds, whatever the
    inputs' size: nothing is clustered, and an input is opened (:func:`planned_format`) only
    when one of the names ``auto`` could choose for it is taken.

    An input that cannot be opened is left to the run, which reports it and writes nothing
    for it; its table and model names are still checked.
    """
    inputs = {p.resolve() for p in files}

    def taken(paths: list[Path]) -> list[Path]:
        return [p for p in paths if p.resolve() in inputs or (not overwrite and p.exists())]

    conflicts = []
    for path, stem in zip(files, stems, strict=True):
        if fmt != "auto":
            clashes = taken(output_paths(out_dir, stem, fmt, with_model=with_model))
        else:
            as_png, as_mat = (
                output_paths(out_dir, stem, f, with_model=with_model) for f in ("png", "mat")
            )
            clashes = taken(as_png + [p for p in as_mat if p not in as_png])
            if any(p not in as_png or p not in as_mat for p in clashes):
                try:
                    chosen = as_png if planned_format(path) == "png" else as_mat
                except (OSError, ValueError):  # unreadable: the run reports it
                    chosen = [p for p in as_png if p in as_mat]
                clashes = [p for p in clashes if p in chosen]
        conflicts += [Conflict(p, path, p.resolve() in inputs) for p in clashes]
    return conflicts


def cluster_file(
    path: Path,
    out_dir: Path,
    *,
    n_clusters: int,
    random_state: int = 0,
    preprocessing: str = "none",
    model: ClusterModel | None = None,
    overwrite: bool = False,
    stem: str | None = None,
    lazy: bool = False,
    fmt: str = "auto",
    wavelength_range: tuple | None = None,
) -> FileReport:
    """Cluster one file and write ``<stem>_clusters.png`` and ``<stem>_recolored.png`` (or
    ``.mat``/``.zarr``, see :data:`FORMATS`), ``<stem>_clusters.csv`` and
    ``<stem>_model.npz``. Each output appears only when complete; lazy results are computed
    and written block by block. ``wavelength_range``: ``(first, last)`` nm for a cube whose file
    gives none (:func:`read_image`).

    Raises
    ------
    BatchError, ReadError, ClusteringError
        The file cannot be read or clustered, or an output exists and ``overwrite`` is False.
    """
    stem = stem or path.stem
    if fmt not in FORMATS:
        raise BatchError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    img = read_image(path, wavelength_range=wavelength_range)
    data = img.data  # dask for big v7.3 cubes and zarr stores: clustered block by block
    if fmt == "png" and labels_ndim(img) != 2:
        raise BatchError(f"{path.name}: {labels_ndim(img)}-D labels cannot be saved as PNG")
    # the outputs are known from the image alone: refuse before clustering, not after
    fmt = output_format(img, fmt)
    outputs = output_paths(out_dir, stem, fmt, with_model=model is None)
    existing = [p.name for p in outputs if p.exists()]
    if existing and not overwrite:
        raise BatchError(f"{path.name}: would overwrite {', '.join(existing)} (use --overwrite)")
    if lazy and not is_lazy(data):  # on a dask cluster: blocks become its tasks
        import dask.array as da

        data = da.from_array(np.asarray(data), chunks="auto")
    wavelengths = img.metadata.get("wavelengths")
    if model is None:
        res = cluster_image(
            data,
            n_clusters,
            channel_axis=img.channel_axis,
            random_state=random_state,
            preprocessing=preprocessing,
            wavelengths=wavelengths,  # the true colours, and a pipeline's ranges in nm
        )
    else:
        res = apply_model(data, model, channel_axis=img.channel_axis, wavelengths=wavelengths)
    # all outputs are written in a hidden folder beside them and moved in together at the
    # end: a failed or interrupted input leaves none of them, not some
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.partial-", dir=out_dir))
    try:
        staged = [staging / p.name for p in outputs]
        _write_outputs(staged, res, img, stem, fmt, path, wavelengths, model is None)
        try:
            move_in_together(list(zip(staged, outputs, strict=True)), overwrite=overwrite)
        except FileExistsError as exc:
            raise BatchError(f"{path.name}: {exc}; none of its outputs was written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FileReport(path, outputs, img.name, res.n_clusters)


def cluster_jointly(
    files: list[Path],
    out_dir: Path,
    stems: list[str],
    *,
    n_clusters: int,
    random_state: int = 0,
    preprocessing: str = "none",
    overwrite: bool = False,
    fmt: str = "auto",
    sample: int = JOINT_SAMPLE,
    on_file=None,
    wavelength_range: tuple | None = None,
) -> tuple[list[FileReport], list[Path]]:
    """One clustering fitted over all the inputs, then each input labelled with it: ids,
    centres and colours shared by all. Writes each input's labels, recoloured image and table
    (as :func:`cluster_file`, without a model of its own), then the shared model and one table
    with every input's pixels per cluster (:data:`JOINT_OUTPUTS`).

    Memory stays bounded by one input plus the sample: the inputs are read one at a time,
    twice — first for a sample of their pixels (``sample`` in all, shared by pixel count, so
    a bigger image weighs more, as its pixels do), then to be labelled and written (a lazy
    input block by block). An input that cannot be read, or has other bands than the first,
    is reported in its :class:`FileReport` and left out; the others complete.

    ``on_file(report)`` is called as each input is done (or has failed).
    ``wavelength_range``: ``(first, last)`` nm for the cubes whose files give none
    (:func:`read_image`).

    Returns
    -------
    (reports, written)
        A report per input, in order, and the shared files written (none if no input could
        be clustered).
    """
    from .joint import cluster_images, integer_depth

    if fmt not in FORMATS:
        raise BatchError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    on_file = on_file or (lambda report: None)
    reports = [FileReport(path) for path in files]
    rng = np.random.default_rng(random_state)
    drawn, pixels, found_wavelengths = {}, {}, {}
    for i, path in enumerate(files):
        try:
            img = read_image(path, wavelength_range=wavelength_range)
            column = _pixel_column(img)
            wl = img.metadata.get("wavelengths")
            if wl is not None:
                found_wavelengths[i] = np.asarray(wl, dtype=np.float64)
            pixels[i] = column.shape[0]
            per_file = max(sample // len(files), 1_000)  # the draws in all stay near ``sample``
            take = np.sort(rng.choice(column.shape[0], min(per_file, column.shape[0]), False))
            drawn[i] = np.asarray(column[take])
            if drawn[i].shape[-1] == 4 and np.issubdtype(drawn[i].dtype, np.integer):
                # RGBA: alpha is transparency, as in a run of one file (not a band: an RGB
                # and an RGBA picture share clusters); its pixels are the opaque ones
                opaque = drawn[i][:, 0, 3] > 0
                pixels[i] = round(pixels[i] * opaque.mean())
                drawn[i] = drawn[i][opaque][..., :3]
                if not len(drawn[i]):
                    raise BatchError(f"{path.name}: every pixel drawn is transparent")
        except LabelsOnly as exc:
            reports[i].skipped = str(exc)
            on_file(reports[i])
        except Exception as exc:  # one bad file must not stop the others
            reports[i].error = describe_error(exc)
            on_file(reports[i])
    # the inputs share the channels most of them have (the first of them on a tie); an
    # input with others cannot share their clusters. Nor can integer pictures of another
    # depth than most: their values are not on one scale (8-bit white is 16-bit black)
    channels_of = {i: drawn[i].shape[-1] for i in sorted(drawn)}
    odd = {
        i: f"has {_channels(channels_of[i])}, {others}: it cannot share their clusters"
        for i, others in _odd_ones(channels_of).items()
    }
    depth_of = {
        i: integer_depth(d)
        for i, d in sorted(drawn.items())
        if integer_depth(d) is not None and i not in odd
    }
    for i, others in _odd_ones(depth_of).items():
        odd[i] = (
            f"holds {depth_of[i]}-bit values, {others}-bit: not on one scale, it cannot share "
            "their clusters (convert it first)"
        )
    for i in sorted(odd):
        reports[i].error = f"{files[i].name} {odd[i]}"
        on_file(reports[i])
        del drawn[i], pixels[i]
    wavelengths = next(
        (found_wavelengths[i] for i in sorted(drawn) if i in found_wavelengths), None
    )
    if not drawn:
        return reports, []
    # the sample shared by pixel count: every input's draw cut to its share of the pixels
    total = sum(pixels.values())
    scale = min(sample / total, *(len(drawn[i]) / pixels[i] for i in drawn))
    samples = [drawn[i][: max(1, round(scale * pixels[i]))] for i in sorted(drawn)]
    fitted = cluster_images(
        samples,
        n_clusters,
        channel_axis=-1,
        wavelengths=wavelengths,
        random_state=random_state,
        preprocessing=preprocessing,
    )
    model = fitted.model
    counts = {}
    for i in sorted(drawn):
        path, stem = files[i], stems[i]
        try:
            report = _label_file(
                path,
                out_dir,
                stem,
                model,
                fmt=fmt,
                overwrite=overwrite,
                wavelength_range=wavelength_range,
            )
            reports[i].outputs, reports[i].layer = report.outputs, report.layer
            reports[i].n_clusters = report.n_clusters
            counts[i] = report.counts
        except Exception as exc:
            reports[i].error = describe_error(exc)
        on_file(reports[i])
    if not counts:
        return reports, []
    written = [out_dir / name for name in JOINT_OUTPUTS]
    staging = Path(tempfile.mkdtemp(prefix=".joint.partial-", dir=out_dir))
    try:
        staged = [staging / p.name for p in written]
        model.save(staged[0])
        _write_joint_table(staged[1], model, [(stems[i], counts[i]) for i in sorted(counts)])
        move_in_together(list(zip(staged, written, strict=True)), overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return reports, written


def _odd_ones(value_of: dict) -> dict:
    """The inputs whose value (channels, bit depth) is not the one most inputs have (the
    first of them on a tie), each with what the others have: "the other has 3", "2 of the
    5 others have 3"."""
    values = list(value_of.values())
    common = max(values, key=lambda v: (values.count(v), -values.index(v)), default=None)
    odd = {}
    for i, value in value_of.items():
        if value == common:
            continue
        rest = [v for j, v in value_of.items() if j != i]
        alike = rest.count(common)
        others = "the other has" if len(rest) == 1 else "the others have"
        if alike < len(rest):
            others = f"{alike} of the {len(rest)} others have"
        odd[i] = f"{others} {common}"
    return odd


def _pixel_column(img: ImageData):
    """The image's pixels as a (pixels, 1, C) column (lazy for a lazy image)."""
    data, axis = img.data, img.channel_axis
    if axis is None:
        data, axis = data[..., None], -1
    if is_lazy(data):
        import dask.array as da

        moved = da.moveaxis(data, axis, -1)
        return moved.reshape(-1, 1, moved.shape[-1])
    moved = np.moveaxis(np.asarray(data), axis, -1)
    return moved.reshape(-1, 1, moved.shape[-1])


def _label_file(path, out_dir, stem, model, *, fmt, overwrite, wavelength_range=None):
    """Label one input with the shared model and write its outputs (no model of its own)."""
    img = read_image(path, wavelength_range=wavelength_range)
    fmt = output_format(img, fmt)
    outputs = output_paths(out_dir, stem, fmt, with_model=False)
    existing = [p.name for p in outputs if p.exists()]
    if existing and not overwrite:
        raise BatchError(f"{path.name}: would overwrite {', '.join(existing)} (use --overwrite)")
    wavelengths = img.metadata.get("wavelengths")
    res = apply_model(img.data, model, channel_axis=img.channel_axis, wavelengths=wavelengths)
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.partial-", dir=out_dir))
    try:
        staged = [staging / p.name for p in outputs]
        _write_outputs(staged, res, img, stem, fmt, path, wavelengths, False)
        move_in_together(list(zip(staged, outputs, strict=True)), overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = FileReport(path, outputs, img.name, res.n_clusters)
    report.counts = np.asarray(res.counts, dtype=np.int64)
    return report


def _write_joint_table(path: Path, model: ClusterModel, counts: list) -> Path:
    """One row per shared cluster: its colour, then its pixels in each input and in all."""
    with written_whole(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "color", *(f"pixels_{stem}" for stem, _ in counts), "pixels"])
        for j in range(model.n_clusters):
            color = "#{:02x}{:02x}{:02x}".format(*model.colors[j])
            per_file = [int(c[j]) for _, c in counts]
            w.writerow([j + 1, color, *per_file, sum(per_file)])
    return path


def _write_outputs(outputs, res, img, stem, fmt, path, wavelengths, with_model: bool):
    meta = {"source": str(path), "variable": img.name, **res.summary()}
    if wavelengths is not None:
        meta["wavelengths"] = np.asarray(wavelengths)
    if fmt == "png":
        write_labels_png(outputs[0], np.asarray(res.labels), res.colors, metadata=meta)
        write_png(outputs[1], np.asarray(res.recolored), metadata=meta)
    else:
        write = write_mat if fmt == "mat" else write_zarr
        labels_meta = {**meta, "colors": res.colors}
        write(
            outputs[0], [ImageData(f"{stem} clusters", res.labels, "labels", metadata=labels_meta)]
        )
        write(outputs[1], [ImageData(f"{stem} recolored", res.recolored, rgb=True, metadata=meta)])
    write_table(outputs[2], res, wavelengths=wavelengths, rgb=bool(img.rgb))
    if with_model:
        res.model.save(outputs[3])


def write_table(path: Path, res: ClusterResult, *, wavelengths=None, rgb: bool = False) -> Path:
    """The cluster table as CSV: label, pixels, fraction, colour, then each feature's mean
    and standard deviation (columns named by wavelength when known, R, G and B for a colour
    picture, else by band)."""
    n = res.centers.shape[1]
    if wavelengths is not None and len(np.ravel(wavelengths)) == n:
        names = [f"{w:g}" for w in np.asarray(wavelengths).ravel()]
    elif rgb and n == 3:  # an RGBA picture's alpha is transparency, not a feature
        names = ["R", "G", "B"]
    else:
        names = [f"band{i}" for i in range(n)]
    with written_whole(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "label",
                "pixels",
                "fraction",
                "color",
                *(f"mean_{c}" for c in names),
                *(f"std_{c}" for c in names),
            ]
        )
        for i in range(res.n_clusters):
            color = "#{:02x}{:02x}{:02x}".format(*res.colors[i])
            w.writerow(
                [
                    i + 1,
                    int(res.counts[i]),
                    f"{res.fractions[i]:.6f}",
                    color,
                    *map(_fmt, res.centers[i]),
                    *map(_fmt, res.std[i]),
                ]
            )
    return path


def _fmt(value: float) -> str:
    return f"{value:.7g}"


def unique_stems(files: list[Path]) -> list[str]:
    """Output name stems: each input's file stem, with ``_2``, ``_3``... added when an earlier
    input has it (``a.mat``, ``a.png`` -> ``a``, ``a_2``).

    Stems are compared ignoring case, as macOS and Windows compare file names, and an added
    suffix never gives another input's own stem (``a``, ``a``, ``a_2`` -> ``a``, ``a_3``,
    ``a_2``): no two inputs write the same file.

    Examples
    --------
    >>> from napari_spectral_clusters.batch import unique_stems
    >>> from pathlib import Path
    >>> unique_stems([Path("a.mat"), Path("A.png"), Path("b.png")])
    ['a', 'A_2', 'b']
    """
    own = {p.stem.casefold() for p in files}
    used: set[str] = set()
    stems = []
    for p in files:
        stem, n = p.stem, 1
        while stem.casefold() in used or (n > 1 and stem.casefold() in own):
            n += 1
            stem = f"{p.stem}_{n}"
        used.add(stem.casefold())
        stems.append(stem)
    return stems


def _channels(n: int) -> str:
    return "1 channel (band)" if n == 1 else f"{n} channels (bands)"


def describe_error(exc: Exception) -> str:
    """A one-line reason for a failed input: our errors as they are (a read error names the
    file; the report line does for the others); an unexpected one with its type."""
    if isinstance(exc, ReadError | BatchError | ClusteringError | PreprocessingError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
