"""The response verifier: a valid signature passes; every kind of forgery or omission fails naming the request."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness.app.signature import VerifyKey
from harness.errors import CheckFailed, ConfigError

REQUEST = "PUT /api/v1/config/x"
BODY = b'{"status":"applied","key":"x","value":"2"}'


@pytest.fixture(scope="module")
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def verify_key(private_key: Ed25519PrivateKey) -> VerifyKey:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return VerifyKey(base64.b64encode(raw).decode("ascii"))


def _signed(private_key: Ed25519PrivateKey, body: bytes, **overrides: str) -> httpx.Headers:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    headers = {
        "X-Signature": base64.b64encode(private_key.sign(body)).decode("ascii"),
        "X-Signature-Alg": "ed25519",
        "X-Signature-Key-Id": hashlib.sha256(raw).hexdigest()[:16],
    }
    return httpx.Headers({**headers, **overrides})


def test_a_valid_signature_passes_with_evidence(private_key: Ed25519PrivateKey, verify_key: VerifyKey) -> None:
    check = verify_key.verify(REQUEST, _signed(private_key, BODY), BODY)
    assert (check.request, check.algorithm, check.body_bytes) == (REQUEST, "ed25519", len(BODY))
    assert check.body_sha256 == hashlib.sha256(BODY).hexdigest()


def test_one_changed_body_byte_fails(private_key: Ed25519PrivateKey, verify_key: VerifyKey) -> None:
    altered = BODY.replace(b'"2"', b'"3"')
    with pytest.raises(CheckFailed, match=r"^wrong signature on the response to PUT /api/v1/config/x: .*42-byte body"):
        verify_key.verify(REQUEST, _signed(private_key, BODY), altered)


def test_a_changed_signature_fails(private_key: Ed25519PrivateKey, verify_key: VerifyKey) -> None:
    other = base64.b64encode(private_key.sign(BODY + b" ")).decode("ascii")
    with pytest.raises(CheckFailed, match=r"^wrong signature on the response to PUT /api/v1/config/x.*rule: every"):
        verify_key.verify(REQUEST, _signed(private_key, BODY, **{"X-Signature": other}), BODY)


def test_an_unsigned_response_fails(verify_key: VerifyKey) -> None:
    with pytest.raises(CheckFailed, match=r"^unsigned response to PUT /api/v1/config/x: no X-Signature or X-Sig"):
        verify_key.verify(REQUEST, httpx.Headers({"content-type": "application/json"}), BODY)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"X-Signature-Alg": "hmac-sha256"}, r"signed with 'hmac-sha256', not ed25519; rule: every config"),
        ({"X-Signature": "not*base64"}, r"has an X-Signature that is not base64; rule"),
        ({"X-Signature-Key-Id": "0123456789abcdef"}, r"signed by key 0123456789abcdef, not the configured verify key"),
    ],
)
def test_another_algorithm_bad_base64_or_another_key_fail_naming_the_request(
    private_key: Ed25519PrivateKey, verify_key: VerifyKey, override: dict[str, str], message: str
) -> None:
    with pytest.raises(CheckFailed, match=rf"^response to PUT /api/v1/config/x .*{message}"):
        verify_key.verify(REQUEST, _signed(private_key, BODY, **override), BODY)


@pytest.mark.parametrize(
    ("value", "message"),
    [("", r"is empty"), ("%%%", r"is not valid base64"), (base64.b64encode(b"short").decode(), r"decodes to 5 bytes")],
)
def test_a_malformed_verify_key_is_a_setup_error(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^deployment.verify_key {message}"):
        VerifyKey(value)
