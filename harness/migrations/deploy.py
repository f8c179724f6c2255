"""Gate 3: the plan's deployment order, rehearsed on a staging copy restored from the newest backup.

The order is the plan's: maintenance mode for writes when a destructive migration is pending, ``alembic upgrade
head`` on the restored production data, ``alembic current`` equal to the head, the app's startup checks and
``health/deep``, writes re-enabled. Each step is one method so the feature states them one by one. The upgrade
runs revision by revision, so a migration that passes on an empty database but fails on real data (a NOT NULL
column without a default, a unique index over duplicates) is named with the database's own error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from harness.app.runner import AppProcess
from harness.config import AppSettings
from harness.errors import CheckFailed, HarnessError
from harness.migrations.destructive import DestructiveOperation
from harness.migrations.history import RevisionGraph
from harness.migrations.isolation import MigrationFailed
from harness.migrations.locks import LockHeld, LockWatcher, RevisionTiming, StatementSeen
from harness.migrations.project import Database, MigrationProject, connected, current_revision
from harness.services.base import wait_until

__all__ = [
    "DeployRehearsal",
    "MaintenanceWindow",
    "WriteSwitch",
    "wait_listening",
]


@dataclass
class DeployRehearsal:
    """The migration half of a deploy, on a throwaway copy of production."""

    project: MigrationProject
    graph: RevisionGraph
    database: Database | None
    deployed: str | None = None
    applied: list[str] = field(default_factory=list)
    timings: list[RevisionTiming] = field(default_factory=list)
    statements: list[StatementSeen] = field(default_factory=list)
    locks: list[LockHeld] = field(default_factory=list)
    #: The watcher of the revision being applied, for callers that act on what it sees (None between revisions).
    watching: LockWatcher | None = None

    def pending(self) -> list[str]:
        """The revisions ``alembic upgrade head`` would apply to this copy, oldest first.

        Without a copy (a target with no backups), :attr:`deployed` is the configured ``deployed_head``.
        """
        where = "the staging copy is at"
        if self.database is not None:
            with connected(self.database) as connection:
                self.deployed = current_revision(connection)
        else:
            where = "[migrations] deployed_head is"
        if self.deployed is not None and self.deployed not in self.graph.order:
            raise CheckFailed(
                f"{where} revision {self.deployed}, which the migration history does not contain; "
                "production runs a revision this code does not know"
            )
        return self.graph.after(self.deployed)

    @property
    def copy(self) -> Database:
        """The staging copy the rehearsal migrates.

        Raises:
            HarnessError: the target has no backups, so there is no copy (its scenario is not applicable).
        """
        if self.database is None:
            raise HarnessError("no staging copy: the target configures no backups to restore")
        return self.database

    def upgrade(self) -> list[str]:
        """Apply the pending revisions one by one (``alembic upgrade head``) and return them.

        Each revision's wall time and longest ACCESS EXCLUSIVE lock are measured into :attr:`timings`, the
        statements seen running (with their lock waits) into :attr:`statements`, the locks taken into :attr:`locks`.

        Raises:
            CheckFailed: naming the revision that fails on the restored data and the database's error.
        """
        pending = self.pending()
        with self.project.child(self.copy) as child:
            for revision in pending:
                started = time.monotonic()
                try:
                    with LockWatcher(self.copy.dsn) as watcher:
                        self.watching = watcher
                        try:
                            child.upgrade(revision)
                        finally:
                            self.watching = None
                except MigrationFailed as failed:
                    raise CheckFailed(
                        f"revision {revision} fails on the restored production data: {failed.error} "
                        f"(applied before it: {', '.join(self.applied) or 'none'})"
                    ) from None
                self.timings.append(RevisionTiming(revision, time.monotonic() - started, *watcher.longest()))
                self.statements += watcher.statements(revision)
                self.locks += watcher.locks(revision)
                self.applied.append(revision)
        return self.applied

    def check_current(self) -> str:
        """``alembic current`` of the copy equals the expected head.

        Raises:
            CheckFailed: naming the revision found and the expected one.
        """
        with connected(self.copy) as connection:
            current = current_revision(connection)
        if current != self.project.expected_head:
            raise CheckFailed(
                f"alembic current on the staging copy is {current}, not the expected head {self.project.expected_head}"
            )
        return current


@dataclass(frozen=True)
class WriteSwitch:
    """The app's maintenance switch and one harmless write to prove it (``[app] maintenance_path``, ``probe_write_*``).

    An app without them (empty paths) has no switch to call: the window is not opened and no write is probed.
    """

    base_url: str
    actor: str
    maintenance_path: str
    probe_path: str
    probe_body: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, base_url: str, app: AppSettings) -> WriteSwitch:
        """The switch ``[app]`` describes, used by its proposer."""
        return cls(base_url, app.proposer, app.maintenance_path, app.probe_write_path, app.probe_write_body,
                   app.request_timeout_s)  # fmt: skip

    def _request(self, method: str, path: str, body: Mapping[str, object]) -> httpx.Response:
        try:
            return httpx.request(
                method, self.base_url + path, json=body, headers={"X-Actor": self.actor}, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise HarnessError(f"{method} {self.base_url}{path}: {type(exc).__name__}: {exc}") from None

    def set_maintenance(self, enabled: bool, reason: str) -> None:
        """Turn maintenance mode on or off.

        Raises:
            CheckFailed: the app refuses the switch (its status and body are quoted).
        """
        answer = self._request("PUT", self.maintenance_path, {"enabled": enabled, "reason": reason})
        if answer.status_code != 200:
            raise CheckFailed(
                f"PUT {self.maintenance_path} enabled={enabled} answered {answer.status_code}: {answer.text[:300]}"
            )

    def probe_write(self) -> int:
        """Attempt one ordinary write (``{unique}`` in the body made unique to this probe); its status code."""
        unique = f"drill-probe-{uuid.uuid4().hex}"
        body = {name: value.replace("{unique}", unique) for name, value in self.probe_body.items()}
        return self._request("POST", self.probe_path, body).status_code

    def check_writes(self, *, refused: bool) -> int | None:
        """A write is refused with 503 (maintenance on) or accepted with 201 (writes re-enabled).

        Returns ``None`` without a request when the app has no probe write (``[app] probe_write_path``).

        Raises:
            CheckFailed: naming the write, the expected and the actual status.
        """
        if not self.probe_path:
            return None
        expected = 503 if refused else 201
        status = self.probe_write()
        if status != expected:
            state = "in maintenance mode" if refused else "after writes were re-enabled"
            raise CheckFailed(f"POST {self.probe_path} {state} answered {status}, expected {expected}")
        return status


@dataclass
class MaintenanceWindow:
    """Maintenance mode around the migration, opened only when a pending migration is destructive (the plan)."""

    switch: WriteSwitch
    destructive: list[DestructiveOperation]

    @property
    def needed(self) -> bool:
        """Whether the plan requires maintenance mode for this deploy and the app has a switch for it."""
        return bool(self.destructive) and bool(self.switch.maintenance_path)

    def reason(self) -> str:
        """Why writes are switched off, as recorded in the app's audit trail."""
        revisions = sorted({operation.revision for operation in self.destructive})
        return f"deploy rehearsal: destructive migration(s) {', '.join(revisions)} pending"

    def open(self) -> MaintenanceWindow:
        """Switch writes off when needed."""
        if self.needed:
            self.switch.set_maintenance(True, self.reason())
        return self

    def check_refused(self) -> int | None:
        """A write is refused while the window is open (``None``: no window was needed)."""
        return self.switch.check_writes(refused=True) if self.needed else None

    def close(self) -> None:
        """Re-enable writes when they were switched off."""
        if self.needed:
            self.switch.set_maintenance(False, "deploy rehearsal: migrations applied, health/deep passed")


def wait_listening(app: AppProcess, timeout: float) -> AppProcess:
    """Wait until the started app answers at all: before the upgrade its deep health may rightly say "behind head".

    Raises:
        ServiceError: the app exited during start (quoting its log) or did not listen within ``timeout``.
    """
    assert app.process is not None, "start() the app first"
    process = app.process

    def listening() -> bool:
        process.ensure_alive()
        return app.get_health() is not None

    wait_until(listening, timeout=timeout, what=f"{app.name} to listen on {app.base_url}")
    return app
