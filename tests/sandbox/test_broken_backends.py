"""Each broken backend must show exactly its fault, or the config gate's self-tests prove nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from sandbox.codeblack.settings import Settings
from sandbox.codeblack.signing import SIGNATURE_HEADER, public_key_b64, verify
from tests.broken_backends import (
    bad_signature,
    critical_without_approval,
    no_audit,
    self_approval,
    sensitive_accepted,
    unhealthy,
    unsigned,
)

BOB = {"X-Actor": "bob"}


def test_critical_without_approval_applies_critical_keys_at_once(serve: Any, settings: Settings) -> None:
    with serve(critical_without_approval.create_app(settings)) as client:
        response = client.put("/api/v1/config/risk.score_threshold", json={"value": "0.1"}, headers=BOB)
        assert (response.status_code, response.json()["status"]) == (200, "applied")
        assert client.get("/api/v1/config/risk.score_threshold").json()["value"] == "0.1"


def test_self_approval_lets_the_proposer_approve(serve: Any, settings: Settings) -> None:
    with serve(self_approval.create_app(settings)) as client:
        change = client.put("/api/v1/config/orders.max_amount", json={"value": "1"}, headers=BOB).json()
        approved = client.post(f"/api/v1/config/changes/{change['change_id']}/approve", headers=BOB)
        assert (approved.status_code, approved.json()["approved_by"]) == (200, "bob")


def test_sensitive_accepted_stores_the_secret(serve: Any, settings: Settings) -> None:
    with serve(sensitive_accepted.create_app(settings)) as client:
        response = client.put("/api/v1/config/smtp.password", json={"value": "hunter2"}, headers=BOB)
        assert response.status_code == 200
        assert client.get("/api/v1/config/smtp.password").json()["value"] == "hunter2"


def test_unsigned_sends_no_signature(serve: Any, settings: Settings) -> None:
    with serve(unsigned.create_app(settings)) as client:
        response = client.get("/api/v1/config")
    assert response.status_code == 200
    assert SIGNATURE_HEADER not in response.headers


def test_bad_signature_signs_another_body(serve: Any, settings: Settings, signing_seed: str) -> None:
    with serve(bad_signature.create_app(settings)) as client:
        response = client.get("/api/v1/config")
    assert SIGNATURE_HEADER in response.headers
    assert not verify(response.content, response.headers, public_key_b64(signing_seed))


def test_no_audit_changes_values_without_history(serve: Any, settings: Settings, database_url: str) -> None:
    with serve(no_audit.create_app(settings)) as client:
        response = client.put("/api/v1/config/ui.banner_text", json={"value": "unaudited"}, headers=BOB)
        assert response.status_code == 200
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM config_change_history")) == 0
    engine.dispose()


def test_unhealthy_reports_the_database_down(serve: Any, settings: Settings) -> None:
    with serve(unhealthy.create_app(settings)) as client:
        response = client.get("/api/v1/system/health/deep")
    assert response.status_code == 503
    assert response.json()["components"]["database"]["status"] == "down"
    assert response.json()["components"]["redis"]["status"] == "ok"
