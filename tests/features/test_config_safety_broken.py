"""The config gates against the real sandbox app and against each broken backend, over real HTTP.

One database migrated to head (which seeds the config keys the world has) serves every variant: the gates
take whatever values they find as the baseline and mark their rows with a watermark, so variants do not
disturb each other. Each app is a real uvicorn process started by ``AppProcess`` and always stopped.
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from alembic import command
from pydantic import SecretStr

from harness.app.client import ConfigClient
from harness.app.config_audit import (
    AuditTrail,
    plant_secrets,
    secret_env,
)
from harness.app.config_gates import ConfigKeys, config_keys
from harness.app.config_session import ConfigGates
from harness.app.runner import AppProcess, app_env
from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import ConfigError
from harness.redact import register_secret
from harness.services.postgres import PostgresServer
from sandbox.codeblack.revisions import alembic_config
from sandbox.codeblack.seed import CRITICAL_KEYS, SENSITIVE_KEYS
from sandbox.codeblack.signing import public_key_b64

CRITICAL = "risk.score_threshold"
SENSITIVE = "jwt.secret"
NORMAL = "ui.banner_text"
FIRST_CRITICAL = sorted(CRITICAL_KEYS)[0]
FIRST_SENSITIVE = sorted(SENSITIVE_KEYS)[0]
SEEDED_KEYS = ConfigKeys(sorted(CRITICAL_KEYS), sorted(SENSITIVE_KEYS), [NORMAL], {})


@dataclass(frozen=True)
class AppWorld:
    config: DrillConfig
    env: dict[str, str]
    verify_key: str
    secrets: dict[str, str]
    dsn: str


@pytest.fixture(scope="module")
def app_world(
    pg_server: PostgresServer, redis_server: Any, s3_server: Any, drill_config: DrillConfig
) -> Iterator[AppWorld]:
    """A migrated database, a bucket and the app's environment with a fresh signing key and planted secrets."""
    name = f"cfg_{uuid.uuid4().hex[:10]}"
    pg_server.create_database(name)
    command.upgrade(alembic_config(pg_server.sqlalchemy_url(name)), "head")
    bucket = f"codeblack-uploads-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    seed = register_secret(base64.b64encode(os.urandom(32)).decode("ascii"))
    config = drill_config.with_changes(storage={"uploads_bucket": bucket})
    planted = plant_secrets(SENSITIVE_KEYS)
    secrets = {name: SecretStr(value) for name, value in secret_env(planted, config).items()}
    deployment = Deployment(
        name="config-gates",
        config=config,
        storage=s3_server.endpoint,
        redis_url=None,
        database_host="127.0.0.1",
        verify_key=public_key_b64(seed),
        app_secrets={config.app.signing_key_env: SecretStr(seed), **secrets},
    )
    env = app_env(config, deployment, database_url=pg_server.sqlalchemy_url(name), redis_url=redis_server.url)
    yield AppWorld(config, env, deployment.verify_key, planted, pg_server.dsn(name))
    s3_server.client().delete_bucket(Bucket=bucket)
    pg_server.drop_database(name)


AUDIT = "config_change_history"

VARIANTS = ("critical_without_approval", "self_approval", "sensitive_accepted", "unsigned", "bad_signature", "no_audit")


@pytest.fixture(scope="module")
def variant_apps(app_world: AppWorld) -> Iterator[dict[str, AppProcess]]:
    """The sandbox app and every broken variant, started and stopped together (their imports dominate the wait)."""
    started: dict[str, AppProcess] = {}
    try:
        for variant in ("sandbox", *VARIANTS):
            module = "sandbox.codeblack.app" if variant == "sandbox" else f"tests.broken_backends.{variant}"
            argv = f"{{python}} -m uvicorn {module}:create_app --factory --host 127.0.0.1 --port {{port}}".split()
            started[variant] = AppProcess.from_config(app_world.config, app_world.env, command=argv, name=variant)
            started[variant].start()
        for app in started.values():
            app.wait_healthy(timeout=60)
        yield started
    finally:
        with ThreadPoolExecutor() as pool:
            list(pool.map(AppProcess.stop, started.values()))


@contextlib.contextmanager
def running(world: AppWorld, variant_apps: dict[str, AppProcess], variant: str) -> Iterator[ConfigClient]:
    """A client of the sandbox app or of one broken variant of it."""
    with ConfigClient.from_settings(variant_apps[variant].base_url, world.config, world.verify_key) as client:
        yield client


def test_the_sandbox_app_passes_every_gate_and_leaves_the_values_as_they_were(
    app_world: AppWorld, variant_apps: dict[str, AppProcess]
) -> None:
    base_url = variant_apps["sandbox"].base_url
    gates = ConfigGates.connect(base_url, app_world.config, app_world.verify_key, app_world.dsn, app_world.secrets)
    try:
        declared = gates.declared_keys()
        run = gates.every_change()
        rows = gates.audited(run)
        searched = gates.no_leaks(run)
        after = config_keys(gates.client, app_world.config.app)
    finally:
        gates.close()
    keys = gates.keys
    assert len(declared) == len(CRITICAL_KEYS) + len(SENSITIVE_KEYS)
    approvals, refusals, signatures = run.evidence
    assert (CRITICAL in keys.critical, SENSITIVE in keys.sensitive, NORMAL in keys.normal) == (True, True, True)
    assert [approval.key for approval in approvals] == sorted(CRITICAL_KEYS)
    for approval in approvals:
        assert approval.value_while_pending == approval.value_before != approval.proposed_value
        assert approval.value_after_approval == approval.proposed_value
        assert (approval.self_approval_status, approval.approver_self_approval_status) == (403, 403)
    assert [refusal.status_code for refusal in refusals] == [403] * len(SENSITIVE_KEYS)
    assert signatures.forgeries_rejected == ["one body byte changed", "signature changed"]
    assert len(signatures.verified) >= 4
    assert {row["action"] for row in rows} == {"proposed", "approved", "rejected", "applied", "refused"}
    assert searched > len(rows)
    assert after.values == keys.values
    assert all(exchange["signature_verified"] for exchange in run.exchange_evidence())


BROKEN = [
    ("critical_without_approval", "two_step", rf"^critical key '{FIRST_CRITICAL}' was applied at once by 'ops-alice' "
     rf"without approval \(HTTP 200 to PUT /api/v1/config/{FIRST_CRITICAL}\); rule: critical keys change only after"),
    ("self_approval", "two_step", rf"^critical key '{FIRST_CRITICAL}': 'ops-bob' approved change \d+ they proposed "
     r"themselves \(HTTP 200 to POST /api/v1/config/changes/\d+/approve\); rule: critical keys change only after"),
    ("sensitive_accepted", "sensitive", rf"^sensitive key '{FIRST_SENSITIVE}' accepted a change through the API "
     rf"\(HTTP 200 to PUT /api/v1/config/{FIRST_SENSITIVE}\); rule: sensitive keys are refused from the API"),
    ("unsigned", "signatures", rf"^unsigned response to GET /api/v1/config/{NORMAL}: no X-Signature or "
     r"X-Signature-Alg header; rule: every config API response is signed"),
    ("bad_signature", "signatures", rf"^wrong signature on the response to GET /api/v1/config/{NORMAL}: it does not "
     r"match the \d+-byte body with key [0-9a-f]{16}; rule: every config API response is signed"),
]  # fmt: skip


@pytest.mark.parametrize(("variant", "gate", "message"), BROKEN, ids=[case[0] for case in BROKEN])
def test_each_broken_backend_fails_its_gate_naming_the_key_and_the_rule(
    app_world: AppWorld, variant_apps: dict[str, AppProcess], variant: str, gate: str, message: str
) -> None:
    with running(app_world, variant_apps, variant) as client:
        gates = ConfigGates(client, AuditTrail(app_world.dsn, AUDIT), SEEDED_KEYS)
        with pytest.raises(AssertionError, match=message):
            getattr(gates, gate)()


def test_a_change_without_an_audit_row_fails_the_audit_gate(
    app_world: AppWorld, variant_apps: dict[str, AppProcess]
) -> None:
    with running(app_world, variant_apps, "no_audit") as client:
        gates = ConfigGates(client, AuditTrail(app_world.dsn, AUDIT), SEEDED_KEYS)
        run = gates.two_step()
    with pytest.raises(
        AssertionError,
        match=rf"^config_change_history has no row for the proposal of change {run.evidence[0].change_id} "
        rf"to '{FIRST_CRITICAL}' by 'ops-alice' \(0 rows written during the drill\); rule: every config change is "
        r"audited in config_change_history with actor, key, time and status$",
    ):
        gates.audited(run)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ({"critical_keys": ["no.such.key"]}, r"^\[app\] critical_keys names 'no.such.key', which the config API does"),
        ({"proposer": "ops-bob"}, r"^\[app\] proposer and approver are both 'ops-bob'; two different actors"),
    ],
)
def test_a_key_the_api_does_not_list_or_a_single_actor_is_a_setup_error(
    app_world: AppWorld, variant_apps: dict[str, AppProcess], app: dict[str, Any], message: str
) -> None:
    config = app_world.config.with_changes(app=app)
    base_url = variant_apps["sandbox"].base_url
    with pytest.raises(ConfigError, match=message):
        ConfigGates.connect(base_url, config, app_world.verify_key, app_world.dsn, {})
