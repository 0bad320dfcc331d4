"""Which arrays of a file become which napari layers, for every format that holds named
arrays (MATLAB ``.mat``, zarr groups), and how our writers record layers as named arrays.

* A numeric array with 3 or more axes is a cube. Its spectral (band) axis is the axis whose
  length matches a wavelength vector in the file; without one, it is the **first** axis when the
  last two axes have the same length and the first differs, and the **last** axis otherwise
  (MATLAB's rows x cols x bands convention); a format may name cubes it knows to be band-first.
  The cube is returned band axis first.
* A stack of a few abundance maps (at most ``STACK_PLANES`` planes of fractions summing to
  one) with a larger cube's y x x opens as one 2-D image per map: as a cube it would share
  the band slider with the scene and show nothing at most of its positions. Maps are named
  after the file's one list of as many strings (a v5 file's cell of material names), else
  numbered from 1; they open hidden and last, on top of the scene: the scene stays in view,
  and a map shown is drawn over it.
* A band x pixels matrix with the image size in scalars (``lines``/``cols``,
  ``nRow``/``nCol``, ...), as unmixing datasets store cubes, is reshaped to the cube using
  MATLAB's column-major pixel order.
* A 2-D integer-valued array is a labels layer (ground truth) when its name or the file's says
  so (gt, label, class, mask, truth, ...) or when it is integer-typed with a cube's y x x shape;
  logical arrays are labels too. Other 2-D arrays are images.
* Scalars, strings, vectors and spectra matrices (one axis as long as a cube's bands) are not
  layers.
* A layer ``x`` our writers saved comes with ``x_metadata`` (a JSON record of its kind,
  parameters and layer state) and companions ``x_colors``, ``x_centers``...: it reopens as it
  was saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from .._arrays import is_lazy
from ._image_data import ImageData, metadata_from_json, metadata_to_json
from .inputs import eager_bytes

__all__ = [
    "LAZY_BYTES",
    "cube_band_axis",
    "images_from_arrays",
    "layer_variables",
    "lazy_threshold",
]

_WAVELENGTH_NAME = re.compile(r"wave|lambda|^wl|wl$|^bands?$|wavenumber|^nm$|freq", re.I)
_LABELS_NAME = re.compile(r"gt|label|class|mask|truth|seg|roi", re.I)
_ROWS_NAME = re.compile(r"^(lines|n_?rows?|rows|height)$", re.I)
_COLS_NAME = re.compile(r"^(cols|n_?cols?|columns|samples|width)$", re.I)


#: v7.3 variables larger than this many bytes open lazily (dask over the HDF5 dataset);
#: the environment variable SPECTRAL_CLUSTERS_LAZY_BYTES overrides it.
LAZY_BYTES = 512 * 2**20


def _displayable(path: Path, img: ImageData) -> bool:
    """Whether napari can show ``img``: not empty, and (lazy ones) a displayed plane napari
    can read at once — a damaged store declaring an axis of 2**40 would freeze napari."""
    if img.data.size == 0:
        warnings.warn(f"{path.name}: {img.name} is empty; not opened", stacklevel=3)
        return False
    plane_axes = 3 if img.rgb else 2
    plane = int(np.prod(img.data.shape[-plane_axes:], dtype=np.float64)) * img.data.dtype.itemsize
    if is_lazy(img.data) and plane > eager_bytes():
        shape = " x ".join(map(str, img.data.shape[-plane_axes:]))
        warnings.warn(
            f"{path.name}: {img.name} is not opened: one plane of it is {shape} "
            f"({plane / 2**30:.1f} GiB), more than the {eager_bytes() / 2**30:.1f} GiB napari "
            "may read at once",
            stacklevel=3,
        )
        return False
    return True


#: At most this many layers from one file (a file of 20,000 variables is not 20,000 layers).
MAX_LAYERS = 64


def lazy_threshold(lazy_bytes: int | None = None) -> int:
    """``lazy_bytes`` as given, else SPECTRAL_CLUSTERS_LAZY_BYTES, else :data:`LAZY_BYTES`."""
    if lazy_bytes is not None:
        return lazy_bytes
    return int(os.environ.get("SPECTRAL_CLUSTERS_LAZY_BYTES", LAZY_BYTES))


def images_from_arrays(
    path: Path, arrays: dict, strings: dict, *, bands_first=frozenset(), string_lists=None
) -> list[ImageData]:
    """The layers a file's named ``arrays`` (and ``strings``) make, by the rules above;
    ``string_lists``: the file's lists of strings by name (cells of strings), which may name
    a stack's planes.

    Cubes (band axis first, largest last; RGB(A) pictures after them), then 2-D images, then
    labels, then abundance maps split from a stack. ``arrays`` is not modified.
    """
    arrays = dict(arrays)
    saved = _saved_layers(path, arrays, strings)
    images = _images(path, arrays, saved, bands_first, string_lists or {})
    images = [img for img in images if _displayable(path, img)]
    if len(images) > MAX_LAYERS:
        warnings.warn(
            f"{path.name} holds {len(images)} images; opening the first {MAX_LAYERS} "
            "(cubes first)",
            stacklevel=2,
        )
    return images[:MAX_LAYERS]


def cube_band_axis(shape: tuple[int, ...], arrays: dict, *, bands_first: bool = False) -> int:
    """The band axis :func:`images_from_arrays` will give a cube of ``shape``, known before
    the cube is read: from the wavelength vectors among a file's other named ``arrays``, else
    from the shape (``bands_first`` as for :func:`images_from_arrays`).

    Readers cut a lazy cube into blocks of whole spectra with it. Should the layer get its
    bands elsewhere (a layer our writer saved records its own axis), the blocks are only
    slower to cluster, never wrong.
    """
    wavelengths = {n: a for n, a in arrays.items() if _is_wavelength_vector(n, a)}
    axis, wl_name = _spectral_axis(shape, wavelengths)
    return 0 if bands_first and wl_name is None else axis


def _images(
    path: Path, arrays: dict, saved: dict, bands_first=frozenset(), string_lists=None
) -> list[ImageData]:
    """Decide which arrays are cubes, images and labels (rules in the module docstring).

    ``saved`` holds what our own writer recorded about its variables (kind, metadata); they
    are opened as written. Cubes named in ``bands_first`` have their band axis first unless a
    wavelength vector says otherwise.
    """
    wavelengths = {n: a for n, a in arrays.items() if _is_wavelength_vector(n, a)}
    arrays, reshaped = _unflatten_pixel_matrices(arrays)
    bands_first = set(bands_first) | reshaped
    cubes, planes, labels = [], [], []
    as_saved = set()  # ids of the layers our writer saved: named as they were
    for name in [n for n in arrays if n in saved]:
        record = saved[name]
        img = _saved_image(record.get("name", name), arrays.pop(name), record)
        as_saved.add(id(img))
        if img.kind == "labels":
            labels.append(img)
        elif img.channel_axis is not None:
            cubes.append(img)
        else:
            planes.append(img)
    for name, arr in arrays.items():
        if arr.ndim >= 3 and arr.dtype != bool:
            arr = _magnitude(path, name, arr)
            cubes.append(_cube(name, arr, wavelengths, bands_first=name in bands_first))
    # largest last; RGB(A) pictures (a saved result's recoloured image) above every cube,
    # where they show rather than under an opaque scene
    cubes.sort(key=lambda c: (bool(c.rgb), c.data.size))
    stacks = [c for c in cubes if id(c) not in as_saved and _is_stack(c, cubes)]
    maps = [plane for stack in stacks for plane in _planes(stack, string_lists or {})]
    cube_bands = {c.data.shape[0] for c in cubes}  # a stack's too: W (maps x ...) is spectra
    cubes = [c for c in cubes if all(c is not stack for stack in stacks)]
    cube_yx = {c.data.shape[-2:] for c in cubes}
    for name, arr in arrays.items():
        if arr.ndim != 2 or min(arr.shape) < 2 or name in wavelengths:
            continue
        if cube_bands.intersection(arr.shape) and arr.shape not in cube_yx:
            continue  # spectra (e.g. endmembers): one row or column per material
        # a big 2-D array stays lazy: whether it holds labels is decided by its type and name
        # alone, never by computing a file's declared (perhaps huge) array in full
        arr = _magnitude(path, name, arr if is_lazy(arr) else np.asarray(arr))
        if _is_labels(name, path.stem, arr, cube_yx):
            labels.append(_labels(name, arr))
        else:
            planes.append(ImageData(name, arr, axis_labels=("y", "x")))
    return [
        dataclasses.replace(
            img,
            metadata={"source": str(path), "variable": img.name, **img.metadata},
            named_after_variable=id(img) not in as_saved,
        )
        for img in cubes + planes + labels + maps
    ]


#: A file's stack of at most this many abundance maps (fractions summing to one, within
#: ABUNDANCE_TOL, at 99% of the pixels) beside a larger cube of the same size opens as one
#: 2-D image per map.
STACK_PLANES = 16
ABUNDANCE_TOL = 0.01


def _is_stack(img: ImageData, cubes: list[ImageData]) -> bool:
    """Whether ``img`` is a stack of abundance maps beside a larger cube of the same size:
    a few planes of fractions that sum to one at (nearly) every pixel, as unmixing datasets
    store them. Anything else of a few bands (a multispectral cube beside a hyperspectral
    one, an RGB composite) stays a cube, and a lazy one is not read to find out."""
    data, shape = img.data, img.data.shape
    if not (
        len(shape) == 3
        and shape[0] <= STACK_PLANES
        and not is_lazy(data)
        and any(c.data.shape[1:] == shape[1:] and c.data.shape[0] > shape[0] for c in cubes)
    ):
        return False
    values = np.asarray(data, dtype=np.float64)
    if not np.isfinite(values).all() or values.min() < -ABUNDANCE_TOL:
        return False
    return float(np.mean(np.abs(values.sum(axis=0) - 1) <= ABUNDANCE_TOL)) >= 0.99


def _planes(stack: ImageData, string_lists: dict) -> list[ImageData]:
    """One 2-D image per plane of ``stack``, named after the file's list of as many strings
    when it holds exactly one (Samson's cell of material names), else numbered from 1."""
    n = stack.data.shape[0]
    fitting = [lst for lst in string_lists.values() if len(lst) == n]
    names = fitting[0] if len(fitting) == 1 else None
    suffixes = [f"({name})" for name in names] if names else [str(i + 1) for i in range(n)]
    return [
        ImageData(
            f"{stack.name} {suffix}",
            stack.data[i],
            axis_labels=("y", "x"),
            metadata={"variable": stack.name, "plane": i},
            layer_state={"visible": False},  # the scene stays in view; each map a click away
        )
        for i, suffix in enumerate(suffixes)
    ]


#: Companion variables our writer stores beside a layer ``x``: ``x_colors``, ``x_centers``...
_COMPANIONS = ("colors", "centers", "std", "counts", "wavelengths")


def _saved_layers(path: Path, arrays: dict, strings: dict) -> dict:
    """What our writer recorded: ``x_metadata`` JSON and companion arrays, by layer ``x``.

    The companions are taken out of ``arrays`` so they do not open as layers of their own.
    """
    saved = {}
    for key, text in strings.items():
        base = key.removesuffix("_metadata")
        if base == key or base not in arrays:
            continue
        try:
            record = json.loads(text)
            record["metadata"] = metadata_from_json(json.dumps(record.get("metadata", {})))
        except (ValueError, AttributeError):
            continue  # someone else's string: the variable opens by the usual rules
        for suffix in _COMPANIONS:
            if f"{base}_{suffix}" in arrays:
                value = arrays.pop(f"{base}_{suffix}")
                if is_lazy(value):  # a few numbers per cluster or band: never this big
                    warnings.warn(
                        f"{path.name}: {base}_{suffix} is far too large for what it holds; "
                        "not used",
                        stacklevel=3,
                    )
                    continue
                value = np.asarray(value)
                if suffix in ("wavelengths", "counts"):
                    value = value.ravel()
                record["metadata"][suffix] = value
        saved[base] = record
    return saved


def _saved_image(name: str, arr: np.ndarray, record: dict) -> ImageData:
    img = _saved_array(name, arr, record)
    state = record.get("layer_state", {})
    return dataclasses.replace(img, layer_state=state if isinstance(state, dict) else {})


def _saved_array(name: str, arr: np.ndarray, record: dict) -> ImageData:
    meta = record.get("metadata", {})
    if record.get("layer") == "labels" and not _whole_numbers(arr):
        warnings.warn(
            f"{name} was saved as labels but holds values that are not labels; "
            "opening it as an image",
            stacklevel=4,
        )
    elif record.get("layer") == "labels":
        img = _labels(name, arr)
        return ImageData(name, img.data, kind="labels", axis_labels=img.axis_labels, metadata=meta)
    if record.get("rgb"):
        return ImageData(
            name,
            arr,
            rgb=True,
            channel_axis=arr.ndim - 1,
            axis_labels=("y", "x", "channel"),
            metadata=meta,
        )
    if arr.ndim >= 3 and "channel_axis" in record and record["channel_axis"] is None:
        labels = (*(f"axis{i}" for i in range(arr.ndim - 2)), "y", "x")
        return ImageData(name, arr, axis_labels=labels, metadata=meta)  # not a cube
    if arr.ndim >= 3:  # written as MATLAB stores cubes: rows x cols x bands
        axis = record.get("channel_axis", 0)  # files written before it was recorded: first
        axis = axis if isinstance(axis, int) and -arr.ndim <= axis < arr.ndim else 0
        data = np.moveaxis(arr, -1, axis)
        axis %= data.ndim
        labels = list(_cube_axis_labels(data.ndim))
        labels.insert(axis, labels.pop(0))
        return ImageData(
            name,
            data,
            channel_axis=axis,
            axis_labels=tuple(labels),
            metadata={**meta, "channel_axis": axis},
        )
    return ImageData(name, arr, axis_labels=("y", "x"), metadata=meta)


def _whole_numbers(arr) -> bool:
    """Whether ``arr`` can be a labels layer: booleans, or whole numbers >= 0 (lazy: unsigned)."""
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.unsignedinteger):
        return True
    if is_lazy(arr) or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        return False
    arr = np.asarray(arr)
    return bool(np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(arr == np.round(arr)))


def _magnitude(path: Path, name: str, arr):
    if not np.iscomplexobj(arr):
        return arr
    warnings.warn(f"{path.name}: {name} is complex; opening its magnitude", stacklevel=3)
    return abs(arr)


def _is_wavelength_vector(name: str, arr: np.ndarray) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return (
        arr.ndim <= 2
        and arr.size > 1
        and arr.size == max(arr.shape)
        and np.issubdtype(arr.dtype, np.number)
        and not np.iscomplexobj(arr)
        and bool(_WAVELENGTH_NAME.search(leaf))
    )


def _wavelength_unit(name: str, values: np.ndarray) -> str | None:
    """Unit from the name (wavenumbers) or the range (wavelengths in nm or micrometres)."""
    if "wavenumber" in name.lower():
        return "cm⁻¹"
    lo, hi = float(np.min(values)), float(np.max(values))
    if 200 <= lo and hi <= 20_000:
        return "nm"
    if 0.2 <= lo and hi <= 20:
        return "µm"
    return None


def _scalar(arrays: dict, pattern: re.Pattern) -> int | None:
    """A positive whole-number size variable (``lines``, ``cols``...), else None."""
    for name, arr in arrays.items():
        if arr.size == 1 and pattern.match(name.rsplit(".", 1)[-1]):
            value = np.asarray(arr).ravel()[0]
            real = np.issubdtype(np.asarray(value).dtype, np.number) and not np.iscomplexobj(value)
            if real and np.isfinite(value):
                if value >= 1 and float(value) == int(value):
                    return int(value)
    return None


def _unflatten_pixel_matrices(arrays: dict) -> tuple[dict, set]:
    """Reshape band x pixels matrices to (bands, rows, cols) using size scalars in the file.

    Returns the arrays and the names of those reshaped (their band axis is the first).
    """
    rows, cols = _scalar(arrays, _ROWS_NAME), _scalar(arrays, _COLS_NAME)
    if not rows or not cols:
        return arrays, set()
    out, reshaped = {}, set()
    for name, arr in arrays.items():
        if arr.ndim == 2 and rows * cols in arr.shape and min(arr.shape) > 1:
            bands_first = arr if arr.shape[1] == rows * cols else arr.T
            # MATLAB numbers pixels down the columns: pixel p is at (p % rows, p // rows).
            arr = bands_first.reshape(-1, cols, rows).transpose(0, 2, 1)
            reshaped.add(name)
        out[name] = arr
    return out, reshaped


def _cube(name: str, arr: np.ndarray, wavelengths: dict, *, bands_first: bool) -> ImageData:
    axis, wl_name = _spectral_axis(arr.shape, wavelengths)
    if bands_first and wl_name is None:
        axis = 0
    data = np.moveaxis(arr, axis, 0)
    metadata: dict = {"channel_axis": 0}
    if wl_name is not None:
        wl = np.asarray(wavelengths[wl_name], dtype=np.float64).ravel()
        metadata.update(wavelengths=wl, wavelength_variable=wl_name)
        unit = _wavelength_unit(wl_name, wl)
        if unit:
            metadata["wavelength_unit"] = unit
    return ImageData(
        name, data, channel_axis=0, axis_labels=_cube_axis_labels(data.ndim), metadata=metadata
    )


def _cube_axis_labels(ndim: int) -> tuple[str, ...]:
    """Axis names of a band-first cube: band, then (..., z,) y, x."""
    n_spatial = ndim - 1
    spatial = (*(f"axis{i}" for i in range(n_spatial - 3)), "z", "y", "x")[-n_spatial:]
    return ("band", *spatial)


def _spectral_axis(shape: tuple[int, ...], wavelengths: dict) -> tuple[int, str | None]:
    for wl_name, wl in wavelengths.items():
        matches = [i for i, n in enumerate(shape) if n == wl.size]
        if len(matches) == 1:
            return matches[0], wl_name
    if shape[-1] == shape[-2] != shape[0]:
        return 0, None
    return len(shape) - 1, None


def _is_labels(name: str, stem: str, arr: np.ndarray, cube_yx: set) -> bool:
    if arr.dtype == bool:
        return True
    if is_lazy(arr):
        integral = np.issubdtype(arr.dtype, np.unsignedinteger)
    else:
        integral = np.issubdtype(arr.dtype, np.integer) or bool(
            np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
        )
        integral = integral and arr.size > 0 and np.min(arr) >= 0
    if not integral:
        return False
    named = bool(_LABELS_NAME.search(name.rsplit(".", 1)[-1]) or _LABELS_NAME.search(stem))
    return named or (np.issubdtype(arr.dtype, np.integer) and arr.shape in cube_yx)


def _labels(name: str, arr: np.ndarray) -> ImageData:
    if arr.dtype == bool:  # no need to look at the values (a lazy mask stays lazy)
        return ImageData(name, arr.astype(np.uint8), kind="labels", axis_labels=("y", "x"))
    if not np.issubdtype(arr.dtype, np.integer):
        top = int(np.max(arr)) if arr.size else 0
        arr = arr.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
    return ImageData(name, arr, kind="labels", axis_labels=("y", "x"))


def layer_variables(images: list[ImageData]) -> dict:
    """Layers as named arrays and strings, as :func:`write_mat` stores them (dask stays lazy).

    A layer ``x`` gives ``x`` (cubes rows x cols x bands), its companions and ``x_metadata``.
    """
    variables: dict = {}
    for img in images:
        var = _matlab_name(img.name, variables)
        data = img.data if is_lazy(img.data) else np.asarray(img.data)
        if data.dtype == np.float16:
            data = data.astype(np.float32)
        if img.kind == "image" and not img.rgb and img.channel_axis is not None:
            data = np.moveaxis(data, img.channel_axis, -1)
        variables[var] = data if is_lazy(data) else np.ascontiguousarray(data)
        meta = dict(img.metadata)
        for suffix in _COMPANIONS:
            if suffix in meta and (suffix == "wavelengths" or img.kind == "labels"):
                variables[f"{var}_{suffix}"] = np.asarray(meta.pop(suffix))
        meta.pop("channel_axis", None)
        record = {
            "layer": img.kind,
            "rgb": bool(img.rgb),
            # where the band axis was (stored last, as MATLAB keeps cubes), so the layer and
            # its per-axis scale/translate/units reopen in its own axis order
            "channel_axis": None if img.rgb or img.kind != "image" else img.channel_axis,
            "name": img.name,
            "metadata": meta,
            "layer_state": img.layer_state,
        }
        variables[f"{var}_metadata"] = metadata_to_json(record)
    return variables


def _matlab_name(name: str, taken: dict) -> str:
    """A valid, unused MATLAB variable name made from a layer name."""
    var = re.sub(r"\W+", "_", name).strip("_") or "layer"
    if not var[0].isalpha():
        var = f"x{var}"
    var = var[:50]
    unique, n = var, 2
    while unique in taken:
        unique, n = f"{var}_{n}", n + 1
    return unique
