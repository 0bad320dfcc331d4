"""Many images, one clustering: the pixels of several images (numpy or dask, any spatial
sizes, the same bands) clustered as one set, so a cluster id means the same material in each.

The images' pixels are laid end to end as one column of pixels and clustered by the one
engine (:func:`~napari_spectral_clusters.cluster.cluster_image`), so joint clustering gives
exactly the labels of clustering the concatenated pixels; dask inputs stay lazy (the column is
a lazy concatenation, read block by block). With ``sampling="equal"`` each image weighs the
same in the fit, whatever its size: the fit sees an equal number of pixels drawn from each,
and every image is then labelled whole with that model.

Example
-------
>>> import numpy as np
>>> from napari_spectral_clusters.joint import cluster_images
>>> from napari_spectral_clusters.samples import synthetic_cube
>>> small, small_truth, _ = synthetic_cube((32, 32), n_bands=16, seed=1)
>>> big, big_truth, _ = synthetic_cube((64, 48), n_bands=16, seed=2)
>>> joint = cluster_images([small, big], 4, channel_axis=0)
>>> [r.labels.shape for r in joint.results], joint.counts.shape
([(32, 32), (64, 48)], (2, 4))
>>> bool((joint.counts.sum(axis=0) == joint.total).all())
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ._arrays import is_lazy
from .cluster import ClusteringError, ClusterResult, apply_model, cluster_image
from .model import ClusterModel
from .recolor import recolor

__all__ = ["JointResult", "cluster_images", "integer_depth"]


@dataclass(frozen=True)
class JointResult:
    """What :func:`cluster_images` found: one result per image, sharing ids, centres, colours
    and the model.

    Attributes
    ----------
    results : list of ClusterResult
        One per image, in the images' order: its own labels and recoloured image (its
        spatial shape), the shared centres, spreads, colours and model, and its own counts.
    counts : (n_images, k) ndarray of int64
        Pixels of each image in each cluster.
    total : (k,) ndarray of int64
        Pixels in each cluster, over all images (labels are numbered by it, 1 = largest).
    model : ClusterModel
        The shared clustering, to label more images the same way.
    """

    results: list
    counts: np.ndarray
    total: np.ndarray
    model: ClusterModel

    @property
    def n_clusters(self) -> int:
        return self.model.n_clusters


def cluster_images(
    images: Sequence,
    n_clusters: int = 8,
    *,
    channel_axis: int | None = -1,
    masks: Sequence | None = None,
    wavelengths: Sequence | np.ndarray | None = None,
    alpha: bool | None = None,
    sampling: Literal["pixels", "equal"] = "pixels",
    random_state: int = 0,
    progress: Callable | None = None,
    **keywords,
) -> JointResult:
    """Cluster the pixels of several images as one set: shared ids, centres and colours.

    Parameters
    ----------
    images : sequence of ndarray or dask arrays
        Images with the same number of channels along ``channel_axis`` (bands, or colours),
        of any spatial sizes. Integer images must share their depth (8-bit beside 16-bit
        values are not on one scale: refused).
    n_clusters, channel_axis, alpha, random_state, progress
        As for :func:`~napari_spectral_clusters.cluster.cluster_image`; ``channel_axis`` is
        the same for every image. ``alpha`` may also be one flag per image: an RGBA picture
        beside RGB ones then clusters its opaque pixels' colours with theirs, and its
        recoloured picture keeps its alpha plane.
    masks : sequence of (ndarray or None), optional
        Per image: the pixels to cluster (as ``mask`` of ``cluster_image``).
    wavelengths : (C,) ndarray, or a sequence of them (one per image, or None), optional
        Band wavelengths; where several images give them they must agree.
    sampling : {"pixels", "equal"}
        "pixels": every pixel counts the same (an image with more pixels weighs more), and
        the result equals clustering the concatenated pixels. "equal": every image weighs
        the same in the fit — an equal number of its valid pixels, drawn at random, is
        clustered — and each image is then labelled whole with that clustering.
    **keywords
        Passed on to ``cluster_image`` (``preprocessing``, ``palette``, ``max_samples``...).

    Returns
    -------
    JointResult

    Raises
    ------
    ClusteringError
        No image, images with different numbers of channels or different wavelengths, masks
        that do not fit, or what ``cluster_image`` raises for the joined pixels.
    """
    images = list(images)
    if not images:
        raise ClusteringError("joint clustering needs at least one image")
    if sampling not in ("pixels", "equal"):
        raise ValueError(f"sampling is 'pixels' or 'equal', not {sampling!r}")
    masks = [None] * len(images) if masks is None else list(masks)
    if len(masks) != len(images):
        raise ClusteringError(f"{len(masks)} masks for {len(images)} images")
    columns = [_column(image, channel_axis, i) for i, image in enumerate(images)]
    planes = [None] * len(images)  # the alpha planes of RGBA images beside others
    if isinstance(alpha, (list, tuple)):
        if len(alpha) != len(images):
            raise ClusteringError(f"{len(alpha)} alpha flags for {len(images)} images")
        if len(set(map(bool, alpha))) > 1:  # mixed: alpha is transparency, not a channel
            # the planes read once (a picture's: small), for the masks and the recolouring
            planes = [
                np.asarray(c[:, 0, -1]) if a else None for c, a in zip(columns, alpha, strict=True)
            ]
            columns = [c[..., :-1] if a else c for c, a in zip(columns, alpha, strict=True)]
            masks = [
                _opaque(m, p, _spatial_shape(image, channel_axis), i)
                for i, (m, p, image) in enumerate(zip(masks, planes, images, strict=True))
            ]
            alpha = False
        else:  # all alike: as one flag (None still means: find out)
            alpha = alpha[0]
    channels = {column.shape[-1] for column in columns}
    if len(channels) > 1:
        raise ClusteringError(
            "the images have different numbers of channels (bands): "
            + ", ".join(str(column.shape[-1]) for column in columns)
        )
    _check_depths(columns)
    shapes = [_spatial_shape(image, channel_axis) for image in images]
    allowed = [
        _mask_column(mask, shape, i)
        for i, (mask, shape) in enumerate(zip(masks, shapes, strict=True))
    ]
    wl = _shared_wavelengths(wavelengths, len(images))
    lazy = any(is_lazy(column) for column in columns)
    if sampling == "equal":
        allowed_fit = _equal_shares(columns, allowed, alpha, random_state)
    else:
        allowed_fit = allowed
    joined = _concatenate(columns, lazy)
    joint_mask = None
    if any(m is not None for m in allowed_fit):
        joint_mask = np.concatenate(
            [
                np.ones((c.shape[0], 1), bool) if m is None else m
                for c, m in zip(columns, allowed_fit, strict=True)
            ]
        )
    fitted = cluster_image(
        joined,
        n_clusters,
        channel_axis=-1,
        mask=joint_mask,
        alpha=alpha,
        wavelengths=wl,
        random_state=random_state,
        progress=progress,
        **keywords,
    )
    # the pictures' last channel was their alpha plane (not a band): their recoloured images
    # keep it, whether or not a pixel was left out
    own_alpha = fitted.centers.shape[-1] < columns[0].shape[-1]
    if sampling == "pixels":
        results = _split(fitted, columns, shapes, own_alpha)
    else:  # labelled whole with the model fitted on the equal shares
        results = [
            _shared(
                apply_model(column, fitted.model, channel_axis=-1, mask=mask, alpha=alpha),
                fitted,
                shape,
                own_alpha,
            )
            for column, mask, shape in zip(columns, allowed, shapes, strict=True)
        ]
    results = [
        r if plane is None else replace(r, recolored=_with_alpha(r, plane))
        for r, plane in zip(results, planes, strict=True)
    ]
    counts = np.stack([r.counts for r in results])
    total = counts.sum(axis=0)
    return JointResult(results=results, counts=counts, total=total, model=fitted.model)


def _column(image, channel_axis, index: int):
    """The image's pixels as a (pixels, 1, C) column (a view or a lazy reshape)."""
    if channel_axis is None:
        image = image[..., None]
        channel_axis = -1
    if image.ndim < 2:
        raise ClusteringError(f"image {index + 1} has shape {image.shape}: no pixels")
    if is_lazy(image):
        import dask.array as da

        moved = da.moveaxis(image, channel_axis, -1)
    else:
        moved = np.moveaxis(np.asarray(image), channel_axis, -1)
    return moved.reshape(-1, 1, moved.shape[-1])


def integer_depth(array) -> int | None:
    """Bits per value of an integer image (8 for uint8), None for other kinds: images that
    share clusters share it (:func:`cluster_images`)."""
    kind = np.dtype(array.dtype)
    return kind.itemsize * 8 if kind.kind in "ui" else None


def _check_depths(columns: list) -> None:
    """Refuse integer images of different bit depths: an 8-bit picture's values beside a
    16-bit one's are all near black, and made one cluster. Scaling them for the fit alone
    would leave the shared model, and every image's statistics, in units one of them does
    not have; the user converts one (``x.astype(np.uint16) * 257``) and says what is meant."""
    depths = {integer_depth(c) for c in columns} - {None}
    if len(depths) > 1:
        names = ", ".join(f"{depth}-bit" for depth in sorted(depths))
        raise ClusteringError(
            f"the images hold integers of different depths ({names}): their values are not "
            "on one scale (255 is white in 8 bits, nearly black in 16); convert them to one "
            "depth first (an 8-bit value v is 257 v in 16 bits)"
        )


def _opaque(mask, plane, shape: tuple, index: int):
    """An image's mask and its alpha plane's opaque pixels: what of it is clustered."""
    if plane is None:
        return mask
    opaque = plane.reshape(shape) > 0
    if mask is None:
        return opaque
    return opaque & _mask_column(mask, shape, index).reshape(shape)


def _with_alpha(result: ClusterResult, plane) -> np.ndarray:
    """An RGBA image's recoloured picture with its own alpha plane (:func:`recolor`)."""
    labels = np.asarray(result.labels)
    return recolor(labels, result.colors, plane.reshape(labels.shape))


def _spatial_shape(image, channel_axis) -> tuple:
    if channel_axis is None:
        return tuple(image.shape)
    axis = channel_axis % image.ndim
    return tuple(n for i, n in enumerate(image.shape) if i != axis)


def _mask_column(mask, shape: tuple, index: int):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ClusteringError(f"mask {index + 1} has shape {mask.shape}, its image {shape}")
    return mask.astype(bool).reshape(-1, 1)


def _shared_wavelengths(wavelengths, n_images: int):
    if wavelengths is None:
        return None
    given = wavelengths
    if not (isinstance(given, (list, tuple)) and len(given) == n_images):
        return np.asarray(given, dtype=np.float64).ravel()
    known = [np.asarray(w, dtype=np.float64).ravel() for w in given if w is not None]
    if not known:
        return None
    first = known[0]
    for other in known[1:]:
        if other.shape != first.shape or not np.allclose(other, first, rtol=1e-6, atol=1e-9):
            raise ClusteringError("the images' wavelengths differ: they cannot share clusters")
    return first


def _equal_shares(columns, allowed, alpha, seed: int) -> list:
    """Per image, a mask of the same number of its valid pixels, drawn at random: the pixels
    the fit sees when every image weighs the same."""
    rng = np.random.default_rng(seed)
    valid = []
    for column, mask in zip(columns, allowed, strict=True):
        ok = np.ones(column.shape[0], bool) if mask is None else mask[:, 0].copy()
        if alpha or (alpha is None and column.shape[-1] == 4 and _is_integer(column)):
            ok &= np.asarray(column[:, 0, -1]) > 0
        valid.append(np.flatnonzero(ok))
    share = min(len(v) for v in valid)
    if share == 0:
        raise ClusteringError("an image has no pixel to cluster: it cannot weigh the same")
    masks = []
    for column, where in zip(columns, valid, strict=True):
        chosen = np.zeros((column.shape[0], 1), bool)
        chosen[rng.choice(where, share, replace=False), 0] = True
        masks.append(chosen)
    return masks


def _is_integer(column) -> bool:
    return np.issubdtype(column.dtype, np.integer)


def _concatenate(columns, lazy: bool):
    if lazy:
        import dask.array as da

        return da.concatenate(
            [c if is_lazy(c) else da.from_array(c, chunks=(1 << 20, 1, -1)) for c in columns]
        )
    return np.concatenate(columns)


def _split(fitted: ClusterResult, columns, shapes, own_alpha: bool) -> list:
    """The joined result cut back into one result per image."""
    results, start = [], 0
    for column, shape in zip(columns, shapes, strict=True):
        stop = start + column.shape[0]
        labels = fitted.labels[start:stop, 0].reshape(shape)
        recolored = fitted.recolored[start:stop, 0].reshape(*shape, fitted.recolored.shape[-1])
        one = replace(fitted, labels=labels, recolored=recolored)
        results.append(_shared(one, fitted, shape, own_alpha))
        start = stop
    return results


def _shared(result: ClusterResult, fitted: ClusterResult, shape: tuple, own_alpha: bool):
    """One image's result: its labels and recoloured image, the joint centres, spreads,
    colours and model, and its own counts. ``own_alpha``: the recoloured image's alpha is
    the picture's own, kept; else it only makes left-out pixels see-through."""
    labels = result.labels.reshape(shape)
    recolored = result.recolored.reshape(*shape, result.recolored.shape[-1])
    counts = _counts(labels, fitted.n_clusters)
    if recolored.shape[-1] == 4 and not own_alpha and counts.sum() == labels.size:
        # see-through where the joint fit left out some other image's pixels: none of this
        # one's, so RGB, as its run alone gives
        recolored = recolored[..., :3]
    return replace(
        fitted,
        labels=labels,
        recolored=recolored,
        counts=counts,
        params={**fitted.params, "joint": True},
    )


def _counts(labels, k: int) -> np.ndarray:
    if is_lazy(labels):
        import dask.array as da

        counts = da.bincount(labels.ravel().astype(np.int64), minlength=k + 1).compute()
    else:
        counts = np.bincount(np.asarray(labels).ravel(), minlength=k + 1)
    return counts[1 : k + 1].astype(np.int64)
