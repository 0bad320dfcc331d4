"""What a reader may open — regular files, and stores whose every file is a regular file inside
the store — and how much it may allocate for a file read whole (:func:`eager_bytes`).

A FIFO named ``.png`` (or a zarr chunk that is one) would block a reader forever, a device
would be read without end, and a symlink out of a store would read a file the user never
opened; all are refused before any byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._image_data import ReadError

__all__ = ["check_file", "check_store", "eager_bytes", "kind_of", "misnamed"]

#: What a reader allocates eagerly at most, unless SPECTRAL_CLUSTERS_EAGER_BYTES says
#: otherwise: this share of the machine's memory, and never more than EAGER_CAP.
EAGER_SHARE = 0.5
EAGER_CAP = 16 * 2**30


def eager_bytes() -> int:
    """The most a reader allocates for a file read whole (into memory, not lazily)."""
    env = os.environ.get("SPECTRAL_CLUSTERS_EAGER_BYTES")
    if env:
        try:
            return max(0, int(float(env)))
        except (ValueError, OverflowError):  # not a number: the default, not a crash
            pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small machine
        total = 8 * 2**30
    return int(min(EAGER_CAP, EAGER_SHARE * total))


def check_file(path: str | Path) -> Path:
    """``path`` if it is a regular file (symlinks followed), else FileNotFoundError/ReadError."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, no permission...
        raise ReadError(f"{path.name} cannot be opened: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise ReadError(f"{path.name} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise ReadError(f"{path.name} is not a regular file (a pipe, socket or device); not read")
    if path.stat().st_size == 0:
        raise ReadError(f"{path.name} is empty (0 bytes)")
    return path


#: What a file's first bytes say it is, for a file whose name says otherwise (a PNG saved
#: as ``.mat``), and the suffix this plugin opens it under (None: not one it reads). A few
#: signatures, so a plain lookup rather than a file-type library. A MATLAB v7.3 file starts
#: with MATLAB's text header (its HDF5 signature comes at byte 512).
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG picture", ".png"),
    (b"MATLAB ", "a MATLAB file", ".mat"),
    (b"\xff\xd8\xff", "a JPEG picture", None),
    (b"II*\x00", "a TIFF image", None),
    (b"MM\x00*", "a TIFF image", None),
    (b"GIF8", "a GIF picture", None),
    (b"PK\x03\x04", "a ZIP archive (or .npz)", None),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file", None),
)


def kind_of(path: str | Path) -> tuple[str, str | None] | None:
    """(what the file is, the suffix this plugin opens it under or None) by its first bytes,
    when they say; else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return None
    for signature, kind, suffix in SIGNATURES:
        if head.startswith(signature):
            return kind, suffix
    return None


def misnamed(path: str | Path, expected: str) -> str | None:
    """What to tell a user whose file ``path`` is not the ``expected`` kind ("PNG file") its
    name says, when its bytes say what it is instead: e.g. "photo.mat is a PNG picture, not a
    MATLAB file; rename it to photo.png"; else None."""
    path, kind = Path(path), kind_of(path)
    if kind is None or kind[1] == path.suffix.lower():
        return None
    what, suffix = kind
    rename = f"; rename it to {path.stem}{suffix}" if suffix else ""
    return f"{path.name} is {what}, not a {expected}{rename}"


def check_store(path: str | Path) -> Path:
    """``path`` if it is a folder whose files are all regular files inside it.

    A symlink is allowed only when it points inside the store. Costs one directory walk
    (a store of 100,000 chunk files: a fraction of a second).
    """
    try:
        _check_store(Path(path))
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable folder...
        raise ReadError(f"{Path(path).name} cannot be read: {exc}") from None
    return Path(path)


def _check_store(path: Path) -> None:
    root = path.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=_raise):
        for name in dirs + files:
            entry = Path(folder) / name
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = entry.resolve()
                if not target.is_relative_to(root):
                    raise ReadError(
                        f"{Path(path).name}: {entry.relative_to(root)} links outside the "
                        "store; not read"
                    )
                mode = target.stat().st_mode if target.exists() else stat.S_IFREG
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ReadError(
                    f"{Path(path).name}: {entry.relative_to(root)} is not a regular file "
                    "(a pipe, socket or device); not read"
                )


def _raise(error: OSError) -> None:
    raise error
