import warnings

import numpy as np
import pytest

from napari_spectral_clusters import cluster_image
from napari_spectral_clusters.color import (
    MIN_DELTA_E,
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


def test_agrees_with_colour_science():
    with warnings.catch_warnings():  # colour warns about matplotlib and shape alignment
        warnings.simplefilter("ignore")
        _compare_with_colour_science()


def _compare_with_colour_science():
    import colour

    rng = np.random.default_rng(0)
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    d65 = colour.SDS_ILLUMINANTS["D65"]
    for _ in range(10):
        # smooth reflectances: a few broad bumps on a base
        refl = 0.1 + sum(
            rng.random()
            * 0.5
            * np.exp(-0.5 * ((WL - rng.uniform(400, 760)) / rng.uniform(20, 80)) ** 2)
            for _ in range(3)
        )
        sd = colour.SpectralDistribution(dict(zip(WL, refl, strict=True)))
        xyz = colour.sd_to_XYZ(sd, cmfs, d65) / 100
        ref = np.round(np.clip(colour.XYZ_to_sRGB(xyz), 0, 1) * 255)
        ours = spectra_to_rgb(refl, WL, exposure=1).rgb
        assert delta_e(ours, ref) < 1.0, (ours, ref)


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
