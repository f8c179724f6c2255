from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from sandbox.codeblack.app import create_app
from sandbox.codeblack.seed import CRITICAL_KEYS, NORMAL_KEYS, SENSITIVE_KEYS
from sandbox.codeblack.settings import Settings
from sandbox.codeblack.signing import (
    SIGNATURE_HEADER,
    SIGNATURE_KEY_ID_HEADER,
    key_id,
    public_key_b64,
    verify,
)

BOB = {"X-Actor": "bob"}
CAROL = {"X-Actor": "carol"}
MALLORY = {"X-Actor": "mallory"}


class Recorder:
    """Every response the API gave in a test, so secrecy and signatures can be checked over all of them."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.responses: list[httpx.Response] = []

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> httpx.Response:
            response: httpx.Response = getattr(self.client, method)(*args, **kwargs)
            self.responses.append(response)
            return response

        return call


@pytest.fixture
def recorded(api: httpx.Client) -> Recorder:
    return Recorder(api)


@pytest.fixture
def history(database_url: str) -> Iterator[Any]:
    """Read config_change_history straight from the database, oldest first."""
    engine = create_engine(database_url)

    def rows(key: str | None = None) -> list[Any]:
        query = "SELECT * FROM config_change_history" + (" WHERE config_key = :key" if key else "")
        with engine.connect() as connection:
            return list(connection.execute(text(query + " ORDER BY id"), {"key": key}))

    yield rows
    engine.dispose()


def _value(client: Recorder, key: str) -> Any:
    return client.get(f"/api/v1/config/{key}").json()["value"]


def test_listing_shows_flags_and_hides_sensitive_values(recorded: Recorder) -> None:
    entries = {entry["key"]: entry for entry in recorded.get("/api/v1/config").json()["entries"]}
    assert {key for key, entry in entries.items() if entry["critical"]} == set(CRITICAL_KEYS)
    assert {key for key, entry in entries.items() if entry["sensitive"]} == set(SENSITIVE_KEYS)
    assert all(entries[key]["value"] is None for key in SENSITIVE_KEYS)
    assert entries["jwt.secret"]["configured"] is True
    assert entries["smtp.password"]["configured"] is False
    assert all(entries[key]["value"] is not None for key in NORMAL_KEYS)


def test_normal_key_is_applied_at_once_and_audited(recorded: Recorder, history: Any) -> None:
    response = recorded.put("/api/v1/config/ui.banner_text", json={"value": "Drill day", "reason": "test"}, headers=BOB)
    assert response.status_code == 200
    assert response.json() == {
        "status": "applied",
        "key": "ui.banner_text",
        "value": "Drill day",
        "old_value": "Welcome to CodeBlack",
        "updated_by": "bob",
    }
    assert _value(recorded, "ui.banner_text") == "Drill day"
    [row] = history("ui.banner_text")
    assert (row.action, row.actor, row.old_value, row.new_value, row.status, row.reason) == (
        "applied",
        "bob",
        "Welcome to CodeBlack",
        "Drill day",
        "applied",
        "test",
    )


def test_critical_key_waits_for_a_second_different_approver(recorded: Recorder, history: Any) -> None:
    proposed = recorded.put("/api/v1/config/risk.score_threshold", json={"value": "0.9"}, headers=BOB)
    assert proposed.status_code == 202
    change_id = proposed.json()["change_id"]
    assert proposed.json() == {
        "status": "pending",
        "change_id": change_id,
        "key": "risk.score_threshold",
        "new_value": "0.9",
        "proposed_by": "bob",
    }
    assert _value(recorded, "risk.score_threshold") == "0.72"
    pending = recorded.get("/api/v1/config/changes", params={"status": "pending"}).json()["changes"]
    assert [change["change_id"] for change in pending] == [change_id]

    self_approval = recorded.post(f"/api/v1/config/changes/{change_id}/approve", headers=BOB)
    assert self_approval.status_code == 403
    assert self_approval.json()["status"] == "refused"
    outsider = recorded.post(f"/api/v1/config/changes/{change_id}/approve", headers=MALLORY)
    assert outsider.status_code == 403
    assert "not an approver" in outsider.json()["reason"]
    assert _value(recorded, "risk.score_threshold") == "0.72"

    approved = recorded.post(f"/api/v1/config/changes/{change_id}/approve", headers=CAROL)
    assert approved.status_code == 200
    assert approved.json()["approved_by"] == "carol"
    assert _value(recorded, "risk.score_threshold") == "0.9"
    assert recorded.get("/api/v1/config/changes", params={"status": "pending"}).json()["changes"] == []
    again = recorded.post(f"/api/v1/config/changes/{change_id}/approve", headers=CAROL)
    assert again.status_code == 409

    assert [(row.action, row.actor, row.status) for row in history("risk.score_threshold")] == [
        ("proposed", "bob", "pending"),
        ("refused", "bob", "pending"),
        ("refused", "mallory", "pending"),
        ("approved", "carol", "approved"),
        ("applied", "carol", "applied"),
    ]


def test_rejected_change_leaves_the_value(recorded: Recorder, history: Any) -> None:
    change_id = recorded.put("/api/v1/config/orders.max_amount", json={"value": "1"}, headers=BOB).json()["change_id"]
    rejected = recorded.post(f"/api/v1/config/changes/{change_id}/reject", headers=CAROL)
    assert rejected.json() == {
        "status": "rejected",
        "change_id": change_id,
        "key": "orders.max_amount",
        "rejected_by": "carol",
    }
    assert _value(recorded, "orders.max_amount") == "5000.00"
    assert recorded.post(f"/api/v1/config/changes/{change_id}/approve", headers=CAROL).status_code == 409
    assert [row.action for row in history("orders.max_amount")] == ["proposed", "rejected"]


def test_sensitive_key_is_refused_unchanged_and_audited_without_values(
    recorded: Recorder, history: Any, database_url: str
) -> None:
    response = recorded.put("/api/v1/config/jwt.secret", json={"value": "stolen"}, headers=BOB)
    assert response.status_code == 403
    assert response.json()["status"] == "refused"
    assert "must be changed in the secret manager" in response.json()["reason"]
    [row] = history("jwt.secret")
    assert (row.action, row.old_value, row.new_value, row.status) == ("refused", None, None, "refused")
    engine = create_engine(database_url)
    with engine.connect() as connection:
        stored = connection.scalar(text("SELECT value FROM config_entries WHERE key = 'jwt.secret'"))
    engine.dispose()
    assert stored is None


def test_sensitive_values_never_leave_the_environment(
    recorded: Recorder, history: Any, jwt_secret: str, database_url: str
) -> None:
    recorded.put("/api/v1/config/jwt.secret", json={"value": jwt_secret}, headers=BOB)
    recorded.get("/api/v1/config")
    recorded.get("/api/v1/config/jwt.secret")
    recorded.get("/api/v1/config/history")
    assert all(jwt_secret not in response.text for response in recorded.responses)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        dumped = connection.execute(
            text("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM config_change_history) t")
        ).scalar()
    engine.dispose()
    assert jwt_secret not in (dumped or "")
    assert all(row.new_value is None and row.old_value is None for row in history("jwt.secret"))


def test_unknown_key_is_404_and_writes_need_an_actor(recorded: Recorder) -> None:
    assert recorded.get("/api/v1/config/no.such.key").status_code == 404
    assert recorded.put("/api/v1/config/no.such.key", json={"value": "x"}, headers=BOB).status_code == 404
    anonymous = recorded.put("/api/v1/config/ui.banner_text", json={"value": "x"})
    assert anonymous.status_code == 401
    assert recorded.post("/api/v1/config/changes/999999/approve", headers=CAROL).status_code == 404


def test_every_response_is_signed_over_its_exact_body(recorded: Recorder, signing_seed: str) -> None:
    public = public_key_b64(signing_seed)
    recorded.get("/api/v1/config")
    recorded.put("/api/v1/config/ui.banner_text", json={"value": "signed"}, headers=BOB)
    recorded.put("/api/v1/config/jwt.secret", json={"value": "x"}, headers=BOB)
    recorded.put("/api/v1/config/ui.banner_text", json={"value": "x"})
    recorded.get("/api/v1/config/no.such.key")
    recorded.put("/api/v1/config/ui.banner_text", json={"wrong": "shape"}, headers=BOB)
    assert {response.status_code for response in recorded.responses} == {200, 401, 403, 404, 422}
    for response in recorded.responses:
        assert verify(response.content, response.headers, public), response.request.url
        assert response.headers[SIGNATURE_KEY_ID_HEADER] == key_id(base64.b64decode(public))
        tampered = bytearray(response.content)
        tampered[len(tampered) // 2] ^= 0x01
        assert not verify(bytes(tampered), response.headers, public)


def test_config_api_refuses_to_answer_without_a_signing_key(serve: Any, settings: Settings) -> None:
    with serve(create_app(replace(settings, signing_key=None))) as client:
        response = client.get("/api/v1/config")
    assert response.status_code == 503
    assert SIGNATURE_HEADER not in response.headers
    assert "CODEBLACK_SIGNING_KEY" in response.json()["detail"]
