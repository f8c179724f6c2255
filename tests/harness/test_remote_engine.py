"""The docker provider with an engine reached through ``DOCKER_HOST`` (a remote engine), for real.

The engine here is the local one (``scripts/containers``), reached over TCP through a small forwarder to its
socket, as a remote engine is. It answers on 127.0.0.1, where testcontainers' own guess of the container's host
(inside a container, the default gateway) is not the engine's host, and on 127.0.0.2, where a hard-coded
127.0.0.1 would show. Nothing is assumed of the engine's filesystem: the dump is copied into the container, not
mounted from this machine.
Skipped, with the reason, where no engine answers or the images are not built.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from harness.config import DrillConfig
from harness.services.docker import ContainerPostgres, engine_address
from harness.services.provider import Provider
from tests.harness.test_containers import NOT_READY, labelled
from tests.harness.test_restore import TAKEN_AT, Production, make_production


class EngineOverTcp:
    """Forwards every TCP connection on ``host``:<port> to the engine's Unix socket, both ways.

    Each direction is pumped by a thread of its own, and an end of input is passed on as a half-close: ``docker
    exec -i`` ends a tool's stdin that way while it still reads the tool's output.
    """

    def __init__(self, host: str, socket_path: str) -> None:
        self.host = host
        self.socket_path = socket_path
        self.listener = socket.create_server((host, 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, name="engine-over-tcp", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.socket_path)
            self.connections += 1
            ends = [2]
            for source, sink in ((client, engine), (engine, client)):
                threading.Thread(target=_pump, args=(source, sink, (client, engine), ends), daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        self._thread.join(timeout=5)


def _pump(source: socket.socket, sink: socket.socket, pair: tuple[socket.socket, ...], ends: list[int]) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
    ends[0] -= 1
    if ends[0] == 0:  # both directions ended: the connection is over
        for each in pair:
            each.close()


def _not_forwardable() -> str:
    if NOT_READY:
        return NOT_READY
    if not engine_address().startswith("unix://"):
        return f"the engine is already reached over the network ({engine_address()}): nothing to forward"
    return ""


NOT_FORWARDABLE = _not_forwardable()


@pytest.fixture(params=["127.0.0.1", "127.0.0.2"])
def remote_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineOverTcp]:
    """``DOCKER_HOST=tcp://<host>:<port>``, forwarded to the local engine's socket."""
    forwarder = EngineOverTcp(request.param, engine_address().removeprefix("unix://"))
    monkeypatch.setenv("DOCKER_HOST", f"tcp://{forwarder.host}:{forwarder.port}")
    try:
        yield forwarder
    finally:
        assert labelled() == []  # nothing of this run is left on the engine
        forwarder.close()


@pytest.fixture(scope="module")
def production(pg_server: Any, s3_server: Any, drill_config: DrillConfig) -> Production:
    return make_production(pg_server, s3_server, drill_config, newest=TAKEN_AT - timedelta(minutes=1))


@pytest.mark.skipif(bool(NOT_FORWARDABLE), reason=NOT_FORWARDABLE or "engine forwardable")
def test_a_restore_through_a_remote_engine_reaches_its_container_at_the_engines_host(
    remote_engine: EngineOverTcp, production: Production, drill_config: DrillConfig
) -> None:
    provider = Provider.from_settings(drill_config.services.model_copy(update={"provider": "docker"}))
    staging = production.restore(provider, name=f"remote{uuid.uuid4().hex[:4]}")
    try:
        server = staging.postgres
        assert isinstance(server, ContainerPostgres)
        assert server.host == remote_engine.host  # the engine's host, where the port is published
        attrs = server.container.get_wrapped_container().attrs
        assert attrs["HostConfig"]["PortBindings"]["5432/tcp"]
        assert attrs["Mounts"] == []  # the dump was copied in: a remote engine cannot see this machine's files
        with server.connect(staging.dbname, server.owner_role) as conn:
            row = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert row == (production.manifest.tables["orders"].rows,)
        assert staging.counts.tables["orders"].rows == production.manifest.tables["orders"].rows
        assert remote_engine.connections > 0  # the engine was reached over TCP, not its socket
    finally:
        staging.stop()
