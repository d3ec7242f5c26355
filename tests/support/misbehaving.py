"""HTTP servers on 127.0.0.1 that answer badly on purpose, for the deadline and size tests.

- ``TRICKLE_HEAD``: the status line and headers of a 200 come one byte a second (a head
  far longer than any test waits for, so the answer never completes).
- ``TRICKLE_BODY``: a 200 with its headers at once, then its body one byte a second.
- ``HUGE_BODY``: a 200 with a body of ``HUGE_BYTES`` (300 MB), written as fast as the
  client reads it, from one small buffer (never built in memory).
- ``GZIP_BOMB``: a 200 with ``Content-Encoding: gzip`` whose 640 KB body unpacks to
  ``GZIP_BOMB_BYTES`` (640 MB): one 16 MB gzip member of zeros, repeated.

Each request is read whole first (head and Content-Length body) and recorded with the
event uuids it carried. Every connection is bounded (``CONNECTION_LIMIT_SECONDS``, or
the body's end) and ends as soon as the client goes away; ``close()`` ends them all.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

TRICKLE_HEAD = "trickle-head"
TRICKLE_BODY = "trickle-body"
HUGE_BODY = "huge-body"
GZIP_BOMB = "gzip-bomb"
MODES = (TRICKLE_HEAD, TRICKLE_BODY, HUGE_BODY, GZIP_BOMB)

HUGE_BYTES = 300 * 1024 * 1024
_BOMB_MEMBER_BYTES = 16 * 1024 * 1024
_BOMB_MEMBERS = 40
GZIP_BOMB_BYTES = _BOMB_MEMBER_BYTES * _BOMB_MEMBERS
TRICKLE_INTERVAL_SECONDS = 1.0
CONNECTION_LIMIT_SECONDS = 60.0
_CHUNK = b"\0" * (64 * 1024)
_MAX_REQUEST_BYTES = 8 * 1024 * 1024
# A head of a 200 that needs minutes at a byte a second: it never completes in a test.
_SLOW_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    + b"".join(f"X-Padding-{n}: {'x' * 40}\r\n".encode() for n in range(8))
    + b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    + b'{"status": 1}'
)
_TRICKLED_BODY_BYTES = 100_000


@dataclass
class Arrival:
    """One request: when it came, what it carried, and when its connection ended."""

    arrived_at: float
    uuids: list[str]
    ended_at: float | None = None
    bytes_sent: int = 0
    client_left: bool = False


@dataclass
class _State:
    arrivals: list[Arrival] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closing: threading.Event = field(default_factory=threading.Event)


class MisbehavingServer:
    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self._state = _State()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._guard = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what arrived ---------------------------------------------------------------

    @property
    def arrivals(self) -> list[Arrival]:
        with self._state.changed:
            return list(self._state.arrivals)

    def wait_for(
        self, count: int, *, ended: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> bool:
        """Until ``count`` requests arrived (with ``ended``: and their connections ended)."""

        def enough() -> bool:
            found = self.arrivals
            if ended:
                found = [arrival for arrival in found if arrival.ended_at is not None]
            return len(found) >= count

        return wait_until(enough, timeout, changed=self._state.changed)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self._state.closing.set()
        self._acceptor.join(5)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._guard:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> MisbehavingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._state.closing.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            with self._guard:
                self._connections.append(connection)
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        arrival: Arrival | None = None
        try:
            connection.settimeout(10.0)
            body = _read_request(connection)
            if body is None:
                return
            arrival = Arrival(time.monotonic(), _uuids(body))
            with self._state.changed:
                self._state.arrivals.append(arrival)
                self._state.changed.notify_all()
            connection.settimeout(CONNECTION_LIMIT_SECONDS)  # a client that stops reading
            if self.mode == HUGE_BODY:
                self._pour(connection, arrival)
            elif self.mode == GZIP_BOMB:
                self._bomb(connection, arrival)
            else:
                self._trickle(connection, arrival)
        except OSError:
            if arrival is not None:
                arrival.client_left = True
        finally:
            with contextlib.suppress(OSError):
                connection.close()
            if arrival is not None:
                with self._state.changed:
                    arrival.ended_at = time.monotonic()
                    self._state.changed.notify_all()

    def _trickle(self, connection: socket.socket, arrival: Arrival) -> None:
        if self.mode == TRICKLE_HEAD:
            answer = _SLOW_HEAD
        else:
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {_TRICKLED_BODY_BYTES}\r\n\r\n"
            ).encode()
            connection.sendall(head)
            arrival.bytes_sent += len(head)
            answer = b" " * _TRICKLED_BODY_BYTES
        limit = time.monotonic() + CONNECTION_LIMIT_SECONDS
        for position in range(len(answer)):
            if self._state.closing.is_set() or time.monotonic() >= limit:
                return
            connection.sendall(answer[position : position + 1])
            arrival.bytes_sent += 1
            # Wait a second, or less if the client closed its end (readable, then EOF).
            readable, _, _ = select.select([connection], [], [], TRICKLE_INTERVAL_SECONDS)
            if readable and not connection.recv(1024):
                arrival.client_left = True
                return

    def _bomb(self, connection: socket.socket, arrival: Arrival) -> None:
        member = _gzip_member()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(member) * _BOMB_MEMBERS}\r\n\r\n"
        ).encode()
        connection.sendall(head)
        for _ in range(_BOMB_MEMBERS):
            if self._state.closing.is_set():
                return
            connection.sendall(member)
            arrival.bytes_sent += len(member)

    def _pour(self, connection: socket.socket, arrival: Arrival) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {HUGE_BYTES}\r\n\r\n"
        ).encode()
        connection.sendall(head)
        limit = time.monotonic() + CONNECTION_LIMIT_SECONDS
        view = memoryview(_CHUNK)
        while arrival.bytes_sent < HUGE_BYTES:
            if self._state.closing.is_set() or time.monotonic() >= limit:
                return
            size = min(len(view), HUGE_BYTES - arrival.bytes_sent)
            connection.sendall(view[:size])
            arrival.bytes_sent += size


_bomb_member: bytes | None = None


def _gzip_member() -> bytes:
    """16 MB of zeros, gzipped (about 16 KB), made once per process."""
    global _bomb_member
    if _bomb_member is None:
        _bomb_member = gzip.compress(bytes(_BOMB_MEMBER_BYTES), compresslevel=9)
    return _bomb_member


def _read_request(connection: socket.socket) -> bytes | None:
    """The body of one HTTP request (head read to its end, then Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk or len(data) > _MAX_REQUEST_BYTES:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = min(int(value.strip() or 0), _MAX_REQUEST_BYTES)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def _uuids(body: bytes) -> list[str]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return []
    batch = payload.get("batch") if isinstance(payload, dict) else None
    if not isinstance(batch, list):
        return []
    return [str(event.get("uuid")) for event in batch if isinstance(event, dict)]


@contextlib.contextmanager
def misbehaving_server(mode: str) -> Iterator[MisbehavingServer]:
    server = MisbehavingServer(mode)
    try:
        yield server
    finally:
        server.close()
