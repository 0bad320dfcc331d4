"""Regenerate the pictures in the docs from the running plugin, so they stay true.

Run from the project root:  uv run --extra all python docs/make_screenshots.py
(on a machine without a display the demo starts Xvfb by itself).
"""

import subprocess
import sys
from pathlib import Path

IMAGES = Path(__file__).parent / "images"


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "napari_spectral_clusters.cli", "demo",
         "--screenshot", str(IMAGES / "demo.png")],
        check=True,
    )


if __name__ == "__main__":
    main()
