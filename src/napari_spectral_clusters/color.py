"""Colour: spectra -> RGB (true colour where bands cover the visible, false colour elsewhere),
and the colours of clusters.

True colour treats each spectrum as a **reflectance under the CIE D65 illuminant**: it is
resampled to 1 nm, integrated against the CIE 1931 2-degree colour-matching functions weighted
by D65, normalised so that a perfect white reflector (reflectance 1 everywhere) has Y = 1, and
converted XYZ -> linear sRGB (D65 white point, IEC 61966-2-1 matrix) -> sRGB with its transfer
curve. ``exposure`` scales Y: 1 keeps reflectances as they are; "auto" maps the 99th
percentile of Y to 1, which suits radiance cubes in arbitrary units. Colours sRGB cannot show
keep their hue: one outside the gamut loses chroma (at constant Oklab lightness and hue) until
it is inside, and one brighter than the display is scaled down as a whole; channels are never
clipped one by one. The CIE tables ship in ``_data/cie.npz`` (exported from colour-science by
``tools/export_cie_tables.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import colorcet
import numpy as np

__all__ = [
    "RGBRendering",
    "categorical_colors",
    "center_colors",
    "colors_up_to",
    "delta_e",
    "spectra_to_rgb",
]

#: Visible range of the colour-matching functions used, nm.
VISIBLE = (380.0, 780.0)
#: Below this share of the visible (luminance-weighted) covered by the bands, render false
#: colour instead of true colour.
MIN_COVERAGE = 0.05
#: Cluster colours closer than this (CIE 1976 Delta E) are too alike to tell apart.
MIN_DELTA_E = 10.0


@dataclass(frozen=True)
class RGBRendering:
    """RGB picture of spectra and how it was made.

    Attributes
    ----------
    rgb : (..., 3) ndarray of uint8
    method : str
        "true colour ..." or "false colour ...", for the user.
    coverage : float
        Share of the visible (weighted by luminance) the bands cover; 0 for false colour.
    """

    rgb: np.ndarray
    method: str
    coverage: float


def spectra_to_rgb(
    spectra: np.ndarray,
    wavelengths: np.ndarray | None,
    *,
    channel_axis: int = -1,
    exposure: float | str = "auto",
) -> RGBRendering:
    """Render spectra as sRGB colours.

    Parameters
    ----------
    spectra : (..., C) ndarray
        One spectrum per pixel along ``channel_axis`` (a cube, or k cluster centres).
    wavelengths : (C,) ndarray or None
        Band centres in nm. Where they cover the visible, true colour (what is covered is
        used); otherwise (infrared, Raman wavenumbers, unknown) false colour: three bands at a
        quarter, half and three quarters of the range as R, G, B — or, without wavelengths,
        the first three principal components — each stretched between its 2nd and 98th
        percentile.
    channel_axis : int
        Axis of ``spectra`` holding the bands.
    exposure : float or "auto"
        True colour: Y multiplier (1 for reflectance); "auto" maps the 99th percentile of Y
        to 1. A colour outside the sRGB gamut is desaturated at constant Oklab lightness and
        hue until it fits, and a colour brighter than white is darkened as a whole (its
        channels keep their ratios), so out-of-range colours keep their hue.

    Returns
    -------
    RGBRendering
        ``rgb`` has the shape of ``spectra`` without the band axis, plus 3.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.color import spectra_to_rgb
    >>> wl = np.arange(400.0, 701.0, 10)
    >>> spectra_to_rgb(np.ones(len(wl)), wl, exposure=1).rgb.tolist()
    [255, 255, 255]
    """
    x = np.moveaxis(np.asarray(spectra, dtype=np.float64), channel_axis, -1)
    shape = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    if wavelengths is not None:
        wavelengths = np.asarray(wavelengths, dtype=np.float64).ravel()
        if len(wavelengths) != x.shape[1]:
            raise ValueError(f"{len(wavelengths)} wavelengths for {x.shape[1]} bands")
        weights, coverage = _xyz_weights(wavelengths)
        if coverage >= MIN_COVERAGE:
            rgb = _xyz_to_srgb8(np.nan_to_num(x) @ weights, exposure)
            method = f"true colour (CIE 1931 2°, D65; {coverage:.0%} of the visible covered)"
            return RGBRendering(rgb.reshape(*shape, 3), method, coverage)
    rgb, method = _false_colour(np.nan_to_num(x), wavelengths)
    return RGBRendering(rgb.reshape(*shape, 3), method, 0.0)


@cache
def _cie() -> dict[str, np.ndarray]:
    with resources.files("napari_spectral_clusters").joinpath("_data/cie.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}


def _xyz_weights(wavelengths: np.ndarray) -> tuple[np.ndarray, float]:
    """(C, 3) weights so that XYZ = reflectance @ weights, and the visible share covered.

    The spectrum is linearly interpolated to 1 nm between the first and last band (nothing
    outside), so the weights are the interpolation matrix applied to D65-weighted CMFs.
    """
    cie = _cie()
    grid = cie["wavelengths"]
    visible = (grid >= VISIBLE[0]) & (grid <= VISIBLE[1])
    order = np.argsort(wavelengths)
    lo, hi = wavelengths[order[0]], wavelengths[order[-1]]
    inside = visible & (grid >= lo) & (grid <= hi)
    weighted = cie["xyz_bar"] * cie["d65"][:, None]
    white_y = weighted[visible, 1].sum()  # a perfect reflector: Y = 1
    coverage = float(weighted[inside, 1].sum() / white_y)
    # interpolation matrix: grid value = sum_b interp[g, b] * band value
    eye = np.eye(len(wavelengths))[order]
    interp = np.stack([np.interp(grid[inside], wavelengths[order], row) for row in eye], 1)
    return interp.T @ weighted[inside] / white_y, coverage


def _xyz_to_srgb8(xyz: np.ndarray, exposure: float | str) -> np.ndarray:
    if exposure == "auto":
        y = xyz[:, 1]
        top = np.percentile(y, 99) if len(y) else 0.0
        exposure = 1.0 / top if top > 0 else 1.0
    linear = _into_gamut(xyz * float(exposure) @ _cie()["xyz_to_srgb"].T)
    return np.round(_srgb_encode(linear) * 255).astype(np.uint8)


#: Oklab (Ottosson 2020, https://bottosson.github.io/posts/oklab/, as in colour-science and
#: CSS Color 4): XYZ (D65) to cone-like LMS, and cube-rooted LMS to L, a, b.
_XYZ_TO_LMS = np.array(
    [
        [0.8189330101, 0.3618667424, -0.1288597137],
        [0.0329845436, 0.9293118715, 0.0361456387],
        [0.0482003018, 0.2643662691, 0.6338517070],
    ]
)
_LMS_TO_OKLAB = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
#: Halvings of the chroma search: 2**-16 of a colour's chroma is far below one 8-bit step.
_GAMUT_STEPS = 16


def _into_gamut(linear: np.ndarray) -> np.ndarray:
    """Bring (N, 3) linear sRGB into [0, 1] without changing the hue of any colour.

    Clipping each channel on its own changes the ratios between them, and so the hue: a narrow
    band at 440 nm, auto-exposed, came out magenta (255, 0, 255) and one at 480 nm cyan.
    Instead, in linear light: a colour with a negative component (outside the gamut) loses
    chroma at constant Oklab lightness and hue until it has none (the largest such chroma, by
    bisection, as CSS Color 4 maps gamuts); then a colour with a component above 1 is scaled
    as a whole so that its largest is 1, which keeps its Oklab hue exactly (Oklab is linear in
    the cube root of LMS). Colours already in range are returned unchanged.
    """
    # Why Oklab: its hue was fitted to data on constant perceived hue. Against colour-science's
    # Oklab hue of narrow bands (440-640 nm), mixing with grey of the same Y instead is off by
    # up to 27 degrees (480 nm, too blue) and desaturating at constant CIELAB hue by up to 34
    # (460 nm renders purple, CIELAB's known bend of blue towards purple).
    out = linear.copy()
    outside = out.min(axis=1) < 0
    if outside.any():
        rgb_to_lms = _XYZ_TO_LMS @ np.linalg.inv(_cie()["xyz_to_srgb"])
        # (3, n) layout: the per-step products and minima then run along contiguous rows
        lab = _LMS_TO_OKLAB @ np.cbrt(rgb_to_lms @ out[outside].T)
        oklab_to_lms, lms_to_rgb = np.linalg.inv(_LMS_TO_OKLAB), np.linalg.inv(rgb_to_lms)
        # cube-rooted LMS = grey part + share * chroma part, so each step is one product
        grey = oklab_to_lms[:, :1] * lab[:1]
        chroma = oklab_to_lms[:, 1:] @ lab[1:]

        def with_chroma(share: np.ndarray) -> np.ndarray:
            return lms_to_rgb @ (grey + share * chroma) ** 3

        # share 0 is the grey of the same lightness, which is in the gamut when L > 0
        lo, hi = np.zeros(lab.shape[1]), np.ones(lab.shape[1])
        for _ in range(_GAMUT_STEPS):
            mid = (lo + hi) / 2
            fits = with_chroma(mid).min(axis=0) >= 0
            lo, hi = np.where(fits, mid, lo), np.where(fits, hi, mid)
        out[outside] = with_chroma(lo).T
    out /= np.maximum(out.max(axis=1, keepdims=True), 1.0)
    # only colours with no lightness at all (negative spectra) are left below 0: black
    return np.maximum(out, 0.0)


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1)."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def _srgb_decode(encoded: np.ndarray) -> np.ndarray:
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def _false_colour(x: np.ndarray, wavelengths: np.ndarray | None) -> tuple[np.ndarray, str]:
    n = x.shape[1]
    if wavelengths is not None and n >= 3:
        order = np.argsort(wavelengths)
        picks = order[[round(q * (n - 1)) for q in (0.75, 0.5, 0.25)]]  # R = longest
        channels = x[:, picks]
        names = ", ".join(f"{wavelengths[i]:g}" for i in picks)
        method = f"false colour: bands at {names} as R, G, B"
    elif n >= 3:
        centred = x - x.mean(axis=0)
        _, vecs = np.linalg.eigh(centred.T @ centred)
        channels = centred @ vecs[:, ::-1][:, :3]
        method = "false colour: principal components 1-3 as R, G, B"
    else:
        channels = np.repeat(x[:, :1], 3, axis=1)
        method = "false colour: grey from the first band"
    lo, hi = np.percentile(channels, [2, 98], axis=0) if len(x) else (0, 1)
    stretched = (channels - lo) / np.where(hi > lo, hi - lo, 1)
    return np.round(np.clip(stretched, 0, 1) * 255).astype(np.uint8), method


def categorical_colors(n: int) -> np.ndarray:
    """``n`` well-separated colours as an (n, 3) uint8 array.

    From colorcet's Glasbey palette (category10 first), so neighbouring labels differ clearly;
    past its 256 colours the palette repeats.

    Examples
    --------
    >>> from napari_spectral_clusters.color import categorical_colors
    >>> colors = categorical_colors(3)
    >>> colors.shape, colors.dtype.name, len({tuple(c) for c in colors.tolist()})
    ((3, 3), 'uint8', 3)
    """
    palette = np.asarray(colorcet.glasbey_category10, dtype=np.float64)
    return np.round(palette[np.arange(n) % len(palette)] * 255).astype(np.uint8)


def colors_up_to(colors: np.ndarray, top: int) -> np.ndarray:
    """(max(top, k), 3) uint8: a clustering's ``k`` colours, then well-separated categorical
    ones (:func:`categorical_colors`) for the ids painted beyond them.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.color import colors_up_to
    >>> colors_up_to(np.zeros((2, 3), np.uint8), 3).shape
    (3, 3)
    """
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if top <= len(colors):
        return colors
    return np.concatenate([colors, categorical_colors(top)[len(colors) :]]).astype(np.uint8)


def delta_e(rgb_a: np.ndarray, rgb_b: np.ndarray) -> np.ndarray:
    """CIE 1976 colour difference between sRGB uint8 colours (D65).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.color import delta_e
    >>> white, grey = np.array([255, 255, 255], np.uint8), np.array([119, 119, 119], np.uint8)
    >>> round(float(delta_e(white, white)), 6), 45 < float(delta_e(white, grey)) < 55
    (0.0, True)
    """
    return np.linalg.norm(_srgb8_to_lab(rgb_a) - _srgb8_to_lab(rgb_b), axis=-1)


def _srgb8_to_lab(rgb: np.ndarray) -> np.ndarray:
    linear = _srgb_decode(np.asarray(rgb, dtype=np.float64) / 255)
    xyz = linear @ np.linalg.inv(_cie()["xyz_to_srgb"]).T
    white = np.linalg.inv(_cie()["xyz_to_srgb"]) @ np.ones(3)
    t = xyz / white
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def center_colors(
    centers: np.ndarray,
    dtype: np.dtype,
    *,
    rgb: bool,
    wavelengths: np.ndarray | None = None,
    palette: str = "auto",
) -> tuple[np.ndarray, str]:
    """Display colour of each cluster centre, (k, 3) uint8, and how it was chosen.

    Parameters
    ----------
    centers : (k, C) ndarray
        Cluster centres in the input's units.
    dtype : dtype
        The input image's dtype, which fixes a picture's value range: integers span the
        dtype, floats span 0..1 (as napari shows RGB floats).
    rgb : bool
        The centres are colours (C == 3): each cluster wears its centre colour.
    wavelengths : (C,) ndarray, optional
        For spectra: each centre is rendered in true colour (reflectance under D65, the
        brightest centre at 90% of white) when the bands cover the visible.
    palette : {"auto", "categorical"}
        "categorical" always uses well-separated colours; "auto" also does when the centres'
        own colours are too alike (two within :data:`MIN_DELTA_E`) or cannot be rendered.
    """
    centers = np.asarray(centers, dtype=np.float64)
    k = len(centers)
    if palette == "categorical":
        return categorical_colors(k), "categorical palette (asked for)"
    if rgb:
        dtype = np.dtype(dtype)
        top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
        colors = np.round(np.clip(centers / top, 0, 1) * 255).astype(np.uint8)
        return colors, "centre colours"
    if wavelengths is None or len(np.ravel(wavelengths)) != centers.shape[1]:
        return categorical_colors(k), "categorical palette (no wavelengths)"
    weights, coverage = _xyz_weights(np.asarray(wavelengths, dtype=np.float64).ravel())
    if coverage < MIN_COVERAGE:
        return categorical_colors(k), "categorical palette (bands outside the visible)"
    xyz = centers @ weights
    top = xyz[:, 1].max()
    colors = _xyz_to_srgb8(xyz, 0.9 / top if top > 0 else 1.0)
    if k > 1:
        d = delta_e(colors[:, None], colors[None])
        d[np.diag_indices(k)] = np.inf
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < MIN_DELTA_E:
            return categorical_colors(k), (
                f"categorical palette (true colours of clusters {i + 1} and {j + 1} differ by "
                f"only ΔE {d[i, j]:.1f})"
            )
    return colors, "true colour of each centre spectrum"
