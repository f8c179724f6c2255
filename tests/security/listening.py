"""A socket the host listens on, to see whether anything a hostile file runs reaches it.

It never accepts on a thread of its own: a connection the hostile code made is complete once its ``connect``
returned (the kernel finishes the handshake on loopback and Unix sockets) and waits in the backlog, so reading
the backlog after the code ran sees every one. A thread that accepts in its own time could miss the last one, and
an assertion that nothing connected could then pass when it should fail.
"""

from __future__ import annotations

import socket

__all__ = ["Listening"]


class Listening:
    """What connected to a listening socket: read from its backlog when asked."""

    def __init__(self, listener: socket.socket, *, read: bool = True) -> None:
        listener.setblocking(False)
        self.socket = listener
        self.read = read
        self.seen: list[bytes] = []

    @property
    def received(self) -> list[bytes]:
        """Each connection made so far: what it sent first (``read``), else ``b"connected"``."""
        while True:
            try:
                connection, _ = self.socket.accept()
            except BlockingIOError:
                return self.seen
            with connection:
                connection.settimeout(5)
                self.seen.append((connection.recv(4096) or b"(connected)") if self.read else b"connected")

    def close(self) -> None:
        self.socket.close()
