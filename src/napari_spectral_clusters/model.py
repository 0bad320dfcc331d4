"""A fitted clustering as plain data: how pixels become features, and the cluster centres.

Saved as ``.npz`` of plain arrays plus a JSON string, loaded with ``allow_pickle=False``:
opening a model file someone sent you cannot run code, and a damaged or hand-edited file
gives a :class:`ModelError` that says what is wrong.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io.files import written_whole
from .spectral import BoundPipeline, Pipeline, PreprocessingError

__all__ = ["ClusterModel", "Features", "ModelError", "principal_axes"]

FORMAT = "napari-spectral-clusters model 1"


class ModelError(ValueError):
    """A model file cannot be used: not a model, damaged, or for other data."""


@dataclass
class Features:
    """Maps input pixels to the space that is clustered: spectral steps (a bound
    :class:`~.spectral.Pipeline`), then offset, scale, unit length, PCA.

    ``offset`` is in the input's units (raw sums, and so centres in the input's units, are
    taken around it); with spectral ``steps``, ``steps_offset`` centres their output.
    """

    offset: np.ndarray
    scale: np.ndarray | None = None
    unit: bool = False
    components: np.ndarray | None = None
    steps: BoundPipeline | None = None
    steps_offset: np.ndarray | None = None

    @classmethod
    def fit(cls, sample: np.ndarray, weights: np.ndarray, params: dict, steps=None) -> Features:
        kind = params["preprocessing"]
        if steps is not None:  # the kinds below, on the spectra as the steps leave them
            mean = weighted_mean(sample, weights)
            offset = np.zeros_like(mean) if kind == "unit" else mean
            fitted = cls._fit_kind(kind, steps(sample), weights, params)
            return cls(offset, fitted.scale, fitted.unit, fitted.components, steps, fitted.offset)
        return cls._fit_kind(kind, sample, weights, params)

    @classmethod
    def _fit_kind(cls, kind: str, sample, weights, params) -> Features:
        mean = weighted_mean(sample, weights)
        if kind == "unit":
            return cls(offset=np.zeros_like(mean), unit=True)
        if kind == "standardize":
            var = weighted_mean((sample - mean) ** 2, weights)
            return cls(offset=mean, scale=1 / np.sqrt(np.where(var > 0, var, 1.0)))
        if kind == "pca":
            comps = principal_axes(sample - mean, weights, params["n_components"])
            return cls(offset=mean, components=comps)
        # Centring on the sample mean costs nothing and keeps float32 distances precise when
        # all pixels share a large offset (e.g. uint16 counts around 30000 differing by tens).
        return cls(offset=mean)

    @property
    def identity(self) -> bool:
        """Features are the input minus the offset: centres and spreads need no raw sums."""
        plain = self.steps is None
        return plain and not self.unit and self.scale is None and self.components is None

    def describe(self) -> str:
        """What maps pixels to features, in words ("the spectral steps and PCA")."""
        parts = ["the spectral steps"] if self.steps is not None else []
        if self.unit:
            parts.append("unit-length scaling")
        if self.scale is not None:
            parts.append("standardising")
        if self.components is not None:
            parts.append("PCA")
        return " and ".join(parts) if parts else "centring in float32"

    def convert(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The features of the (n, C) pixels ``x`` and, when they are not just the input
        minus the offset, that too (float32): what a pass sums up for the input's spreads."""
        raw = None if self.identity else x - self.offset.astype(np.float32)
        return self(x), raw

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 features of the (n, C) pixels ``x``."""
        if self.steps is not None:
            x = self.steps(x) - self.steps_offset.astype(np.float32)
        else:
            x = np.asarray(x, dtype=np.float32) - self.offset.astype(np.float32)
        if self.unit:
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            x /= np.where(norm > 0, norm, 1)
        if self.scale is not None:
            x *= self.scale.astype(np.float32)
        if self.components is not None:
            x = x @ self.components.T.astype(np.float32)
        return x


def weighted_mean(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the rows of ``x``, in float64.

    A matrix-vector product: np.average's broadcast multiply costs 6x more on a sample. A
    float32 sample is summed in float32 (no float64 copy): the mean only centres the data.
    """
    w = np.asarray(weights, dtype=np.float32 if x.dtype == np.float32 else np.float64)
    return (w @ x).astype(np.float64) / w.astype(np.float64).sum()


def principal_axes(
    centred: np.ndarray, weights: np.ndarray, n: int | None, *, at_least: int = 1
) -> np.ndarray:
    """Leading principal axes (rows) of weighted, centred samples: ``n``, or (None) as many
    as hold 99.9% of the variance, up to 32, and at least ``at_least``.

    From the eigenvectors of the C x C covariance: one matrix product, cheaper than an SVD of
    the samples when there are many more samples than features.
    """
    centred = np.asarray(centred)  # float32 samples give a float32 product: fast enough here
    w = np.asarray(weights, dtype=np.float64)
    if len(centred) < centred.shape[1]:
        # fewer samples than features (a few pixels of 100,000 bands): the SVD of the
        # samples, not a C x C covariance the pixel count does not justify
        rows = centred.astype(np.float64) * np.sqrt(w / w.sum())[:, None]
        _, sing, vecs = np.linalg.svd(rows, full_matrices=False)
        var = sing**2
    else:
        if w.min() == w.max():  # equal weights (pixels, not distinct colours): no weighted copy
            cov = (centred.T @ centred) / len(centred)
        else:
            cov = (centred * (w / w.sum()).astype(centred.dtype)[:, None]).T @ centred
        var, vecs = np.linalg.eigh(cov.astype(np.float64))
        var, vecs = np.maximum(var[::-1], 0), vecs[:, ::-1].T
    if n is None:
        share = np.cumsum(var) / max(np.sum(var), np.finfo(float).tiny)
        n = max(min(int(np.searchsorted(share, 0.999)) + 1, 32), at_least)
    return vecs[: max(1, min(n, len(vecs)))]


@dataclass(frozen=True)
class ClusterModel:
    """A fitted clustering that can label other images the same way.

    Attributes
    ----------
    features : Features
        The preprocessing that maps input pixels to the clustered space.
    centers : (k, F) ndarray of float32
        Cluster centres in that space; row ``i`` is label ``i + 1``.
    colors : (k, 3) ndarray of uint8
        Display colour of each cluster.
    params : dict
        The parameters of the fit (JSON-compatible).
    wavelengths : (C,) ndarray, optional
        Band wavelengths of the data it was fitted on, when known.

    Examples
    --------
    >>> from napari_spectral_clusters import ClusterModel
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_spectral_clusters import apply_model, cluster_image
    >>> import numpy as np
    >>> from napari_spectral_clusters.samples import synthetic_cube
    >>> cube, truth, wl = synthetic_cube((32, 32))
    >>> res = cluster_image(cube, 4, channel_axis=0, preprocessing="snv", random_state=0)
    >>> path = res.model.save(Path(tempfile.mkdtemp()) / "four.npz")
    >>> model = ClusterModel.load(path)
    >>> model.n_clusters, model.n_features, model.params["steps"]
    (4, 64, 'snv')
    >>> bool((apply_model(cube, model, channel_axis=0).labels == res.labels).all())
    True
    """

    features: Features
    centers: np.ndarray
    colors: np.ndarray
    params: dict = field(default_factory=dict)
    wavelengths: np.ndarray | None = None

    @property
    def n_clusters(self) -> int:
        return len(self.centers)

    @property
    def n_features(self) -> int:
        """Channels (bands or colours) of the images it applies to."""
        return len(self.features.offset)

    def save(self, path: str | Path) -> Path:
        """Write the model as ``.npz`` (plain arrays; complete or not at all)."""
        path = Path(path)
        f = self.features
        arrays = {
            "format": np.array(FORMAT),
            "centers": np.asarray(self.centers, np.float32),
            "colors": np.asarray(self.colors, np.uint8),
            "offset": np.asarray(f.offset, np.float64),
            "scale": np.asarray([] if f.scale is None else f.scale, np.float64),
            "unit": np.array(bool(f.unit)),
            "components": np.zeros((0, len(f.offset)))
            if f.components is None
            else np.asarray(f.components, np.float64),
            "wavelengths": np.asarray(
                [] if self.wavelengths is None else self.wavelengths, np.float64
            ),
            "steps_offset": np.asarray(
                [] if f.steps_offset is None else f.steps_offset, np.float64
            ),
            "params": np.array(json.dumps(self.params, default=_jsonable)),
        }
        with written_whole(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClusterModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        ModelError
            The file is not such a model, or its arrays are damaged or inconsistent.
        """
        path = Path(path)
        if path.is_dir():
            raise ModelError(f"{path.name or path} is a folder; choose a model file (.npz)")
        if not path.exists():  # said plainly, not as "FileNotFoundError: [Errno 2] ..."
            raise ModelError(f"{path.name} does not exist (in {path.parent.resolve()})")
        try:
            _check_sizes(path)
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except ModelError:
            raise
        except Exception as exc:  # numpy and zipfile raise many kinds on a damaged file
            raise ModelError(
                f"{path.name} is not a readable model file: {type(exc).__name__}: {exc}"
            ) from exc
        if str(arrays.get("format", "")) != FORMAT:
            raise ModelError(f"{path.name} is not a napari-spectral-clusters model file")
        try:
            centers = np.asarray(arrays["centers"], np.float32)
            colors = np.asarray(arrays["colors"])
            offset = np.asarray(arrays["offset"], np.float64)
            scale = np.asarray(arrays["scale"], np.float64)
            components = np.asarray(arrays["components"], np.float64)
            wavelengths = np.asarray(arrays["wavelengths"], np.float64)
            params = json.loads(str(arrays["params"]))
            unit = bool(arrays["unit"])
            # models saved before spectral steps existed have none
            steps_offset = np.asarray(arrays.get("steps_offset", np.zeros(0)), np.float64)
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            raise ModelError(
                f"{path.name} is a damaged model file: {type(exc).__name__}: {exc}"
            ) from exc
        if offset.ndim != 1 or len(offset) == 0 or components.ndim != 2:
            raise ModelError(
                f"{path.name} is a damaged model file: offsets of shape {offset.shape}, "
                f"components of shape {components.shape}"
            )
        n_in = len(offset)
        steps = None
        spec = params.get("steps") if isinstance(params, dict) else None
        if spec:
            try:
                steps = Pipeline.parse(str(spec)).bind(
                    n_in, wavelengths if wavelengths.size == n_in else None, saved=True
                )
            except (PreprocessingError, TypeError) as exc:  # TypeError: steps not text
                raise ModelError(f"{path.name}: its preprocessing cannot be used: {exc}") from None
        n_steps = n_in if steps is None else steps.n_out  # what scale and PCA apply to
        n_feat = len(components) if components.size else n_steps
        finite = all(
            np.isfinite(a).all() for a in (offset, scale, components, wavelengths, steps_offset)
        )
        problems = [
            (not finite, "non-finite offsets, scales, components or wavelengths"),
            (scale.size and not (scale > 0).all(), "scales that are not positive"),
            (
                centers.ndim != 2 or centers.shape[1] != n_feat or len(centers) == 0,
                f"centres of shape {centers.shape} for {n_feat} features",
            ),
            (
                colors.shape != (len(centers), 3) or colors.dtype != np.uint8,
                f"colours of shape {colors.shape} for {len(centers)} clusters",
            ),
            (scale.size not in (0, n_steps), f"{scale.size} scales for {n_steps} features"),
            (
                components.size and components.shape[1] != n_steps,
                f"components of shape {components.shape} for {n_steps} features",
            ),
            (
                steps is not None and steps_offset.shape != (n_steps,),
                f"{steps_offset.size} offsets for the {n_steps} preprocessed bands",
            ),
            (wavelengths.size not in (0, n_in), f"{wavelengths.size} wavelengths"),
            # a row of NaN is an id kept free (stable_ids); anything else non-finite is damage
            (
                not _centres_ok(centers),
                "non-finite centres (only whole rows of NaN, free ids, may be)",
            ),
            (not isinstance(params, dict), "parameters are not a mapping"),
        ]
        for bad, what in problems:
            if bad:
                raise ModelError(f"{path.name} is a damaged model file: {what}")
        features = Features(
            offset=offset,
            scale=scale if scale.size else None,
            unit=unit,
            components=components if components.size else None,
            steps=steps,
            steps_offset=steps_offset if steps is not None else None,
        )
        return cls(features, centers, colors, params, wavelengths if wavelengths.size else None)


#: A model holds k x bands numbers (kilobytes to a few MB); its arrays may unpack to at most
#: this many bytes, checked in the zip directory before anything is decompressed.
MODEL_BYTES = 256 * 2**20


def _centres_ok(centers: np.ndarray) -> bool:
    """Finite, but for whole rows of NaN (free ids), and at least one finite row."""
    finite = np.isfinite(centers).all(axis=1)
    free = np.isnan(centers).all(axis=1)
    return bool(finite.any() and (finite | free).all())


def _check_sizes(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        total = sum(info.file_size for info in zf.infolist())
    if total > MODEL_BYTES:
        raise ModelError(
            f"{path.name} would unpack to {total / 2**20:,.0f} MB, more than a model's "
            f"{MODEL_BYTES / 2**20:.0f} MB; not read"
        )


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
