"""Steps of the change safety gates: one ``harness.app`` call each, the exchanges and audit rows attached."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_bdd import given, then, when

from harness.app.client import ConfigClient
from harness.app.config_audit import plant_secrets, secret_env
from harness.app.config_gates import config_keys
from harness.app.config_session import ConfigGates, GateRun
from harness.app.runner import AppProcess
from harness.deployment import Deployment
from harness.restore.staging import Staging

from .evidence import attach_json, attach_table


@pytest.fixture(scope="session")
def config_gate_app(
    app_factory: Any, staging_app: AppProcess, staging: Staging, deployment: Deployment
) -> Iterator[ConfigGates]:
    """A second app on the staging copy with a fresh secret planted for every sensitive key the API declares."""
    app = deployment.config.app
    with ConfigClient.from_settings(staging_app.base_url, deployment.config, deployment.verify_key) as probe:
        planted = plant_secrets(config_keys(probe, app).sensitive)
    started = app_factory(env=secret_env(planted, deployment.config), name="config-gates")
    started.wait_healthy(app.startup_timeout_s)
    gates = ConfigGates.connect(started.base_url, deployment.config, deployment.verify_key, staging.dsn, planted)
    yield gates
    gates.close()


@given(
    "the config API of the app started on the staging copy, with known secret values planted",
    target_fixture="config_gates",
)
def _config_gates(config_gate_app: ConfigGates) -> ConfigGates:
    return config_gate_app


def _attached(name: str, run: GateRun[Any]) -> GateRun[Any]:
    attach_json(f"{name}: requests and responses", run.exchange_evidence())
    return run


@then("the config API flags at least one critical key and one sensitive key")
def _declared(config_gates: ConfigGates) -> None:
    attach_table("keys under the change safety gates", ["key", "kind"], config_gates.declared_keys())


@when(
    "a change to each critical key is proposed, approved by its own proposer, and then by a second approver",
    target_fixture="gate_run",
)
def _two_step(config_gates: ConfigGates) -> GateRun[Any]:
    return _attached("two-step approval", config_gates.two_step())


@then("each change stayed pending, with the old value in force, until it was approved")
def _pending(gate_run: GateRun[Any]) -> None:
    attach_json("two-step approval evidence", [dataclasses.asdict(item) for item in gate_run.evidence])
    early = [item.key for item in gate_run.evidence if item.value_while_pending != item.value_before]
    assert not early, f"changed while the change was still pending approval: {', '.join(early)}"


@then("no actor could approve a change they had proposed themselves")
def _no_self_approval(gate_run: GateRun[Any]) -> None:
    self_approved = [item.key for item in gate_run.evidence
                     if min(item.self_approval_status, item.approver_self_approval_status) < 400]  # fmt: skip
    assert not self_approved, f"a proposer's own approval was accepted for: {', '.join(self_approved)}"


@then("each change took effect once a second, authorised approver approved it")
def _approved(gate_run: GateRun[Any]) -> None:
    not_applied = [item.key for item in gate_run.evidence if item.value_after_approval != item.proposed_value]
    assert not not_applied, f"did not take the approved value: {', '.join(not_applied)}"


@when("a change to each sensitive key is attempted through the config API", target_fixture="gate_run")
def _sensitive(config_gates: ConfigGates) -> GateRun[Any]:
    return _attached("sensitive keys", config_gates.sensitive())


@then("every attempt is refused and the key keeps the value held in the secret manager")
def _refused(gate_run: GateRun[Any]) -> None:
    attach_json("refusals", [dataclasses.asdict(item) for item in gate_run.evidence])
    accepted = [f"{item.key} (HTTP {item.status_code})" for item in gate_run.evidence if item.status_code < 400]
    changed = [item.key for item in gate_run.evidence if item.shown_after != item.shown_before]
    assert not accepted, f"sensitive keys accepted a change through the config API: {', '.join(accepted)}"
    assert not changed, f"sensitive keys no longer hold the secret manager's value: {', '.join(changed)}"


@when("an ordinary config key is changed and put back through the config API", target_fixture="gate_run")
def _signed(config_gates: ConfigGates) -> GateRun[Any]:
    return _attached("signatures", config_gates.signatures())


@then("every config API response carried a valid Ed25519 signature over its exact body")
def _verified(gate_run: GateRun[Any]) -> None:
    attach_json("verified signatures", gate_run.evidence.verified)
    verified, total = len(gate_run.evidence.verified), len(gate_run.exchanges)
    assert verified == total, f"only {verified} of {total} config API responses carried a valid signature"


@then("copies of a signed response with one body byte or the signature altered are rejected")
def _forgeries(gate_run: GateRun[Any]) -> None:
    rejected = gate_run.evidence.forgeries_rejected
    missed = [forgery for forgery in ("one body byte changed", "signature changed") if forgery not in rejected]
    assert not missed, f"a forged response was accepted as signed: {', '.join(missed)}"


@when(
    "operators propose, approve, reject and apply config changes and try to change sensitive keys",
    target_fixture="gate_run",
)
def _every_change(config_gates: ConfigGates) -> GateRun[Any]:
    return _attached("every change", config_gates.every_change())


@then("every change the gate made is recorded in the audit table with actor, key, time and status")
def _audited(config_gates: ConfigGates, gate_run: GateRun[Any]) -> None:
    rows = config_gates.audited(gate_run)
    attach_table(
        f"{config_gates.trail.table} rows written during the gate",
        list(rows[0]) if rows else [],
        [list(row.values()) for row in rows],
    )


@then("no value of a sensitive key appears in any config API response or audit row")
def _no_leaks(config_gates: ConfigGates, gate_run: GateRun[Any]) -> None:
    attach_json("places searched for sensitive values", {"places": config_gates.no_leaks(gate_run)})
