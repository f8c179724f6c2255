"""Ed25519 signatures over the exact bytes of every response body.

The plan asks that config changes be "signed in API responses": a client (the drill harness) that holds only
the public key can then prove a response came from this backend and was not altered on the way. The signature
covers the raw body bytes, not a re-serialised JSON document, so verification needs no canonical form.
The signing seed comes from ``CODEBLACK_SIGNING_KEY``; :func:`public_key_b64` lets whoever holds the seed (the
world builder) publish the matching verification key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ALGORITHM",
    "SIGNATURE_ALG_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_KEY_ID_HEADER",
    "Signer",
    "SigningMiddleware",
    "key_id",
    "public_key_b64",
    "verify",
]

ALGORITHM = "ed25519"
SIGNATURE_HEADER = "X-Signature"
SIGNATURE_ALG_HEADER = "X-Signature-Alg"
SIGNATURE_KEY_ID_HEADER = "X-Signature-Key-Id"


def _private_key(seed_b64: str) -> Ed25519PrivateKey:
    try:
        seed = base64.b64decode(seed_b64, validate=True)
    except binascii.Error as exc:
        raise ValueError("CODEBLACK_SIGNING_KEY is not valid base64") from exc
    if len(seed) != 32:
        raise ValueError(f"CODEBLACK_SIGNING_KEY must decode to a 32-byte Ed25519 seed, not {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    """Identify a public key by the first 16 hex digits of the SHA-256 of its raw bytes.

    A key id lets a verifier notice a rotated key at once instead of reporting a bad signature.
    """
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_key_b64(seed_b64: str) -> str:
    """Derive the base64 raw public key that verifies signatures made with ``seed_b64``.

    Args:
        seed_b64: Base64 of the 32-byte Ed25519 private seed (the value of ``CODEBLACK_SIGNING_KEY``).

    Returns:
        Base64 of the 32-byte raw public key.
    """
    return base64.b64encode(_raw_public(_private_key(seed_b64).public_key())).decode("ascii")


def verify(body: bytes, headers: Mapping[str, str], public_b64: str) -> bool:
    """Check that ``headers`` carry a valid Ed25519 signature of exactly ``body`` by the given key.

    Args:
        body: The response body bytes as received.
        headers: The response headers (case-insensitive mapping, e.g. ``httpx.Headers``).
        public_b64: Base64 raw public key from :func:`public_key_b64`.

    Returns:
        True only when the algorithm, key id and signature all match.
    """
    raw = base64.b64decode(public_b64)
    signature = headers.get(SIGNATURE_HEADER)
    if signature is None or headers.get(SIGNATURE_ALG_HEADER) != ALGORITHM:
        return False
    if headers.get(SIGNATURE_KEY_ID_HEADER) != key_id(raw):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(signature), body)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


class Signer:
    """Turns a body into signature headers; a collaborator so a broken backend can override it."""

    def __init__(self, seed_b64: str) -> None:
        """Load the signing key.

        Args:
            seed_b64: Base64 of the 32-byte Ed25519 seed.

        Raises:
            ValueError: The seed is not base64 of exactly 32 bytes.
        """
        self._key = _private_key(seed_b64)
        self.key_id = key_id(_raw_public(self._key.public_key()))

    def headers(self, body: bytes) -> dict[str, str]:
        """Return the signature headers for exactly these body bytes."""
        signature = base64.b64encode(self._key.sign(body)).decode("ascii")
        return {
            SIGNATURE_HEADER: signature,
            SIGNATURE_ALG_HEADER: ALGORITHM,
            SIGNATURE_KEY_ID_HEADER: self.key_id,
        }


class SigningMiddleware:
    """ASGI middleware that buffers each HTTP response and signs its final body bytes.

    Signing below the routing layer means no handler, exception handler or validation error can forget to
    sign: 4xx and 5xx answers are signed exactly like 200s.
    """

    def __init__(self, app: ASGIApp, signer: Signer) -> None:
        """Wrap ``app`` so that every HTTP response it sends carries ``signer``'s headers."""
        self.app = app
        self.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass non-HTTP traffic through; hold back HTTP responses until the whole body is known."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = [(name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode("ascii")))
            headers += [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in self.signer.headers(body).items()
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, buffered_send)
