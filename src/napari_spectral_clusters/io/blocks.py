"""How an array a file stores in chunks (HDF5, zarr) is cut into dask blocks: storage chunks
coalesced into blocks of tens of MB, whole spectra where they fit, aligned to the chunks."""

from __future__ import annotations

import math

__all__ = ["BLOCK_BYTES", "MAX_BLOCKS", "MAX_CHUNKS", "block_chunks"]

#: Blocks hold at most this many bytes (and usually more than half of it). Every block costs
#: a task, a read call and the engine's per-block work: MATLAB-like writers store 128 x 64 x
#: 64-element chunks (2 MiB of float32), and clustering a 3.2 GB cube over ~1,600 such blocks
#: ran at ~90 MB/s, 29x slower than one whole h5py read. Tens of MB amortise those costs,
#: while the few blocks per core in memory at once (the threaded scheduler, ``store_blocks``)
#: stay small beside a laptop's memory.
BLOCK_BYTES = 64 * 2**20
#: At most this many blocks, and storage chunks, per array: a damaged header declaring an axis
#: of 2**32 in chunks of 5 would otherwise have napari try to open 100,000 chunk files for one
#: band (and dask build a graph of as many tasks), hanging. 2**24 chunks of 1 MB are 16 TB.
MAX_BLOCKS = 2**20
MAX_CHUNKS = 2**24


def block_chunks(
    shape: tuple[int, ...],
    itemsize: int,
    storage_chunks: tuple[int, ...] | None = None,
    *,
    band_axis: int | None = None,
) -> tuple[tuple[int, ...], ...]:
    """Dask chunks for an array stored in ``storage_chunks``: whole chunks coalesced into
    blocks of at most :data:`BLOCK_BYTES`.

    Blocks are whole multiples of the storage chunks along every axis (the last block of an
    axis may be shorter), so no chunk is read or decompressed for two blocks. They grow first
    along ``band_axis`` (whole spectra per block, as the engine reads pixels), then along the
    fastest-varying axis to the slowest, so a block is a run of consecutive chunks where the
    band axis allows; along the axis where growth stops, blocks hold equal numbers of chunks.
    A block never holds less than one storage chunk, even one larger than the target.

    Parameters
    ----------
    shape : tuple of int
        The array's shape, in the order it is stored (C order: the last axis varies fastest).
    itemsize : int
        Bytes per element.
    storage_chunks : tuple of int, optional
        The chunk shape the file stores; None for a contiguous (unchunked) array, cut as if
        its chunks were single elements (into equal pieces of rows).
    band_axis : int, optional
        The axis holding the spectra (bands), when known.

    Returns
    -------
    tuple of tuple of int
        Block lengths along each axis, as ``dask.array.from_array`` takes ``chunks``: regular
        (equal blocks, the last one shorter), as zarr writes them.

    Examples
    --------
    A 3.2 GB float32 cube of 200 bands, stored bands-first in 128 x 64 x 64 chunks (~1,600 of
    them), makes 64 blocks of whole spectra, 52 MB each but the last:

    >>> from napari_spectral_clusters.io.blocks import block_chunks
    >>> chunks = block_chunks((200, 2000, 2000), 4, (128, 64, 64), band_axis=0)
    >>> [c[0] for c in chunks], [len(c) for c in chunks]
    ([200, 64, 1024], [1, 32, 2])
    """
    # dask.array.core.normalize_chunks("auto", previous_chunks=...) grows all free axes in
    # proportion (cube-shaped blocks, neither whole spectra nor runs of chunks), and once
    # axes are pinned whole (-1) it rounds the others to lengths that are not multiples of
    # the storage chunks whenever one slab of chunks exceeds its limit (dask 2026.8).
    ndim = len(shape)
    if 0 in shape:
        return tuple((n,) for n in shape)
    unit = [max(1, min(c, n)) for c, n in zip(storage_chunks or (1,) * ndim, shape, strict=True)]
    n_chunks = math.prod(_ceil_div(n, u) for n, u in zip(shape, unit, strict=True))
    if storage_chunks is not None and n_chunks > MAX_CHUNKS:
        raise ValueError(
            f"an array of shape {shape} in chunks of {tuple(storage_chunks)} has {n_chunks:,} "
            f"chunks, more than the {MAX_CHUNKS:,} an array may have (a damaged header?)"
        )
    block = list(unit)
    band = None if band_axis is None else band_axis % ndim
    order = [a for a in range(ndim - 1, -1, -1) if a != band]
    if band is not None:
        order.insert(0, band)
    for axis in order:
        slab = itemsize * math.prod(block) // block[axis]  # bytes of one element along axis
        n = _ceil_div(shape[axis], unit[axis])  # storage chunks along the axis
        k = min(n, max(1, BLOCK_BYTES // (slab * unit[axis])))
        if k < n:  # growth stops here: as few blocks as fit, each of equal chunk count
            block[axis] = unit[axis] * _ceil_div(n, _ceil_div(n, k))
            break
        block[axis] = shape[axis]
    n_blocks = math.prod(_ceil_div(n, b) for n, b in zip(shape, block, strict=True))
    if n_blocks > MAX_BLOCKS:  # 64 TiB and more: a damaged header, not a cube
        raise ValueError(
            f"an array of shape {shape} declared in chunks of {tuple(storage_chunks or ())} "
            f"makes {n_blocks:,} blocks, more than the {MAX_BLOCKS:,} an array may have"
        )
    return tuple(_equal_blocks(n, b) for n, b in zip(shape, block, strict=True))


def _equal_blocks(length: int, block: int) -> tuple[int, ...]:
    """Blocks of ``block`` elements along an axis of ``length``, the last one shorter."""
    whole, rest = divmod(length, block)
    return (block,) * whole + ((rest,) if rest else ())


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
