"""The config gates as one session against one running app: what the feature's steps call.

A :class:`ConfigGates` holds the client, the staging copy's audit trail, the keys and their flags, and the
secret values planted in the app's environment. Each gate method runs one gate over every key it concerns
and returns a :class:`GateRun`: the evidence, the exchanges it made (for the report, redacted) and the audit
watermark taken before it, so the audit gate can demand the rows of exactly that run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.app.client import ConfigClient, Exchange
from harness.app.config_audit import AuditEvent, AuditTrail, check_audit_trail, check_no_secret_leaks
from harness.app.config_gates import (
    ApprovalEvidence,
    ConfigKeys,
    RefusalEvidence,
    SignatureEvidence,
    check_sensitive_refused,
    check_signatures,
    check_two_step_approval,
    config_keys,
)
from harness.config import DrillConfig
from harness.errors import CheckFailed
from harness.services.postgres import ensure_throwaway

__all__ = ["ConfigGates", "GateRun"]

T = TypeVar("T")


@dataclass
class GateRun(Generic[T]):
    """One gate's outcome: its evidence, the audit events it caused and the exchanges it made."""

    evidence: T
    events: list[AuditEvent]
    watermark: int
    exchanges: list[Exchange] = field(default_factory=list)

    def exchange_evidence(self) -> list[dict[str, Any]]:
        """Every request and response of the run, redacted, for the report."""
        return [exchange.evidence() for exchange in self.exchanges]


@dataclass
class ConfigGates:
    """The gates against one app on the staging copy.

    Attributes:
        client: the verified, recording client of the app.
        trail: the staging copy's audit table.
        keys: which keys are critical, sensitive and normal.
        planted: sensitive key → the value planted for it in the app's environment.
    """

    client: ConfigClient
    trail: AuditTrail
    keys: ConfigKeys
    planted: Mapping[str, str] = field(default_factory=dict, repr=False)
    attempted: dict[str, str] = field(default_factory=dict, repr=False)

    def _run(self, gate: Callable[[], T], events: Callable[[T], list[AuditEvent]]) -> GateRun[T]:
        watermark = self.trail.watermark()
        start = len(self.client.exchanges)
        evidence = gate()
        return GateRun(evidence, events(evidence), watermark, self.client.exchanges[start:])

    @classmethod
    def connect(
        cls, base_url: str, config: DrillConfig, verify_key: str, dsn: str, planted: Mapping[str, str]
    ) -> ConfigGates:
        """Gates against the app at ``base_url`` whose audit table is in the staging database at ``dsn``.

        The gates change config through the app, which writes to that database: it must be a throwaway copy.

        Raises:
            UnsafeTargetError: ``dsn`` is not a server this run created (before any request is made).
            ConfigError: ``[database] audit_table`` or ``[app] config_api_path`` is not set.
        """
        ensure_throwaway(dsn)
        audit = str(config.required("database.audit_table", "the table the application audits config changes in"))
        client = ConfigClient.from_settings(base_url, config, verify_key)
        try:
            keys = config_keys(client, config.app)
        except BaseException:
            client.close()
            raise
        return cls(client, AuditTrail(dsn, audit), keys, planted)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def declared_keys(self) -> list[list[str]]:
        """The keys the gates treat as critical or sensitive, as table rows; fails when either kind is missing."""
        self._need("critical", self.keys.critical)
        self._need("sensitive", self.keys.sensitive)
        return [[key, "critical"] for key in self.keys.critical] + [[key, "sensitive"] for key in self.keys.sensitive]

    def _need(self, kind: str, keys: list[str]) -> list[str]:
        if not keys:
            raise CheckFailed(
                f"the config API flags no key as {kind} and [app] names none; rule: the plan's "
                f"Change Safety Gates need {kind} keys to be declared"
            )
        return keys

    def two_step(self) -> GateRun[list[ApprovalEvidence]]:
        """The two-step approval gate on every critical key."""
        keys = self._need("critical", self.keys.critical)
        return self._run(
            lambda: [check_two_step_approval(self.client, key) for key in keys],
            lambda found: [event for item in found for event in item.events],
        )

    def sensitive(self) -> GateRun[list[RefusalEvidence]]:
        """The refusal gate on every sensitive key; the attempted values join the leak search."""
        keys = self._need("sensitive", self.keys.sensitive)
        run = self._run(
            lambda: [check_sensitive_refused(self.client, key) for key in keys],
            lambda found: [event for item in found for event in item.events],
        )
        self.attempted.update({item.key: item.attempted for item in run.evidence})
        return run

    def signatures(self) -> GateRun[SignatureEvidence]:
        """The signature gate on the first ordinary key (a change and its undo)."""
        key = self._need("ordinary (neither critical, sensitive nor boolean)", self.keys.normal)[0]
        return self._run(lambda: check_signatures(self.client, key), lambda found: found.events)

    def audited(self, run: GateRun[Any]) -> list[dict[str, Any]]:
        """The audit rows of one run, one per event it caused (see :func:`check_audit_trail`)."""
        return check_audit_trail(self.trail, run.watermark, run.events)

    def no_leaks(self, run: GateRun[Any]) -> int:
        """No planted or attempted sensitive value in any response so far or in the audit rows since ``run``."""
        values = [*self.planted.items(), *self.attempted.items()]
        return check_no_secret_leaks(
            values, self.client.exchanges, self.trail.rows_since(run.watermark), self.trail.table
        )

    def every_change(self) -> GateRun[list[Any]]:
        """All gates in a row, as one run whose events the audit gate checks together."""
        watermark = self.trail.watermark()
        start = len(self.client.exchanges)
        runs: list[GateRun[Any]] = [self.two_step(), self.sensitive(), self.signatures()]
        events = [event for run in runs for event in run.events]
        return GateRun([run.evidence for run in runs], events, watermark, self.client.exchanges[start:])
