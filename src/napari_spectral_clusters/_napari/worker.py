"""Running the engine off napari's GUI thread: progress relayed to the GUI, Cancel honoured,
bad input returned as a message, and an optional dask.distributed cluster to run on."""

from __future__ import annotations

import threading

from qtpy.QtCore import QObject, Signal

from .._arrays import is_lazy
from ..cluster import Cancelled, ClusteringError, ProgressEvent

__all__ = ["ProgressRelay", "close_clients", "connect", "in_thread"]


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
