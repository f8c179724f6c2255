"""Verify the Ed25519 signature a config API response carries over its exact body bytes.

The plan says "all config changes are signed in API responses". The harness holds only the public key
(``deployment.verify_key``, base64 of the raw 32-byte key), so a valid signature proves the body came from the
target and was not altered on the way. The signature covers the raw bytes as received, never a re-serialised
JSON document, so nothing is canonicalised. Every failure is a :class:`CheckFailed` that names the request
("PUT /config/ui.banner_text") and the rule it broke.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from harness.errors import CheckFailed, ConfigError

__all__ = [
    "ALGORITHM",
    "SIGNATURE_ALG_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_KEY_ID_HEADER",
    "SignatureCheck",
    "VerifyKey",
    "decode_key",
]

ALGORITHM = "ed25519"
SIGNATURE_HEADER = "X-Signature"
SIGNATURE_ALG_HEADER = "X-Signature-Alg"
SIGNATURE_KEY_ID_HEADER = "X-Signature-Key-Id"
_RULE = "rule: every config API response is signed over its exact body with the target's key"


def decode_key(value: str, source: str, what: str = "raw Ed25519 public key") -> bytes:
    """The 32 bytes of a base64 Ed25519 key (public key or seed); ``source`` names where it came from.

    Raises:
        ConfigError: not base64, or not 32 bytes; the value itself is never quoted.
    """
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise ConfigError(f"{source} is not valid base64: expected a base64 {what}") from None
    if len(raw) != 32:
        raise ConfigError(f"{source} decodes to {len(raw)} bytes; a {what} has 32")
    return raw


@dataclass(frozen=True)
class SignatureCheck:
    """Evidence of one verified response: which request, which key, how many body bytes were covered."""

    request: str
    key_id: str
    algorithm: str
    body_bytes: int
    body_sha256: str


class VerifyKey:
    """The target's public verification key, loaded once and checked for shape at load time."""

    def __init__(self, public_b64: str, *, source: str = "deployment.verify_key") -> None:
        """Decode the base64 raw Ed25519 public key.

        Raises:
            ConfigError: the key is empty, not base64, or not 32 bytes; a setup problem, not a broken gate.
        """
        if not public_b64.strip():
            raise ConfigError(f"{source} is empty: set [app] verify_key to the base64 Ed25519 public key")
        raw = decode_key(public_b64, source)
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    def verify(self, request: str, headers: Mapping[str, str], body: bytes) -> SignatureCheck:
        """Verify that ``headers`` sign exactly ``body`` with this key.

        Args:
            request: "METHOD /path" of the request the response answered, for the failure message.
            headers: the response headers (case-insensitive mapping such as ``httpx.Headers``).
            body: the response body bytes exactly as received.

        Raises:
            CheckFailed: headers missing, another algorithm or key id, signature not base64, or a signature
                that does not match the body.
        """
        signature = headers.get(SIGNATURE_HEADER)
        algorithm = headers.get(SIGNATURE_ALG_HEADER)
        if not signature or not algorithm:
            missing = [
                name for name, value in ((SIGNATURE_HEADER, signature), (SIGNATURE_ALG_HEADER, algorithm)) if not value
            ]
            raise CheckFailed(f"unsigned response to {request}: no {' or '.join(missing)} header; {_RULE}")
        if algorithm.lower() != ALGORITHM:
            raise CheckFailed(f"response to {request} is signed with {algorithm!r}, not {ALGORITHM}; {_RULE}")
        key_id = headers.get(SIGNATURE_KEY_ID_HEADER)
        if key_id and key_id != self.key_id:
            raise CheckFailed(
                f"response to {request} is signed by key {key_id}, not the configured verify key {self.key_id} "
                f"(rotated key? update [app] verify_key); {_RULE}"
            )
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise CheckFailed(f"response to {request} has an {SIGNATURE_HEADER} that is not base64; {_RULE}") from None
        try:
            self._key.verify(raw_signature, body)
        except InvalidSignature:
            raise CheckFailed(
                f"wrong signature on the response to {request}: it does not match the {len(body)}-byte body "
                f"with key {self.key_id}; {_RULE}"
            ) from None
        return SignatureCheck(request, self.key_id, ALGORITHM, len(body), hashlib.sha256(body).hexdigest())
