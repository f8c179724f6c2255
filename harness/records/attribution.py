"""Who ran a drill, where, with which harness, under which configuration and against which objectives.

An auditor relies on a record only if it is attributable. The operator is the ``--operator`` option, else the
``DRILL_OPERATOR`` variable, else the login name (the source is recorded beside it). The harness is named by
its git commit when run from a clone (``+dirty`` when the checkout has uncommitted changes), else by the
installed package's version, and the record says which. The configuration is named by its path and the sha256
of its bytes with every registered secret value replaced (the file names variables, not secrets, so this
changes nothing unless a secret was pasted into it). Each objective is listed with where its value came from,
and a value that differs from the previous drill's is a change: stated with its approval
(``[[objective_approvals]]``), or, without one, an action item; and a NO-GO when the change loosens the
objective, since a looser objective could turn a failing drill into a GO without anyone deciding it.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib.metadata
import os
import socket
import subprocess
import tomllib
from pathlib import Path
from typing import Literal

from harness.config import PROJECT_ROOT, DrillConfig, Objectives
from harness.records.record import Attribution, DrillRecord, ObjectiveChange, ObjectiveValue
from harness.redact import redact

__all__ = ["OPERATOR_ENV", "attribution", "harness_commit", "objective_changes", "operator"]

OPERATOR_ENV = "DRILL_OPERATOR"
CommitSource = Literal["git", "package version"]
_GIT_TIMEOUT_S = 10.0

STRICTER_WHEN_LARGER = frozenset(
    {"retention_days", "daily_snapshots", "weekly_snapshots", "noncurrent_days", "redis_copy_days"}
)
"""Objectives that demand more as they grow (keep more); the others (hours, minutes) demand more as they shrink."""


def operator(option: str | None = None) -> tuple[str, str]:
    """The operator and where the name came from: ``--operator``, ``$DRILL_OPERATOR``, else the login name."""
    if option:
        return option, "--operator"
    if os.environ.get(OPERATOR_ENV):
        return os.environ[OPERATOR_ENV], f"${OPERATOR_ENV}"
    try:
        return getpass.getuser(), "login name"
    except (KeyError, OSError):  # no passwd entry for the uid (a container): say so rather than guess
        return f"uid {os.getuid()}", "no login name: the process's user id"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True,
                          timeout=_GIT_TIMEOUT_S, check=False)  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


def harness_commit() -> tuple[str, CommitSource]:
    """The harness's git commit when it runs from a clone (``+dirty`` if changed), else its package version."""
    try:  # a clone of the harness itself, not a repository an installed copy happens to sit in
        ours = Path(_git("rev-parse", "--show-toplevel") or "/nonexistent").resolve() == PROJECT_ROOT.resolve()
        commit = _git("rev-parse", "HEAD") if ours else ""
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else False
    except (OSError, subprocess.TimeoutExpired):  # no git here: the package version is all there is
        commit = ""
    if commit:
        return commit + ("+dirty" if dirty else ""), "git"
    try:
        return importlib.metadata.version("codeblack-drills"), "package version"
    except importlib.metadata.PackageNotFoundError:
        return "unknown", "package version"


def _config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # loaded already, so only a file changed since: hash nothing
        return ""


def _declared_objectives(text: str) -> set[str]:
    """The keys the file's ``[objectives]`` table sets (the configuration may have been varied since loading)."""
    try:
        table = tomllib.loads(text).get("objectives", {})
    except tomllib.TOMLDecodeError:
        return set()
    return set(table) if isinstance(table, dict) else set()


def _objectives(config: DrillConfig, declared: set[str]) -> list[ObjectiveValue]:
    """Each ``[objectives]`` key, then each ``[[databases]]`` entry's RPO (``rpo_hours <name>``), with its source."""
    where = f"{config.source} [objectives]"
    common = [
        ObjectiveValue(
            name=name,
            value=float(getattr(config.objectives, name)),
            source=f"{where} {name}" if name in declared else "default (the plan's)",
        )
        for name in Objectives.model_fields
    ]
    inherited = next(objective for objective in common if objective.name == "rpo_hours")
    return common + [
        ObjectiveValue(name=f"rpo_hours {entry.name}", value=entry.rpo_hours,
                       source=f"{config.source} [[databases]] {entry.name} rpo_hours")
        if entry.rpo_hours is not None
        else inherited.model_copy(update={"name": f"rpo_hours {entry.name}",
                                          "source": f"{inherited.source}, inherited by [[databases]] {entry.name}"})
        for entry in config.databases
    ]  # fmt: skip


def _looser(name: str, previous: float, current: float) -> bool:
    return current < previous if name.split()[0] in STRICTER_WHEN_LARGER else current > previous


def objective_changes(
    config: DrillConfig, current: list[ObjectiveValue], previous: DrillRecord | None
) -> list[ObjectiveChange]:
    """The objectives whose value differs from ``previous``'s record, each with its matching approval if any."""
    if previous is None or previous.attribution is None:
        return []
    before = {objective.name: objective.value for objective in previous.attribution.objectives}
    now = {objective.name: objective.value for objective in current}
    changes = []
    for objective in current:
        old = before.get(objective.name)
        if old is None or old == objective.value or _stated_by_common(objective, before, now):
            continue
        approval = next((a for a in config.objective_approvals
                         if a.objective == objective.name and a.value == objective.value), None)  # fmt: skip
        changes.append(ObjectiveChange(
            name=objective.name, previous=old, current=objective.value,
            looser=_looser(objective.name, old, objective.value),
            approved_by=approval.approved_by if approval else "", reason=approval.reason if approval else "",
        ))  # fmt: skip
    return changes


def _stated_by_common(objective: ObjectiveValue, before: dict[str, float], now: dict[str, float]) -> bool:
    """A database's RPO that follows ``[objectives] rpo_hours`` before and after: that key's change states it."""
    name, _, database = objective.name.partition(" ")
    if not database or name not in now:
        return False
    return before.get(name) == before[objective.name] and now[name] == objective.value


def attribution(config: DrillConfig, previous: DrillRecord | None, operator_option: str | None = None) -> Attribution:
    """The attribution of a drill run now under ``config``, its objectives compared with ``previous``'s."""
    name, source = operator(operator_option)
    commit, commit_source = harness_commit()
    text = _config_text(config.source)
    objectives = _objectives(config, _declared_objectives(text))
    return Attribution(
        operator=name, operator_source=source, host=socket.gethostname(), harness_commit=commit,
        harness_commit_source=commit_source, config_path=str(config.source),
        config_sha256=hashlib.sha256(redact(text).encode()).hexdigest(), objectives=objectives,
        objective_changes=objective_changes(config, objectives, previous),
    )  # fmt: skip
