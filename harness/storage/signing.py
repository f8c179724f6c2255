"""Signed manifests: the backup side signs each manifest with Ed25519, the drill verifies it with a public key.

A manifest says what a dump must hold (size, sha256, row counts). Stored in the same bucket as the dump, an
unsigned one proves nothing: whoever can write the bucket can write both. ``codeblack-drills backup ...``
therefore signs every manifest with the seed in the variable ``[backup] signing_key_env`` names, and the
drill, given ``[storage] manifest_verify_key``, refuses a manifest that is unsigned, signed by another key or
altered after signing. Without a verify key the drill still reads manifests, but says in its record and its
evidence that they were NOT authenticated.

Ed25519 rather than HMAC: the drill holds only a public key, which is no secret (it sits in ``drill.toml``),
so a drill host, its logs or its records cannot leak the power to forge a manifest; with HMAC every verifier
would hold the signing secret. The signature covers the canonical JSON of the manifest without its
``signature`` field (:meth:`BackupManifest.signed_bytes`); the drill checks it over the document exactly as
stored (duplicate fields refused), so a field it does not know yet is covered too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness.app.signature import decode_key
from harness.config import DrillConfig
from harness.errors import CheckFailed
from harness.redact import register_secret
from harness.storage.manifest import BackupManifest, ManifestSignature, canonical_json
from harness.storage.pace import TransferLimits

__all__ = [
    "MAX_MANIFEST_BYTES",
    "ManifestSigner",
    "ManifestTrust",
    "load_verify_key",
    "public_key_b64",
    "signature_valid",
    "signer_from_config",
]

MAX_MANIFEST_BYTES = 1024 * 1024
"""The default cap on a manifest's size: a real one is a few KiB."""
_VERIFY_KEY = "[storage] manifest_verify_key"


def _key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


class ManifestSigner:
    """Signs manifests with an Ed25519 seed (base64 of 32 bytes); the seed is never shown or stored."""

    def __init__(self, seed_b64: str, *, source: str = "the manifest signing key") -> None:
        """Load the seed.

        Raises:
            ConfigError: the seed is not base64 of 32 bytes; the message names ``source``, never the value.
        """
        self._key = Ed25519PrivateKey.from_private_bytes(decode_key(seed_b64, source, "raw Ed25519 seed"))
        self.key_id = _key_id(self._key.public_key())

    def public_key_b64(self) -> str:
        """The base64 raw public key that verifies this signer's manifests (``[storage] manifest_verify_key``)."""
        return base64.b64encode(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()

    def sign_bytes(self, data: bytes) -> ManifestSignature:
        """A detached signature over ``data`` (the drill records sign their hash with it)."""
        return ManifestSignature(key_id=self.key_id, value=base64.b64encode(self._key.sign(data)).decode())

    def sign(self, manifest: BackupManifest) -> BackupManifest:
        """A copy of ``manifest`` carrying this signer's signature over its other fields."""
        return manifest.model_copy(update={"signature": self.sign_bytes(manifest.signed_bytes())})


def public_key_b64(seed_b64: str) -> str:
    """The verify key of a signing seed (what ``drill.toml`` needs from whoever holds the seed)."""
    return ManifestSigner(seed_b64).public_key_b64()


def signer_from_config(config: DrillConfig, setting: str = "backup.signing_key_env") -> ManifestSigner | None:
    """The signer the variable at ``setting`` names, or ``None`` when it names none (nothing is signed).

    ``[backup] signing_key_env`` signs manifests; ``[reports] signing_key_env`` signs the drill records.

    Raises:
        ConfigError: the variable is named but unset, or does not hold a seed.
    """
    section, _, key = setting.partition(".")
    if not getattr(getattr(config, section), key):
        return None
    seed = register_secret(config.secret(setting).get_secret_value())
    return ManifestSigner(seed, source=f"{config.source}: the variable [{section}] {key} names")


def load_verify_key(value: str, source: str) -> tuple[Ed25519PublicKey, str]:
    """An Ed25519 public key from base64 and its key id; ``source`` names the file and key it came from.

    Raises:
        ConfigError: not base64 of 32 bytes.
    """
    key = Ed25519PublicKey.from_public_bytes(decode_key(value, source))
    return key, _key_id(key)


def signature_valid(key: Ed25519PublicKey, signature: ManifestSignature, data: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature over ``data`` (a bad encoding is simply not valid)."""
    try:
        key.verify(base64.b64decode(signature.value, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("duplicate field")
    return document


@dataclass(frozen=True)
class ManifestTrust:
    """How the drill reads a manifest: its size cap, the pace its transfer must keep, and the key, if configured."""

    max_bytes: int = MAX_MANIFEST_BYTES
    verify_key: Ed25519PublicKey | None = None
    key_id: str = ""
    limits: TransferLimits = field(default_factory=TransferLimits)

    @classmethod
    def from_config(cls, config: DrillConfig) -> ManifestTrust:
        """The trust ``[storage]`` configures: ``max_manifest_bytes`` and ``manifest_verify_key``.

        Raises:
            ConfigError: the verify key is not base64 of 32 bytes.
        """
        storage = config.storage
        limits = TransferLimits.from_settings(storage)
        if not storage.manifest_verify_key:
            return cls(storage.max_manifest_bytes, limits=limits)
        key, key_id = load_verify_key(storage.manifest_verify_key, f"{config.source}: {_VERIFY_KEY}")
        return cls(storage.max_manifest_bytes, key, key_id, limits)

    @property
    def authenticated(self) -> bool:
        """Whether every manifest read under this trust had its signature verified."""
        return self.verify_key is not None

    def describe(self) -> str:
        """One line for the drill record and the evidence."""
        if self.verify_key is None:
            return (f"NOT authenticated: {_VERIFY_KEY} is not set, so whoever can write the bucket can forge "
                    "a manifest")  # fmt: skip
        return f"authenticated: every manifest read was signed by Ed25519 key {self.key_id} ({_VERIFY_KEY})"

    def verify(self, raw: bytes, manifest: BackupManifest, where: str) -> None:
        """Refuse ``manifest`` (parsed from ``raw``) unless it is signed by the verify key; no-op without one.

        Raises:
            CheckFailed: unsigned, signed by another key, duplicate fields, or altered after signing.
        """
        if self.verify_key is None:
            return
        signature = manifest.signature
        if signature is None:
            raise CheckFailed(f"{where}: unsigned manifest; {_VERIFY_KEY} requires a signature by key {self.key_id}")
        if signature.key_id != self.key_id:
            raise CheckFailed(
                f"{where}: manifest signed by key {signature.key_id}, not by the verify key {self.key_id} "
                f"(rotated key? update {_VERIFY_KEY})"
            )
        try:
            document = json.loads(raw, object_pairs_hook=_unique)
            same = BackupManifest.model_validate(document) == manifest
            value = base64.b64decode(signature.value, validate=True)
        except (ValueError, TypeError):
            same = False
        if not same:
            raise CheckFailed(f"{where}: manifest is ambiguous (duplicate fields or a bad signature encoding)")
        del document["signature"]
        try:
            self.verify_key.verify(value, canonical_json(document))
        except InvalidSignature:
            raise CheckFailed(
                f"{where}: manifest signature does not match its content with key {self.key_id}: altered after signing"
            ) from None
