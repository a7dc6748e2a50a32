"""Round events from workers to the sweep, while runs are going.

The parent listens on a local socket (``multiprocessing.connection``, authenticated with a
random key); each worker process connects once and sends small dicts. The sink is a plain
picklable object (address + key), so it travels to process-pool workers and to dask workers on
the same host alike. Events are a live view only: the files on disk are the record, so a worker
that cannot connect keeps running and writing them.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

_STOP = "__velocity_stop__"

# One connection per worker process and listener, reused by every run the process executes.
_connections: dict[tuple[Any, bytes], Connection | None] = {}
_connections_lock = threading.Lock()


class EventSink:
    """The worker side: ``put(event)`` sends one event; never raises."""

    def __init__(self, address: Any, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey

    def __reduce__(self) -> tuple[Any, ...]:
        return (EventSink, (self.address, self.authkey))

    def _connection(self) -> Connection | None:
        key = (self.address, self.authkey)
        with _connections_lock:
            if key not in _connections:
                try:
                    _connections[key] = Client(self.address, authkey=self.authkey)
                except OSError:
                    _connections[key] = None  # e.g. a remote worker: runs go on, files are the record
            return _connections[key]

    def put(self, event: dict[str, Any]) -> None:
        conn = self._connection()
        if conn is None:
            return
        try:
            conn.send(event)
        except (OSError, ValueError):
            with _connections_lock:
                _connections[(self.address, self.authkey)] = None


class EventListener:
    """The parent side: calls ``handler(event)`` for every event, from background threads."""

    def __init__(self, handler: Callable[[dict[str, Any]], None]) -> None:
        self._handler = handler
        self._authkey = secrets.token_bytes(32)
        self._listener = Listener(("127.0.0.1", 0), authkey=self._authkey)
        self._closed = threading.Event()
        self._readers: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="velocity-sweep-accept", daemon=True)
        self._accepter.start()

    @property
    def sink(self) -> EventSink:
        return EventSink(self._listener.address, self._authkey)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()
            except OSError:  # closed, or a client that failed authentication
                if self._closed.is_set():
                    return
                continue
            reader = threading.Thread(target=self._read, args=(conn,), name="velocity-sweep-events", daemon=True)
            self._readers.append(reader)
            reader.start()

    def _read(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    event = conn.recv()
                except (EOFError, OSError):  # the worker process ended
                    return
                if event == _STOP:
                    return
                if self._closed.is_set():
                    continue
                with contextlib.suppress(Exception):  # a bad handler must not stop the stream
                    self._handler(event)

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting; wait briefly for events already sent to be handled."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:  # wake accept()
            with Client(self._listener.address, authkey=self._authkey) as c:
                c.send(_STOP)
        except OSError:
            pass
        self._accepter.join(timeout)
        self._listener.close()
        for r in self._readers:  # readers of live workers (a dask cluster) stay parked in recv()
            r.join(timeout / max(1, len(self._readers)))
