"""The config gates' building blocks: probe values, audit events, the secret search and the audit reader."""

from __future__ import annotations

import base64
import re
import socket
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command

from harness.app.client import ConfigClient, Exchange
from harness.app.config_audit import (
    AuditEvent,
    AuditTrail,
    check_audit_trail,
    check_no_secret_leaks,
    plant_secrets,
    secret_env,
)
from harness.app.config_gates import probe_value
from harness.app.signature import VerifyKey
from harness.config import DrillConfig
from harness.errors import ConfigError, HarnessError, ServiceError
from harness.redact import redact, register_secret
from sandbox.codeblack.revisions import alembic_config
from tests.ports import closed_port

AUDIT = "config_change_history"


@pytest.mark.parametrize(
    ("old", "shape"),
    [
        ("500.00", r"^\d+\.\d\d$"),
        ("0.72", r"^0\.\d\d$|^1\.\d\d$"),
        ("7", r"^\d+$"),
        ("Welcome", r"^Welcome \[drill [0-9a-f]{8}\]$"),
        (None, r"^drill probe [0-9a-f]{8}$"),
    ],
)
def test_a_probe_value_differs_from_the_old_one_keeps_its_kind_and_is_fresh(old: Any, shape: str) -> None:
    values = {probe_value(old) for _ in range(5)}
    assert old not in values
    assert all(re.match(shape, value) for value in values)
    assert len(values) > 1


def test_an_audit_event_describes_itself_and_matches_only_its_row() -> None:
    event = AuditEvent("approved", "risk.score_threshold", "ops-bob", 12)
    assert event.describe() == "the approval of change 12 to 'risk.score_threshold' by 'ops-bob'"
    row = {"action": "approved", "config_key": "risk.score_threshold", "actor": "ops-bob", "change_id": 12}
    assert event.matches(row)
    assert not event.matches({**row, "change_id": 13})
    assert not event.matches({**row, "actor": "ops-alice"})
    assert AuditEvent("applied", "ui.banner_text", "ops-alice").matches(
        {**row, "action": "applied", "config_key": "ui.banner_text", "actor": "ops-alice"}
    )


def test_planted_secrets_are_fresh_named_after_the_key_and_redacted(drill_config: DrillConfig) -> None:
    planted = plant_secrets(["jwt.secret", "payments.api-key"])
    env = secret_env(planted, drill_config)
    assert set(env) == {"CODEBLACK_SECRET_JWT_SECRET", "CODEBLACK_SECRET_PAYMENTS_API_KEY"}
    value = env["CODEBLACK_SECRET_JWT_SECRET"]
    assert value == planted["jwt.secret"] != plant_secrets(["jwt.secret"])["jwt.secret"]
    assert redact(f"token={value}") == "token=***"
    assert secret_env({}, DrillConfig()) == {}  # nothing planted, no prefix needed
    with pytest.raises(ConfigError, match=r"\[app\] secret_env_prefix is not set: the prefix of the variables"):
        secret_env(planted, DrillConfig())


def _exchange(body: bytes) -> Exchange:
    return Exchange("GET /api/v1/config", None, None, 200, httpx.Headers({"content-type": "application/json"}), body)


def test_a_sensitive_value_in_a_response_or_an_audit_row_fails_naming_the_key_not_the_value() -> None:
    clean = [_exchange(b'{"entries": []}')]
    assert check_no_secret_leaks([("jwt.secret", "s3cr3t-value")], clean, [{"id": 1, "reason": "ok"}], AUDIT) == 2
    leaky = [*clean, _exchange(b'{"value": "s3cr3t-value"}')]
    with pytest.raises(
        AssertionError,
        match=r"^the value of sensitive key 'jwt.secret' appears in GET /api/v1/"
        r"config; rule: values of sensitive keys stay in the secret manager",
    ) as caught:
        check_no_secret_leaks([("jwt.secret", "s3cr3t-value")], leaky, [], AUDIT)
    assert "s3cr3t-value" not in str(caught.value)
    with pytest.raises(AssertionError, match=r"appears in config_change_history row 7; rule"):
        check_no_secret_leaks([("jwt.secret", "s3cr3t-value")], clean, [{"id": 7, "new_value": "s3cr3t-value"}], AUDIT)


def test_the_audit_reader_sees_only_rows_after_its_watermark_and_demands_one_per_event(pg_database: Any) -> None:
    command.upgrade(alembic_config(pg_database.sqlalchemy_url), "head")
    trail = AuditTrail(pg_database.dsn, AUDIT)
    assert trail.watermark() == 0
    insert = (
        "INSERT INTO config_change_history (config_key, action, actor, status) VALUES "
        "('ui.banner_text', 'applied', 'ops-alice', 'applied')"
    )
    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:
        conn.execute(insert)
        mark = trail.watermark()
        conn.execute(insert)
    rows = check_audit_trail(trail, mark, [AuditEvent("applied", "ui.banner_text", "ops-alice")])
    assert [row["id"] for row in rows] == [mark + 1]
    with pytest.raises(
        AssertionError,
        match=r"^config_change_history has no row for the refusal to 'jwt.secret' by "
        r"'ops-alice' \(1 rows written during the drill\); rule: every config change is audited",
    ):
        check_audit_trail(trail, mark, [AuditEvent("refused", "jwt.secret", "ops-alice")])


def test_an_unreadable_audit_table_is_a_setup_error(pg_database: Any) -> None:
    with pytest.raises(HarnessError, match=r"^cannot read config_change_history of the staging copy: .*does not exist"):
        AuditTrail(pg_database.dsn, AUDIT).watermark()


def test_an_exchange_is_shown_redacted_and_a_non_json_answer_fails_naming_the_request() -> None:
    secret = register_secret("evidence-secret-" + "x" * 8)
    shown = _exchange(f'{{"value": "{secret}"}}'.encode()).evidence()
    assert shown["body"] == {"value": "***"}
    assert shown["request"] == "GET /api/v1/config"
    with pytest.raises(AssertionError, match=r"^response to GET /api/v1/config \(HTTP 200\) is not JSON: '<html>'"):
        _exchange(b"<html>").json()


def test_a_hung_app_fails_within_the_request_deadline_and_a_stopped_one_is_a_setup_error() -> None:
    key = VerifyKey(base64.b64encode(bytes(32)).decode())
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        with (
            ConfigClient(url, key, api_path="/api/v1/config", proposer="a", approver="b", timeout_s=0.3) as client,
            pytest.raises(
                AssertionError, match=r"^no answer to GET /api/v1/config within 0.3 s; rule: the config API answers"
            ),
        ):
            client.entries()
    with closed_port() as port:  # the app stopped: its port refuses, and no server started meanwhile can take it
        stopped = f"http://127.0.0.1:{port}"
        with (
            ConfigClient(stopped, key, api_path="/api/v1/config", proposer="a", approver="b", timeout_s=0.3) as client,
            pytest.raises(ServiceError, match=rf"^cannot reach the app at {stopped} for GET /api/v1/config"),
        ):
            client.entries()


def test_a_config_api_without_a_path_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[app\] config_api_path is not set: where the application's config API"):
        ConfigClient.from_settings("http://127.0.0.1:9", DrillConfig(), base64.b64encode(bytes(32)).decode())
