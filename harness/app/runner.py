"""Start the target application against a staging copy and wait until its deep health says it is healthy.

The plan's third restore step is "validate app startup and deep health endpoint". The app is started from
``[app] command`` with the staging addresses in the variables ``[app] env`` names, and ``GET health_path`` is
polled under a deadline. An app that exits during start fails at once quoting its log tail; one that answers
but never healthy fails with the last body, which names the component that is down. The process is always
stopped, also when the start fails.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import CheckFailed, ServiceError
from harness.redact import redact
from harness.services.base import PORT_ATTEMPTS, ManagedProcess, free_port, label_dir, port_taken, remove_dir

__all__ = ["AppProcess", "HealthAnswer", "app_env", "down_components"]

log = logging.getLogger("harness.app")


@dataclass(frozen=True)
class HealthAnswer:
    """One answer of the health endpoint: status code, parsed body (or raw text) and when it came."""

    status_code: int
    body: Any
    elapsed_s: float

    @property
    def healthy(self) -> bool:
        """200 with an overall status of ``ok``: the only answer that lets the drill cut over."""
        return self.status_code == 200 and isinstance(self.body, dict) and self.body.get("status") == "ok"


def down_components(body: Any) -> list[str]:
    """Names of the components a health body reports as not ok (``name: error``), for a one-line failure."""
    if not isinstance(body, dict) or not isinstance(body.get("components"), dict):
        return []
    down = []
    for name, component in body["components"].items():
        if isinstance(component, dict) and component.get("status") != "ok":
            down.append(f"{name}: {component.get('error', component.get('status'))}")
    return down


@dataclass
class AppProcess:
    """The target app as a child process on a free loopback port.

    Attributes:
        command: argv with ``{python}`` and ``{port}`` placeholders (``config.app.command`` by default; the
            config gates pass broken backend variants here).
        env: environment of the app (staging DSNs, storage endpoint, secrets); never logged.
        health_path: the deep health endpoint.
        request_timeout_s: deadline of each health request, so a hung app cannot hang the drill.
    """

    command: Sequence[str]
    env: Mapping[str, str] = field(repr=False)
    health_path: str
    request_timeout_s: float = 10.0
    name: str = "app"
    port: int = 0
    process: ManagedProcess | None = None
    workdir: Path | None = None
    last_answer: HealthAnswer | None = None
    launched_at: float = 0.0
    """When :meth:`start` launched the process (``time.monotonic``): an app's start time counts from here."""

    @classmethod
    def from_config(
        cls, config: DrillConfig, env: Mapping[str, str], *, command: Sequence[str] | None = None, name: str = "app"
    ) -> AppProcess:
        """An app described by ``[app]`` of ``config``; ``command`` overrides it (broken variants).

        Raises:
            ConfigError: ``[app] command`` or ``health_path`` is not set.
        """
        argv = command or config.required("app.command", "the command that starts the application")
        health = config.required("app.health_path", "the application's deep health endpoint")
        return cls(argv, env, health, config.app.request_timeout_s, name)

    @property
    def base_url(self) -> str:
        """Where the app listens."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AppProcess:
        """Start the app with placeholders substituted; returns at once (see :meth:`wait_healthy`)."""
        self.port = free_port()
        workdir = label_dir(f"app-{self.name}")
        argv = [part.replace("{python}", sys.executable).replace("{port}", str(self.port)) for part in self.command]
        self.process = ManagedProcess(
            name=f"app {self.name}", argv=argv, log_path=workdir / "app.log", env=dict(self.env)
        )
        self.workdir = workdir
        self.launched_at = time.monotonic()
        try:
            self.process.start()
        except BaseException:
            remove_dir(workdir)
            raise
        log.info("started app %s on %s: %s", self.name, self.base_url, " ".join(argv))
        return self

    def rename(self, name: str) -> AppProcess:
        """Give an app launched ahead the name of the scenario that takes it (its messages quote the name)."""
        self.name = name
        if self.process is not None:
            self.process.name = f"app {name}"
        return self

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the app's output (to quote when it fails), secrets scrubbed.

        A crashing app often prints its settings, which hold the secrets the drill gave it.
        """
        return redact(self.process.log_tail(lines)) if self.process else ""

    def get_health(self) -> HealthAnswer | None:
        """One request to the health endpoint; ``None`` while nothing listens yet."""
        started = time.monotonic()
        try:
            response = httpx.get(self.base_url + self.health_path, timeout=self.request_timeout_s)
        except httpx.TimeoutException:
            return HealthAnswer(0, f"no answer within {self.request_timeout_s:g} s", time.monotonic() - started)
        except httpx.TransportError:
            return None
        try:
            body: Any = response.json()
        except json.JSONDecodeError:
            body = response.text[:2000]
        return HealthAnswer(response.status_code, body, time.monotonic() - started)

    def wait_healthy(self, timeout: float = 30.0, interval: float = 0.2) -> HealthAnswer:
        """Poll the health endpoint until it answers healthy.

        Raises:
            ServiceError: the app exited during start (the message quotes its log tail).
            CheckFailed: no healthy answer within ``timeout``; the message names the down components and
                the last body, so the operator sees which store the restored app could not use.
        """
        assert self.process is not None, "start() the app first"
        deadline = time.monotonic() + timeout
        attempt = 1
        while True:
            if not self.process.alive() and attempt < PORT_ATTEMPTS and port_taken(self.process.log_path, 0):
                # Another process bound the port between free_port() and the app: start it again on another.
                log.info("app %s: port %d was taken before it bound it; another port", self.name, self.port)
                launched, attempt = self.launched_at, attempt + 1
                self.stop()
                self.start().launched_at = launched  # its start time counts from the first launch
            if not self.process.alive():
                code = self.process.process.returncode if self.process.process else None
                raise ServiceError(f"app {self.name} exited with code {code} during start: {self.log_tail()}")
            answer = self.get_health()
            if answer is not None:
                self.last_answer = answer
                if answer.healthy and self._listens():
                    return answer
            if time.monotonic() >= deadline:
                raise CheckFailed(self._unhealthy_message(timeout))
            time.sleep(interval)

    def _listens(self) -> bool:
        """Whether the port is the app's: its process, or one it started, listens on it.

        Until the app has bound its port, whatever answers there is another process's; a healthy answer from it
        must never stand for the restored app's.
        """
        if self.process is None or self.process.process is None:
            return False
        try:
            root = psutil.Process(self.process.process.pid)
            ours = {root.pid, *(child.pid for child in root.children(recursive=True))}
            sockets = psutil.net_connections(kind="tcp")
        except psutil.Error:
            return False
        listening = (s for s in sockets if s.pid in ours and s.status == psutil.CONN_LISTEN)
        return any(getattr(s.laddr, "port", None) == self.port for s in listening)

    def _unhealthy_message(self, timeout: float) -> str:
        url = self.base_url + self.health_path
        answer = self.last_answer
        if answer is None:
            return f"GET {url} never answered within {timeout:g} s; app log: {self.log_tail()}"
        if answer.status_code == 0:  # the request itself timed out: the endpoint hangs
            return (f"GET {url} hangs: {answer.body} (app.request_timeout_s); not healthy within {timeout:g} s "
                    "(app.startup_timeout_s)")  # fmt: skip
        down = down_components(answer.body)
        cause = f"down: {'; '.join(down)}" if down else f"status {answer.status_code}"
        body = json.dumps(answer.body, default=str) if not isinstance(answer.body, str) else answer.body
        return redact(f"GET {url} not healthy within {timeout:g} s ({cause}); last body: {body[:1500]}")

    def stop(self) -> None:
        """Stop the app and remove its directory; safe to call twice or before :meth:`start`."""
        if self.process is not None:
            self.process.stop()
        if self.workdir is not None:
            remove_dir(self.workdir)


def app_env(config: DrillConfig, deployment: Deployment, *, database_url: str, redis_url: str) -> dict[str, str]:
    """The app's environment: production's object storage (read only), the app's secrets and ``[app] env``.

    The staging stores reach the app only through ``[app] env``, whose values name them by the placeholders of
    :data:`harness.config.APP_PLACEHOLDERS` (the app's own variable names are the target's configuration).
    """
    storage = deployment.storage
    values = {
        "database_url": database_url,
        "redis_url": redis_url,
        "s3_endpoint_url": storage.url or "",
        "s3_region": storage.region,
        "uploads_bucket": deployment.uploads_bucket,
        "approver": config.app.approver,
    }
    env = {**storage.env(), **{name: secret.get_secret_value() for name, secret in deployment.app_secrets.items()}}
    env.update({name: value.format(**values) for name, value in config.app.env.items()})
    return env
