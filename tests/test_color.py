import warnings

import numpy as np
import pytest

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.color import (
    MIN_DELTA_E,
    _srgb_decode,
    categorical_colors,
    center_colors,
    delta_e,
    spectra_to_rgb,
)
from napari_spectral_clusters.samples import synthetic_cube

WL = np.arange(380.0, 781.0, 5)


def _line(center, width=8.0):
    return np.exp(-0.5 * ((WL - center) / width) ** 2)


@pytest.mark.parametrize("level", [0.05, 0.2, 0.5, 0.9])
def test_flat_spectrum_is_neutral_grey(level):
    rgb = spectra_to_rgb(np.full(len(WL), level), WL, exposure=1).rgb.astype(int)
    assert np.ptp(rgb) <= 1
    assert 0 < rgb[0] < 255


def test_perfect_white_reflector_under_d65_is_white():
    out = spectra_to_rgb(np.ones(len(WL)), WL, exposure=1)
    assert out.rgb.tolist() == [255, 255, 255]
    assert out.coverage == pytest.approx(1.0)
    assert out.method.startswith("true colour")


@pytest.mark.parametrize(("nm", "channel"), [(450, 2), (550, 1), (650, 0)])
def test_monochromatic_light_has_its_hue(nm, channel):
    # a narrow-band reflector (peak 1): saturated, but inside what sRGB shows unclipped
    rgb = spectra_to_rgb(_line(nm), WL, exposure=1).rgb.astype(int)
    assert np.argmax(rgb) == channel
    others = [c for c in range(3) if c != channel]
    assert rgb[channel] > 2 * max(rgb[others])


def _reference_xyz(wl, reflectance):
    """colour-science's XYZ of a reflectance under D65 (CIE 1931 2°), Y = 1 for white."""
    import colour

    sd = colour.SpectralDistribution(dict(zip(wl, reflectance, strict=True)))
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    with warnings.catch_warnings():  # colour warns that it aligns D65 to the CMFs' shape
        warnings.simplefilter("ignore")
        return colour.sd_to_XYZ(sd, cmfs, colour.SDS_ILLUMINANTS["D65"]) / 100


def _oklab_hue(xyz):
    import colour

    lab = colour.XYZ_to_Oklab(xyz)
    return np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360


def _hue_of(rgb):
    import colour

    return _oklab_hue(colour.sRGB_to_XYZ(np.asarray(rgb) / 255))


def _hue_difference(a, b):
    return abs((a - b + 180) % 360 - 180)


def test_agrees_with_colour_science():
    import colour

    rng = np.random.default_rng(0)
    inside = 0
    for _ in range(10):
        # smooth reflectances: a few broad bumps on a base
        refl = 0.1 + sum(
            rng.random()
            * 0.5
            * np.exp(-0.5 * ((WL - rng.uniform(400, 760)) / rng.uniform(20, 80)) ** 2)
            for _ in range(3)
        )
        xyz = _reference_xyz(WL, refl)
        linear = colour.XYZ_to_sRGB(xyz, apply_cctf_encoding=False)
        ours = spectra_to_rgb(refl, WL, exposure=1).rgb
        if linear.min() < 0 or linear.max() > 1:
            # outside what sRGB shows (one teal here): desaturated, not clipped, so compare hue
            assert _hue_difference(_hue_of(ours), _oklab_hue(xyz)) < 1, (ours, linear)
            continue
        inside += 1
        ref = np.round(colour.XYZ_to_sRGB(xyz) * 255)
        assert delta_e(ours, ref) < 1.0, (ours, ref)
    assert inside >= 8


@pytest.mark.parametrize("nm", range(440, 641, 20))
def test_narrow_band_keeps_its_hue_at_auto_exposure(nm):
    # Every narrow band is outside the sRGB gamut and, auto-exposed to Y = 1, far brighter than
    # its primaries can show. The reference is colour-science's Oklab hue of the spectrum itself.
    # Oklab rather than CIELAB: CIELAB bends blue towards purple and calls the magenta that the
    # old per-channel clip gave 440 nm only 8 degrees off (Oklab: 39).
    wl = np.arange(380.0, 781.0)
    band = np.exp(-0.5 * ((wl - nm) / 3.0) ** 2)
    expected = _oklab_hue(_reference_xyz(wl, band))
    rgb = spectra_to_rgb(band, wl).rgb
    assert _hue_difference(_hue_of(rgb), expected) < 10, (rgb, _hue_of(rgb), expected)
    assert rgb.min() == 0 and rgb.max() == 255  # as saturated and as bright as sRGB allows


@pytest.mark.parametrize("over", [1.5, 4.0, 20.0])
def test_overexposed_colour_is_darkened_as_a_whole(over):
    # an orange reflector, inside the gamut at exposure 1; over-exposed so that its largest
    # linear channel would be `over`, it must keep its channel ratios, hence its hue (a
    # per-channel clip turns it yellow, then white)
    refl = 0.05 + 0.5 * np.exp(-0.5 * ((WL - 610) / 60) ** 2)
    base = spectra_to_rgb(refl, WL, exposure=1).rgb
    assert 0 < base.min() and base.max() < 255
    linear = _srgb_decode(base / 255)
    bright = spectra_to_rgb(refl, WL, exposure=over / linear.max()).rgb
    assert bright.max() == 255
    np.testing.assert_allclose(_srgb_decode(bright / 255), linear / linear.max(), atol=0.005)


def test_negative_spectra_render_black():
    # noisy radiance dips below zero; a colour with no lightness has no hue to keep
    out = spectra_to_rgb(-np.ones((2, len(WL))), WL)
    assert out.rgb.tolist() == [[0, 0, 0], [0, 0, 0]]
    noisy = np.random.default_rng(2).normal(0.0, 1.0, (50, len(WL)))
    assert spectra_to_rgb(noisy, WL).rgb.shape == (50, 3)  # and no warnings (strict pytest)


def test_partial_coverage_uses_what_is_covered():
    wl = np.arange(500.0, 1000.0, 10)
    out = spectra_to_rgb(np.ones(len(wl)), wl, exposure=1)
    assert 0.3 < out.coverage < 1.0
    assert out.method.startswith("true colour")
    assert out.rgb[2] < out.rgb[0]  # no blue end: a warm white


def test_infrared_and_unknown_bands_fall_back_to_false_colour():
    rng = np.random.default_rng(1)
    cube = rng.random((8, 9, 20))
    ir = spectra_to_rgb(cube, np.linspace(900, 2500, 20))
    assert ir.method.startswith("false colour: bands at") and ir.coverage == 0
    assert ir.rgb.shape == (8, 9, 3)
    pcs = spectra_to_rgb(cube, None)
    assert pcs.method == "false colour: principal components 1-3 as R, G, B"
    assert pcs.rgb.min() == 0 and pcs.rgb.max() == 255  # stretched


def test_cube_channel_axis_first():
    cube, _, wl = synthetic_cube((10, 12), 64)
    out = spectra_to_rgb(cube, wl, channel_axis=0)
    assert out.rgb.shape == (10, 12, 3)
    np.testing.assert_array_equal(out.rgb, spectra_to_rgb(np.moveaxis(cube, 0, -1), wl).rgb)


def test_cluster_colours_are_true_colours_of_centres():
    cube, _, wl = synthetic_cube(seed=3)
    res = cluster_image(cube, 4, channel_axis=0, wavelengths=wl)
    assert res.params["colors"] == "true colour of each centre spectrum"
    expected = spectra_to_rgb(res.centers, wl, exposure=0.9 / (res.centers @ _y(wl)).max()).rgb
    np.testing.assert_array_equal(res.colors, expected)
    np.testing.assert_array_equal(res.recolored, res.colors[res.labels - 1])
    np.testing.assert_array_equal(res.model.wavelengths, wl)


def _y(wl):
    from napari_spectral_clusters.color import _xyz_weights

    return _xyz_weights(wl)[0][:, 1]


def test_too_similar_true_colours_switch_to_a_palette():
    wl = np.linspace(400, 700, 31)
    centers = np.stack([np.full(31, 0.50), np.full(31, 0.51), np.full(31, 0.9)])
    colors, how = center_colors(centers, np.float64, rgb=False, wavelengths=wl)
    assert how.startswith("categorical palette (true colours of clusters 1 and 2")
    np.testing.assert_array_equal(colors, categorical_colors(3))
    assert delta_e(colors[0], colors[1]) > MIN_DELTA_E
    colors, how = center_colors(centers[[0, 2]], np.float64, rgb=False, wavelengths=wl)
    assert how == "true colour of each centre spectrum"
    colors, how = center_colors(
        centers[[0, 2]], np.float64, rgb=False, wavelengths=wl, palette="categorical"
    )
    assert how == "categorical palette (asked for)"
