"""The manifest written beside every backup object, and the keys both live under.

The contract (DESIGN.md): a backup object's key carries its UTC timestamp; each logical dump has a JSON
manifest beside it (``<key>.manifest.json``) with its time, format, sha256, size and, for the critical
tables (every table with ``all_tables``), the row count and, where a time column is declared, the rows
inserted in the 24 h before the backup and the newest row time, all read in the same snapshot as the dump
(:mod:`harness.counting`). Tables are keyed by :attr:`harness.identifiers.TableName.key`. The drill
compares what it restored with these numbers.

Whoever can write the bucket can write a manifest, so a manifest may carry a ``signature``: Ed25519 over its
canonical JSON without that field (:meth:`BackupManifest.signed_bytes`, see :mod:`harness.storage.signing`).
The signature sits inside the manifest rather than in a detached ``.sig`` object so that the pair is written
in one PUT and read in one GET: no window in which a manifest exists without its signature, no second object
to list, pair and cap. Canonical JSON (sorted keys, no whitespace) makes it independent of how a writer
indents the document.

A Redis copy's manifest may carry a :class:`KeyspaceSample` (:mod:`harness.integrity.redis_keys`): counts of
its keys per type and a bounded sample of keys without an expiry, each with its type, size and a digest of its
value. Being untrusted, the sample is bounded here: at most :data:`MAX_SAMPLE` keys of at most
:data:`MAX_SAMPLED_KEY` characters, known types, hex digests; nothing in it is executed or sent anywhere but
to the drill's own restored Redis.

Keys are untrusted too: :func:`backup_file_name` refuses a key that cannot name a local file (it ends with
``/``, its last part is ``.`` or ``..``, is longer than a file name may be, or holds control characters).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from harness.errors import CheckFailed, HarnessError

__all__ = [
    "GLOBALS_SUFFIX",
    "MANIFEST_SUFFIX",
    "MAX_KEY_COUNT",
    "MAX_SAMPLE",
    "MAX_SAMPLED_KEY",
    "MAX_SAMPLED_SIZE",
    "BackupManifest",
    "Companion",
    "KeyspaceSample",
    "ManifestSignature",
    "SampledKey",
    "TableStats",
    "backup_file_name",
    "canonical_json",
    "format_timestamp",
    "manifest_key",
    "parse_manifest",
    "parse_timestamp",
    "shown_key",
]

MANIFEST_SUFFIX = ".manifest.json"
_NAME_MAX = 255  # bytes in one file name (Linux, macOS)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

GLOBALS_SUFFIX = ".globals.sql"
"""A logical dump's roles and memberships (``pg_dumpall --globals-only``) are stored at ``<key>.globals.sql``."""


class TableStats(BaseModel):
    """What one table held when the backup was taken (``None``: the table has no time column)."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=0)
    rows_last_24h: int | None = Field(default=0, ge=0)
    newest: datetime | None = None


class Companion(BaseModel):
    """A file stored beside the object (a base backup's ``pg_wal.tar.gz``, ``backup_manifest``): verified like it."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    expanded: int | None = Field(default=None, ge=0, description="a tarball: bytes of its uncompressed tar stream")


MAX_SAMPLE = 1024
"""The most sampled keys a Redis copy's manifest may carry (``backup redis`` samples 256 by default)."""
MAX_SAMPLED_KEY = 512
"""The longest key name (characters) a sample may carry; longer keys are not sampled."""
MAX_SAMPLED_SIZE = 65_536
"""The largest key a sample may carry: bytes of a string, elements of any other type."""

SampledType = Literal["string", "list", "set", "zset", "hash", "stream"]
_TypeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
MAX_KEY_COUNT = 2**64
"""More keys than a Redis can count: a sample's per-type count beyond it is refused, not quoted digit by digit."""
_Count = Annotated[int, Field(ge=0, le=MAX_KEY_COUNT)]


class SampledKey(BaseModel):
    """One key of a Redis copy without an expiry, as it was in the copy: its type, size and value digest."""

    model_config = ConfigDict(extra="forbid")

    db: int = Field(default=0, ge=0, le=1023)
    key: str = Field(max_length=MAX_SAMPLED_KEY)
    type: SampledType
    size: int = Field(ge=0, le=MAX_SAMPLED_SIZE, description="bytes of a string, elements of any other type")
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")


class KeyspaceSample(BaseModel):
    """What a Redis copy held: keys per type with and without an expiry, and a sample of keys without one."""

    model_config = ConfigDict(extra="forbid")

    rendering: Literal["sha256-canonical-v1"] = "sha256-canonical-v1"
    persistent: dict[_TypeName, _Count] = Field(max_length=32, description="keys without an expiry, per type")
    expiring: dict[_TypeName, _Count] = Field(max_length=32, description="keys with an expiry, per type")
    keys: list[SampledKey] = Field(max_length=MAX_SAMPLE)

    @model_validator(mode="after")
    def _distinct(self) -> KeyspaceSample:
        seen = {(entry.db, entry.key) for entry in self.keys}
        if len(seen) != len(self.keys):
            raise ValueError("a key is sampled twice")
        return self


class ManifestSignature(BaseModel):
    """Who signed a manifest and the signature itself (base64), over :meth:`BackupManifest.signed_bytes`."""

    model_config = ConfigDict(extra="forbid")

    alg: Literal["ed25519"] = "ed25519"
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    value: str = Field(max_length=128)


class BackupManifest(BaseModel):
    """One backup object's manifest (logical dump, base backup or Redis RDB copy)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["logical", "base", "redis"]
    key: str
    taken_at: datetime
    format: str
    compression: str = "none"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    server_version: str = ""
    database: str = ""
    tables: dict[str, TableStats] = Field(default_factory=dict)
    all_tables: bool = Field(default=False, description="logical: tables holds every table of the dump")
    keys: int | None = Field(default=None, ge=0, le=MAX_KEY_COUNT, description="Redis: number of keys in the RDB")
    sample: KeyspaceSample | None = Field(default=None, description="Redis: keys per type and sampled keys")
    heartbeat: datetime | None = None
    database_size: int | None = Field(
        default=None, ge=0, description="logical: pg_database_size of the dumped database in the dump's snapshot"
    )
    tool: str = "codeblack-drills"
    expanded: int | None = Field(default=None, ge=0, description="a tarball: bytes of its uncompressed tar stream")
    companions: dict[str, Companion] = Field(default_factory=dict, description="base: the other files, by name")
    signature: ManifestSignature | None = None
    globals: Companion | None = Field(
        default=None, description="logical: the cluster's roles (pg_dumpall --globals-only), at <key>.globals.sql"
    )

    def to_json(self) -> bytes:
        """The manifest as stored: UTF-8 JSON, stable key order."""
        return self.model_dump_json(indent=2).encode()

    def signed_bytes(self) -> bytes:
        """What a signature covers: the canonical JSON of every field but ``signature``."""
        return canonical_json(self.model_dump(mode="json", exclude={"signature"}))


def canonical_json(document: object) -> bytes:
    """JSON with sorted keys, no whitespace and UTF-8 text: the same bytes whoever wrote the document."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_key(object_key: str) -> str:
    """Where the manifest of ``object_key`` lives."""
    return object_key + MANIFEST_SUFFIX


def shown_key(key: str, limit: int = 120) -> str:
    """A key as a message shows it: quoted (control characters escaped), long ones cut with their length."""
    return repr(key) if len(key) <= limit else f"{key[:limit]!r}… ({len(key)} characters)"


def backup_file_name(key: str) -> str:
    """The local file name a backup object's key gives: its last part, refused unless a plain file name.

    Raises:
        CheckFailed: the key ends with ``/``, its last part is ``.`` or ``..``, is longer than 255 bytes, or
            the key holds a control character; one line naming the key.
    """
    name = key.rsplit("/", 1)[-1]
    if _CONTROL.search(key):
        reason = "it holds a control character"
    elif not name:
        reason = "it ends with '/'"
    elif name in (".", ".."):
        reason = f"its last part is {name!r}"
    elif len(name.encode()) > _NAME_MAX:
        reason = f"its last part is {len(name.encode())} bytes, more than the {_NAME_MAX} a file name may have"
    else:
        return name
    raise CheckFailed(f"{shown_key(key)} cannot name a backup object: {reason}; rename or remove the object")


def _shown_part(part: str | int) -> str:
    """A part of a field's path: a dict key of the manifest (a table, a Redis type) is the writer's text."""
    text = str(part)
    return text if re.fullmatch(r"[\w.:\[\]-]{1,64}", text) else shown_key(text, 40)


def parse_manifest(raw: bytes, *, where: str) -> BackupManifest:
    """Parse a manifest, failing with one line naming the object.

    Raises:
        HarnessError: not JSON or not a manifest.
    """
    try:
        return BackupManifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(_shown_part(part) for part in first["loc"]) or "document"
        raise HarnessError(f"{where}: malformed manifest: {field}: {first['msg']}") from None


def format_timestamp(moment: datetime, fmt: str = "%Y%m%dT%H%M%SZ") -> str:
    """A UTC timestamp as it appears in backup keys."""
    return moment.astimezone(UTC).strftime(fmt)


def parse_timestamp(key: str, pattern: str = r"(?P<ts>\d{8}T\d{6}Z)", fmt: str = "%Y%m%dT%H%M%SZ") -> datetime | None:
    """The UTC time a key carries, or ``None`` when the key does not match the pattern or format."""
    match = re.search(pattern, key)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group("ts"), fmt).replace(tzinfo=UTC)
    except ValueError:
        return None
