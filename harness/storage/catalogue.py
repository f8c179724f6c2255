"""The backup catalogue: what object storage holds under a prefix, each object with the time its key carries.

Every feature area reads backups the same way (the policy checks, the restore drill picking the newest dump,
pruning), so the listing lives here once. It pages through ``list_objects_v2`` (1,000 keys per request; a
production prefix can hold tens of thousands of objects) and keeps only what it needs per key, so listing
10,000 objects is a handful of requests and no per-object calls.

Keys are sorted into three kinds:

* backups: keys ending with ``suffix`` (every non-manifest key when ``suffix`` is empty) whose timestamp parses
  with ``storage.timestamp_pattern``/``timestamp_format``;
* manifests: ``<key>.manifest.json``, paired with the backup they describe;
* companions: any other key (e.g. ``pg_wal.tar.gz`` and ``backup_manifest`` beside a base backup's
  ``base.tar.gz``), found with :meth:`Catalogue.companion`, and a logical dump's roles, ``<key>.globals.sql``
  (never a backup of its own, though its key carries the dump's timestamp).

A backup-looking key whose timestamp does not parse is refused by default (``strict=True``): one line names
how many keys and the first one, because it nearly always means the pattern in ``drill.toml`` does not match
the target's naming, and a silently skipped backup would make every age and gap check lie. With
``strict=False`` such keys are kept in :attr:`Catalogue.unparsed` as evidence instead.

The bucket is untrusted (DESIGN.md, "Targets and trust"). A key whose time is later than now plus
``storage.max_clock_skew_s`` is refused, naming it and its date: a future-dated copy would otherwise pass
every age check and be restored as "the newest". A key that cannot name a local file (ends with ``/``,
``..``, an over-long name, control characters) is refused in one line. A manifest is read only up to
``storage.max_manifest_bytes``, must name the very object it sits beside and that object's listed size,
and, when a verify key is configured, must be signed (:mod:`harness.storage.signing`).

Storage problems (unreachable endpoint, refused credentials, missing bucket) become one-line
:class:`~harness.errors.HarnessError` s naming the endpoint or bucket, never a botocore traceback; use
:func:`storage_errors` around any other S3 call for the same translation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from harness.config import StorageSettings
from harness.errors import CheckFailed, HarnessError
from harness.storage.manifest import (
    GLOBALS_SUFFIX,
    MANIFEST_SUFFIX,
    BackupManifest,
    backup_file_name,
    parse_manifest,
    parse_timestamp,
    shown_key,
)
from harness.storage.pace import Watchdog
from harness.storage.signing import ManifestTrust

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_PATTERN",
    "BackupObject",
    "Catalogue",
    "fetch_manifest",
    "list_backups",
    "list_configured",
    "storage_errors",
]

DEFAULT_PATTERN = r"(?P<ts>\d{8}T\d{6}Z)"
DEFAULT_FORMAT = "%Y%m%dT%H%M%SZ"
_CREDENTIAL_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"})


@dataclass(frozen=True)
class BackupObject:
    """One backup in storage: its key, the UTC time its key carries, its size in bytes and its ETag."""

    key: str
    taken_at: datetime
    size: int
    etag: str

    def evidence(self) -> dict[str, Any]:
        """One row of the timeline the report attaches."""
        return {"key": self.key, "taken_at": self.taken_at.isoformat(), "size": self.size}


@dataclass(frozen=True)
class Catalogue:
    """The backups under one prefix, oldest first, with their manifests and companion files."""

    bucket: str
    prefix: str
    objects: tuple[BackupObject, ...]
    manifests: Mapping[str, str] = field(default_factory=dict)
    companions: frozenset[str] = frozenset()
    unparsed: tuple[str, ...] = ()

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``, as messages name it."""
        return f"s3://{self.bucket}/{self.prefix}"

    def newest(self) -> BackupObject:
        """The most recent backup (a catalogue is never empty: :func:`list_backups` refuses that)."""
        return self.objects[-1]

    def manifest_for(self, obj: BackupObject) -> str | None:
        """The key of ``obj``'s manifest, or ``None`` when none was listed beside it."""
        return self.manifests.get(obj.key)

    def companion(self, obj: BackupObject, name: str) -> str | None:
        """The key of file ``name`` in the same "directory" as ``obj`` (e.g. ``pg_wal.tar.gz``), if listed."""
        key = obj.key.rsplit("/", 1)[0] + "/" + name if "/" in obj.key else name
        return key if key in self.companions else None

    def since(self, moment: datetime) -> tuple[BackupObject, ...]:
        """The backups taken at or after ``moment``, oldest first."""
        return tuple(obj for obj in self.objects if obj.taken_at >= moment)

    def timeline(self) -> list[dict[str, Any]]:
        """Every backup as a row (key, time, size, manifest), for the report."""
        return [{**obj.evidence(), "manifest": self.manifest_for(obj) is not None} for obj in self.objects]


def _endpoint(client: Any) -> str:
    return str(getattr(client.meta, "endpoint_url", "") or "the default AWS endpoint")


@contextlib.contextmanager
def storage_errors(client: Any, where: str) -> Iterator[None]:
    """Turn the ways object storage refuses a request into one line naming ``where`` and the endpoint.

    Credentials never appear in the message (botocore's own text can echo the access key id). Throttling
    (``SlowDown``) and 5xx answers were already retried by the client (``S3Endpoint.client``: bounded attempts,
    adaptive backoff), so the message says how many times storage answered so.

    Raises:
        HarnessError: the endpoint is unreachable, refuses the credentials, the bucket is missing, or any
            other S3 error (its code and message).
    """
    try:
        yield
    except EndpointConnectionError:
        raise HarnessError(
            f"{where}: cannot reach object storage at {_endpoint(client)} (connection refused or no route); "
            "check storage.endpoint_url in drill.toml"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "unknown"))
        if code in _CREDENTIAL_CODES:
            raise HarnessError(
                f"{where}: object storage at {_endpoint(client)} refused the credentials ({code}); check the "
                "variables named by storage.access_key_env and storage.secret_key_env"
            ) from None
        if code in ("NoSuchKey", "404"):
            raise HarnessError(f"{where}: no such object") from None
        if code == "NoSuchBucket":
            raise HarnessError(
                f"{where}: the bucket does not exist at {_endpoint(client)}; check storage.backup_bucket and "
                "storage.uploads_bucket in drill.toml"
            ) from None
        meta = exc.response.get("ResponseMetadata", {})
        tries = int(meta.get("RetryAttempts", 0)) + 1
        answered = f"{code} (HTTP {meta.get('HTTPStatusCode', '?')}){f' {tries} times' if tries > 1 else ''}"
        raise HarnessError(
            f"{where}: object storage at {_endpoint(client)} answered {answered}: {error.get('Message', '')}".rstrip()
        ) from None
    except BotoCoreError as exc:
        raise HarnessError(f"{where}: object storage at {_endpoint(client)} failed: {exc}") from None


def list_backups(
    client: Any,
    bucket: str,
    prefix: str,
    pattern: str = DEFAULT_PATTERN,
    fmt: str = DEFAULT_FORMAT,
    *,
    suffix: str = "",
    strict: bool = True,
    page_size: int = 1000,
    now: datetime | None = None,
    max_skew_s: float = 300.0,
) -> Catalogue:
    """List the backups under ``prefix``, paginated, with their times, manifests and companions.

    Args:
        client: a boto3 S3 client (``S3Endpoint.client()``).
        bucket: the bucket to list.
        prefix: the key prefix (e.g. ``postgres/logical/``).
        pattern: a regular expression with a named group ``ts`` (``storage.timestamp_pattern``).
        fmt: the ``strptime`` format of that group (``storage.timestamp_format``).
        suffix: only keys ending with this are backups (``base.tar.gz`` among a base backup's files).
        strict: refuse keys whose timestamp does not parse; when false, keep them in ``unparsed``.
        page_size: keys per request (S3's maximum and default is 1,000; smaller only to test paging).
        now: the time no backup may be later than (plus ``max_skew_s``); default the current time.
        max_skew_s: how far a key's time may run ahead of ``now`` (``storage.max_clock_skew_s``).

    Raises:
        HarnessError: nothing under the prefix, a key does not parse (strict), or storage refused the listing.
        CheckFailed: a backup's key is dated in the future or cannot name a file.
    """
    location = f"s3://{bucket}/{prefix}"
    objects: list[BackupObject] = []
    manifest_keys: set[str] = set()
    companions: set[str] = set()
    unparsed: list[str] = []
    with storage_errors(client, location):
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
        ):
            for entry in page.get("Contents", ()):
                key: str = entry["Key"]
                if key.endswith(MANIFEST_SUFFIX):
                    manifest_keys.add(key)
                elif (suffix and not key.endswith(suffix)) or key.endswith(GLOBALS_SUFFIX):
                    companions.add(key)
                elif (taken_at := parse_timestamp(key, pattern, fmt)) is None:
                    unparsed.append(key)
                else:
                    backup_file_name(key)
                    objects.append(BackupObject(key, taken_at, int(entry["Size"]), str(entry["ETag"]).strip('"')))
    if unparsed and (strict or not objects):
        raise HarnessError(
            f"{location}: {len(unparsed)} key(s) carry no timestamp matching storage.timestamp_pattern "
            f"{pattern!r} / timestamp_format {fmt!r}, first {unparsed[0]!r}; fix the pattern or move the objects"
        )
    if not objects:
        raise HarnessError(f"no backups under {location}{' ending with ' + repr(suffix) if suffix else ''}")
    objects.sort(key=lambda obj: (obj.taken_at, obj.key))
    _refuse_future(location, objects[-1], now or datetime.now(UTC), max_skew_s)
    manifests = {obj.key: obj.key + MANIFEST_SUFFIX for obj in objects if obj.key + MANIFEST_SUFFIX in manifest_keys}
    return Catalogue(bucket, prefix, tuple(objects), manifests, frozenset(companions), tuple(unparsed))


def _refuse_future(location: str, newest: BackupObject, now: datetime, max_skew_s: float) -> None:
    ahead = (newest.taken_at - now).total_seconds()
    if ahead > max_skew_s:
        raise CheckFailed(
            f"{location}: {shown_key(newest.key)} is dated {newest.taken_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{ahead / 3600:,.1f} h in the future, beyond storage.max_clock_skew_s = {max_skew_s:g} s; a backup "
            "cannot be newer than now: remove the object or fix the clock of the host that wrote it"
        )


def list_configured(client: Any, bucket: str, prefix: str, storage: StorageSettings, *, suffix: str = "") -> Catalogue:
    """:func:`list_backups` with the ``[storage]`` settings: timestamp pattern and format, clock skew.

    Raises:
        HarnessError: as :func:`list_backups`.
        CheckFailed: as :func:`list_backups`.
    """
    return list_backups(client, bucket, prefix, storage.timestamp_pattern, storage.timestamp_format,
                        suffix=suffix, max_skew_s=storage.max_clock_skew_s)  # fmt: skip


def _read_capped(client: Any, bucket: str, key: str, where: str, trust: ManifestTrust) -> bytes:
    """The object's bytes, refused unread when it declares more than the cap, and never read past the cap."""
    limit = trust.max_bytes
    watchdog = Watchdog(f"{where}: read", None, trust.limits)
    try:
        with watchdog, storage_errors(client, where):
            response = client.get_object(Bucket=bucket, Key=key)
            declared = int(response.get("ContentLength") or 0)
            with watchdog.track(response["Body"]) as body:
                raw = b"" if declared > limit else body.read(limit + 1)
                body.close()
    except Exception:
        watchdog.check()
        raise
    watchdog.check()
    size = max(declared, len(raw))
    if size > limit:
        raise CheckFailed(
            f"{where}: manifest is {'at least ' if declared <= limit else ''}{size} bytes, over "
            f"storage.max_manifest_bytes = {limit}; not read"
        )
    return raw


def _check_beside(where: str, obj: BackupObject | str, manifest: BackupManifest) -> None:
    key = obj.key if isinstance(obj, BackupObject) else obj
    if manifest.key != key:
        raise CheckFailed(
            f"{where}: the manifest names {shown_key(manifest.key)}, not the object it sits beside, {shown_key(key)}"
        )
    if isinstance(obj, BackupObject) and obj.size != manifest.size:
        raise CheckFailed(
            f"{where}: storage lists {obj.key} at {obj.size} bytes but its manifest says {manifest.size} bytes"
        )


def fetch_manifest(
    client: Any, bucket: str, obj: BackupObject | str, trust: ManifestTrust | None = None
) -> BackupManifest:
    """Read, parse and check the manifest beside a backup (``<key>.manifest.json``).

    The manifest must name the backup's key and, given a listed :class:`BackupObject`, its size (so a huge
    object is refused before a byte of it is downloaded); under ``trust`` it is read up to its size cap and
    its signature is verified when a key is configured.

    Raises:
        HarnessError: the manifest is missing or malformed; one line naming its key.
        CheckFailed: it is too large, names another object or size, or its signature is missing or wrong.
    """
    trust = trust or ManifestTrust()
    key = (obj.key if isinstance(obj, BackupObject) else obj) + MANIFEST_SUFFIX
    where = f"s3://{bucket}/{key}"
    raw = _read_capped(client, bucket, key, where, trust)
    manifest = parse_manifest(raw, where=where)
    trust.verify(raw, manifest, where)
    _check_beside(where, obj, manifest)
    return manifest
