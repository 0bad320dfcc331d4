"""npe2 sample data: the synthetic cube with its ground truth, and the RGBA photograph."""

from __future__ import annotations

from ..samples import sample_photo, synthetic_cube
from .band_readout import follow_current_viewer
from .opening import representative_band

CUBE_SEED = 0


def make_sample_cube():
    follow_current_viewer()  # the band slider says the wavelength; opens on a lively band
    cube, gt, wavelengths = synthetic_cube(seed=CUBE_SEED)
    meta = {
        "channel_axis": 0,
        "wavelengths": wavelengths,
        "wavelength_unit": "nm",
        "seed": CUBE_SEED,
        "representative_band": representative_band(cube, 0),
    }
    return [
        (
            cube,
            {"name": "sample cube", "metadata": meta, "axis_labels": ("band", "y", "x")},
            "image",
        ),
        (
            gt,
            {
                "name": "sample cube ground truth",
                "metadata": {"seed": CUBE_SEED},
                "visible": False,
            },
            "labels",
        ),
    ]


def make_sample_photo():
    return [(sample_photo(), {"name": "coffee", "rgb": True}, "image")]
