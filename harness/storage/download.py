"""Stream a backup object to disk, hashing it on the way, and refuse it when it is not what its manifest says.

A dump can be larger than memory, so nothing here ever holds the whole object: small objects are streamed
in chunks through sha256; large ones are fetched as parallel ranged GETs written at their offsets with
``os.pwrite`` (the download is usually network-bound, and one TCP stream rarely fills the link), then hashed
by streaming the file in order. Size and hash are compared with the manifest before anything restores from
the file, so a truncated or altered dump is refused with the key, the expected and the actual value.

The bucket is untrusted: the local file name is the key's last part only when it is a plain file name
(:func:`harness.storage.manifest.backup_file_name`), so no key chooses a path outside the download
directory; given the manifest's size, an object of another size is refused before a byte is fetched and
never read past that size; and a :class:`harness.storage.pace.Watchdog` stops a transfer that misses its
deadline or trickles under the minimum rate.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import CheckFailed, HarnessError
from harness.progress import Progress
from harness.storage.catalogue import storage_errors
from harness.storage.manifest import BackupManifest, backup_file_name
from harness.storage.pace import TransferLimits, Watchdog

__all__ = [
    "MIN_PART_SIZE",
    "PARALLEL_THRESHOLD",
    "WORKERS",
    "Downloaded",
    "TransferLimits",
    "download_object",
    "verify_against",
]

PARALLEL_THRESHOLD = 64 * 1024 * 1024
MIN_PART_SIZE = 8 * 1024 * 1024
WORKERS = 4
_CHUNK = 1024 * 1024
#: Write errors that mean "this disk cannot hold the dump", with the words the message uses for each.
_DISK_FULL = {errno.ENOSPC: "disk full", errno.EDQUOT: "quota exceeded", errno.EFBIG: "file size limit"}


@dataclass(frozen=True)
class Downloaded:
    """A backup object on local disk, with what was measured while fetching it."""

    key: str
    path: Path
    size: int
    sha256: str
    seconds: float
    parts: int

    def evidence(self) -> dict[str, Any]:
        """What the report attaches: key, size, hash, time."""
        return {"key": self.key, "size": self.size, "sha256": self.sha256, "seconds": round(self.seconds, 3),
                "parts": self.parts}  # fmt: skip


def _stream(body: Any, watchdog: Watchdog, limit: int) -> Iterator[bytes]:
    """The body's chunks, counted by the watchdog; refused as soon as more than ``limit`` bytes arrive."""
    received = 0
    with watchdog.track(body):
        while chunk := body.read(_CHUNK):
            received += len(chunk)
            if received > limit:
                raise CheckFailed(f"{watchdog.where}: more than the {limit} bytes announced arrived; not read further")
            watchdog.add(len(chunk))
            yield chunk


def _fetch_whole(client: Any, bucket: str, key: str, path: Path, progress: Progress, watchdog: Watchdog) -> str:
    digest = hashlib.sha256()
    response = client.get_object(Bucket=bucket, Key=key)
    with path.open("wb") as out:
        for chunk in _stream(response["Body"], watchdog, watchdog.total or 0):
            digest.update(chunk)
            out.write(chunk)
            progress.add(len(chunk))
    return digest.hexdigest()


def _fetch_parts(
    client: Any, bucket: str, key: str, path: Path, size: int, progress: Progress, watchdog: Watchdog
) -> int:
    # One range per worker: as fast on S3 as many small ranges, and a server that re-reads the whole object
    # for every range request (moto does) copies it WORKERS times instead of size / 8 MiB times (1 GB: 5 s, not 94).
    part = max(MIN_PART_SIZE, -(-size // WORKERS))
    ranges = [(start, min(start + part, size) - 1) for start in range(0, size, part)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def fetch(byte_range: tuple[int, int]) -> None:
        start, end = byte_range
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"]
        offset = start
        for chunk in _stream(body, watchdog, end - start + 1):
            os.pwrite(fd, chunk, offset)
            offset += len(chunk)
            progress.add(len(chunk))
        if offset != end + 1:
            raise CheckFailed(f"{key}: range {start}-{end} returned {offset - start} bytes, not {end - start + 1}")

    try:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="download") as pool:
            list(pool.map(fetch, ranges))
    finally:
        os.close(fd)
    return len(ranges)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_object(
    client: Any,
    bucket: str,
    key: str,
    directory: Path,
    *,
    expected_size: int | None = None,
    limits: TransferLimits | None = None,
) -> Downloaded:
    """Download ``key`` into ``directory`` (its base name), hashing it; ranged and parallel when large.

    Args:
        client: a boto3 S3 client.
        bucket: the bucket.
        key: the object; its last part must be a plain file name.
        directory: where the file goes.
        expected_size: the size the manifest gives; another size is refused before the download starts.
        limits: the overall deadline and minimum rate (default :class:`TransferLimits`'s).

    Raises:
        CheckFailed: the key cannot name a file, or storage holds another size than ``expected_size``.
        HarnessError: the disk filled up (the message names the directory and the size needed), the object
            cannot be read (storage errors, after the client's bounded retries), or the transfer missed its
            deadline or minimum rate (names the object, the bytes received and the limit).
    """
    started = time.monotonic()
    path = directory / backup_file_name(key)
    where = f"cannot read s3://{bucket}/{key}"
    with storage_errors(client, where):
        size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    if expected_size is not None and size != expected_size:
        raise CheckFailed(f"{key}: storage holds {size} bytes but its manifest says {expected_size}; not downloaded")
    progress = Progress(f"downloading {key}", size)
    watchdog = Watchdog(f"s3://{bucket}/{key}: download", size, limits or TransferLimits())
    try:
        with watchdog, storage_errors(client, where):
            if size >= PARALLEL_THRESHOLD:
                parts = _fetch_parts(client, bucket, key, path, size, progress, watchdog)
                sha256 = _hash_file(path)
            else:
                parts = 1
                sha256 = _fetch_whole(client, bucket, key, path, progress, watchdog)
    except OSError as exc:
        watchdog.check()
        if exc.errno in _DISK_FULL:
            path.unlink(missing_ok=True)
            free = shutil.disk_usage(directory).free
            raise HarnessError(
                f"no space left in {directory} while downloading {key} ({_DISK_FULL[exc.errno]}): it needs "
                f"{size} bytes, {free} are free; free space or point restore.work_dir at a larger disk"
            ) from None
        raise
    except Exception:
        watchdog.check()
        raise
    watchdog.check()
    seconds = time.monotonic() - started
    progress.finish(f"{parts} part{'' if parts == 1 else 's'}")
    return Downloaded(key, path, path.stat().st_size, sha256, seconds, parts)


def verify_against(downloaded: Downloaded, manifest: BackupManifest) -> None:
    """Refuse a download whose size or sha256 differs from its manifest.

    Raises:
        CheckFailed: names the key, which of size or sha256 differs, the expected and the actual value.
    """
    if downloaded.size != manifest.size:
        raise CheckFailed(
            f"{downloaded.key}: size {downloaded.size} bytes differs from the manifest's {manifest.size} bytes"
        )
    if downloaded.sha256 != manifest.sha256:
        raise CheckFailed(f"{downloaded.key}: sha256 {downloaded.sha256} differs from the manifest's {manifest.sha256}")
