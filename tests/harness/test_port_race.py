"""A throwaway server whose port another process bound first starts on another port instead of failing.

:func:`~harness.services.base.free_port` picks a port nothing listens on, and the server binds it a moment
later; another process (a second drill, CI beside an operator's run) may bind it in between. The test is that
other process: it holds the port the server picks first, listening, before the server starts.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from harness.app import runner
from harness.app.runner import AppProcess
from harness.errors import ServiceError
from harness.services import base
from harness.services.base import PORT_ATTEMPTS, free_port, wait_until
from harness.services.postgres import LocalPostgres
from harness.services.redis import LocalRedis
from harness.services.s3 import MotoS3


@contextlib.contextmanager
def _taken_first(monkeypatch: pytest.MonkeyPatch, module: ModuleType, count: int = 1) -> Iterator[list[int]]:
    """Another process's listening sockets on the first ``count`` ports ``module`` picks."""
    holders = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    taken = [holder.getsockname()[1] for holder in holders]
    picks = iter(taken)
    monkeypatch.setattr(module, "free_port", lambda: next(picks, None) or free_port())
    try:
        yield taken
    finally:
        for holder in holders:
            holder.close()


def _answers_postgres(server: LocalPostgres) -> bool:
    with server.connect() as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


SERVERS: dict[str, tuple[Callable[[], Any], Callable[[Any], bool]]] = {
    "PostgreSQL": (lambda: LocalPostgres.create("port-race"), _answers_postgres),
    "Redis": (lambda: LocalRedis.create("port-race"), lambda server: bool(server.client().ping())),
    "moto S3": (MotoS3.create, lambda server: server.client().list_buckets()["Buckets"] == []),
}


@pytest.mark.parametrize("kind", list(SERVERS))
def test_a_server_on_a_port_taken_meanwhile_starts_on_another(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    create, answers = SERVERS[kind]
    with _taken_first(monkeypatch, base) as taken:
        server = create()
        try:
            assert server.port not in taken
            assert answers(server)
        finally:
            server.stop()


HEALTHY_APP = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_an_app_on_a_port_taken_meanwhile_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _taken_first(monkeypatch, runner) as taken:
        app = AppProcess(["{python}", "-c", HEALTHY_APP, "{port}"], {}, "/health").start()
        launched = app.launched_at
        try:
            assert app.wait_healthy(timeout=30).healthy
            assert app.port not in taken
            assert app.launched_at == launched  # its start time counts from the first launch
        finally:
            app.stop()


def test_a_server_whose_every_port_is_taken_fails_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    with _taken_first(monkeypatch, base, PORT_ATTEMPTS), pytest.raises(ServiceError) as failed:
        LocalPostgres.create("port-race")
    assert "Address already in use" in str(failed.value)


def test_a_healthy_answer_from_another_process_on_the_apps_port_is_not_the_apps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process on the port picked first answers exactly as a healthy app would: it must not count."""
    impostor_port = free_port()
    impostor = subprocess.Popen([sys.executable, "-c", HEALTHY_APP, str(impostor_port)])
    try:
        wait_until(lambda: _connects(impostor_port), timeout=30, what="the impostor's port")
        picks = iter([impostor_port])
        monkeypatch.setattr(runner, "free_port", lambda: next(picks, None) or free_port())
        app = AppProcess(["{python}", "-c", HEALTHY_APP, "{port}"], {}, "/health").start()
        try:
            assert app.wait_healthy(timeout=30).healthy
            assert app.port != impostor_port
        finally:
            app.stop()
    finally:
        impostor.kill()
        impostor.wait(10)


def _connects(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False
