"""The deadline of every upstream call, enforced however slowly the upstream answers.

requests' read timeout bounds each wait for bytes, not the answer: a server that drips a byte a
second holds a call for ever. Here one daemon thread watches every call in flight and, at its
deadline, shuts its socket down, which ends the read in progress (of the status line, the
headers or the body) in whatever thread it runs. The transport (resellctl.upstream.transport)
mounts :class:`Adapter` on its session and runs each call inside ``WATCHDOG.call(seconds)``.
"""

import contextlib
import functools
import heapq
import itertools
import socket
import threading
import time

from requests.adapters import HTTPAdapter


class _Call:
    """One call in flight: its deadline, and the socket the watchdog shuts down at it."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.cut = False  # the deadline came first: whatever failed, this is why
        self.done = False
        self._sock = None
        self._lock = threading.Lock()

    def watch(self, sock):
        with self._lock:
            self._sock = sock
            if self.cut:  # the deadline came while it connected
                _shut(sock)

    def expire(self):
        with self._lock:
            if not self.done:
                self.cut = True
                if self._sock is not None:
                    _shut(self._sock)

    def end(self):
        with self._lock:
            self.done = True
            self._sock = None  # back in the pool: another call's to use


class Watchdog:
    """A daemon thread that, at the deadline of each call still in flight, shuts its socket.

    requests' read timeout bounds each wait for bytes, not the answer: a server that drips a
    byte a second holds a call for ever. The thread that calls (any thread: checkevent fetches
    pages in one of its own) hands its socket over (:class:`_WatchedConnection`); shut down,
    the socket ends the read in progress, of the status line, the headers or the body.
    One thread for every call, started once: a thread per call would cost an order more.
    """

    def __init__(self):
        self._wake = threading.Condition()
        self._calls = []  # a heap of (deadline, sequence number, _Call)
        self._sequence = itertools.count()
        self._thread = None
        self._local = threading.local()

    @contextlib.contextmanager
    def call(self, seconds):
        """The _Call of this thread within the block, which ends ``seconds`` from now."""
        call = _Call(time.monotonic() + seconds)
        with self._wake:
            heapq.heappush(self._calls, (call.deadline, next(self._sequence), call))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="resellctl-deadlines")
                self._thread.start()
            elif self._calls[0][2] is call:
                self._wake.notify()
        self._local.call = call
        try:
            yield call
        finally:
            self._local.call = None
            call.end()

    def watch(self, sock):
        """Let the call in flight on this thread, if any, be cut at its deadline."""
        call = getattr(self._local, "call", None)
        if call is not None:
            call.watch(sock)

    def _run(self):
        with self._wake:
            while True:
                now = time.monotonic()
                while self._calls and (self._calls[0][0] <= now or self._calls[0][2].done):
                    heapq.heappop(self._calls)[2].expire()
                # TIMEOUT_MAX: a call timeout of "inf" means no deadline, not an overflow here.
                self._wake.wait(min(self._calls[0][0] - now, threading.TIMEOUT_MAX)
                                if self._calls else None)


WATCHDOG = Watchdog()


def _shut(sock):
    with contextlib.suppress(OSError):
        # socket.socket's own shutdown, for TLS too: ssl's would unwrap it under the reader.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedConnection:
    """A urllib3 connection that the call sending on it may cut at its deadline."""

    def request(self, *args, **kwargs):
        # Connecting (bounded by the connect timeout) is done once the request is sent; the
        # waits for the answer come after. The socket itself is watched: the answer keeps
        # reading from it after a ``Connection: close`` has detached it from the connection.
        super().request(*args, **kwargs)
        WATCHDOG.watch(self.sock)


@functools.cache
def _watched(pool_class):
    """``pool_class`` whose connections are _WatchedConnections."""
    connection = type(f"Watched{pool_class.ConnectionCls.__name__}",
                      (_WatchedConnection, pool_class.ConnectionCls), {})
    return type(f"Watched{pool_class.__name__}", (pool_class,), {"ConnectionCls": connection})


class Adapter(HTTPAdapter):
    """requests' adapter whose pools, direct or through a proxy, make _WatchedConnections."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def _watch_pools(manager):
    manager.pool_classes_by_scheme = {scheme: _watched(pool) for scheme, pool
                                      in manager.pool_classes_by_scheme.items()}
    return manager
