"""Running the engine off napari's GUI thread: progress relayed to the GUI, Cancel honoured,
bad input returned as a message, and an optional dask.distributed cluster to run on."""

from __future__ import annotations

import threading
import time

from qtpy.QtCore import QEventLoop, QObject, Signal

from .._arrays import is_lazy
from ..cluster import Cancelled, ClusteringError, ProgressEvent

__all__ = ["ProgressRelay", "Runner", "close_clients", "connect", "in_thread"]


class ProgressRelay(QObject):
    """Carries the engine's progress reports from the worker thread to the GUI thread."""

    reported = Signal(str, int, int)


def in_thread(
    job, data, channel_axis, alpha, wavelengths, *, cancel: threading.Event, relay, scheduler=""
):
    """Run the engine, relaying its progress and stopping when ``cancel`` is set; on the
    dask.distributed cluster at ``scheduler`` if one is given (connected to here, off the GUI
    thread, and kept as dask's client for the session).

    Returns ``(result, None)``, or ``(None, exception)`` for bad input and cancellation, so
    those become a plain message rather than the traceback napari shows for bugs (a worker
    that returns a bare exception re-raises it).
    """

    def report(event: ProgressEvent):
        if cancel.is_set():
            raise Cancelled
        relay.reported.emit(event.stage, event.done, event.total)

    try:
        if not scheduler:
            return job(data, channel_axis, alpha, wavelengths, report), None
        if not is_lazy(data):  # its blocks become the cluster's tasks
            import dask.array as da

            data = da.from_array(data, chunks="auto")
        with connect(scheduler).as_current():
            return job(data, channel_axis, alpha, wavelengths, report), None
    except (Cancelled, ClusteringError) as exc:
        return None, exc


_CLIENTS: dict = {}


def connect(address: str):
    """The dask.distributed client of the scheduler at ``address``, made dask's default."""
    client = _CLIENTS.get(address)
    if client is not None and client.status == "running":
        return client
    try:
        from distributed import Client
    except ImportError as exc:
        raise ClusteringError(
            "clustering on a dask cluster needs the distributed package (pip install distributed)"
        ) from exc
    try:
        client = Client(address, timeout=10)  # the default client from now on
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusteringError(f"cannot reach the dask scheduler at {address}: {exc}") from exc
    _CLIENTS[address] = client
    return client


def close_clients() -> None:
    """Close the clients :func:`connect` made; dask goes back to its local scheduler."""
    for client in _CLIENTS.values():
        client.close()
    _CLIENTS.clear()


class Runner:
    """One engine job at a time in a napari worker thread, with a napari progress bar, a
    Cancel that stops it at its next progress report, and the time it took.

    ``busy(True/False)`` is called when a job starts and finishes (to grey out buttons), and
    ``progressed(stage, done, total)`` with each of the engine's progress reports.
    """

    def __init__(self, *, busy, progressed=None):
        self._busy = busy
        self._progressed = progressed or (lambda stage, done, total: None)
        self.worker = None
        self.progress = None
        self._desc = ""
        self.started: float | None = None
        self.cancelled = threading.Event()
        self.relay = ProgressRelay()
        self.relay.reported.connect(self._on_progress)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def elapsed(self) -> float | None:
        """Seconds since the last job started."""
        return None if self.started is None else time.perf_counter() - self.started

    def start(self, job, args: tuple, *, desc, scheduler, on_done, on_bug, wait: bool):
        """Run ``job(*args, progress)`` (see :func:`in_thread`) and call ``on_done(result,
        error)`` in the GUI thread (``on_bug(exception)`` for a bug, which napari also shows
        with its traceback). With ``wait``, return once it finished, processing Qt events
        meanwhile."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self.cancelled.clear()
        self._desc = desc
        self.progress = progress(total=0, desc=desc)
        worker = create_worker(
            in_thread,
            job,
            *args,
            cancel=self.cancelled,
            relay=self.relay,
            scheduler=scheduler,
            _start_thread=False,
        )
        worker.returned.connect(lambda outcome: on_done(*outcome))
        worker.errored.connect(on_bug)
        worker.finished.connect(self._finished)
        self.worker = worker
        self._busy(True)
        self.started = time.perf_counter()
        if wait:
            loop = QEventLoop()
            worker.finished.connect(loop.quit)
            worker.start()
            loop.exec()
        else:
            worker.start()
        return worker

    def cancel(self, *_):
        """Stop the running job at its next progress report; nothing is changed."""
        self.cancelled.set()

    def _on_progress(self, stage: str, done: int, total: int):
        if self.progress is not None:
            self.progress.set_description(f"{self._desc}: {stage} {done}/{total}")
        self._progressed(stage, done, total)

    def _finished(self):
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        self.worker = None
        self._busy(False)
