"""Streaming uploads to object storage: a dump goes from ``pg_dump``'s stdout to S3 without touching disk.

A production database can be far larger than the backup host's memory, so nothing here holds more than one
part (8 MiB) at a time. The sha256 and the size the manifest needs are computed while the bytes pass, so the
object is never read twice. Objects smaller than one part go up in a single PUT; larger ones as a multipart
upload that is aborted on any error, so a failed backup never leaves a half-written object or orphaned parts
(which storage providers bill for). Bounded retries come from the client's own configuration
(:meth:`harness.services.s3.S3Endpoint.client`). Progress (bytes, rate, ETA when the size is known) goes to the
log after each part (:mod:`harness.progress`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.errors import HarnessError
from harness.progress import Progress

__all__ = ["PART_SIZE", "UploadResult", "upload_file", "upload_stream"]

log = logging.getLogger("harness.storage.upload")

PART_SIZE = 8 * 1024 * 1024
"""Multipart part size: S3's minimum is 5 MiB; 8 MiB matches the AWS CLI's default."""


@dataclass(frozen=True)
class UploadResult:
    """What was stored: the key, its sha256 and size as streamed, and the version id if versioned."""

    key: str
    sha256: str
    size: int
    version_id: str | None


def _read_part(stream: IO[bytes], part_size: int) -> bytes:
    """Read up to ``part_size`` bytes; pipes return short reads, so keep reading until full or EOF."""
    chunks: list[bytes] = []
    remaining = part_size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def upload_stream(
    client: Any,
    bucket: str,
    key: str,
    stream: IO[bytes],
    *,
    part_size: int = PART_SIZE,
    before_complete: Callable[[], None] | None = None,
    total: int | None = None,
) -> UploadResult:
    """Upload everything ``stream`` yields to ``bucket/key``, hashing and counting on the way.

    Args:
        client: a boto3 S3 client.
        bucket: the destination bucket.
        key: the destination key.
        stream: a readable binary stream (a pipe, a file); read at most ``part_size`` bytes at a time.
        part_size: bytes per multipart part (at least 5 MiB for real S3).
        before_complete: called after the last byte and before the object becomes visible; raising there
            (e.g. ``pg_dump`` exited non-zero) aborts the upload, so a broken backup is never published.
        total: the size in bytes when known beforehand (a file), for the progress lines' percentage and ETA.

    Raises:
        HarnessError: storage refused a request; the message names the bucket, key and the S3 error.
    """
    digest = hashlib.sha256()
    size = 0
    progress = Progress(f"uploading s3://{bucket}/{key}", total)
    upload_id: str | None = None
    try:
        part = _read_part(stream, part_size)
        digest.update(part)
        size += len(part)
        if len(part) < part_size:
            if before_complete is not None:
                before_complete()
            answer = client.put_object(Bucket=bucket, Key=key, Body=part)
        else:
            upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            parts: list[dict[str, Any]] = []
            while part:
                number = len(parts) + 1
                sent = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part)
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
                progress.update(size)
                part = _read_part(stream, part_size)
                digest.update(part)
                size += len(part)
            if before_complete is not None:
                before_complete()
            answer = client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
    except (ClientError, BotoCoreError) as exc:
        _abort(client, bucket, key, upload_id)
        raise HarnessError(f"s3://{bucket}/{key}: upload failed: {exc}") from None
    except BaseException:
        _abort(client, bucket, key, upload_id)
        raise
    progress.finish(done=size)
    return UploadResult(key, digest.hexdigest(), size, answer.get("VersionId"))


def _abort(client: Any, bucket: str, key: str, upload_id: str | None) -> None:
    if upload_id is None:
        return
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except (ClientError, BotoCoreError) as exc:  # the original error matters more; say this one in the log
        log.warning("s3://%s/%s: could not abort multipart upload %s: %s", bucket, key, upload_id, exc)


def upload_file(client: Any, bucket: str, key: str, path: Path, *, part_size: int = PART_SIZE) -> UploadResult:
    """Upload a file from disk the same way (streamed, hashed, multipart when large).

    Raises:
        HarnessError: the file cannot be read or storage refused it.
    """
    try:
        with path.open("rb") as stream:
            total = os.fstat(stream.fileno()).st_size
            return upload_stream(client, bucket, key, stream, part_size=part_size, total=total)
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read for upload to s3://{bucket}/{key}: {exc.strerror}") from None
