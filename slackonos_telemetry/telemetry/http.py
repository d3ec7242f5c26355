"""The HTTP session every request of ours goes through (the posthog SDK's ``batch_post``
takes it as its ``session``).

Three things a plain ``requests.Session`` does not do:
- No redirect is followed: ``requests`` answers a 301/302 to a POST with a bodiless GET,
  whose 200 would look like acceptance. The redirect itself is the answer.
- An overall deadline. ``requests``' timeout bounds each read, so an answer that
  trickles in a byte a second never times out. A watchdog shuts the request's sockets
  down when the deadline passes, which ends any read at once.
- At most a few KB of answer are read: what PostHog says fits in far less, and a
  server that answers with hundreds of MB must not grow the bot.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from slackonos_telemetry.telemetry.threads import start_thread

MAX_ANSWER_BYTES = 16 * 1024
WATCHDOG_THREAD = "slackonos-telemetry-deadline"
_CHUNK = 4096


class DeadlinePassed(requests.Timeout):
    """The request's deadline passed before a complete answer came."""


class _Sockets:
    """Every socket the session opened (one request at a time goes through it), and
    whether the request under way was cut: a socket opened after the cut (a name lookup
    that outlived the deadline) is shut as it arrives."""

    def __init__(self) -> None:
        self._open: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._guard = threading.Lock()
        self.was_cut = False

    def begin(self) -> None:
        with self._guard:
            self.was_cut = False

    def add(self, sock: Any) -> None:
        if not isinstance(sock, socket.socket):
            return
        with self._guard:
            self._open.add(sock)
            late = self.was_cut
        if late:
            _shut(sock)

    def cut(self) -> None:
        with self._guard:
            self.was_cut = True
            found = list(self._open)
        for sock in found:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _pool_classes(sockets: _Sockets) -> dict[str, type[HTTPConnectionPool]]:
    # A connection class of our own, through the pool's documented ``ConnectionCls``, so
    # that every socket (plain, TLS, through a proxy) is known to the watchdog.
    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            sockets.add(sock)
            return sock

        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class TLSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            sockets.add(sock)
            return sock

        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)  # the TLS socket, which took the plain one's descriptor

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    return {"http": Pool, "https": TLSPool}


class _Adapter(HTTPAdapter):
    def __init__(self, sockets: _Sockets) -> None:
        self._sockets = sockets
        super().__init__(max_retries=0)  # the delivery loop owns retries and backoff

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._sockets)

    def proxy_manager_for(self, proxy: Any, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _pool_classes(self._sockets)
        return manager


class BoundedSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self._sockets = _Sockets()
        adapter = _Adapter(self._sockets)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """As ``requests.Session.request``, where ``timeout`` bounds the whole request.
        Raises ``DeadlinePassed`` when no complete answer came in time."""
        deadline = time.monotonic() + _seconds(kwargs.get("timeout"))
        kwargs["allow_redirects"] = False
        kwargs["stream"] = True
        done = threading.Event()
        self._sockets.begin()
        start_thread(self._watch, WATCHDOG_THREAD, deadline, done)
        try:
            response = super().request(method, url, *args, **kwargs)
            _read_capped(response, deadline)
            return response
        except requests.RequestException as exc:
            # A socket the watchdog shut down reads as a server that hung up, or sent a
            # broken status line: say what happened instead.
            if self._sockets.was_cut or isinstance(exc, requests.ReadTimeout):
                raise DeadlinePassed("no complete answer in time") from exc
            if isinstance(exc, requests.ConnectTimeout):
                raise DeadlinePassed("no connection in time") from exc
            raise
        finally:
            done.set()

    def warm_up(self, url: str) -> None:
        """Everything a first request would import lazily, imported now (by a caller inside
        ``forksafe.importing()``, where a fork waits for it) instead of mid-send: the
        environment's proxies and netrc (``requests``), the codecs ``http.client`` and
        ``socket.getaddrinfo`` use. No network."""
        self.prepare_request(requests.Request("POST", url, data=b"{}"))
        self.merge_environment_settings(url, {}, None, None, None)
        for codec in ("ascii", "latin-1", "idna"):
            "posthog".encode(codec)

    def _watch(self, deadline: float, done: threading.Event) -> None:
        if not done.wait(max(0.0, deadline - time.monotonic())):
            self._sockets.cut()


def _seconds(timeout: Any) -> float:
    if isinstance(timeout, (int, float)):
        return float(timeout)
    if isinstance(timeout, tuple):
        return float(sum(part for part in timeout if part))
    return 30.0


def _read_capped(response: Any, deadline: float) -> None:
    """Read at most MAX_ANSWER_BYTES of the answer, then let the connection go. A read cut
    by the deadline keeps what arrived: the status is the answer."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.raw.stream(_CHUNK, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ANSWER_BYTES or time.monotonic() >= deadline:
                break
    except Exception:  # a body cut by the deadline, or broken: the status is the answer
        pass
    # requests reads ``_content`` for .text and .json(): what we read is all there is.
    response._content = b"".join(chunks)[:MAX_ANSWER_BYTES]
    response._content_consumed = True
    response.close()
