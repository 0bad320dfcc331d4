"""Writing a file or a folder all at once: built under a hidden name beside it, then renamed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_whole(path: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a fresh hidden path beside ``path`` to write to; move it to ``path`` when the
    block ends without error, remove it when it raises.

    An interrupted or failed write leaves no half-written ``path`` and keeps an older one.
    The temporary name is unique (two writers never share it) and the result gets the
    user's normal permissions (``mkstemp`` would leave a file readable by its owner only).
    """
    path = Path(path)
    _check_writable(path, directory=directory)
    prefix = f".{path.name}.partial-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _default_permissions(tmp, directory=directory)
        replace_path(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _check_writable(path: Path, *, directory: bool) -> None:
    """Clear errors for what would otherwise fail on the hidden temporary name."""
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"the folder {parent} does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"{parent} is not a folder")
    if path.is_dir() and not directory:
        raise IsADirectoryError(f"{path} is a folder; choose a file name")
    if path.exists() and not path.is_dir() and directory:
        raise FileExistsError(f"{path} is a file; choose a new name for the store")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write in the folder {parent}")


def _read_umask() -> int:
    # read once, at import: setting and restoring it later would race other threads' files
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _default_permissions(path: Path, *, directory: bool) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)


def replace_path(new: Path, path: Path) -> None:
    """Move the file or directory ``new`` to ``path``; an old one there is removed only once
    ``new`` is in place (a directory cannot be renamed over a non-empty one in one step)."""
    if not (new.is_dir() and path.exists()):
        os.replace(new, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.rmdir(old)
    os.replace(path, old)
    os.replace(new, path)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)
