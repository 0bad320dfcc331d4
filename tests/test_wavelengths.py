"""Wavelengths a user types: "first-last" in nm, spread evenly over the bands."""

import numpy as np
import pytest

from napari_spectral_clusters.wavelengths import even_wavelengths, parse_wavelength_range


@pytest.mark.parametrize(
    "text",
    [
        "401-889",
        "401 - 889",
        "401\u2013889",
        "401\u2014889",
        "401 to 889 nm",
        "401, 889",
        "401 889",
        "401-889nm",  # a unit against the number
        "401nm-889nm",
        "401 nm - 889 nm",
        "401NM to 889NM",
    ],
)
def test_first_and_last_in_nm_however_written(text):
    assert parse_wavelength_range(text) == (401.0, 889.0)


@pytest.mark.parametrize(
    "text",
    [
        "0.401-0.889 um",
        "0.401 to 0.889 \u00b5m",
        "0.401-0.889 microns",
        "0.401-0.889um",
        "0.401um-0.889um",
        "0.401-0.889\u00b5m",
    ],
)
def test_micrometres_with_their_unit_become_nm(text):
    first, last = parse_wavelength_range(text)
    assert (first, last) == pytest.approx((401.0, 889.0))


def test_micrometres_without_their_unit_are_refused_with_the_nm_they_stand_for():
    with pytest.raises(ValueError) as raised:
        parse_wavelength_range("0.4-2.5")
    assert str(raised.value) == (
        "Wavelengths are in nm: '0.4-2.5' looks like micrometres; write 400-2500 (nm) or add "
        "the unit: 0.4-2.5 um."
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("889-401", "larger last"),
        ("0-500", "positive first"),
        ("400-400", "larger last"),
        ("401", "two numbers"),
        ("400-500-600", "two numbers"),
        ("blue-red", "two numbers"),
        ("nan-500", "positive first"),
        ("", "two numbers"),
        ("400nm to 2.5um", "both in nm or both in um"),
        ("400 nm - 2.5 um", "both in nm or both in um"),
    ],
)
def test_anything_else_is_refused_saying_what_is_expected(text, message):
    with pytest.raises(ValueError, match=message):
        parse_wavelength_range(text)


def test_an_even_spread_over_the_bands():
    wl = even_wavelengths(401, 889, 156)
    assert wl.shape == (156,) and wl.dtype == np.float64
    assert (wl[0], wl[-1]) == (401.0, 889.0)
    np.testing.assert_allclose(np.diff(wl), (889 - 401) / 155)
