"""A real HTTP proxy in front of moto that answers the first N requests with an S3 error (503 SlowDown, 500...).

Object storage is the boundary the harness does not own, so its faults are injected at the wire: the proxy
speaks HTTP on loopback, answers a failing request with the XML error body S3 sends, and forwards every other
request to moto unchanged. boto3's retries, backoff and error handling run exactly as against a struggling AWS.
With ``trickle`` set, a GET whose path ends with it gets moto's real headers at once and then its body one
byte every ``trickle_every_s`` seconds: a socket read timeout never trips on it.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from harness.services.s3 import S3Endpoint

ERRORS = {503: ("SlowDown", "Please reduce your request rate."),
          500: ("InternalError", "We encountered an internal error. Please try again.")}  # fmt: skip


@dataclass
class FaultyS3:
    """Counts requests; the first ``failures`` get ``status`` (``None``: every request fails)."""

    upstream: str
    failures: int | None
    status: int = 503
    requests: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    trickle: str = ""
    trickle_every_s: float = 0.2
    trickled: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def _should_fail(self) -> bool:
        with self.lock:
            self.requests += 1
            if self.failures is None or self.failed < self.failures:
                self.failed += 1
                return True
            return False

    def client(self, endpoint: S3Endpoint) -> Any:
        """A client of ``endpoint`` (its region and credentials) that goes through this proxy."""
        return S3Endpoint(self.url, endpoint.region, endpoint.access_key, endpoint.secret_key).client()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        target = httpx.URL(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._should_fail():
                    code, message = ERRORS[proxy.status]
                    error = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(error)
                    return
                upstream = http.client.HTTPConnection(target.host, target.port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                    answer = upstream.getresponse()
                    payload = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "server", "date"):
                            self.send_header(name, value)
                    self.end_headers()
                    if self.command == "GET" and proxy.trickle and self.path.split("?")[0].endswith(proxy.trickle):
                        self._trickle(payload)
                    elif self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            def _trickle(self, payload: bytes) -> None:
                for byte in payload:
                    if proxy.stopping.wait(proxy.trickle_every_s):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up: what the test wants
                        return
                    with proxy.lock:
                        proxy.trickled += 1

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@contextmanager
def faulty_s3(
    upstream: str, *, failures: int | None, status: int = 503, trickle: str = "", trickle_every_s: float = 0.2
) -> Iterator[FaultyS3]:
    """Serve the proxy on a free loopback port for the ``with`` block; it is always shut down."""
    proxy = FaultyS3(upstream, failures, status, trickle=trickle, trickle_every_s=trickle_every_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
