"""Several single-channel images as one spectral cube: a lambda stack that a TIFF or CZI
reader split into one layer per channel becomes one cube again, band axis first, with the
channels' wavelengths when their names or metadata say them ("GFP 509 nm", "Ch2-520nm",
``{"wavelength": 520}``).

The cube is a lazy dask stack of the images (no copy); when every channel has a wavelength
the bands are ordered by it.

Example
-------
>>> import numpy as np
>>> from napari_spectral_clusters.stacking import stack_channels, wavelength_of
>>> wavelength_of("Ch2 - 520nm"), wavelength_of("DAPI"), wavelength_of("x", {"wavelength": 461})
(520.0, None, 461.0)
>>> planes = [np.full((4, 5), v) for v in (2.0, 1.0)]
>>> cube, wavelengths = stack_channels(planes, ["b 600 nm", "a 500 nm"])
>>> cube.shape, wavelengths.tolist(), cube[:, 0, 0].compute().tolist()
((2, 4, 5), [500.0, 600.0], [1.0, 2.0])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["stack_channels", "wavelength_of"]

#: Metadata keys a reader may hold a channel's wavelength (nm) under, most specific first.
WAVELENGTH_KEYS = ("wavelength", "emission_wavelength", "wavelength_nm", "lambda")
_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*nm\b", re.IGNORECASE)
_LAMBDA = re.compile(r"(?:λ|lambda)\s*[=:]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def wavelength_of(name: str, metadata: dict | None = None) -> float | None:
    """A channel's wavelength in nm from its metadata (:data:`WAVELENGTH_KEYS`) or its name
    ("520 nm", "Ch2-520nm", "λ=520"); None when neither says one."""
    for key in WAVELENGTH_KEYS:
        value = (metadata or {}).get(key)
        try:
            value = float(np.asarray(value).ravel()[0]) if value is not None else None
        except (TypeError, ValueError, IndexError):
            value = None
        if value is not None and np.isfinite(value) and value > 0:
            return value
    for pattern in (_IN_NAME, _LAMBDA):
        found = pattern.search(str(name))
        if found:
            return float(found.group(1))
    return None


def stack_channels(
    images: Sequence, names: Sequence[str], metadata: Sequence[dict] | None = None
) -> tuple:
    """The images (numpy or dask, one shape) as a (bands, ...) dask cube, and the bands'
    wavelengths (ascending, the bands in that order) when every channel has one, else None
    (the bands in the given order).

    Raises
    ------
    ValueError
        Fewer than two images, or images of different shapes.
    """
    import dask.array as da

    images = list(images)
    if len(images) < 2:
        raise ValueError("stacking into a cube needs at least two single-channel images")
    shapes = {tuple(np.shape(image)) for image in images}
    if len(shapes) > 1:
        raise ValueError(
            "the images have different shapes ("
            + ", ".join("x".join(map(str, s)) for s in sorted(shapes))
            + "): they cannot be bands of one cube"
        )
    metadata = list(metadata) if metadata is not None else [{}] * len(images)
    found = [wavelength_of(n, m) for n, m in zip(names, metadata, strict=True)]
    order = list(range(len(images)))
    wavelengths = None
    if all(w is not None for w in found):
        order = sorted(order, key=lambda i: found[i])
        wavelengths = np.array([found[i] for i in order], dtype=np.float64)
        if len(np.unique(wavelengths)) < len(wavelengths):
            wavelengths, order = None, list(range(len(images)))  # two channels at one nm
    cube = da.stack([da.asarray(images[i]) for i in order])
    return cube, wavelengths
