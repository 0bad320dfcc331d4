"""Mutation fuzzing of the napari reader (issue 14): damaged files must never take napari down.

What it does
------------
Takes the real files in ``tests/data`` (``matlab/*.mat``, ``hsi/*.mat``, every ``png/**/*.png``)
and a few small zarr stores (and one v7.3 ``.mat``) it writes itself into a temporary folder,
and makes mutants of them: bit flips, random bytes written or inserted at random offsets,
truncation, chunks of bytes duplicated or deleted, "interesting" integers (0, -1, 0x7fffffff,
2**31, 2**32-1, large lengths, the file's own length) written over 1/2/4/8-byte fields. It
also mutates inside the formats: a MAT v5 ``miCOMPRESSED`` element is inflated, mutated and
deflated again (or stored uncompressed); a PNG's header fields, chunks and inflated pixel
stream are mutated with the CRCs fixed, and APNG chunks are inserted; a zarr store's
``.zarray``/``.zgroup``/``.zattrs``/``zarr.json`` values (shape, chunks, dtype, fill_value,
compressor, codecs, the JSON layer record our writer keeps in the attributes) and its chunk
files are mutated, deleted, swapped or added.

Each mutant goes through ``napari_spectral_clusters._napari.reader.read_files(path)`` in a
child process capped with ``RLIMIT_AS`` (6 GiB: the reader's own child for v4-v7 ``.mat``
files gets ``SPECTRAL_CLUSTERS_EAGER_BYTES`` = 1 GiB plus its 2 GiB overhead) and no core
dumps, with a wall-clock timeout per mutant (20 s). A child reads a batch of mutants (50) and
is replaced after it, or as soon as it crashes or hangs. The reader's ``show_error`` and
``show_warning`` are patched to record the notifications. Every outcome is one of:

* ``layers``: a list of ``(data, kwargs, kind)`` tuples, each of which napari takes: a small
  slice of ``data`` turns into a numpy array of the slice's shape, and
  ``napari.layers.Image/Labels(data, **kwargs)`` accepts it;
* ``refused``: ``[(None,)]`` and exactly one ``show_error``, naming the file;
* ``unhandled exception``: an exception escaped ``read_files``;
* ``crash``: the child died by a signal (or exited);
* ``hang``: the mutant took longer than the timeout;
* ``memory``: a MemoryError, or the child killed for memory;
* ``bad layer``: a returned layer napari would fail on (slice, array or constructor);
* ``bad refusal``: ``[(None,)]`` without exactly one error naming the file.

The first two are fine. Every other mutant is kept in ``OUT/<class>/`` (default
``/tmp/fuzz_out``) beside a ``.json`` saying which file, which mutations and what happened;
``OUT/results.jsonl`` holds every mutant's outcome. The ``OUT/<class>/`` folders of a previous
run are emptied first. Runs are deterministic per ``--seed`` (mutant ``i`` depends only on
the seed and ``i``, whatever ``--jobs``).

How to run
----------
From the repository::

    uv run --locked --extra testing python tools/fuzz_readers.py --n 100        # smoke run
    uv run --locked --extra testing python tools/fuzz_readers.py \
        [--n 2000] [--seed 0] [--surface mat|png|zarr|all] [--out DIR] [--jobs 2]

``--surface`` picks the seed files (``mat`` covers v4-v7 and v7.3); mutants are shared out
evenly between the surfaces. POSIX only (resource limits, process groups).

How long
--------
Measured with ``--jobs 2`` on two cores: about 0.15 s of wall time per mutant (0.05 s for a
PNG, 0.2-0.4 s for a ``.mat`` or zarr store), plus ~3 s to start each child (and ~1.5 s for
the reader's own ``.mat`` child); every hang costs the full timeout. ``--n 100`` takes about
35 s, ``--n 3000`` about 7 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

SURFACES = ("mat-v5", "mat-v7.3", "png", "zarr")
SURFACE_CHOICES = {
    "mat": ("mat-v5", "mat-v7.3"),
    "png": ("png",),
    "zarr": ("zarr",),
    "all": SURFACES,
}
CLASSES = ("layers", "refused", "unhandled exception", "crash", "hang", "memory")
CLASSES += ("bad layer", "bad refusal")
OK = ("layers", "refused")

GiB = 2**30
CHILD_ADDRESS_SPACE = 6 * GiB
READER_EAGER_BYTES = GiB
TIMEOUT = 20.0
STARTUP_TIMEOUT = 120.0
BATCH = 50

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INTERESTING = (0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 2**31)
INTERESTING += (2**32 - 1, 2**32, 2**30, 2**40, 2**48, 2**62, 2**63 - 1, 2**63, 2**64 - 1)


# --------------------------------------------------------------------------- byte mutations


def _interesting(rng: random.Random, size: int) -> int:
    """An interesting integer: a boundary value, or one about the file's own length."""
    if rng.random() < 0.2:
        return rng.choice((size, size + 1, size - 8, size * 2, size // 2))
    return rng.choice(INTERESTING)


def flip_bits(rng: random.Random, b: bytearray) -> str:
    flips = [rng.randrange(len(b) * 8) for _ in range(rng.randint(1, 8))]
    for bit in flips:
        b[bit // 8] ^= 1 << (bit % 8)
    return f"flip bits {','.join(f'{bit // 8}.{bit % 8}' for bit in flips[:4])}"


def random_bytes(rng: random.Random, b: bytearray) -> str:
    n = min(rng.choice((1, 1, 2, 4, 8, 16, 64)), len(b))
    at = rng.randrange(len(b) - n + 1)
    b[at : at + n] = rng.randbytes(n)
    return f"{n} random bytes at {at}"


def insert_bytes(rng: random.Random, b: bytearray) -> str:
    n = rng.choice((1, 3, 8, 100, 4096))
    at = rng.randrange(len(b) + 1)
    b[at:at] = rng.randbytes(n)
    return f"insert {n} random bytes at {at}"


def truncate(rng: random.Random, b: bytearray) -> str:
    at = rng.randrange(len(b))
    del b[at:]
    return f"truncate to {at}"


def duplicate_chunk(rng: random.Random, b: bytearray) -> str:
    start = rng.randrange(len(b))
    n = rng.randint(1, min(1024, len(b) - start))
    at = rng.randrange(len(b) + 1)
    b[at:at] = b[start : start + n]
    return f"duplicate [{start}:{start + n}] at {at}"


def delete_chunk(rng: random.Random, b: bytearray) -> str:
    start = rng.randrange(len(b))
    n = rng.randint(1, min(1024, len(b) - start))
    del b[start : start + n]
    return f"delete [{start}:{start + n}]"


def interesting_int(rng: random.Random, b: bytearray, endian: str | None = None) -> str:
    width = rng.choice([w for w in (1, 2, 4, 8) if w <= len(b)])
    value = _interesting(rng, len(b))
    endian = endian or rng.choice("<>")
    at = rng.randrange(len(b) - width + 1)
    if rng.random() < 0.7:  # most fields are aligned
        at -= at % width
    fmt = endian + {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
    b[at : at + width] = struct.pack(fmt, value % 2 ** (8 * width))
    return f"int {value:#x} as {fmt} at {at}"


BYTE_OPS = (
    (flip_bits, 3),
    (random_bytes, 3),
    (insert_bytes, 1),
    (truncate, 2),
    (duplicate_chunk, 1),
    (delete_chunk, 1),
    (interesting_int, 5),
)


def mutate_bytes(rng: random.Random, b: bytearray, endian: str | None = None) -> str:
    """Apply one byte-level mutation to ``b`` in place; what it did."""
    if not b:
        b.extend(rng.randbytes(rng.choice((1, 8, 128))))
        return f"empty: {len(b)} random bytes"
    op = rng.choices([op for op, _ in BYTE_OPS], [w for _, w in BYTE_OPS])[0]
    if op is interesting_int:
        return op(rng, b, endian)
    return op(rng, b)


def mutate_region(rng: random.Random, b: bytearray, start: int, endian: str | None = None):
    """One byte mutation of ``b[start:]`` (offsets relative to ``start``, so aligned there)."""
    if start >= len(b):
        return mutate_bytes(rng, b, endian)
    region = b[start:]
    what = mutate_bytes(rng, region, endian)
    b[start:] = region
    return f"{what} (after byte {start})" if start else what


def _n_ops(rng: random.Random) -> int:
    return rng.choices((1, 2, 3), (60, 25, 15))[0]


# --------------------------------------------------------------------------- .mat mutants


def _mat5_elements(b: bytes) -> tuple[str, list[tuple[int, int, int]]]:
    """The byte order and the top-level (offset, type, nbytes) elements of a MAT v5 file."""
    if len(b) < 128 or b[:6] != b"MATLAB" or b[126:128] not in (b"IM", b"MI"):
        return "<", []
    endian = "<" if b[126:128] == b"IM" else ">"
    elements, at = [], 128
    while at + 8 <= len(b):
        typ, n = struct.unpack_from(endian + "II", b, at)
        if typ >> 16 or at + 8 + n > len(b):
            break
        elements.append((at, typ, n))
        at += 8 + n + (0 if typ == 15 else -n % 8)
    return endian, elements


def mutate_mat5(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    b, done = bytearray(data), []
    for _ in range(_n_ops(rng)):
        endian, elements = _mat5_elements(b)
        compressed = [e for e in elements if e[1] == 15]
        if compressed and rng.random() < 0.6:
            done.append(_mutate_compressed_element(rng, b, endian, rng.choice(compressed)))
        elif elements and rng.random() < 0.7:  # the data, not the text header
            done.append(mutate_region(rng, b, 128, endian))
        else:
            done.append(mutate_bytes(rng, b, endian if elements else None))
    return bytes(b), done


def _mutate_compressed_element(rng, b: bytearray, endian: str, element) -> str:
    at, _, n = element
    try:
        inner = bytearray(zlib.decompress(bytes(b[at + 8 : at + 8 + n])))
    except zlib.error:
        return mutate_region(rng, b, 128, endian)
    what = [mutate_bytes(rng, inner, endian) for _ in range(rng.choice((1, 1, 2)))]
    if rng.random() < 0.75:
        packed = zlib.compress(bytes(inner), 1)
        new = struct.pack(endian + "II", 15, len(packed)) + packed
        how = "recompressed"
    else:
        new, how = bytes(inner), "stored uncompressed"
    b[at : at + 8 + n] = new
    return f"miCOMPRESSED element at {at} inflated: {'; '.join(what)}; {how}"


def mutate_mat73(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    b, done = bytearray(data), []
    for _ in range(_n_ops(rng)):
        start = 512 if rng.random() < 0.85 else 0  # past the MATLAB header's user block
        done.append(mutate_region(rng, b, start, "<"))
    return bytes(b), done


# --------------------------------------------------------------------------- .png mutants


def _png_chunks(b: bytes) -> list[list] | None:
    """[type, data] of every chunk of a well-formed PNG, else None."""
    if not b.startswith(PNG_SIGNATURE):
        return None
    chunks, at = [], 8
    while at + 12 <= len(b):
        n, typ = struct.unpack_from(">I4s", b, at)
        if at + 12 + n > len(b):
            return None
        chunks.append([typ, bytes(b[at + 8 : at + 8 + n])])
        at += 12 + n
        if typ == b"IEND":
            return chunks
    return None


def _png_build(chunks: list[list], fix_crc: bool) -> bytes:
    parts = [PNG_SIGNATURE]
    for typ, data in chunks:
        crc = zlib.crc32(typ + data) if fix_crc else zlib.crc32(typ + data) ^ 0x1
        parts.append(struct.pack(">I", len(data)) + typ + data + struct.pack(">I", crc))
    return b"".join(parts)


IHDR_FIELDS = {  # name: (offset, width, values)
    "width": (0, 4, (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 65536, 100_000, 3)),
    "height": (4, 4, (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 65536, 100_000, 3)),
    "bit depth": (8, 1, (0, 1, 2, 3, 4, 5, 8, 16, 32, 255)),
    "colour type": (9, 1, (0, 1, 2, 3, 4, 5, 6, 7, 8, 255)),
    "compression": (10, 1, (1, 255)),
    "filter": (11, 1, (1, 255)),
    "interlace": (12, 1, (0, 1, 2, 255)),
}


def _ihdr_field(rng, chunks) -> str:
    ihdr = [c for c in chunks if c[0] == b"IHDR"]
    if not ihdr or len(ihdr[0][1]) < 13:
        return ""
    name = rng.choice(list(IHDR_FIELDS))
    at, width, values = IHDR_FIELDS[name]
    data = bytearray(ihdr[0][1])
    old = int.from_bytes(data[at : at + width], "big")
    value = rng.choice((*values, old + 1, max(old - 1, 0), old * 2))
    data[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "big")
    ihdr[0][1] = bytes(data)
    return f"IHDR {name} {old} -> {value}"


def _idat_stream(rng, chunks) -> str:
    idat = [i for i, c in enumerate(chunks) if c[0] == b"IDAT"]
    if not idat:
        return ""
    try:
        raw = bytearray(zlib.decompress(b"".join(chunks[i][1] for i in idat)))
    except zlib.error:
        return ""
    what = mutate_bytes(rng, raw, ">")
    packed = zlib.compress(bytes(raw), 6)
    pieces = (
        [packed]
        if rng.random() < 0.7
        else [packed[: len(packed) // 2], packed[len(packed) // 2 :]]
    )
    chunks[idat[0] : idat[-1] + 1] = [[b"IDAT", p] for p in pieces]
    return f"IDAT pixels inflated: {what}; recompressed"


def _chunk_data(rng, chunks) -> str:
    i = rng.randrange(len(chunks))
    data = bytearray(chunks[i][1])
    what = mutate_bytes(rng, data, ">")
    chunks[i][1] = bytes(data)
    return f"{chunks[i][0].decode('latin-1')} chunk #{i} data: {what}"


SYNTHETIC_CHUNKS = tuple(
    t.encode()
    for t in "acTL fcTL fdAT PLTE tRNS sBIT pHYs iCCP zTXt iTXt tEXt eXIf IEND IDAT "
    "IHDR gAMA sPLT".split()
)


def _synthetic_chunk(rng) -> list:
    def u32():
        return struct.pack(">I", rng.choice((0, 1, 2, 7, 2**31 - 1, 2**31, 2**32 - 1)))

    typ = rng.choice(SYNTHETIC_CHUNKS)
    if typ == b"acTL":
        data = u32() + u32()
    elif typ == b"fcTL":
        data = b"".join(u32() for _ in range(5)) + rng.randbytes(6)
    elif typ == b"pHYs":
        data = u32() + u32() + bytes([rng.choice((0, 1, 2, 255))])
    elif typ in (b"iCCP", b"zTXt"):
        payload = zlib.compress(rng.randbytes(rng.choice((0, 16, 5000))))
        data = b"name\x00\x00" + (payload if rng.random() < 0.5 else payload[:-3])
    elif typ in (b"tEXt", b"iTXt"):
        text = rng.choice(("{", '{"layer": "labels"}', "x" * 70_000, "\x00"))
        data = b"napari-spectral-clusters\x00" + (b"\x00\x00\x00\x00" if typ == b"iTXt" else b"")
        data += text.encode("latin-1")
    else:
        data = rng.randbytes(rng.choice((0, 1, 3, 13, 256 * 3, 800)))
    return [typ, data]


def _chunk_structure(rng, chunks) -> str:
    op = rng.choice(("delete", "duplicate", "swap", "insert", "insert", "apng"))
    if op == "insert":
        chunk = _synthetic_chunk(rng)
        at = rng.choice((1, rng.randrange(1, len(chunks) + 1)))
        chunks.insert(at, chunk)
        return f"insert {chunk[0].decode('latin-1')} ({len(chunk[1])} bytes) at chunk #{at}"
    if op == "apng":  # an animation control chunk, a frame control chunk, maybe a frame
        frames = rng.choice((0, 1, 2, 2**31, 2**32 - 1))
        actl = [b"acTL", struct.pack(">II", frames, 0)]
        w = rng.choice((0, 1, 32, 2**31, 2**32 - 1))
        h = rng.choice((0, 1, 32, 2**31))
        x = rng.choice((0, 1, 2**31))
        fctl = [b"fcTL", struct.pack(">IIIIIHHBB", 0, w, h, x, 0, 1, 10, 0, 0)]
        chunks.insert(1, actl)
        idat = next((i for i, c in enumerate(chunks) if c[0] == b"IDAT"), len(chunks) - 1)
        chunks.insert(idat, fctl)
        if rng.random() < 0.5:
            idat_data = next((c[1] for c in chunks if c[0] == b"IDAT"), b"")
            chunks.insert(len(chunks) - 1, [b"fdAT", struct.pack(">I", 1) + idat_data])
        return f"APNG acTL frames={frames}, fcTL {w}x{h} at x={x}"
    if len(chunks) < 2:
        return ""
    i = rng.randrange(len(chunks))
    if op == "delete":
        typ = chunks.pop(i)[0]
        return f"delete chunk #{i} {typ.decode('latin-1')}"
    if op == "duplicate":
        chunks.insert(rng.randrange(len(chunks) + 1), list(chunks[i]))
        return f"duplicate chunk #{i} {chunks[i][0].decode('latin-1')}"
    j = rng.randrange(len(chunks))
    chunks[i], chunks[j] = chunks[j], chunks[i]
    return f"swap chunks #{i} and #{j}"


def mutate_png(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    b, done = bytes(data), []
    for _ in range(_n_ops(rng)):
        chunks = _png_chunks(b)
        if chunks is None or rng.random() < 0.25:
            raw = bytearray(b)
            done.append(f"raw: {mutate_bytes(rng, raw, '>')}")
            b = bytes(raw)
            continue
        op = rng.choice((_ihdr_field, _ihdr_field, _idat_stream, _chunk_data, _chunk_structure))
        what = op(rng, chunks) or _chunk_data(rng, chunks)
        fix = rng.random() < 0.9
        b = _png_build(chunks, fix_crc=fix)
        done.append(what if fix else f"{what} (CRC left wrong)")
    return b, done


# --------------------------------------------------------------------------- zarr mutants

METADATA_FILES = (".zarray", ".zgroup", ".zattrs", "zarr.json", ".zmetadata")
KNOWN_KEYS = set(
    "shape chunks dtype data_type fill_value compressor compressors codecs configuration "
    "chunk_shape chunk_grid chunk_key_encoding separator order filters zarr_format node_type "
    "dimension_separator id level endian blocksize typesize index_codecs index_location".split()
)
DTYPES = (
    *"<f8 >f8 <f2 <i2 >u4 |b1 |u1 <i8 <c16 <U8 |S4 |O <M8[ns] <m8[s] |V16 float64 int8".split(),
    *"bool uint64 complex128 string bogus".split(),
    "",
)
JSON_INTS = (0, -1, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**63)
CODECS = ("zlib", "gzip", "blosc", "zstd", "lz4", "bz2", "lzma", "crc32c", "bytes", "transpose")
CODECS += ("sharding_indexed", "vlen-utf8", "nope")


def _mutated_value(rng: random.Random, value, depth: int = 0):
    """Something else in the place of a JSON value: a boundary, a wrong type, a near miss."""
    if depth > 3 or rng.random() < 0.12:
        return rng.choice((None, 0, -1, "", [], {}, "NaN", 2**64, 1.5, True))
    if isinstance(value, bool):
        return rng.choice((not value, 2, "true", None))
    if isinstance(value, int):
        near = (value + 1, value * 1000, -value, float(value) + 0.5, str(value), [value])
        return rng.choice((*JSON_INTS, *near))
    if isinstance(value, float):
        return rng.choice((float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 3, "NaN"))
    if isinstance(value, str):
        return rng.choice(
            (*DTYPES, *CODECS, value + "x", value[:-1], value.upper(), "x" * 10_000, "\x00")
        )
    if isinstance(value, list):
        new = list(value)
        op = rng.choice(("empty", "drop", "dup", "elem", "elem", "elem", "append", "nest"))
        if op == "empty" or not new:
            return [] if new else [_mutated_value(rng, 1, depth + 1)]
        i = rng.randrange(len(new))
        if op == "drop":
            del new[i]
        elif op == "dup":
            new.insert(i, new[i])
        elif op == "elem":
            new[i] = _mutated_value(rng, new[i], depth + 1)
        elif op == "append":
            new.append(rng.choice((0, 1, 2**31, -1, 7)))
        else:
            new = [new]
        return new
    if isinstance(value, dict):
        new = dict(value)
        op = rng.choice(("drop", "add", "elem", "elem"))
        if op == "drop" and new:
            del new[rng.choice(list(new))]
        elif op == "add" or not new:
            new[rng.choice(("id", "name", "configuration", "extra"))] = rng.choice(CODECS)
        else:
            key = rng.choice(list(new))
            new[key] = _mutated_value(rng, new[key], depth + 1)
        return new
    return rng.choice((0, "", [], {"id": rng.choice(CODECS)}))


def _paths(node, prefix=()):
    """The path (keys and indices) to every node of a JSON tree."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _last_key(path: tuple) -> str | None:
    return next((p for p in reversed(path) if isinstance(p, str)), None)


def _mutate_json(rng: random.Random, doc, known: set) -> tuple[object, str]:
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return _mutated_value(rng, doc), "whole document replaced"
    preferred = [p for p in paths if _last_key(p) in known]
    path = rng.choice(preferred if preferred and rng.random() < 0.75 else paths)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    old = parent[path[-1]]
    if isinstance(parent, dict) and rng.random() < 0.1:
        del parent[path[-1]]
        return doc, f"{'.'.join(map(str, path))} deleted"
    new = _mutated_value(rng, old)
    parent[path[-1]] = new
    return doc, f"{'.'.join(map(str, path))}: {_short(old)} -> {_short(new)}"


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _store_files(store: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in store.rglob("*") if p.is_file())
    meta = [p for p in files if p.name in METADATA_FILES]
    return meta, [p for p in files if p.name not in METADATA_FILES]


def _layer_records(doc) -> list[tuple]:
    """Paths to the JSON-in-a-string layer records (``x_metadata``) in attributes."""
    found = []
    for path in _paths(doc):
        value = doc
        for p in path:
            value = value[p]
        if isinstance(value, str) and value.startswith("{"):
            try:
                if isinstance(json.loads(value), dict):
                    found.append(path)
            except ValueError:
                pass
    return found


def mutate_zarr(rng: random.Random, store: Path) -> list[str]:
    """Mutate the store folder in place; what was done."""
    done = []
    for _ in range(_n_ops(rng)):
        meta, chunks = _store_files(store)
        op = rng.choices(
            ("json", "record", "json-bytes", "chunk", "chunk-file", "meta-delete"),
            (40, 15, 8, 22, 12, 3),
        )[0]
        if op in ("json", "record") and meta:
            target = rng.choice(meta)
            try:
                doc = json.loads(target.read_bytes())
            except ValueError:
                op = "json-bytes"
            else:
                records = _layer_records(doc)
                rel = target.relative_to(store)
                if op == "record" and records:
                    path = rng.choice(records)
                    parent = doc
                    for p in path[:-1]:
                        parent = parent[p]
                    inner, what = _mutate_json(rng, json.loads(parent[path[-1]]), set())
                    parent[path[-1]] = json.dumps(inner)
                    done.append(f"{rel} layer record {path[-1]}: {what}")
                else:
                    doc, what = _mutate_json(rng, doc, KNOWN_KEYS)
                    done.append(f"{rel} {what}")
                target.write_text(json.dumps(doc))
                continue
        if op == "json-bytes" and meta:
            target = rng.choice(meta)
            b = bytearray(target.read_bytes())
            done.append(f"{target.relative_to(store)} bytes: {mutate_bytes(rng, b)}")
            target.write_bytes(bytes(b))
        elif op == "meta-delete" and meta:
            target = rng.choice(meta)
            target.unlink()
            done.append(f"{target.relative_to(store)} deleted")
        elif op == "chunk-file" and chunks:
            done.append(_chunk_file_op(rng, store, chunks))
        elif chunks:
            target = rng.choice(chunks)
            b = bytearray(target.read_bytes())
            done.append(f"chunk {target.relative_to(store)}: {mutate_bytes(rng, b)}")
            target.write_bytes(bytes(b))
    return done


def _chunk_file_op(rng: random.Random, store: Path, chunks: list[Path]) -> str:
    target = rng.choice(chunks)
    rel = target.relative_to(store)
    op = rng.choice(("delete", "empty", "swap", "add"))
    if op == "delete":
        target.unlink()
        return f"chunk {rel} deleted"
    if op == "empty":
        target.write_bytes(b"")
        return f"chunk {rel} emptied"
    if op == "swap":
        other = rng.choice(chunks)
        a, b = target.read_bytes(), other.read_bytes()
        target.write_bytes(b)
        other.write_bytes(a)
        return f"chunks {rel} and {other.relative_to(store)} swapped"
    name = rng.choice(("99", "-1", "4294967296", "0"))  # v2 "i.j.k", v3 "c/i/j/k"
    new = target.parent / ".".join([name] * (target.name.count(".") + 1))
    new.write_bytes(target.read_bytes() + rng.randbytes(rng.choice((0, 5))))
    return f"extra chunk file {new.relative_to(store)} (a copy of {rel})"


# --------------------------------------------------------------------------- seeds


def _hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(2056)
    return any(head[at : at + 8] == HDF5_SIGNATURE for at in (0, 512, 1024, 2048))


def make_seeds(tmp: Path) -> dict[str, list[Path]]:
    """The files to mutate, by surface: tests/data's, and a few written here."""
    mats = sorted((DATA / "matlab").glob("*.mat")) + sorted((DATA / "hsi").glob("*.mat"))
    seeds = {
        "mat-v5": [p for p in mats if not _hdf5(p)],
        "mat-v7.3": [p for p in mats if _hdf5(p)],
        "png": sorted((DATA / "png").rglob("*.png")),
        "zarr": [],
    }
    seeds["mat-v7.3"].append(_write_mat73_seed(tmp))
    seeds["zarr"] = _write_zarr_seeds(tmp)
    return seeds


def _seed_layers():
    import numpy as np

    from napari_spectral_clusters.io import ImageData

    rng = np.random.default_rng(0)
    cube = ImageData(
        "cube",
        rng.random((6, 12, 10), dtype=np.float32),
        channel_axis=0,
        axis_labels=("band", "y", "x"),
        metadata={"wavelengths": np.linspace(450.0, 700.0, 6), "channel_axis": 0},
        layer_state={"scale": [1.0, 0.5, 0.5], "translate": [0.0, 2.0, 3.0]},
    )
    colors = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200]], np.uint8)
    labels = ImageData(
        "cube clusters",
        rng.integers(0, 4, (12, 10)).astype(np.uint8),
        kind="labels",
        axis_labels=("y", "x"),
        metadata={"colors": colors, "n_clusters": 3},
        layer_state={"features": {"label": [1, 2, 3], "name": ["rock", "tree", "water"]}},
    )
    return [cube, labels]


def _write_mat73_seed(tmp: Path) -> Path:
    from napari_spectral_clusters.io.layers import layer_variables
    from napari_spectral_clusters.io.mat import write_mat73

    return write_mat73(tmp / "saved_v73.mat", layer_variables(_seed_layers()))


def _write_zarr_seeds(tmp: Path) -> list[Path]:
    import numcodecs
    import numpy as np
    import zarr

    from napari_spectral_clusters.io import write_zarr

    rng = np.random.default_rng(1)
    stores = [write_zarr(tmp / "saved_v3.zarr", _seed_layers())]

    plain = tmp / "plain_v2.zarr"  # one RGB-ish array, zlib chunks
    z = zarr.open_array(
        str(plain),
        mode="w",
        shape=(16, 16, 3),
        chunks=(8, 8, 3),
        dtype="uint16",
        zarr_format=2,
        compressor=numcodecs.Zlib(level=1),
    )
    z[...] = rng.integers(0, 4000, (16, 16, 3))
    stores.append(plain)

    group = tmp / "group_v2.zarr"  # nested group: a cube, its wavelengths, a ground truth
    g = zarr.open_group(str(group), mode="w", zarr_format=2)
    g.attrs["description"] = "fuzz seed"
    scans = g.create_group("scans")
    cube = scans.create_array("reflectance", shape=(10, 10, 6), chunks=(5, 5, 6), dtype="f8")
    cube[...] = rng.random((10, 10, 6))
    wl = scans.create_array("wavelength", shape=(6,), chunks=(6,), dtype="f4")
    wl[...] = np.linspace(400, 900, 6)
    gt = g.create_array("gt", shape=(10, 10), chunks=(10, 10), dtype="u1")
    gt[...] = rng.integers(0, 3, (10, 10))
    stores.append(group)

    sharded = tmp / "sharded_v3.zarr"  # bands-first int cube in shards of 2x2 chunks
    z = zarr.create_array(
        str(sharded), shape=(4, 16, 16), chunks=(2, 8, 8), shards=(4, 16, 16), dtype="int16"
    )
    z[...] = rng.integers(-100, 100, (4, 16, 16))
    stores.append(sharded)

    raw = tmp / "raw_v3.zarr"  # uncompressed chunks: mutated bytes decode to odd values
    z = zarr.create_array(
        str(raw), shape=(12, 12, 5), chunks=(6, 6, 5), dtype="float32", compressors=None
    )
    z[...] = rng.random((12, 12, 5))
    stores.append(raw)
    return stores


# --------------------------------------------------------------------------- mutants


def make_mutant(index: int, seed: int, surface: str, seeds: list[Path], work: Path) -> dict:
    """Write mutant ``index`` under ``work``; its record (path, source, mutations)."""
    rng = random.Random(f"{seed}/{index}")
    source = rng.choice(seeds)
    name = f"m{index:05d}_{source.name}"
    path = work / name
    if surface == "zarr":
        shutil.copytree(source, path)
        done = mutate_zarr(rng, path)
    else:
        mutate = {"mat-v5": mutate_mat5, "mat-v7.3": mutate_mat73, "png": mutate_png}[surface]
        data, done = mutate(rng, source.read_bytes())
        path.write_bytes(data)
    return {
        "index": index,
        "surface": surface,
        "source": str(source.relative_to(DATA) if source.is_relative_to(DATA) else source.name),
        "mutations": done,
        "path": str(path),
        "name": name,
    }


# --------------------------------------------------------------------------- the child


def _limit_self() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = CHILD_ADDRESS_SPACE if hard == resource.RLIM_INFINITY else min(hard, CHILD_ADDRESS_SPACE)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _tail(exc: BaseException, frames: int = 4) -> str:
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack))


def _is_no_layers(layer) -> bool:
    """napari's "handled, no layers" answer, ``(None,)``."""
    return isinstance(layer, tuple) and len(layer) == 1 and layer[0] is None


def child_main() -> int:
    """Read mutants named on stdin (one JSON line each); answer on the protocol pipe."""
    _limit_self()
    import faulthandler

    faulthandler.enable()  # a crash leaves its Python stack in the log
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what C libraries print goes to the log, not into the protocol

    import warnings

    import napari.layers
    import numpy as np

    from napari_spectral_clusters._napari import reader

    errors: list[str] = []
    warned: list[str] = []
    reader.show_error = lambda msg, *a, **k: errors.append(str(msg))
    reader.show_warning = lambda msg, *a, **k: warned.append(str(msg))

    def send(**msg):
        proto.write(json.dumps(msg, default=str) + "\n")

    def check_layer(layer) -> str | None:
        if not (isinstance(layer, tuple) and len(layer) == 3 and isinstance(layer[1], dict)):
            return f"not a (data, kwargs, kind) tuple: {type(layer).__name__} {_short(str(layer))}"
        data, kwargs, kind = layer
        if kind not in ("image", "labels"):
            return f"layer kind {kind!r}"
        try:
            shape = tuple(int(s) for s in data.shape)
            window = tuple(slice(0, 2) for _ in shape)
            small = np.asarray(data[window])
        except MemoryError:
            raise
        except Exception as exc:
            return f"slice of {kind} data: {type(exc).__name__}: {exc} [{_tail(exc)}]"
        if small.shape != tuple(min(s, 2) for s in shape):
            return f"slice of shape {shape} gave an array of shape {small.shape}"
        cls = napari.layers.Labels if kind == "labels" else napari.layers.Image
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls(data, **kwargs)
        except MemoryError:
            raise
        except Exception as exc:
            return (
                f"napari.layers.{cls.__name__}(data {shape} {getattr(data, 'dtype', '?')}, "
                f"{sorted(kwargs)}): {type(exc).__name__}: {exc} [{_tail(exc)}]"
            )
        return None

    def run(task) -> dict:
        errors.clear()
        warned.clear()
        try:
            out = reader.read_files(task["path"])
        except MemoryError as exc:
            return {"class": "memory", "detail": f"MemoryError escaped read_files [{_tail(exc)}]"}
        except BaseException as exc:
            return {
                "class": "unhandled exception",
                "detail": f"{type(exc).__name__}: {str(exc)[:300]}",
                "traceback": _tail(exc, 6),
            }
        send(index=task["index"], phase="checking layers")
        if isinstance(out, list) and len(out) == 1 and _is_no_layers(out[0]):
            if len(errors) == 1 and task["name"] in errors[0]:
                return {"class": "refused", "detail": errors[0][:300]}
            return {"class": "bad refusal", "detail": f"{len(errors)} errors: {errors[:3]}"}
        if not isinstance(out, list) or not out:
            return {"class": "bad layer", "detail": f"read_files returned {_short(str(out))}"}
        try:
            for layer in out:
                problem = check_layer(layer)
                if problem:
                    return {"class": "bad layer", "detail": problem}
        except MemoryError as exc:
            return {"class": "memory", "detail": f"MemoryError checking a layer [{_tail(exc)}]"}
        shapes = [
            f"{layer[2]} {'x'.join(map(str, layer[0].shape))} {layer[0].dtype}" for layer in out
        ]
        return {"class": "layers", "detail": ", ".join(shapes)}

    send(ready=True)
    for line in sys.stdin:
        task = json.loads(line)
        result = run(task)
        result.update(errors=errors[:3], warnings=warned[:3])
        send(index=task["index"], result=result)
    return 0


# --------------------------------------------------------------------------- the parent


class Worker:
    """One capped child process reading mutants, replaced after a batch, a crash or a hang."""

    def __init__(self, log: Path, batch: int, timeout: float):
        self.log_path = log
        self.log = open(log, "ab")  # the children's stderr
        self.batch = batch
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.served = 0
        self.buffer = b""

    def _start(self) -> None:
        env = dict(
            os.environ,
            SPECTRAL_CLUSTERS_EAGER_BYTES=str(READER_EAGER_BYTES),
            OPENBLAS_NUM_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            QT_QPA_PLATFORM="offscreen",
            PYTHONWARNINGS="ignore",
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            cwd=str(REPO),
            bufsize=0,
            start_new_session=True,  # its group holds the reader's own child too
        )
        self.served = 0
        self.buffer = b""
        try:
            ready = self._readline(time.monotonic() + STARTUP_TIMEOUT)
        except EOFError:
            ready = None
        if ready is None:
            self._kill()
            raise RuntimeError(f"the fuzz child did not start; see {self.log_path}")

    def _readline(self, deadline: float) -> dict | None:
        """The child's next message; None when the deadline passed, EOFError when it died."""
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def _kill(self) -> None:
        """Kill the child's process group (the child and the reader's child) and reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.close_child()
        self.log.close()

    def run(self, mutant: dict) -> dict:
        if self.proc is not None and self.served >= self.batch:
            self.close_child()
        if self.proc is None:
            self._start()
        self.log.flush()
        log_from = os.fstat(self.log.fileno()).st_size
        started = time.monotonic()
        try:
            self.proc.stdin.write((json.dumps(mutant) + "\n").encode())
        except BrokenPipeError:  # died after its last mutant: a fresh one takes this one
            self._kill()
            self._start()
            self.proc.stdin.write((json.dumps(mutant) + "\n").encode())
        self.served += 1
        phase = "reading"
        while True:
            try:
                msg = self._readline(started + self.timeout)
            except EOFError:
                result = self._died(log_from, phase)
                break
            if msg is None:  # still at it
                self._kill()
                result = {"class": "hang", "detail": f"over {self.timeout:.0f} s ({phase})"}
                break
            if "result" in msg:
                result = msg["result"]
                break
            phase = msg["phase"]
        result["seconds"] = round(time.monotonic() - started, 2)
        return result

    def close_child(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self._kill()

    def _died(self, log_from: int, phase: str) -> dict:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its pipe but lingers
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self._kill()  # the reader's child, if it outlived its parent
        with open(self.log_path, "rb") as fh:
            fh.seek(log_from)
            log = fh.read().decode("utf-8", "replace")
        lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
        where = next((ln for ln in lines if ln.startswith("File ")), "")
        stderr = (lines[-1] if lines else "")[:200]
        memory = any(
            s in log for s in ("MemoryError", "bad_alloc", "Cannot allocate", "out of memory")
        )
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals else f"signal {-code}"
            if memory or -code == signal.SIGKILL:  # SIGKILL that was not ours: the OOM killer
                return {"class": "memory", "detail": f"child killed by {name} ({phase}): {stderr}"}
            return {
                "class": "crash",
                "detail": f"{name} while {phase}; {where}",
                "log": log[-2000:],
            }
        if memory:
            return {"class": "memory", "detail": f"child exited {code} ({phase}): {stderr}"}
        return {"class": "crash", "detail": f"exited {code} while {phase}: {stderr}"}


def keep(mutant: dict, result: dict, out: Path) -> str:
    """Copy a non-OK mutant to OUT/<class>/ beside a JSON of what happened; its new path."""
    folder = out / result["class"].replace(" ", "_")
    folder.mkdir(parents=True, exist_ok=True)
    src, dst = Path(mutant["path"]), folder / mutant["name"]
    if dst.is_dir():
        shutil.rmtree(dst)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copyfile(src, dst)
    record = {**mutant, "path": str(dst), **result}
    (folder / f"{mutant['name']}.json").write_text(json.dumps(record, indent=1, default=str))
    return str(dst)


def campaign(args) -> int:
    surfaces = SURFACE_CHOICES[args.surface]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for cls in CLASSES:  # the previous run's kept mutants
        shutil.rmtree(out / cls.replace(" ", "_"), ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
    began = time.monotonic()
    try:
        seeds = make_seeds(_mkdir(tmp / "seeds"))
        work = _mkdir(tmp / "mutants")
        print(
            f"fuzzing read_files: {args.n} mutants, seed {args.seed}, {args.jobs} jobs, "
            + ", ".join(f"{s} ({len(seeds[s])} seed files)" for s in surfaces),
            flush=True,
        )
        results: list[dict | None] = [None] * args.n
        counter = iter(range(args.n))
        lock = threading.Lock()
        done = [0]

        def drive(job: int) -> None:
            worker = Worker(out / f"child-{job}.log", args.batch, args.timeout)
            try:
                while True:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    surface = surfaces[i % len(surfaces)]
                    mutant = make_mutant(i, args.seed, surface, seeds[surface], work)
                    result = worker.run(mutant)
                    if result["class"] not in OK:
                        result["kept"] = keep(mutant, result, out)
                    _remove(Path(mutant["path"]))
                    with lock:
                        results[i] = {**mutant, **result}
                        done[0] += 1
                        if done[0] % 100 == 0 or done[0] == args.n:
                            rate = (time.monotonic() - began) / done[0]
                            print(
                                f"  {done[0]}/{args.n} mutants, {rate:.2f} s each, "
                                f"~{rate * (args.n - done[0]) / 60:.1f} min to go",
                                flush=True,
                            )
            finally:
                worker.close()

        threads = [threading.Thread(target=drive, args=(j,)) for j in range(args.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(out / "results.jsonl", "w") as fh:
        for r in results:
            if r is not None:
                fh.write(json.dumps(r, default=str) + "\n")
    report([r for r in results if r is not None], surfaces, out, time.monotonic() - began)
    return 1 if any(r and r["class"] not in OK for r in results) else 0


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def report(results: list[dict], surfaces, out: Path, seconds: float, first: int = 5) -> None:
    counts = Counter((r["surface"], r["class"]) for r in results)
    head = ["surface", "n", *CLASSES]
    rows = [
        [s, sum(counts[s, c] for c in CLASSES), *(counts[s, c] for c in CLASSES)] for s in surfaces
    ]
    rows.append(["total", len(results), *(sum(counts[s, c] for s in surfaces) for c in CLASSES)])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    print(f"\n{len(results)} mutants in {seconds / 60:.1f} min; outcomes:")
    for row in [head, *rows]:
        print("  " + "  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))
    for cls in CLASSES:
        if cls in OK:
            continue
        hits = [r for r in results if r["class"] == cls]
        if not hits:
            continue
        print(f"\n{cls}: {len(hits)} (kept in {out / cls.replace(' ', '_')})")
        for r in hits[:first]:
            print(
                f"  #{r['index']} {r['surface']} {r['source']} [{'; '.join(r['mutations'])}]"
                f" -> {r['detail'][:300]}"
            )
            if r.get("traceback"):
                print(f"      at {r['traceback']}")
    refusals = Counter(_reason(r["detail"], r["name"]) for r in results if r["class"] == "refused")
    if refusals:
        print("\nmost common refusals:")
        for reason, n in refusals.most_common(8):
            print(f"  {n:5d}  {reason[:150]}")


def _reason(message: str, name: str) -> str:
    """A refusal's message without the file's name and temporary folder, to count alike."""
    text = re.sub(r"/\S*/" + re.escape(name), "<file>", message).replace(name, "<file>")
    return text.removeprefix("Cannot open <file>: ")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="mutants to run (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--surface", choices=list(SURFACE_CHOICES), default="all")
    parser.add_argument("--out", default="/tmp/fuzz_out", help="where non-OK mutants are kept")
    parser.add_argument("--jobs", type=int, default=2, help="child processes at once")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per mutant")
    parser.add_argument("--batch", type=int, default=BATCH, help="mutants per child process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main()
    return campaign(args)


if __name__ == "__main__":
    sys.exit(main())
