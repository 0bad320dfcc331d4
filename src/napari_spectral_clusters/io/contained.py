"""Run a compiled file parser on untrusted bytes in a child process, with limits.

A damaged file can make a compiled parser (``scipy.io.loadmat``'s C reader, a sparse
``toarray()``) crash the whole process with SIGSEGV, which would take napari and hours of
unsaved work with it, or a CLI batch and every file after it. So the parse runs in a child
Python process that:

* may allocate at most :func:`eager_bytes` (plus its interpreter's own needs): a 276-byte file
  that asks for gigabytes fails with a clear message instead of exhausting the machine;
* may run for at most ``timeout`` seconds, and writes no core dump when it crashes;
* hands its arrays back as ``.npy`` files of plain numeric arrays (in shared memory where
  there is some), opened with ``allow_pickle=False``, and the rest as JSON — never a
  pickle, since a child whose memory a damaged file corrupted must not be able to run code
  in the parent.

Cost: starting the child (a Python interpreter importing numpy and scipy.io) and passing the
arrays through a temporary file; measured in ``benchmarks/README.md`` (a few tenths of a
second per file). Only the parsers listed in :data:`PARSERS` can be run.

Run as ``python -m napari_spectral_clusters.io.contained LIMIT``, it is the child: one JSON
request per line of stdin, one line of answer per request on stdout.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from ._image_data import ReadError, what_went_wrong
from .inputs import eager_bytes

__all__ = ["PARSERS", "parse_contained"]

#: Parsers a child may run: name -> ("module:function", what the file should be). The function
#: takes a path and ``limit`` (bytes) and returns (named numeric arrays, JSON-able extras).
PARSERS = {"mat-v5": ("napari_spectral_clusters.io.mat5:parse_v5", "a MATLAB file")}

#: Address space a child needs beyond the arrays: the interpreter, numpy, scipy, thread stacks.
CHILD_OVERHEAD = 2 * 2**30
#: Seconds a parse may take (a 2 GiB compressed MATLAB variable takes well under a minute).
TIMEOUT = 300.0


def parse_contained(
    parser: str, path: str | Path, *, limit: int | None = None, timeout: float = TIMEOUT
) -> tuple[dict[str, np.ndarray], dict]:
    """Run parser ``parser`` (a key of :data:`PARSERS`) on ``path`` in a child process.

    Returns its named arrays and extras. Raises :class:`ReadError` when the parser fails,
    needs more than ``limit`` bytes (default :func:`eager_bytes`), runs longer than
    ``timeout`` seconds, or crashes; the message names the file and the reason.

    The child is started on first use and kept for the next files (starting one costs most
    of a second, most of it importing scipy); one that crashed or was stopped is replaced.
    """
    if parser not in PARSERS:
        raise ValueError(f"unknown parser {parser!r}")
    path = Path(path).resolve()  # the child starts in another folder
    limit = eager_bytes() if limit is None else int(limit)
    out = Path(tempfile.mkdtemp(prefix="spectral-clusters-", dir=_exchange_dir(path)))
    try:
        with _LOCK:
            worker = _WORKERS.get(limit)
            if worker is None or worker.poll() is not None:
                if worker is not None:
                    _stop(worker)
                worker = _WORKERS[limit] = _start(limit)
            request_id = next(_REQUESTS)
            request = {"id": request_id, "parser": parser, "path": str(path), "out": str(out)}
            try:
                answer = _ask(worker, json.dumps(request), timeout)
            except BaseException:  # Ctrl-C while waiting: the child's answer would come late
                _stop(worker)
                raise
            if answer is not None and answer.strip() != f"done {request_id}":
                _stop(worker)  # out of step: start afresh next time
                raise ReadError(f"{path.name} could not be read: the parser gave no answer")
            if answer is None:  # no answer: it crashed, or is still at it
                running = worker.poll() is None
                _stop(worker)
                if running:
                    raise ReadError(
                        f"{path.name}: reading it took longer than {timeout:.0f} s and was stopped"
                    )
                name = _signal_name(-worker.returncode) if worker.returncode < 0 else "exited"
                raise ReadError(
                    f"{path.name} is damaged: the parser crashed on it ({name}); "
                    "nothing else was affected"
                )
        try:
            meta = json.loads((out / "meta.json").read_text())
        except (OSError, ValueError):
            raise ReadError(f"{path.name} could not be read: the parser left no answer") from None
        if "error" in meta:
            raise ReadError(meta["error"])
        arrays = {
            name: np.load(out / f"a{i}.npy", allow_pickle=False)
            for i, name in enumerate(meta["names"])
        }
        return arrays, meta["extras"]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _exchange_dir(path: Path) -> str | None:
    """Where the child leaves its arrays: shared memory (/dev/shm) when there is one with
    room for several times the file (a container's is often 64 MiB), so the hand-over costs
    memory copies, not disk writes; else the usual temporary folder."""
    shm = Path("/dev/shm")
    try:
        room = shutil.disk_usage(shm).free if shm.is_dir() and os.access(shm, os.W_OK) else 0
        need = 8 * path.stat().st_size + 2**20  # compressed variables inflate
    except OSError:
        return None
    return str(shm) if room > need else None


_LOCK = threading.Lock()
_WORKERS: dict[int, subprocess.Popen] = {}  # by memory limit
_REQUESTS = itertools.count(1)


def _start(limit: int) -> subprocess.Popen:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # started in the temporary folder, and with -P where Python has it, so a module in the
    # user's current folder (a json.py beside their data) is never imported by the child
    safe = ["-P"] if sys.version_info >= (3, 11) else []
    worker = subprocess.Popen(
        [sys.executable, *safe, "-m", __name__, str(limit)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tempfile.gettempdir(),
        text=True,
    )
    return worker


@atexit.register
def _stop_all() -> None:
    for worker in list(_WORKERS.values()):
        _stop(worker)


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.kill()
        worker.wait()
    for pipe in (worker.stdin, worker.stdout):
        try:
            pipe.close()
        except OSError:  # a broken pipe to a child that died
            pass


def _ask(worker: subprocess.Popen, request: str, timeout: float) -> str | None:
    """Send one request; its answer line, or None if the child died or did not answer."""
    answers: queue.Queue = queue.Queue()
    try:
        worker.stdin.write(request + "\n")
        worker.stdin.flush()
    except OSError:  # it died since the last file
        return None

    # a thread reads the answer, so the wait can time out on every platform (no select on
    # Windows pipes)
    def read_answer():
        try:
            answers.put(worker.stdout.readline())
        except (OSError, ValueError):  # the pipe was closed: the child was stopped
            answers.put("")

    threading.Thread(target=read_answer, daemon=True).start()
    try:
        answer = answers.get(timeout=timeout)
    except queue.Empty:
        return None
    if not answer:
        worker.wait()
        return None
    return answer


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _limit_child(limit: int) -> None:
    """Cap the child's memory, output and core dumps (POSIX; elsewhere only the timeout)."""
    try:
        import resource
    except ImportError:
        return
    for which, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_AS, limit + CHILD_OVERHEAD),
        (resource.RLIMIT_FSIZE, 2 * limit + 2**20),
    ):
        try:
            _, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, hard))
        except (ValueError, OSError):  # a platform without this limit (macOS: RLIMIT_AS)
            pass


def _serve(limit: int) -> int:
    """The child: answer one request per line of stdin until it closes."""
    _limit_child(limit)
    for line in sys.stdin:
        request = json.loads(line)
        _parse(request["parser"], request["path"], Path(request["out"]), limit)
        sys.stdout.write(f"done {request['id']}\n")
        sys.stdout.flush()
    return 0


def _parse(parser: str, path: str, out: Path, limit: int) -> None:
    target, what = PARSERS[parser]
    module, function = target.split(":")
    parse = getattr(importlib.import_module(module), function)
    arrays = None
    try:
        arrays, extras = parse(Path(path), limit=limit)
        total = sum(a.nbytes for a in arrays.values())
        if total > limit:
            raise MemoryError
        for i, array in enumerate(arrays.values()):  # .npy: no zip, no checksum to compute
            np.save(out / f"a{i}.npy", array, allow_pickle=False)
        meta = {"names": list(arrays), "extras": extras}
    except ReadError as exc:
        meta = {"error": str(exc)}
    except MemoryError:
        meta = {
            "error": f"{Path(path).name} needs more memory than the {limit / 2**30:.1f} GiB a "
            "file may take when read whole (SPECTRAL_CLUSTERS_EAGER_BYTES sets it)"
        }
    except RecursionError:
        meta = {"error": f"{Path(path).name} is nested too deeply to read"}
    except Exception as exc:  # any failure of the parser on a damaged file is the file's
        meta = {
            "error": f"{Path(path).name} could not be read as {what} (corrupt or "
            f"truncated?): {what_went_wrong(exc)}"
        }
    del arrays  # before the next file: the child keeps no file's arrays
    (out / "meta.json").write_text(json.dumps(meta))


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1])))
