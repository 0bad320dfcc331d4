"""What a reader hands on: arrays with the facts napari and the engine need about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


class ReadError(ValueError):
    """A file could not be opened as images; the message names the file and the reason."""


@dataclass(frozen=True)
class ImageData:
    """One array read from a file, ready to become a napari layer.

    Attributes
    ----------
    name : str
        Variable name (``struct.field``, ``cell[2]``) or file stem.
    data : ndarray
        The array, band axis first for spectral cubes.
    kind : {"image", "labels"}
        Intensities, or integer classes such as a ground truth.
    rgb : bool
        Last axis is RGB(A) colour.
    channel_axis : int or None
        Axis of ``data`` holding each pixel's features (bands or colours), None for greyscale
        images and labels.
    axis_labels : tuple of str
        One name per axis of ``data``.
    metadata : dict
        Source path, wavelengths (``wavelengths``, ``wavelength_unit``) and similar facts.
    """

    name: str
    data: np.ndarray
    kind: Literal["image", "labels"] = "image"
    rgb: bool = False
    channel_axis: int | None = None
    axis_labels: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict)
