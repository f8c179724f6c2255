"""A loopback port nothing answers on, held for as long as a test needs it refused."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

__all__ = ["closed_port"]


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port bound by this test and never listened on: every connection to it is refused, for the whole block.

    A port picked free and closed at once (``free_port()``) can be taken by any server started meanwhile (a drill
    starts several, each on a port picked the same way), which then answers in place of the refusal the test
    asserts. Bound here without ``SO_REUSEADDR``, the port cannot be bound by anyone else until the block ends.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
