"""Gate 5: the offline SQL of the pending migrations, linted with squawk.

Each pending revision is rendered alone (``alembic upgrade <previous>:<revision> --sql`` through Alembic's
command API, captured from the config's output buffer) into ``<revision>.sql``, so every finding names the
revision it belongs to. squawk (from the ``squawk-cli`` package, installed next to this Python) reads all the
files in one run and reports JSON. Rules listed in ``[migrations] lint_blocking_rules`` fail the gate; every
other finding is a warning that is attached to the report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from harness.config import Waiver
from harness.errors import CheckFailed, HarnessError
from harness.migrations.history import RevisionGraph
from harness.migrations.project import MigrationProject
from harness.migrations.waivers import NO_WAIVERS, Waivers
from harness.services.base import minimal_env

__all__ = ["LintFinding", "LintReport", "check_lint", "lint_revisions", "squawk_executable"]

_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LintFinding:
    """One squawk finding in one revision's SQL."""

    HEADER: ClassVar[list[str]] = ["revision", "line", "rule", "severity", "message"]

    revision: str
    rule: str
    message: str
    line: int
    blocking: bool

    def row(self) -> list[object]:
        """A row for the report's table."""
        return [self.revision, self.line, self.rule, "blocks" if self.blocking else "warning", self.message]


@dataclass(frozen=True)
class LintReport:
    """The SQL that was linted, per revision, and what squawk found in it."""

    sql: dict[str, str] = field(default_factory=dict)
    findings: tuple[LintFinding, ...] = ()

    @property
    def blocking(self) -> list[LintFinding]:
        """The findings whose rule is configured to block the deploy."""
        return [finding for finding in self.findings if finding.blocking]

    def script(self) -> str:
        """All the linted SQL, one block per revision, for the report."""
        return "\n".join(f"-- revision {revision}\n{sql}" for revision, sql in self.sql.items())


def squawk_executable() -> Path:
    """The squawk binary: next to this Python (the project's venv), else on PATH.

    Raises:
        HarnessError: squawk is not installed.
    """
    beside = Path(sys.executable).parent / "squawk"
    if beside.exists():
        return beside
    found = shutil.which("squawk")
    if found is None:
        raise HarnessError(f"squawk not found in {beside.parent} or on PATH; install it with `uv sync` (squawk-cli)")
    return Path(found)


def _run_squawk(files: list[Path]) -> list[dict[str, object]]:
    try:
        result = subprocess.run(
            [str(squawk_executable()), "--reporter", "json", *map(str, files)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
            env=minimal_env(),
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"squawk did not finish within {_TIMEOUT_S:g} s") from None
    try:
        parsed: list[dict[str, object]] = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise HarnessError(
            f"squawk failed (exit {result.returncode}): {detail[-1] if detail else 'no output'}"
        ) from None
    return parsed


def lint_revisions(
    project: MigrationProject, graph: RevisionGraph, revisions: list[str], *, blocking_rules: Collection[str]
) -> LintReport:
    """Render each revision's offline SQL and lint it with squawk.

    Args:
        project: the migrations.
        graph: their revision graph, for each revision's predecessor.
        revisions: the revisions to lint (the pending ones), in upgrade order.
        blocking_rules: squawk rule names that block the deploy.
    """
    if not revisions:
        return LintReport()
    order = graph.order
    sql: dict[str, str] = {}
    with project.child() as child:
        for revision in revisions:
            position = order.index(revision)
            sql[revision] = child.offline_sql(f"{order[position - 1]}:{revision}" if position else revision)
    with tempfile.TemporaryDirectory(prefix="codeblack-drills-lint-") as tmp:
        files = []
        for revision, text in sql.items():
            files.append(Path(tmp) / f"{revision}.sql")
            files[-1].write_text(text)
        raw = _run_squawk(files)
    findings = tuple(
        LintFinding(
            revision=Path(str(item["file"])).stem,
            rule=str(item["rule_name"]),
            message=str(item["message"]),
            line=int(str(item.get("line", 0))) + 1,
            blocking=str(item["rule_name"]) in blocking_rules,
        )
        for item in raw
    )
    return LintReport(sql, findings)


def check_lint(report: LintReport, waivers: Waivers = NO_WAIVERS) -> list[Waiver]:
    """No finding of a blocking rule, unless a waiver names that rule for that revision.

    Returns:
        The waivers that excused a blocking finding, for the report.

    Raises:
        CheckFailed: naming each revision, its blocking rule and squawk's message.
    """
    used: list[Waiver] = []
    blocking: list[LintFinding] = []
    for finding in report.blocking:
        waiver = waivers.find(finding.rule, finding.revision)
        if waiver is None:
            blocking.append(finding)
        elif waiver not in used:
            used.append(waiver)
    if blocking:
        raise CheckFailed(
            f"{len(blocking)} blocking lint finding(s) in the pending migrations: "
            + "; ".join(f"revision {f.revision} line {f.line}: {f.rule}: {f.message}" for f in blocking)
            + " ([migrations] lint_blocking_rules)"
        )
    return used
