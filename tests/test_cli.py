import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from napari_spectral_clusters.color import categorical_colors


def test_help_lists_demo():
    out = subprocess.run(
        [sys.executable, "-m", "napari_spectral_clusters.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "demo" in out


@pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("xvfb-run") is None,
    reason="the headless demo runs napari under xvfb-run on Linux",
)
def test_demo_without_display_writes_a_screenshot(tmp_path):
    """The README's first command on a headless machine: napari under Xvfb, a screenshot."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    exe = shutil.which("spectral-clusters", path=os.path.dirname(sys.executable))
    proc = subprocess.run(
        [exe, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    shot = np.asarray(Image.open(tmp_path / "spectral-clusters-demo.png").convert("RGB"))
    assert shot.shape[0] > 400 and shot.shape[1] > 600
    # the recoloured image is on screen: every one of the 4 cluster colours covers pixels
    for color in categorical_colors(4):
        assert np.count_nonzero((shot == color).all(axis=-1)) > 500, color
