"""Every pixel in its cluster's colour: labels and a colour table in, an RGB(A) image out."""

from __future__ import annotations

import numpy as np

__all__ = ["color_lut", "recolor"]


def recolor(
    labels: np.ndarray, colors: np.ndarray, alpha=None, *, transparent: bool | None = False
):
    """Every pixel in its cluster's colour, with the picture's own alpha plane.

    Parameters
    ----------
    labels : (M, N[, ...]) ndarray of int
        Labels 1..k; 0 (excluded pixels) is transparent in an RGBA image (with ``alpha`` or
        ``transparent``), black in an RGB one.
    colors : (k, 3) ndarray of uint8
        Colour of label ``i`` in row ``i - 1``.
    alpha : (M, N[, ...]) ndarray, optional
        The input's alpha plane, carried over unchanged wherever a pixel has a label (soft,
        anti-aliased edges stay soft, as the walkthrough restores them); 16-bit alpha gives
        a 16-bit RGBA image (colours times 257), float alpha (0..1) is scaled to 0..255.
    transparent : bool or None
        Without ``alpha``: an RGBA image all the same, opaque where a pixel has a label, so
        that pixels left out (masked, NaN) show what lies below them in a viewer; None: so
        when some pixel has label 0 (labels edited by hand: an erased pixel).

    Returns
    -------
    (M, N[, ...], 3 or 4) ndarray of uint8 (uint16 for 16-bit alpha)

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.recolor import recolor
    >>> labels = np.array([[1, 2], [0, 1]])
    >>> colors = np.array([[255, 0, 0], [0, 255, 0]], np.uint8)
    >>> recolor(labels, colors).tolist()
    [[[255, 0, 0], [0, 255, 0]], [[0, 0, 0], [255, 0, 0]]]
    >>> alpha = np.array([[255, 40], [0, 255]], np.uint8)  # the picture's own alpha is kept
    >>> recolor(labels, colors, alpha)[..., 3].tolist()
    [[255, 40], [0, 255]]
    >>> recolor(labels, colors, transparent=True)[..., 3].tolist()  # a cube with a pixel left out
    [[255, 255], [0, 255]]
    """
    labels = np.asarray(labels)
    if transparent is None:
        transparent = not labels.all()
    lut = color_lut(colors, alpha=alpha is not None or transparent)
    # np.take of whole rows, not lut[labels]: 5x faster (1024 x 1024 labels: 11 -> 2.3 ms)
    if alpha is None:
        return np.take(lut, labels, axis=0)
    alpha = np.asarray(alpha)
    if alpha.dtype == np.uint16:
        out = np.take(lut.astype(np.uint16) * 257, labels, axis=0)
    else:
        # RGBA rows as one uint32 each: a 1-D gather, ~10x faster than gathering (k + 1, 4)
        # rows
        out = np.take(lut.view(np.uint32).ravel(), labels).view(np.uint8)
        out = out.reshape(*labels.shape, 4)
        if np.issubdtype(alpha.dtype, np.floating):  # napari's float RGBA: alpha 0..1
            alpha = np.round(np.clip(np.nan_to_num(alpha), 0, 1) * 255)
        alpha = np.clip(alpha, 0, 255).astype(np.uint8, copy=False)
    # label 0 has alpha 0 in the table, every cluster the maximum: the minimum is 0 or the
    # picture's own alpha
    np.minimum(out[..., 3], alpha, out=out[..., 3])
    return out


def color_lut(colors, *, alpha: bool) -> np.ndarray:
    """(k + 1, 3|4) uint8 colours by label: 0 black (transparent with alpha), i colors[i - 1].

    Examples
    --------
    >>> import numpy as np
    >>> from napari_spectral_clusters.recolor import color_lut
    >>> color_lut(np.array([[10, 20, 30]], np.uint8), alpha=True).tolist()
    [[0, 0, 0, 0], [10, 20, 30, 255]]
    """
    lut = np.zeros((len(colors) + 1, 4 if alpha else 3), dtype=np.uint8)
    lut[1:, :3] = colors
    if alpha:
        lut[1:, 3] = 255
    return lut
