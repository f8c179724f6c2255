"""Redis persistence: the live server's settings and save status, its daily copies, the newest copy's integrity.

Only ``CONFIG GET`` and ``INFO persistence`` are sent to the live server: the drill never writes to
production. A setting in ``redis.conf`` that was changed at run time (``CONFIG SET``) is what the server does
now, so the live value is what is checked, not a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from harness.config import Objectives
from harness.errors import CheckFailed, HarnessError, ServiceError
from harness.policy.evidence import Evidence
from harness.policy.timeline import Schedule, check_schedule
from harness.services.base import label_dir, remove_dir, run_tool
from harness.storage.catalogue import Catalogue, fetch_manifest
from harness.storage.download import download_object, verify_against
from harness.storage.signing import ManifestTrust

__all__ = [
    "RedisPersistence",
    "check_aof",
    "check_rdb_snapshots",
    "check_redis_copies",
    "read_persistence",
    "verify_rdb_copy",
]


@dataclass(frozen=True)
class RedisPersistence:
    """What the live server says about its persistence. ``server`` is ``host:port`` (never the password)."""

    server: str
    appendonly: str
    save: str
    info: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The evidence attached to the report: the two settings and ``INFO persistence``."""
        return {"server": self.server, "appendonly": self.appendonly, "save": self.save, "info": dict(self.info)}


def read_persistence(redis_url: str | None) -> RedisPersistence:
    """Ask the live Redis for ``appendonly``, ``save`` and ``INFO persistence`` (read-only commands).

    Raises:
        HarnessError: no URL is configured, the server cannot be reached, or it refuses ``CONFIG GET``.
    """
    if not redis_url:
        raise HarnessError("no live Redis to check: set redis.url_env in drill.toml to the variable holding its URL")
    server = redis_url.rsplit("@", 1)[-1].split("://", 1)[-1].split("/", 1)[0]
    try:
        with redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3, decode_responses=True) as r:
            appendonly = str(r.config_get("appendonly").get("appendonly", ""))
            save = str(r.config_get("save").get("save", ""))
            info = dict(r.info("persistence"))
    except redis.ResponseError as exc:
        raise HarnessError(
            f"Redis {server} refused a read-only command ({exc}); allow CONFIG GET for the drill"
        ) from None
    except redis.RedisError as exc:
        raise HarnessError(f"cannot reach Redis {server}: {exc}") from None
    return RedisPersistence(server, appendonly, save, info)


def check_aof(state: RedisPersistence) -> Evidence:
    """``appendonly yes`` and the last AOF write succeeded.

    Raises:
        CheckFailed: names the server, the setting and its value.
    """
    if state.appendonly != "yes":
        raise CheckFailed(f"Redis {state.server}: appendonly is {state.appendonly!r}; the plan requires appendonly yes")
    status = state.info.get("aof_last_write_status", "missing")
    if status != "ok":
        raise CheckFailed(f"Redis {state.server}: aof_last_write_status is {status!r}, not 'ok'")
    return Evidence("Redis append-only file", state.server, state.appendonly, "yes", "", state.as_dict())


def check_rdb_snapshots(state: RedisPersistence, max_age_hours: float, now: datetime | None = None) -> Evidence:
    """RDB save rules are set, the last background save succeeded and is at most ``max_age_hours`` old.

    Raises:
        CheckFailed: names the server, the setting or status, and the last save's age in hours.
    """
    if not state.save.strip():
        raise CheckFailed(
            f"Redis {state.server}: save is empty (no RDB snapshot rules); the plan enables RDB snapshots"
        )
    status = state.info.get("rdb_last_bgsave_status", "missing")
    if status != "ok":
        raise CheckFailed(f"Redis {state.server}: rdb_last_bgsave_status is {status!r}, not 'ok'")
    saved = datetime.fromtimestamp(int(state.info.get("rdb_last_save_time", 0)), UTC)
    age = ((now or datetime.now(UTC)) - saved).total_seconds() / 3600
    if age > max_age_hours:
        raise CheckFailed(
            f"Redis {state.server}: last RDB save was {age:.1f} h ago ({saved:%Y-%m-%dT%H:%M:%SZ}), more than the "
            f"{max_age_hours:g} h allowed (objectives.max_rdb_save_age_hours)"
        )
    return Evidence("Redis RDB snapshots", state.server, round(age, 2), max_age_hours, "h since last save",
                    state.as_dict())  # fmt: skip


def check_redis_copies(catalogue: Catalogue, objectives: Objectives, now: datetime | None = None) -> Evidence:
    """An RDB copy in object storage for each of the last ``redis_copy_days`` days (late by at most the grace).

    Raises:
        CheckFailed: the newest copy is over a day (plus grace) old, a day was missed, or the days are not covered.
    """
    schedule = Schedule("Redis RDB copy", 24.0, objectives.redis_copy_days, objectives.retention_grace_hours,
                        f"objectives.redis_copy_days = {objectives.redis_copy_days}")  # fmt: skip
    return check_schedule(catalogue, schedule, now or datetime.now(UTC))


def _first_error(output: str) -> str:
    """The line after ``--- RDB ERROR DETECTED ---`` (the tool's diagnosis), else its last line."""
    lines = output.splitlines()
    for number, line in enumerate(lines[:-1]):
        if "RDB ERROR DETECTED" in line:
            return lines[number + 1].strip()
    return lines[-1].strip() if lines else "no output"


def verify_rdb_copy(
    client: Any,
    catalogue: Catalogue,
    redis_check_rdb: Path,
    *,
    work_dir: Path | None = None,
    timeout_s: float = 600,
    trust: ManifestTrust | None = None,
) -> Evidence:
    """Download the newest RDB copy and check it with ``redis-check-rdb`` (and against its manifest, if any).

    The manifest (read under ``trust``) is checked before the download, so a copy whose listed size is not
    the manifest's is never fetched.

    Raises:
        CheckFailed: the copy differs from its manifest, or ``redis-check-rdb`` finds it corrupt (its error
            line is quoted).
        HarnessError: storage cannot be read or the disk is full.
    """
    obj = catalogue.newest()
    scratch = label_dir("checkrdb", work_dir)
    try:
        manifest = fetch_manifest(client, catalogue.bucket, obj, trust) if catalogue.manifest_for(obj) else None
        copy = download_object(client, catalogue.bucket, obj.key, scratch,
                               expected_size=None if manifest is None else manifest.size)  # fmt: skip
        if manifest is not None:
            verify_against(copy, manifest)
        report = scratch / "redis-check-rdb.log"
        with report.open("wb") as out:  # the tool reports on stdout, which run_tool does not quote
            try:
                run_tool([redis_check_rdb, copy.path], what="redis-check-rdb", timeout=timeout_s, stdout=out)
                failed = False
            except ServiceError:
                failed = True
        output = report.read_text(errors="replace").strip()
        if failed:
            raise CheckFailed(f"Redis RDB copy {obj.key} fails redis-check-rdb: {_first_error(output)}")
    finally:
        remove_dir(scratch)
    return Evidence("newest Redis copy integrity", obj.key, "OK", "redis-check-rdb passes", "",
                    {"copy": copy.evidence(), "output": output})  # fmt: skip
