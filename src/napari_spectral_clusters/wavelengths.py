"""Wavelengths a user gives for a cube whose file has none: "first-last" in nm, spread evenly
over the bands (the widget's *wavelengths* field and ``spectral-clusters run --wavelengths``).
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["even_wavelengths", "given_wavelengths", "parse_wavelength_range"]

_DASHES = "-\u2013\u2014"  # hyphen, en and em dash: "401-889", "401\u2013889"


#: Written after the numbers, micrometres: converted to nm.
_MICROMETRES = ("um", "\u00b5m", "\u03bcm", "micron", "microns", "micrometres", "micrometers")
#: A last wavelength below this many nm, with no unit, is taken for micrometres written
#: without one (0.4-2.5 for a SWIR camera) and refused with the nm it stands for.
MIN_NM = 50


def parse_wavelength_range(text: str) -> tuple[float, float]:
    """``(first, last)`` in nm from "401-889", "401 to 889 nm", "401, 889", "0.4-2.5 um",
    "401nm-889nm"...

    Raises
    ------
    ValueError
        Not two increasing positive numbers (the message says what is expected), or numbers
        that look like micrometres written without their unit.

    Examples
    --------
    >>> from napari_spectral_clusters.wavelengths import parse_wavelength_range
    >>> parse_wavelength_range("401-889"), parse_wavelength_range("401 to 889 nm")
    ((401.0, 889.0), (401.0, 889.0))
    >>> parse_wavelength_range("0.4-2.5 um")
    (400.0, 2500.0)
    """
    # a unit written against its number ("889nm", "2.5um") is a word of its own
    units = "|".join(map(re.escape, ("nm", *_MICROMETRES)))
    text = str(text)
    spaced = re.sub(rf"(?<=[\d.])({units})\b", r" \1", text.strip(), flags=re.I)
    parts = [p for p in re.split(rf"\s*(?:[{_DASHES}]|,|\s)\s*", spaced) if p]
    micrometres = any(p.lower() in _MICROMETRES for p in parts)
    if micrometres and any(p.lower() == "nm" for p in parts):
        raise ValueError(f"Wavelengths are both in nm or both in um, not {text!r}.")
    scale = 1000.0 if micrometres else 1.0
    parts = [p for p in parts if p.lower() not in ("nm", "to", *_MICROMETRES)]
    try:
        first, last = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"Wavelengths are two numbers in nm, first-last (e.g. 401-889), not {text!r}."
        ) from None
    if not (np.isfinite([first, last]).all() and 0 < first < last):
        raise ValueError(
            f"Wavelengths go up from a positive first to a larger last, not {text!r}."
        )
    if scale == 1.0 and last < MIN_NM:
        raise ValueError(
            f"Wavelengths are in nm: {text!r} looks like micrometres; write "
            f"{first * 1000:g}-{last * 1000:g} (nm) or add the unit: {first:g}-{last:g} um."
        )
    return first * scale, last * scale


def even_wavelengths(first: float, last: float, n_bands: int) -> np.ndarray:
    """``n_bands`` wavelengths from ``first`` to ``last`` nm, evenly spaced (float64).

    Examples
    --------
    >>> from napari_spectral_clusters.wavelengths import even_wavelengths
    >>> even_wavelengths(400, 700, 4).tolist()
    [400.0, 500.0, 600.0, 700.0]
    """
    return np.linspace(float(first), float(last), int(n_bands))


def given_wavelengths(first: float, last: float, n_bands: int, where: str) -> dict:
    """The metadata of a cube given wavelengths ``first``-``last`` nm spread evenly over its
    ``n_bands`` (:func:`even_wavelengths`), ``where`` saying by whom ("entered in the widget",
    "given on the command line").

    Examples
    --------
    >>> from napari_spectral_clusters.wavelengths import given_wavelengths
    >>> meta = given_wavelengths(400, 700, 4, "entered in the widget")
    >>> meta["wavelengths"].tolist(), meta["wavelength_source"]
    ([400.0, 500.0, 600.0, 700.0], 'entered in the widget: 400-700 nm')
    """
    return {
        "wavelengths": even_wavelengths(first, last, n_bands),
        "wavelength_unit": "nm",
        "wavelength_source": f"{where}: {first:g}-{last:g} nm",
    }
