"""Deterministic sample data: a synthetic spectral cube with ground truth, Raman-like
spectra that need preprocessing, and a photograph."""

from __future__ import annotations

from importlib import resources

import numpy as np
from PIL import Image

__all__ = ["raman_scene", "sample_photo", "synthetic_cube"]


def synthetic_cube(
    shape: tuple[int, int] = (128, 128),
    n_bands: int = 64,
    *,
    noise: float = 0.02,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A spectral cube of four materials with known ground truth.

    Each material has a smooth reflectance spectrum (a few Gaussian bands); the scene is a
    background with a disc, a bar and a ring, plus Gaussian noise.

    Returns
    -------
    cube : (n_bands, M, N) ndarray of float32
        Band axis first, values about 0..1.
    ground_truth : (M, N) ndarray of uint8
        Material of each pixel, 1..4.
    wavelengths : (n_bands,) ndarray of float64
        Band centres in nm, 400..1000.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.samples import synthetic_cube
    >>> cube, truth, wavelengths = synthetic_cube((32, 48), n_bands=16)
    >>> cube.shape, truth.shape, np.unique(truth).tolist(), len(wavelengths)
    ((16, 32, 48), (32, 48), [1, 2, 3, 4], 16)
    """
    rng = np.random.default_rng(seed)
    wavelengths = np.linspace(400.0, 1000.0, n_bands)
    peaks = [(450, 60, 0.5), (550, 40, 0.7), (680, 80, 0.6), (850, 120, 0.8)]
    spectra = np.stack(
        [0.15 + amp * np.exp(-0.5 * ((wavelengths - mu) / sigma) ** 2) for mu, sigma, amp in peaks]
    )
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = shape[0] / 2, shape[1] / 2
    r = np.hypot((yy - cy) / shape[0], (xx - cx) / shape[1])
    gt = np.ones(shape, dtype=np.uint8)
    gt[(r > 0.3) & (r < 0.4)] = 2
    gt[r < 0.15] = 3
    gt[(np.abs(xx - shape[1] * 0.15) < shape[1] * 0.05) & (yy > shape[0] * 0.1)] = 4
    cube = spectra[gt - 1].astype(np.float32)  # (M, N, bands)
    cube += rng.normal(0, noise, cube.shape).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(cube, -1, 0)), gt, wavelengths


def raman_scene(
    seed: int = 0, side: int = 40, n_bands: int = 160
) -> tuple[np.ndarray, np.ndarray]:
    """Raman-like spectra of three materials (two Gaussian peaks each) under what decides the
    clusters of raw spectra instead of the chemistry: a random sloped baseline per pixel,
    brightness from 0.3x to 3x, and cosmic-ray spikes in 3% of the pixels.

    Returns
    -------
    cube : (side, side, n_bands) ndarray of float64
    truth : (side, side) ndarray of int
        The material of each pixel (0, 1, 2).

    Examples
    --------
    >>> from napari_spectral_clusters.samples import raman_scene
    >>> cube, truth = raman_scene(seed=0, side=20, n_bands=80)
    >>> cube.shape, truth.shape, sorted(set(truth.ravel().tolist()))
    ((20, 20, 80), (20, 20), [0, 1, 2])
    """
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n_bands)
    peaks = [(0.2, 0.45), (0.3, 0.7), (0.55, 0.8)]
    spectra = np.stack([sum(np.exp(-(((x - c) / 0.02) ** 2)) for c in pair) for pair in peaks])
    truth = rng.integers(0, 3, (side, side))
    bright = rng.uniform(0.3, 3.0, (side, side, 1))
    offset = rng.uniform(0, 5, (side, side, 1))
    slope = rng.uniform(-4, 4, (side, side, 1))
    cube = bright * spectra[truth] + offset + slope * x
    cube += rng.normal(0, 0.01, cube.shape)
    hit = rng.random((side, side)) < 0.03
    where = rng.integers(0, n_bands, (side, side))
    cube[hit, where[hit]] += 30
    return cube, truth


def sample_photo() -> np.ndarray:
    """The CC0 coffee-cup photograph (400 x 600) as RGBA, transparent outside an ellipse.

    The alpha channel marks the corners as "not data", as a cut-out photo would be.

    Examples
    --------
    >>> from napari_spectral_clusters.samples import sample_photo
    >>> photo = sample_photo()
    >>> photo.shape, photo.dtype.name, int(photo[..., 3].min()), int(photo[..., 3].max())
    ((400, 600, 4), 'uint8', 0, 255)
    """
    with resources.files("napari_spectral_clusters").joinpath("_data/coffee.png").open("rb") as f:
        rgb = np.asarray(Image.open(f).convert("RGB"))
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    inside = ((yy - h / 2) / (h * 0.48)) ** 2 + ((xx - w / 2) / (w * 0.48)) ** 2 <= 1
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    return np.dstack([rgb, alpha])
