"""An HTTP client of the target's config API that verifies and records every answer.

The config gates talk to the app running on the staging copy over real HTTP. Each request carries the acting
user in ``X-Actor`` (``config.app.proposer`` or ``config.app.approver``), has its own deadline
(``config.app.request_timeout_s``) so a hung app fails the gate instead of hanging it, and its response is
verified against the target's public key before anyone reads it. Every exchange is kept as an
:class:`Exchange`, whose :meth:`Exchange.evidence` is redacted so it can go into the report as it is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from harness.app.signature import (
    SIGNATURE_ALG_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_KEY_ID_HEADER,
    SignatureCheck,
    VerifyKey,
)
from harness.config import DrillConfig
from harness.errors import CheckFailed, ConfigError, ServiceError
from harness.redact import redact

__all__ = ["ConfigClient", "Exchange"]

_SHOWN_HEADERS = ("content-type", SIGNATURE_HEADER, SIGNATURE_ALG_HEADER, SIGNATURE_KEY_ID_HEADER)


@dataclass(frozen=True)
class Exchange:
    """One request and its response, as the gate saw them.

    Attributes:
        request: "METHOD /path", the name every failure message uses.
        actor: the ``X-Actor`` sent, if any.
        sent: the JSON body sent, if any.
        status_code: the HTTP status of the answer.
        headers: the response headers.
        body: the response body bytes exactly as received (what the signature covers); never shown unredacted.
        elapsed_s: how long the answer took.
        signature: the verified signature, or ``None`` when the caller asked for the raw response.
    """

    request: str
    actor: str | None
    sent: dict[str, Any] | None
    status_code: int
    headers: httpx.Headers = field(repr=False)
    body: bytes = field(repr=False)
    elapsed_s: float = 0.0
    signature: SignatureCheck | None = None

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            CheckFailed: the body is not JSON; the config API promises JSON answers.
        """
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckFailed(
                f"response to {self.request} (HTTP {self.status_code}) is not JSON: {redact(self.text()[:200])!r}"
            ) from None

    def text(self) -> str:
        """The body as text (for searching it), undecodable bytes replaced."""
        return self.body.decode("utf-8", errors="replace")

    def evidence(self) -> dict[str, Any]:
        """The exchange for the report: request, actor, status, signature headers and body, all redacted."""
        try:
            shown_body: Any = json.loads(redact(self.text()))
        except json.JSONDecodeError:
            shown_body = redact(self.text())
        return {
            "request": self.request,
            "actor": self.actor,
            "sent": json.loads(redact(json.dumps(self.sent))) if self.sent is not None else None,
            "status_code": self.status_code,
            "headers": {name: redact(self.headers[name]) for name in _SHOWN_HEADERS if name in self.headers},
            "body": shown_body,
            "elapsed_s": round(self.elapsed_s, 3),
            "signature_verified": self.signature is not None,
        }


class ConfigClient:
    """Talks to the config API of one running app; a context manager that closes its connection pool."""

    def __init__(
        self,
        base_url: str,
        verify_key: VerifyKey,
        *,
        api_path: str,
        proposer: str,
        approver: str,
        timeout_s: float = 10.0,
    ) -> None:
        """Prepare a client; nothing is sent until the first request.

        Args:
            base_url: where the app listens (``AppProcess.base_url``).
            verify_key: the target's public key; every answer is checked with it.
            api_path: where the config API answers (``[app] config_api_path``), e.g. ``/config``.
            proposer: the actor who proposes changes.
            approver: the authorised actor who approves them.
            timeout_s: the deadline of each request.

        Raises:
            ConfigError: the proposer and the approver are one actor, so no four-eyes rule can be probed.
        """
        if proposer == approver:
            raise ConfigError(f"[app] proposer and approver are both {proposer!r}; two different actors are needed")
        self.base_url = base_url
        self.api = api_path.rstrip("/")
        self.verify_key = verify_key
        self.proposer = proposer
        self.approver = approver
        self.timeout_s = timeout_s
        self.exchanges: list[Exchange] = []
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)

    @classmethod
    def from_settings(cls, base_url: str, config: DrillConfig, verify_key: str) -> ConfigClient:
        """A client with the path, the actors and the deadline of ``[app]`` and the deployment's verify key.

        Raises:
            ConfigError: ``[app] config_api_path`` is not set.
        """
        app = config.app
        return cls(
            base_url,
            VerifyKey(verify_key),
            api_path=str(config.required("app.config_api_path", "where the application's config API answers")),
            proposer=app.proposer,
            approver=app.approver,
            timeout_s=app.request_timeout_s,
        )

    def __enter__(self) -> ConfigClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self, method: str, path: str, *, actor: str | None = None, send: dict[str, Any] | None = None, raw: bool = False
    ) -> Exchange:
        """Send one request, record it, and verify the answer's signature unless ``raw``.

        Raises:
            CheckFailed: no answer within the deadline, or (unless ``raw``) an unsigned or wrongly signed answer.
            ServiceError: nothing listens at ``base_url`` (the app is not running).
        """
        name = f"{method} {path}"
        headers = {"X-Actor": actor} if actor else {}
        started = time.monotonic()
        try:
            response = self._http.request(method, path, json=send, headers=headers)
        except httpx.TimeoutException:
            raise CheckFailed(
                f"no answer to {name} within {self.timeout_s:g} s; rule: the config API answers within "
                "[app] request_timeout_s"
            ) from None
        except httpx.TransportError as exc:
            raise ServiceError(f"cannot reach the app at {self.base_url} for {name}: {exc}") from None
        signature = None if raw else self.verify_key.verify(name, response.headers, response.content)
        exchange = Exchange(
            name,
            actor,
            send,
            response.status_code,
            response.headers,
            response.content,
            time.monotonic() - started,
            signature,
        )
        self.exchanges.append(exchange)
        return exchange

    def entries(self) -> list[dict[str, Any]]:
        """Every config entry with its ``critical`` and ``sensitive`` flags (``GET <api>``)."""
        answer = self.request("GET", self.api)
        entries = answer.json().get("entries") if answer.status_code == 200 else None
        if not isinstance(entries, list):
            raise CheckFailed(f"GET {self.api} answered HTTP {answer.status_code} without an 'entries' list")
        return entries

    def value(self, key: str) -> Any:
        """The value the API shows for ``key`` now."""
        answer = self.request("GET", self._key_path(key))
        if answer.status_code != 200:
            raise CheckFailed(f"GET {self._key_path(key)} answered HTTP {answer.status_code}; the key must be readable")
        return answer.json().get("value")

    def put(self, key: str, value: str, *, actor: str, reason: str) -> Exchange:
        """Ask to change ``key`` (``PUT <api>/{key}``)."""
        return self.request("PUT", self._key_path(key), actor=actor, send={"value": value, "reason": reason})

    def decide(self, change_id: int, decision: str, *, actor: str) -> Exchange:
        """Approve or reject a pending change (``decision`` is ``approve`` or ``reject``)."""
        return self.request("POST", f"{self.api}/changes/{change_id}/{decision}", actor=actor)

    def history(self, key: str) -> Exchange:
        """The API's view of the audit trail of one key (``GET <api>/history?key=``)."""
        return self.request("GET", f"{self.api}/history?key={quote(key, safe='')}")

    def _key_path(self, key: str) -> str:
        return f"{self.api}/{quote(key, safe='')}"
