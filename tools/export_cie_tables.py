"""Export the CIE tables the plugin ships, from colour-science (a maintained colour library).

Writes ``src/napari_spectral_clusters/_data/cie.npz``: the CIE 1931 2-degree standard observer
colour-matching functions (360-830 nm, 1 nm steps), the CIE D65 illuminant's relative spectral
power (interpolated to the same wavelengths) and the IEC 61966-2-1 sRGB XYZ -> linear RGB
matrix. Shipping them as data keeps colour-science (and its 6 s import) out of the runtime
dependencies; it stays a test dependency, as the reference the colour tests compare against.

    uv run --extra testing python tools/export_cie_tables.py
"""

import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

OUT = Path(__file__).parents[1] / "src" / "napari_spectral_clusters" / "_data" / "cie.npz"


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour warns that matplotlib is missing
        import colour

    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    wl = cmfs.wavelengths
    d65 = colour.SDS_ILLUMINANTS["D65"].copy().align(colour.SpectralShape(wl[0], wl[-1], 1))
    np.savez(
        OUT,
        wavelengths=wl.astype(np.float64),
        xyz_bar=cmfs.values.astype(np.float64),
        d65=d65.values.astype(np.float64),
        xyz_to_srgb=np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_XYZ_to_RGB, np.float64),
        source=np.array(
            f"colour-science {version('colour-science')}: MSDS_CMFS['CIE 1931 2 "
            "Degree Standard Observer'], SDS_ILLUMINANTS['D65'], "
            "RGB_COLOURSPACES['sRGB']"
        ),
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
