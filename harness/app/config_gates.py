"""The plan's Change Safety Gates, checked over HTTP against the app running on the staging copy.

1. Critical keys need two-step approval: a proposal stays pending and changes nothing, its proposer cannot
   approve it (nor can an authorised approver approve their own proposal), and only a second, authorised
   approver's approval makes the value change (:func:`check_two_step_approval`).
2. Sensitive keys are refused from the API and keep their value (:func:`check_sensitive_refused`).
3. Every answer is signed, and the verifier rejects an altered copy (:func:`check_signatures`).
4. The audit trail is in :mod:`harness.app.config_audit`.

Each gate returns its evidence, with the :class:`AuditEvent` list of what it changed, and raises
:class:`CheckFailed` naming the key and the rule. Probe values are fresh per run, and every probe puts the
old value back (through the same two-step path), so the staging copy is left as it was found.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from harness.app.client import ConfigClient, Exchange
from harness.app.config_audit import AuditEvent
from harness.app.signature import SIGNATURE_HEADER
from harness.config import AppSettings
from harness.errors import CheckFailed, ConfigError
from harness.redact import register_secret

__all__ = [
    "ApprovalEvidence",
    "ConfigKeys",
    "RefusalEvidence",
    "SignatureEvidence",
    "check_sensitive_refused",
    "check_signatures",
    "check_two_step_approval",
    "config_keys",
    "probe_value",
]

TWO_STEP_RULE = "rule: critical keys change only after a second, different, authorised approver approves"
SENSITIVE_RULE = "rule: sensitive keys are refused from the API and stay in the secret manager"
SIGNATURE_RULE = "rule: every config API response is signed over its exact body with the target's key"
_REASON = "codeblack-drills change safety gate probe"


@dataclass(frozen=True)
class ConfigKeys:
    """Which keys the gates probe, from the API's flags united with ``[app] critical_keys/sensitive_keys``."""

    critical: list[str]
    sensitive: list[str]
    normal: list[str]
    values: dict[str, Any] = field(repr=False)


def config_keys(client: ConfigClient, app: AppSettings) -> ConfigKeys:
    """Read the entries and their flags; a key the file calls critical or sensitive counts as such.

    Normal keys exclude booleans (a flag such as maintenance mode cannot be changed harmlessly).

    Raises:
        ConfigError: the file names a key the API does not list.
    """
    entries = {str(entry["key"]): entry for entry in client.entries()}
    for section, keys in (("critical_keys", app.critical_keys), ("sensitive_keys", app.sensitive_keys)):
        unknown = sorted(set(keys) - set(entries))
        if unknown:
            raise ConfigError(
                f"[app] {section} names {', '.join(map(repr, unknown))}, which the config API does not list"
            )
    critical = sorted({key for key, entry in entries.items() if entry.get("critical")} | set(app.critical_keys))
    sensitive = sorted({key for key, entry in entries.items() if entry.get("sensitive")} | set(app.sensitive_keys))
    normal = [
        key
        for key, entry in sorted(entries.items())
        if key not in critical
        and key not in sensitive
        and isinstance(entry.get("value"), str)
        and entry["value"].lower() not in ("true", "false")
    ]
    return ConfigKeys(critical, sensitive, normal, {key: entry.get("value") for key, entry in entries.items()})


def probe_value(old: Any) -> str:
    """A fresh value unlike ``old`` and of its kind (a number stays a number), distinct on every run."""
    if isinstance(old, str):
        try:
            number = Decimal(old)
        except InvalidOperation:
            return f"{old} [drill {secrets.token_hex(4)}]"
        if number.is_finite():
            step = Decimal(1).scaleb(number.as_tuple().exponent)  # type: ignore[arg-type]
            return str(number + step * (1 + secrets.randbelow(97)))
    return f"drill probe {secrets.token_hex(4)}"


@dataclass
class ApprovalEvidence:
    """What the two-step gate saw for one critical key."""

    key: str
    value_before: Any
    proposed_value: str
    change_id: int
    value_while_pending: Any
    self_approval_status: int
    approver_self_approval_status: int
    value_after_approval: Any
    restored: bool
    events: list[AuditEvent] = field(default_factory=list)


def _change_id(client: ConfigClient, key: str, value: str, actor: str, events: list[AuditEvent]) -> int:
    answer = client.put(key, value, actor=actor, reason=_REASON)
    body = answer.json()
    if answer.status_code < 300 and body.get("status") == "applied":
        events.append(AuditEvent("applied", key, actor))
        raise CheckFailed(
            f"critical key {key!r} was applied at once by {actor!r} without approval (HTTP {answer.status_code} "
            f"to {answer.request}); {TWO_STEP_RULE}"
        )
    if answer.status_code != 202 or body.get("status") != "pending" or not isinstance(body.get("change_id"), int):
        raise CheckFailed(
            f"proposal to critical key {key!r} by {actor!r} was not accepted as pending: "
            f"HTTP {answer.status_code} to {answer.request}; {TWO_STEP_RULE}"
        )
    events.append(AuditEvent("proposed", key, actor, body["change_id"]))
    return int(body["change_id"])


def _refused_self_approval(client: ConfigClient, key: str, change_id: int, actor: str) -> int:
    answer = client.decide(change_id, "approve", actor=actor)
    if answer.status_code < 300:
        raise CheckFailed(
            f"critical key {key!r}: {actor!r} approved change {change_id} they proposed themselves "
            f"(HTTP {answer.status_code} to {answer.request}); {TWO_STEP_RULE}"
        )
    return answer.status_code


def _unchanged(client: ConfigClient, key: str, expected: Any, moment: str) -> Any:
    value = client.value(key)
    if value != expected:
        raise CheckFailed(f"critical key {key!r} changed {moment} (now {value!r}, was {expected!r}); {TWO_STEP_RULE}")
    return value


def _approve(client: ConfigClient, key: str, change_id: int, events: list[AuditEvent]) -> None:
    answer = client.decide(change_id, "approve", actor=client.approver)
    if answer.status_code != 200:
        raise CheckFailed(
            f"critical key {key!r}: authorised approver {client.approver!r} could not approve change "
            f"{change_id} (HTTP {answer.status_code} to {answer.request}); {TWO_STEP_RULE}"
        )
    events += [AuditEvent("approved", key, client.approver, change_id), AuditEvent("applied", key, client.approver)]


def check_two_step_approval(client: ConfigClient, key: str) -> ApprovalEvidence:
    """Prove the four-eyes rule on one critical key, then put the old value back the same way.

    Raises:
        CheckFailed: applied without approval, changed while pending, approved by its own proposer, a pending
            change that cannot be rejected, or no change after a second approver's approval.
    """
    events: list[AuditEvent] = []
    before = client.value(key)
    proposed = probe_value(before)
    change_id = _change_id(client, key, proposed, client.proposer, events)
    pending = _unchanged(client, key, before, f"while change {change_id} was pending")
    self_status = _refused_self_approval(client, key, change_id, client.proposer)
    own_id = _change_id(client, key, probe_value(before), client.approver, events)
    approver_status = _refused_self_approval(client, key, own_id, client.approver)
    rejected = client.decide(own_id, "reject", actor=client.approver)
    if rejected.status_code != 200:
        raise CheckFailed(
            f"critical key {key!r}: authorised approver {client.approver!r} could not reject pending change {own_id} "
            f"(HTTP {rejected.status_code} to {rejected.request}); rule: a pending critical change can be rejected"
        )
    events.append(AuditEvent("rejected", key, client.approver, own_id))
    _unchanged(client, key, before, "after refused self-approvals")
    _approve(client, key, change_id, events)
    after = client.value(key)
    if after != proposed:
        raise CheckFailed(
            f"critical key {key!r} shows {after!r} after change {change_id} was approved, not the "
            f"approved value {proposed!r}; {TWO_STEP_RULE}"
        )
    restored = isinstance(before, str)
    if restored:
        _approve(client, key, _change_id(client, key, before, client.proposer, events), events)
    return ApprovalEvidence(
        key, before, proposed, change_id, pending, self_status, approver_status, after, restored, events
    )


@dataclass
class RefusalEvidence:
    """What the sensitive-key gate saw for one key (the attempted value is registered as a secret)."""

    key: str
    status_code: int
    shown_before: Any
    shown_after: Any
    attempted: str = field(repr=False)
    events: list[AuditEvent] = field(default_factory=list)


def check_sensitive_refused(client: ConfigClient, key: str) -> RefusalEvidence:
    """Try to set a sensitive key through the API: it must be refused and keep the value it had.

    Raises:
        CheckFailed: the change was accepted (applied or pending) or the shown value changed.
    """
    attempted = register_secret(f"drill-attempt-{secrets.token_hex(12)}")
    before = client.value(key)
    answer = client.put(key, attempted, actor=client.proposer, reason=_REASON)
    if answer.status_code < 400:
        raise CheckFailed(
            f"sensitive key {key!r} accepted a change through the API (HTTP {answer.status_code} to "
            f"{answer.request}); {SENSITIVE_RULE}"
        )
    after = client.value(key)
    if after != before:
        raise CheckFailed(f"sensitive key {key!r} shows another value after a refused change; {SENSITIVE_RULE}")
    return RefusalEvidence(
        key, answer.status_code, before, after, attempted, [AuditEvent("refused", key, client.proposer)]
    )


@dataclass
class SignatureEvidence:
    """Every response verified, and both forgeries (one body byte, the signature) rejected."""

    verified: list[dict[str, Any]]
    forgeries_rejected: list[str]
    events: list[AuditEvent] = field(default_factory=list)


def _forgeries(exchange: Exchange) -> dict[str, tuple[Any, bytes]]:
    body = bytearray(exchange.body or b" ")
    body[len(body) // 2] ^= 0x01
    headers = exchange.headers.copy()
    signature = headers.get(SIGNATURE_HEADER, "")
    headers[SIGNATURE_HEADER] = ("B" if signature.startswith("A") else "A") + signature[1:]
    return {"one body byte changed": (exchange.headers, bytes(body)), "signature changed": (headers, exchange.body)}


def check_signatures(client: ConfigClient, key: str) -> SignatureEvidence:
    """Change a normal key and put it back, reading the list between; every answer must verify.

    Then prove the verifier can fail: altered copies of the change's real response must be rejected.

    Raises:
        CheckFailed: an answer is unsigned or wrongly signed, or the verifier accepted a forgery.
    """
    start = len(client.exchanges)
    before = client.value(key)
    events: list[AuditEvent] = []
    changed = client.put(key, probe_value(before), actor=client.proposer, reason=_REASON)
    if changed.status_code == 200:
        events.append(AuditEvent("applied", key, client.proposer))
        client.put(key, before, actor=client.proposer, reason=_REASON)
        events.append(AuditEvent("applied", key, client.proposer))
    client.entries()
    rejected = []
    for forgery, (headers, body) in _forgeries(changed).items():
        try:
            client.verify_key.verify(f"{changed.request} ({forgery})", headers, body)
        except CheckFailed:
            rejected.append(forgery)
            continue
        raise CheckFailed(
            f"the verifier accepted a copy of the response to {changed.request} with {forgery}; "
            f"it cannot tell a forgery, so no signature check proves anything; {SIGNATURE_RULE}"
        )
    verified = [vars(exchange.signature) for exchange in client.exchanges[start:] if exchange.signature]
    return SignatureEvidence(verified, rejected, events)
