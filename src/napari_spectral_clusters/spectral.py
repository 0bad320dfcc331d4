"""Spectral preprocessing: an ordered pipeline of per-pixel steps along the band axis, applied
to every spectrum before it is clustered (pure numpy/scipy; no napari).

A pipeline is written as steps joined by ``|``, the same in Python, the CLI and the widget::

    range(450, 900) | savgol(11, 2, deriv=1) | baseline(asls, lam=1e5) | snv | pca

Steps (each per spectrum, so a dask block of whole spectra is preprocessed on its own):

``range(lo, hi)``
    Keep the bands from ``lo`` to ``hi`` nm (``index=True``: band numbers, from 0).
``drop(lo, hi, ...)``
    Leave out bad bands: pairs of limits, e.g. water absorption ``drop(1340, 1450, 1800, 1950)``.
``savgol(window, order, deriv=0)``
    Savitzky-Golay smoothing or derivative (:func:`scipy.signal.savgol_filter`; the band
    spacing is the wavelength step when the wavelengths are even).
``baseline(method, **params)``
    Subtract a baseline fitted by :class:`pybaselines.Baseline` (``asls``, ``arpls``,
    ``airpls``, ``modpoly``, ``imodpoly``, ``snip`` ...), against the wavelengths when known.
``despike(threshold=3.5, width=2)``
    Cosmic-ray spikes (Whitaker & Hayes 2018): where a first difference has a modified
    z-score above ``threshold``, the points at its ends are replaced by the mean of the clean
    points within ``width`` bands.
``snv``, ``vector`` (L2), ``area`` (L1), ``max``, ``minmax``
    Normalisations of each spectrum.

A last step ``none``, ``standardize``, ``unit`` or ``pca`` names the space the engine clusters
in (today's four choices, after the other steps); alone, it is exactly today's option.

Example
-------
>>> import numpy as np
>>> from napari_spectral_clusters.spectral import Pipeline
>>> p = Pipeline.parse("range(450, 900) | savgol(5, 2) | snv")
>>> bound = p.bind(100, np.linspace(400, 1000, 100))
>>> bound.n_out, p.spec
(74, 'range(450, 900) | savgol(5, 2) | snv')
>>> bound(np.ones((3, 100))).shape
(3, 74)
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SPACES",
    "STEPS",
    "BoundPipeline",
    "Pipeline",
    "PreprocessingError",
    "Step",
    "import_ahead",
]

#: The spaces the engine clusters in, after the spectral steps.
SPACES = ("none", "standardize", "unit", "pca")
#: Spectral steps and what they take (positional, keyword defaults).
STEPS = {
    "range": ("lo, hi", {"index": False}),
    "drop": ("lo, hi, ...", {"index": False}),
    "savgol": ("window, order", {"deriv": 0}),
    "baseline": ("method", {}),
    "despike": ("", {"threshold": 3.5, "width": 2}),
    "snv": ("", {}),
    "vector": ("", {}),
    "area": ("", {}),
    "max": ("", {}),
    "minmax": ("", {}),
}
#: Longest pipeline text read (a damaged model's text is refused, not parsed for ever).
MAX_TEXT = 10_000
#: Widest despike neighbourhood, in bands.
MAX_WIDTH = 1000
#: pybaselines methods a ``baseline`` step may use (fitted on one spectrum at a time).
BASELINES = ("asls", "arpls", "airpls", "iarpls", "drpls", "modpoly", "imodpoly", "poly", "snip")


class PreprocessingError(ValueError):
    """A pipeline cannot be parsed or does not fit the data; the message names the step."""


#: Libraries steps need that are slow to import, by the word that names such a step.
SLOW_IMPORTS = {"baseline": "pybaselines"}  # pybaselines (scipy.signal, stats): 2-3 s
_importing: set[str] = set()  # started (or failed: not tried again at every keystroke)
_importing_lock = threading.Lock()


def import_ahead(text: str) -> list[str]:
    """Start importing, in a background thread, the slow libraries the steps ``text`` names
    (while a user is still typing them): binding a ``baseline`` step imports pybaselines, and
    doing that on the viewer's thread froze it for 2 s when the steps were checked. Returns
    the modules started now. A failed import is left for the step to report when bound."""
    started = []
    for word, module in SLOW_IMPORTS.items():
        with _importing_lock:
            if word not in str(text) or module in sys.modules or module in _importing:
                continue
            _importing.add(module)
        threading.Thread(
            target=_import_quietly, args=(module,), name=f"import {module}", daemon=True
        ).start()
        started.append(module)
    return started


def _import_quietly(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception:  # any failure is said when a step binds it (_baseline)
        return  # kept in _importing: not tried again in the background


@dataclass(frozen=True)
class Step:
    """One step: its name, positional arguments and keyword arguments (plain values)."""

    name: str
    args: tuple = ()
    kwargs: tuple = ()  # (key, value) pairs, sorted: hashable and comparable

    @property
    def spec(self) -> str:
        parts = [_show(a) for a in self.args] + [f"{k}={_show(v)}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})" if parts else self.name

    def option(self, key: str):
        return dict(self.kwargs).get(key, STEPS[self.name][1].get(key))


def _show(value) -> str:
    """A value as the pipeline's text writes it: words bare, other text quoted."""
    if isinstance(value, str):
        return value if value.isidentifier() else repr(value)
    return repr(value)


@dataclass(frozen=True)
class Pipeline:
    """Spectral steps, then the space clustered in (one of :data:`SPACES`)."""

    steps: tuple[Step, ...] = ()
    space: str = "none"

    @classmethod
    def from_file(cls, path) -> Pipeline:
        """The pipeline in a JSON file: a list of steps, as :meth:`to_json` writes them."""
        try:
            steps = json.loads(Path(path).read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise PreprocessingError(f"cannot read the pipeline file {path}: {exc}") from None
        return cls.parse(steps)

    @classmethod
    def parse(cls, spec) -> Pipeline:
        """A pipeline from its text (``"savgol(11, 2) | snv"``), a list of steps
        (``[{"step": "savgol", "args": [11, 2]}]``, as in a JSON file: :meth:`from_file`; or
        ``["savgol(11, 2)", "snv"]``), or a pipeline (returned as it is). Nothing is read
        from disk, nothing evaluated.

        Raises
        ------
        PreprocessingError
            Unknown steps, arguments that are not plain values, a space not last, or a |
            with no step on one side.
        """
        if isinstance(spec, Pipeline):
            return spec
        if isinstance(spec, str) and len(spec) > MAX_TEXT:
            raise PreprocessingError(f"a pipeline of {len(spec):,} characters is too long")
        if isinstance(spec, list):  # of steps as the JSON files hold them, or as text
            steps = [
                _step_from_text(item) if isinstance(item, str) else _step_from_json(item)
                for item in spec
            ]
        elif isinstance(spec, str):
            parts = spec.split("|") if spec.strip() else []
            if any(not part.strip() for part in parts):  # "a || b", "a |": a step left out?
                raise PreprocessingError(
                    f"{spec.strip()!r} has a | with no step on one side: steps are written "
                    "one after the other, each between two |, as in 'savgol(11, 2) | snv'"
                )
            steps = [_step_from_text(part) for part in parts]
        else:
            raise PreprocessingError(f"a pipeline is text or a list of steps, not {spec!r}")
        space = "none"
        if steps and steps[-1].name in SPACES:
            last = steps.pop()
            if last.args or last.kwargs:
                raise PreprocessingError(f"{last.name} takes no arguments")
            space = last.name
        for step in steps:
            if step.name in SPACES:
                raise PreprocessingError(
                    f"{step.name} is where the engine clusters: it can only be the last step"
                )
            _check_arguments(step)
        return cls(tuple(steps), space)

    @property
    def spec(self) -> str:
        parts = [step.spec for step in self.steps]
        if self.space != "none" or not parts:
            parts.append(self.space)
        return " | ".join(parts)

    def to_json(self) -> list:
        items = [
            {"step": s.name, "args": list(s.args), "kwargs": dict(s.kwargs)} for s in self.steps
        ]
        return [*items, {"step": self.space, "args": [], "kwargs": {}}]

    def bind(self, n_bands: int, wavelengths=None, *, saved: bool = False) -> BoundPipeline:
        """The steps made ready for spectra of ``n_bands`` bands at ``wavelengths`` (nm, or
        None): band selections resolved, windows and ranges checked. ``saved``: steps read
        from a saved model, bound as they were when it was saved (band numbers past the last
        band were kept then, clipped to the bands).

        Raises
        ------
        PreprocessingError
            A step does not fit these spectra (the message names it and says why).
        """
        wl = None if wavelengths is None else np.asarray(wavelengths, np.float64).ravel()
        if wl is not None and len(wl) != n_bands:
            wl = None
        bands = np.arange(n_bands)  # the input bands still present after each step
        funcs, needs_wl = [], False
        for step in self.steps:
            current = None if wl is None else wl[bands]
            if step.name in ("range", "drop"):
                keep, by_wl = _selection(step, bands, current, None if saved else n_bands)
                needs_wl |= by_wl
                funcs.append(_Select(keep))
                bands = bands[keep]
            else:
                if step.name == "savgol" and len(bands) > 1 and np.any(np.diff(bands) != 1):
                    raise PreprocessingError(
                        f"{step.spec} would reach across bands left out by range/drop: put "
                        "it before them"
                    )
                funcs.append(_make(step, len(bands), current))
            if len(bands) == 0:
                raise PreprocessingError(f"{step.spec} leaves no band")
        out_wl = None if wl is None else wl[bands]
        return BoundPipeline(self, n_bands, tuple(funcs), bands, out_wl, needs_wl)


def _step_from_text(text: str) -> Step:
    text = text.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise PreprocessingError(f"cannot read the step {text[:80]!r}") from None
    if isinstance(node, ast.Name):
        return Step(node.id)
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise PreprocessingError(f"cannot read the step {text!r}: write name(arguments)")
    if any(k.arg is None for k in node.keywords):
        raise PreprocessingError(f"{text}: write options as name=value")
    names = [k.arg for k in node.keywords]
    if len(set(names)) != len(names):
        raise PreprocessingError(f"{text}: an option is given twice")
    args = tuple(_value(a, text) for a in node.args)
    kwargs = tuple(sorted(((k.arg, _value(k.value, text)) for k in node.keywords), key=_key))
    return Step(node.func.id, args, kwargs)


def _key(item):
    return item[0]


def _value(node, text):
    """A plain value of the step's text: a number, a word, True/False (never evaluated)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand, text)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Name):
        return node.id  # a bare word: asls, True and False come as constants
    raise PreprocessingError(f"{text}: arguments are numbers or words, not {ast.unparse(node)}")


def _step_from_json(item) -> Step:
    if not isinstance(item, dict) or not isinstance(item.get("step"), str):
        raise PreprocessingError(f'a step is {{"step": name, "args": [...]}}, not {item!r}')
    args, kwargs = item.get("args", []), item.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise PreprocessingError(f"{item['step']}: args are a list and kwargs a mapping")
    for value in [*args, *kwargs.values()]:
        if not isinstance(value, int | float | str | bool):
            raise PreprocessingError(f"{item['step']}: arguments are plain values, not {value!r}")
    return Step(item["step"], tuple(args), tuple(sorted(kwargs.items(), key=_key)))


def _check_arguments(step: Step) -> None:
    if step.name not in STEPS:
        known = ", ".join([*STEPS, *SPACES])
        raise PreprocessingError(f"unknown step {step.name!r}; the steps are {known}")
    allowed = set(STEPS[step.name][1])
    extra = {k for k, _ in step.kwargs} - allowed
    if step.name == "baseline":
        extra = set()  # the method's own parameters, checked when bound
    if extra:
        raise PreprocessingError(f"{step.spec}: unknown option {', '.join(sorted(extra))}")
    n = len(step.args)
    expected = {"range": (2, 2), "savgol": (2, 2), "baseline": (1, 1)}.get(step.name)
    if step.name == "drop":
        if n == 0 or n % 2:
            raise PreprocessingError(f"{step.spec}: give pairs of limits, e.g. drop(1340, 1450)")
    elif expected is None and n:
        raise PreprocessingError(f"{step.spec}: {step.name} takes no positional arguments")
    elif expected is not None and not expected[0] <= n <= expected[1]:
        raise PreprocessingError(f"{step.spec}: write {step.name}({STEPS[step.name][0]})")
    numbers = step.args if step.name != "baseline" else ()
    for a in numbers:
        if not isinstance(a, int | float) or isinstance(a, bool) or not _finite(a):
            raise PreprocessingError(f"{step.spec}: {a!r} is not a number")
    if "index" in dict(step.kwargs) and not isinstance(step.option("index"), bool):
        raise PreprocessingError(f"{step.spec}: index is True or False")
    if step.name == "baseline":
        if step.args[0] not in BASELINES:  # known before any data: said as it is written
            raise PreprocessingError(f"{step.spec}: the methods are {', '.join(BASELINES)}")
        for key, value in step.kwargs:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (isinstance(value, bool) or (number and _finite(value))):
                raise PreprocessingError(f"{step.spec}: {key} is a finite number or True/False")
    if step.name == "savgol":  # what needs no data is checked as soon as it is written
        window, order = step.args
        deriv = step.option("deriv")
        if isinstance(deriv, bool):
            raise PreprocessingError(f"{step.spec}: deriv is 0, 1, 2...")
        if int(window) != window or window < 1 or window % 2 == 0:
            raise PreprocessingError(
                f"{step.spec}: the window must be an odd number of bands, not {window}"
            )
        if int(order) != order or not 0 <= order < window:
            raise PreprocessingError(f"{step.spec}: the order is 0 to window - 1, not {order}")
        if not isinstance(deriv, int | float) or int(deriv) != deriv or not 0 <= deriv <= order:
            raise PreprocessingError(f"{step.spec}: deriv is 0 to the order, not {deriv}")
    if step.name == "despike":
        threshold, width = step.option("threshold"), step.option("width")
        numeric = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (threshold, width)
        )
        bad = not numeric or not _finite(threshold) or not threshold > 0
        if bad or not 1 <= width <= MAX_WIDTH or int(width) != width:
            raise PreprocessingError(
                f"{step.spec}: a finite threshold > 0 and a whole width 1 to {MAX_WIDTH}, please"
            )


def _finite(value) -> bool:
    """A finite number, however large a whole number was typed (numpy cannot take them)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _selection(step: Step, bands: np.ndarray, wl, n_bands) -> tuple[np.ndarray, bool]:
    """Which of the present bands a range/drop step keeps, and whether it needed wavelengths.

    A range of wavelengths may reach past the cube's (400-2600 nm keeps all of 401-2500);
    band numbers past the first or last band are refused (``n_bands``; None: clipped, as a
    model saved before was): they are a count gone wrong, and a range beyond band 155 of 156
    that kept band 155 alone silently left a later step one band to work on."""
    by_index = bool(step.option("index"))
    if not by_index and wl is None:
        raise PreprocessingError(
            f"{step.spec} selects bands by wavelength, and these spectra have none: give the "
            "wavelengths (the widget's wavelengths field, --wavelengths on the command line), "
            "or select by band number with index=True"
        )
    where = bands.astype(np.float64) if by_index else wl
    limits = np.asarray(step.args, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(bands), dtype=bool)
    for lo, hi in limits:
        lo, hi = min(lo, hi), max(lo, hi)
        if by_index and n_bands is not None and (lo < 0 or hi > n_bands - 1):
            raise PreprocessingError(
                f"{step.spec}: band numbers go from 0 to {n_bands - 1}, not {lo:g}-{hi:g}"
            )
        if hi < where.min() or lo > where.max():
            unit = "band numbers" if by_index else "wavelengths"
            raise PreprocessingError(
                f"{step.spec}: {lo:g}-{hi:g} is outside the {unit} "
                f"({where.min():g}-{where.max():g})"
            )
        inside |= (where >= lo) & (where <= hi)
    return (inside if step.name == "range" else ~inside), not by_index


@dataclass(frozen=True)
class BoundPipeline:
    """A pipeline ready for spectra of ``n_in`` bands: ``bound(x)`` maps (n, n_in) spectra to
    (n, n_out) float32. ``bands`` are the input bands kept; ``wavelengths`` theirs (None when
    unknown; after a derivative they still name the band, the values are slopes)."""

    pipeline: Pipeline
    n_in: int
    funcs: tuple
    bands: np.ndarray
    wavelengths: np.ndarray | None
    needs_wavelengths: bool

    @property
    def n_out(self) -> int:
        return len(self.bands)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise PreprocessingError(f"spectra of {self.n_in} bands expected, not {x.shape}")
        if not len(x):  # a chunk with no pixel inside a mask: scipy's filters refuse 0 rows
            return np.zeros((0, self.n_out), dtype=np.float32)
        for func in self.funcs:
            x = func(x)
        return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class _Select:
    keep: np.ndarray

    def __call__(self, x):
        return x[:, self.keep]


def _make(step: Step, n: int, wl):
    name = step.name
    if name == "savgol":
        return _savgol(step, n, wl)
    if name == "baseline":
        return _baseline(step, n, wl)
    if name == "despike":
        threshold, width = float(step.option("threshold")), int(step.option("width"))
        if n < 3:
            raise PreprocessingError(f"{step.spec} needs at least 3 bands, not {n}")
        return lambda x: despike(x, threshold, width)
    if n < 2:  # each spectrum scaled by itself: one band leaves every pixel alike
        raise PreprocessingError(
            f"{step.spec} needs at least 2 bands, not {n}: it would make every pixel alike"
        )
    return NORMALISATIONS[name]


def _savgol(step: Step, n: int, wl):
    from scipy.signal import savgol_filter

    window, order = step.args  # checked when parsed
    deriv = step.option("deriv")
    if window > n:
        raise PreprocessingError(f"{step.spec}: a window of {window} bands is longer than {n}")
    delta = 1.0
    if wl is not None and n > 1:
        steps = np.diff(wl)
        if np.allclose(steps, steps[0], rtol=1e-3) and steps[0] != 0:
            delta = float(steps[0])  # a derivative per nm
    window, order, deriv = int(window), int(order), int(deriv)
    return lambda x: savgol_filter(x, window, order, deriv=deriv, delta=delta, axis=1).astype(
        np.float32, copy=False
    )


def _baseline(step: Step, n: int, wl):
    try:
        from pybaselines import Baseline
    except ImportError:  # pragma: no cover - a dependency
        raise PreprocessingError(f"{step.spec} needs the pybaselines package") from None
    method = step.args[0]  # one of BASELINES (_check_arguments)
    fitter = Baseline(x_data=wl if wl is not None else np.arange(n, dtype=float))
    fit = getattr(fitter, method)
    params = dict(step.kwargs)
    if n < 3:
        raise PreprocessingError(f"{step.spec} needs at least 3 bands, not {n}")
    try:  # wrong parameters are found now, not halfway through a cube
        trial = fit(np.linspace(0, 1, n) ** 2, **params)[0]
    except Exception as exc:  # a third-party library's errors: any kind, all named here
        raise PreprocessingError(f"{step.spec}: {type(exc).__name__}: {exc}") from None
    if not np.isfinite(trial).all():
        raise PreprocessingError(f"{step.spec}: these parameters give no finite baseline")

    def subtract(x):
        out = np.empty_like(x)
        # pybaselines fits one spectrum at a time; a loop over the pixels (the library's
        # own solvers, reused through one Baseline object)
        for i, spectrum in enumerate(x.astype(np.float64)):
            if np.isfinite(spectrum).all():
                out[i] = spectrum - fit(spectrum, **params)[0]
            else:
                out[i] = np.nan
        return out

    return subtract


def despike(x: np.ndarray, threshold: float = 3.5, width: int = 2) -> np.ndarray:
    """Whitaker-Hayes spike removal, row by row of ``x`` (n, bands): where a first difference
    has a modified z-score (0.6745 (d - median) / MAD) above ``threshold``, the points at both
    its ends are replaced by the mean of the clean points within ``width`` bands."""
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(x, dtype=np.float32)
    d = np.diff(x, axis=1)
    med = np.median(d, axis=1, keepdims=True)
    dev = np.abs(d - med)
    mad = np.median(dev, axis=1, keepdims=True)
    # flat stretches (integer counts) make the MAD 0: then the mean deviation, scaled to the
    # MAD's for a normal distribution, so one spike in a flat spectrum is still found
    mad = np.where(mad > 0, mad, dev.mean(axis=1, keepdims=True) / 1.2533)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.6745 * (d - med) / np.where(mad > 0, mad, np.inf)
    flagged = np.abs(z) > threshold
    if not flagged.any():
        return x
    # both ends of every outlying difference: the spike and the points beside it, which
    # are then the mean of their clean neighbours (a spike's edges never survive)
    spike = np.zeros(x.shape, dtype=bool)
    spike[:, 1:] |= flagged
    spike[:, :-1] |= flagged
    good = (~spike).astype(np.float32)
    size = 2 * width + 1
    total = uniform_filter1d(np.where(spike, 0, x), size, axis=1, mode="nearest") * size
    count = uniform_filter1d(good, size, axis=1, mode="nearest") * size
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = total / count
    return np.where(spike & (count > 0.5), fill, x).astype(np.float32)


def _snv(x):
    x = x.astype(np.float64)  # a flat float32 spectrum keeps a std of exactly 0
    mean = x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    flat = std <= 1e-6 * np.maximum(np.abs(mean), np.finfo(np.float32).tiny)
    return ((x - mean) / np.where(flat, 1, std)).astype(np.float32)


def _divide(x, by):
    return x / np.where(by > 0, by, 1)


NORMALISATIONS = {
    "snv": _snv,
    "vector": lambda x: _divide(x, np.linalg.norm(x, axis=1, keepdims=True)),
    "area": lambda x: _divide(x, np.abs(x).sum(axis=1, keepdims=True)),
    "max": lambda x: _divide(x, np.abs(x).max(axis=1, keepdims=True)),
    "minmax": lambda x: _divide(
        x - x.min(axis=1, keepdims=True), np.ptp(x, axis=1, keepdims=True)
    ),
}
