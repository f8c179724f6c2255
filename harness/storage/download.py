"""Stream a backup object to disk, hashing it on the way, and refuse it when it is not what its manifest says.

A dump can be larger than memory, so nothing here ever holds the whole object: small objects are streamed
in chunks through sha256; large ones are fetched as parallel ranged GETs written at their offsets with
``os.pwrite`` (the download is usually network-bound, and one TCP stream rarely fills the link) and hashed
in file order as the bytes land (no second pass over the file). Size and hash are compared with the manifest
before anything restores from the file, so a truncated or altered dump is refused with the key, the expected
and the actual value.

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
import threading
import time
from collections.abc import Callable, Iterator
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


#: Called once with the object's first bytes (its first chunk) as soon as they land.
HeadHook = Callable[[bytes], None]


def _fetch_whole(
    client: Any, bucket: str, key: str, path: Path, progress: Progress, watchdog: Watchdog, on_head: HeadHook
) -> str:
    digest = hashlib.sha256()
    response = client.get_object(Bucket=bucket, Key=key)
    with path.open("wb") as out:
        for chunk in _stream(response["Body"], watchdog, watchdog.total or 0):
            if out.tell() == 0:
                on_head(chunk)
            digest.update(chunk)
            out.write(chunk)
            progress.add(len(chunk))
    return digest.hexdigest()


class _LandedDigest:
    """sha256 of a file whose ranges are written concurrently, taken in file order as the bytes land.

    Hashing the file after a parallel download reads it all a second time, on the critical path of the restore
    (1 GB: about 1.5 s here). This follows the written frontier instead: bytes are hashed as soon as they and
    every byte before them are on disk, read back from the page cache a chunk at a time, so memory stays flat
    and the hash is of the file pg_restore will read. The digest is ready the moment the last range lands.
    """

    def __init__(self, fd: int, ranges: list[tuple[int, int]]) -> None:
        self._fd = fd
        self._ranges = ranges
        self._landed = [start for start, _ in ranges]  # per range: the first offset not yet written
        self._changed = threading.Condition()
        self._failed = False

    def landed(self, index: int, upto: int) -> None:
        """Range ``index`` is written up to (not including) ``upto``."""
        with self._changed:
            self._landed[index] = upto
            self._changed.notify()

    def fail(self) -> None:
        """A fetch failed: what it did not write never lands, so the digest stops waiting."""
        with self._changed:
            self._failed = True
            self._changed.notify()

    def _wait_past(self, index: int, offset: int) -> int:
        """How far range ``index`` has landed, once it is past ``offset`` or a fetch failed."""
        with self._changed:
            self._changed.wait_for(lambda: self._landed[index] > offset or self._failed)
            return self._landed[index]

    def hexdigest(self) -> str | None:
        """The file's sha256 once every range landed.

        ``None`` when a fetch failed first (it raises its own error) or the file no longer holds what landed.
        """
        digest = hashlib.sha256()
        for index, (offset, end) in enumerate(self._ranges):
            while offset <= end:
                upto = self._wait_past(index, offset)
                if upto <= offset:
                    return None
                while offset < upto:
                    data = os.pread(self._fd, min(_CHUNK, upto - offset), offset)
                    if not data:
                        return None
                    digest.update(data)
                    offset += len(data)
        return digest.hexdigest()


def _fetch_parts(
    client: Any, bucket: str, key: str, path: Path, size: int, progress: Progress, watchdog: Watchdog,
    on_head: HeadHook,
) -> tuple[int, str]:  # fmt: skip
    """The object in parallel ranges written at their offsets; the number of ranges and the file's sha256."""
    # One range per worker: as fast on S3 as many small ranges, and a server that re-reads the whole object
    # for every range request (moto does) copies it WORKERS times instead of size / 8 MiB times (1 GB: 5 s, not 94).
    part = max(MIN_PART_SIZE, -(-size // WORKERS))
    ranges = [(start, min(start + part, size) - 1) for start in range(0, size, part)]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    digest = _LandedDigest(fd, ranges)

    def fetch(index: int) -> None:
        start, end = ranges[index]
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"]
        offset = start
        for chunk in _stream(body, watchdog, end - start + 1):
            if offset == 0:
                on_head(chunk)
            os.pwrite(fd, chunk, offset)
            offset += len(chunk)
            digest.landed(index, offset)
            progress.add(len(chunk))
        if offset != end + 1:
            raise CheckFailed(f"{key}: range {start}-{end} returned {offset - start} bytes, not {end - start + 1}")

    try:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="download") as pool:
            fetches = [pool.submit(fetch, index) for index in range(len(ranges))]
            for fetch_done in fetches:
                fetch_done.add_done_callback(lambda done: digest.fail() if done.exception() else None)
            sha256 = digest.hexdigest()
            for fetch_done in fetches:
                fetch_done.result()  # the first failure, in range order
    finally:
        os.close(fd)
    if sha256 is None:
        raise HarnessError(f"{path}: shorter than the {size} bytes written to it while {key} downloaded")
    return len(ranges), sha256


def download_object(
    client: Any,
    bucket: str,
    key: str,
    directory: Path,
    *,
    expected_size: int | None = None,
    limits: TransferLimits | None = None,
    on_head: HeadHook | None = None,
) -> Downloaded:
    """Download ``key`` into ``directory`` (its base name), hashing it; ranged and parallel when large.

    Args:
        client: a boto3 S3 client.
        bucket: the bucket.
        key: the object; its last part must be a plain file name.
        directory: where the file goes.
        expected_size: the size the manifest gives; another size is refused before the download starts.
        limits: the overall deadline and minimum rate (default :class:`TransferLimits`'s).
        on_head: called once with the object's first bytes as soon as they are on disk (e.g. to read a dump's
            header while the rest still downloads); never when no byte arrives.

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
    head = on_head or (lambda _: None)
    watchdog = Watchdog(f"s3://{bucket}/{key}: download", size, limits or TransferLimits())
    try:
        with watchdog, storage_errors(client, where):
            if size >= PARALLEL_THRESHOLD:
                parts, sha256 = _fetch_parts(client, bucket, key, path, size, progress, watchdog, head)
            else:
                parts = 1
                sha256 = _fetch_whole(client, bucket, key, path, progress, watchdog, head)
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
