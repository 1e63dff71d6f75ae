"""A small TCP proxy that fault-injection tests put between the worker and a service.

One background thread runs a selector loop over the listening socket and
every proxied pair of sockets; the test thread only switches modes:

- ``forward()``: bytes flow both ways (the default);
- ``hold()``: no byte moves in either direction, yet every socket stays open,
  as in a network partition: each side sees silence, not a closed connection.
  New connections are accepted and held as well;
- ``reset()``: every proxied connection is closed (with an RST), and while
  the mode lasts new connections are closed as soon as they are accepted.

A mode switch returns once the loop has applied it: after ``hold()`` returns,
not one more byte is forwarded. The proxy listens on 127.0.0.1, on a free port
(``proxy.port``), and ``close()`` (or leaving the ``with`` block) stops the
thread and closes every socket.
"""

import contextlib
import selectors
import socket
import struct
import threading
from typing import Any

FORWARD = "forward"
HOLD = "hold"
RESET = "reset"

_CHUNK = 65536
# Stop reading a side while this much is still waiting to be written to its
# peer: a slow reader slows the writer down, as on a real network.
_MAX_BUFFER = 1 << 20


class _Side:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peer: _Side | None = None
        self.outgoing = bytearray()  # bytes read from the peer, still to be sent to this socket
        self.eof = False  # the peer reached end of file; close once outgoing is flushed


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._waker, self._wake_end = socket.socketpair()
        self._waker.setblocking(False)
        self._wake_end.setblocking(False)
        self._sides: set[_Side] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._mode = FORWARD
        self._requested = 0  # mode switches asked for
        self._applied = 0  # mode switches the loop has carried out
        self._stopping = False
        self.accepted = 0  # connections accepted since start: a reconnect loop shows here
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)

    # -- control, from the test thread ----------------------------------------------

    def start(self) -> "Proxy":
        self._thread.start()
        return self

    def __enter__(self) -> "Proxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    @property
    def connections(self) -> int:
        """Proxied connections open now."""
        with self._lock:
            return len(self._sides) // 2

    def forward(self) -> None:
        self._switch(FORWARD)

    def hold(self) -> None:
        self._switch(HOLD)

    def reset(self) -> None:
        self._switch(RESET)

    def close(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(10)
        self._close_all()
        self._selector.close()
        for sock in (self._listener, self._waker, self._wake_end):
            sock.close()

    def _switch(self, mode: str, timeout: float = 10.0) -> None:
        with self._changed:
            self._mode = mode
            self._requested += 1
            wanted = self._requested
        self._wake()
        with self._changed:
            if not self._changed.wait_for(lambda: self._applied >= wanted, timeout):
                raise RuntimeError(f"proxy did not switch to {mode} within {timeout}s")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # closed already, or full of wake-ups anyway
            self._wake_end.send(b"x")

    # -- the loop, on the proxy thread ---------------------------------------------------

    def _run(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        self._selector.register(self._waker, selectors.EVENT_READ, "waker")
        try:
            while True:
                with self._lock:
                    stopping, mode, requested = self._stopping, self._mode, self._requested
                if stopping:
                    return
                if mode == RESET:
                    self._close_all()
                self._update_interest(mode)
                with self._changed:
                    self._applied = requested
                    self._changed.notify_all()
                for key, events in self._selector.select(timeout=0.5):
                    self._handle(key.data, events, mode)
        finally:
            self._close_all()

    def _handle(self, data: Any, events: int, mode: str) -> None:
        if data == "waker":
            with contextlib.suppress(OSError):
                self._waker.recv(4096)
        elif data == "listener":
            self._accept(mode)
        elif mode == FORWARD and data in self._sides:
            side: _Side = data
            if events & selectors.EVENT_WRITE:
                self._flush(side)
            if events & selectors.EVENT_READ and side in self._sides:
                self._read(side)

    def _accept(self, mode: str) -> None:
        try:
            client, _address = self._listener.accept()
        except OSError:
            return
        self.accepted += 1
        if mode == RESET:
            _abort(client)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _abort(client)  # upstream refused: so does the proxy
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        a, b = _Side(client), _Side(server)
        a.peer, b.peer = b, a
        with self._lock:
            self._sides.update((a, b))  # the loop registers them, as the mode allows

    def _read(self, side: _Side) -> None:
        peer = side.peer
        assert peer is not None
        try:
            data = side.sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._close_pair(side)
            return
        if not data:
            peer.eof = True  # pass on what is buffered, then close
            if not peer.outgoing:
                self._close_pair(side)
            return
        peer.outgoing += data
        self._flush(peer)

    def _flush(self, side: _Side) -> None:
        if side.outgoing:
            try:
                sent = side.sock.send(side.outgoing)
            except BlockingIOError:
                return
            except OSError:
                self._close_pair(side)
                return
            del side.outgoing[:sent]
        if side.eof and not side.outgoing:
            self._close_pair(side)

    def _update_interest(self, mode: str) -> None:
        """Which sockets the loop watches: none of the proxied ones unless forwarding."""
        for side in list(self._sides):
            events = 0
            if mode == FORWARD:
                peer = side.peer
                if peer is not None and len(peer.outgoing) < _MAX_BUFFER and not peer.eof:
                    events |= selectors.EVENT_READ
                if side.outgoing:
                    events |= selectors.EVENT_WRITE
            registered = self._selector.get_map().get(side.sock.fileno()) is not None
            if events and registered:
                self._selector.modify(side.sock, events, side)
            elif events:
                self._selector.register(side.sock, events, side)
            elif registered:
                self._selector.unregister(side.sock)

    def _close_pair(self, side: _Side) -> None:
        for one in (side, side.peer):
            if one is None:
                continue
            with self._lock:
                if one not in self._sides:
                    continue
                self._sides.discard(one)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one.sock)
            _abort(one.sock)

    def _close_all(self) -> None:
        with self._lock:
            sides = list(self._sides)
        for side in sides:
            self._close_pair(side)


def _abort(sock: socket.socket) -> None:
    """Close with an RST, as a reset connection or a firewall rejecting it does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
