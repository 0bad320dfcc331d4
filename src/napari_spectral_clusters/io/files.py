"""Writing a file or a folder all at once: built under a hidden name beside it, then renamed;
and several such outputs moved in together (:func:`move_in_together`)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["move_in_together", "replace_path", "written_whole"]


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


def move_in_together(pairs: list[tuple[Path, Path]], *, overwrite: bool) -> None:
    """Move staged files or folders ``src`` to ``dst``, all of them or none.

    Without ``overwrite`` an existing ``dst`` is never replaced, even one another process
    wrote a moment ago: files are hard-linked in (which fails if the name exists) and folders
    renamed (which fails onto a non-empty folder), so two runs racing on one folder cannot
    silently replace each other's outputs — the later one fails with FileExistsError. With
    ``overwrite`` the old outputs are set aside first and restored if a move fails.
    Ctrl-C and SIGTERM wait until the moves are done or undone (POSIX), so an interrupt
    never leaves some of the outputs; only a hard kill or power loss can.
    """
    moved: list[Path] = []
    kept: list[tuple[Path, Path]] = []  # (old output set aside, where it was)
    with _signals_held():
        try:
            for src, dst in pairs:
                if overwrite and (dst.exists() or dst.is_symlink()):
                    aside = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
                    os.replace(dst, aside / dst.name)
                    kept.append((aside / dst.name, dst))
                _move_no_clobber(src, dst)
                moved.append(dst)
        except BaseException:
            for dst in moved:
                if dst.is_dir():
                    shutil.rmtree(dst, ignore_errors=True)
                else:
                    dst.unlink(missing_ok=True)
            stranded = []
            for old, dst in kept:
                try:
                    os.replace(old, dst)
                except OSError:  # something took its place: keep the old output aside
                    stranded.append(old)
            kept = [(old, dst) for old, dst in kept if old not in stranded]
            if stranded:
                raise OSError(
                    "could not put back the previous outputs; they are kept in "
                    + ", ".join(str(old) for old in stranded)
                ) from None
            raise
        finally:
            for old, _ in kept:  # only what was restored or replaced: never a stranded one
                shutil.rmtree(old.parent, ignore_errors=True)


def _move_no_clobber(src: Path, dst: Path) -> None:
    if src.is_dir():
        if dst.exists() and not (dst.is_dir() and not any(dst.iterdir())):
            raise FileExistsError(f"{dst} exists")
        os.rename(src, dst)  # fails onto a non-empty folder another run just made
        return
    try:
        os.link(src, dst)  # fails if the name exists: no check-then-rename race
    except FileExistsError:
        raise FileExistsError(f"{dst} exists (written by another run?)") from None
    except OSError:  # no hard links on this file system: the next best
        if dst.exists():
            raise FileExistsError(f"{dst} exists") from None
        os.rename(src, dst)
        return
    try:
        os.unlink(src)
    except OSError:  # the output is in place either way; the staging folder goes later
        pass


class _signals_held:
    """Hold SIGINT and SIGTERM in this thread until the block ends (then they are delivered).

    Only where it can be done (POSIX, the main thread); elsewhere a no-op.
    """

    def __enter__(self):
        self.held = None
        can = (
            hasattr(signal, "pthread_sigmask")
            and threading.current_thread() is threading.main_thread()
        )
        if can:
            self.held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        return self

    def __exit__(self, *exc):
        if self.held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.held)
        return False
