"""Rules about what each backup object is: compressed, described by a manifest that matches it, off-server.

Compression is read from the object's own first bytes (one ranged GET of 32 bytes each), not from its name
or manifest, because a misconfigured job writes ``.dump`` files in plain SQL all the same. A custom-format
archive starts ``PGDMP``, its format version, the int and offset sizes, the format byte and then, since
archive version 1.15 (PostgreSQL 16), the compression algorithm (0 none, 1 gzip, 2 lz4, 3 zstd); older
archives store a compression level as an int (sign byte + ``int size`` bytes, little-endian), non-zero
meaning gzip. Whole-file gzip, zstd and lz4 frames are recognised by their magic numbers.

Manifests are checked for every object: present, describing this key, and with the object's size (from the
listing, the same number a HEAD returns). The sha256 needs the whole object streamed through the hash, so
``hash_newest`` bounds the cost: ``None`` (the default) hashes every object, which is what an audit wants
and is cheap on the sandbox (a few MB); on a real target with large dumps, set it to hash only the newest N
and say so in the report (the evidence records how many were hashed).
"""

from __future__ import annotations

import hashlib
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.endpoints import LOOPBACK, normalise_host, resolve
from harness.errors import CheckFailed, HarnessError
from harness.policy.evidence import Evidence
from harness.storage.catalogue import BackupObject, Catalogue, fetch_manifest, storage_errors
from harness.storage.manifest import BackupManifest
from harness.storage.signing import ManifestTrust

__all__ = ["HEADER_BYTES", "check_compressed", "check_manifests", "check_off_server", "describe_header"]

HEADER_BYTES = 32
_ALGORITHMS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
_ARCHIVE_FORMATS = {1: "custom", 3: "tar", 5: "directory"}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"))
_CHUNK = 1024 * 1024
_WORKERS = 8


def describe_header(head: bytes) -> tuple[str, str]:
    """The (format, compression) that a file's first bytes declare; ``("unknown", "none")`` if none match."""
    if head.startswith(b"PGDMP") and len(head) >= 12:
        major, minor, int_size, archive = head[5], head[6], head[8], head[10]
        kind = _ARCHIVE_FORMATS.get(archive, f"archive format {archive}")
        if (major, minor) >= (1, 15):
            return kind, _ALGORITHMS.get(head[11], f"algorithm {head[11]}")
        level = int.from_bytes(head[12 : 12 + int_size], "little")
        return kind, "gzip" if level else "none"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name, name
    return "unknown", "none"


def _header(client: Any, bucket: str, obj: BackupObject) -> bytes:
    with storage_errors(client, f"s3://{bucket}/{obj.key}"):
        body = client.get_object(Bucket=bucket, Key=obj.key, Range=f"bytes=0-{HEADER_BYTES - 1}")["Body"]
        return bytes(body.read())


def check_compressed(client: Any, catalogue: Catalogue, what: str) -> Evidence:
    """Every object is compressed, judged from its real header bytes.

    Raises:
        CheckFailed: names the first uncompressed object (oldest first), what its header says, and how many.
        HarnessError: an object cannot be read.
    """
    with ThreadPoolExecutor(_WORKERS, thread_name_prefix="header") as pool:
        heads = list(pool.map(lambda obj: _header(client, catalogue.bucket, obj), catalogue.objects))
    rows = []
    for obj, head in zip(catalogue.objects, heads, strict=True):
        kind, compression = describe_header(head)
        rows.append({"key": obj.key, "format": kind, "compression": compression})
    plain = [index for index, row in enumerate(rows) if row["compression"] == "none"]
    if plain:
        first = rows[plain[0]]
        shown = (
            f"its header declares a {first['format']}-format archive with compression none"
            if first["format"] in _ARCHIVE_FORMATS.values()
            else f"it has no PGDMP, gzip, zstd or lz4 signature (it starts {heads[plain[0]][:12]!r})"
        )
        raise CheckFailed(
            f"{what} {first['key']} is not compressed: {shown}; {len(plain)} of "
            f"{len(rows)} object(s) uncompressed (the plan keeps compressed dumps)"
        )
    return Evidence(f"{what} compression", catalogue.location, len(rows) - len(plain), len(rows), "objects", rows)


def _sha256(client: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    with storage_errors(client, f"s3://{bucket}/{key}"):
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        while chunk := body.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(client: Any, catalogue: Catalogue, obj: BackupObject, what: str, trust: ManifestTrust) -> BackupManifest:
    if catalogue.manifest_for(obj) is None:
        raise CheckFailed(f"{what} {obj.key} has no manifest ({obj.key}.manifest.json is missing)")
    return fetch_manifest(client, catalogue.bucket, obj, trust)


def check_manifests(
    client: Any, catalogue: Catalogue, what: str, *, hash_newest: int | None = None, trust: ManifestTrust | None = None
) -> Evidence:
    """Every object has a manifest naming it, with its size; the sha256 matches for the newest N (default all).

    Under ``trust`` every manifest is size-capped and, when a verify key is configured, its signature verified.

    Raises:
        CheckFailed: names the object and which of manifest, key, size, signature or sha256 is wrong.
        HarnessError: a manifest is malformed or an object cannot be read.
    """
    bucket = catalogue.bucket
    with ThreadPoolExecutor(_WORKERS, thread_name_prefix="manifest") as pool:
        manifests = list(pool.map(lambda obj: _manifest(client, catalogue, obj, what, trust or ManifestTrust()),
                                  catalogue.objects))  # fmt: skip
        hashed = catalogue.objects if hash_newest is None else catalogue.objects[len(catalogue.objects) - hash_newest :]
        digests = list(pool.map(lambda obj: _sha256(client, bucket, obj.key), hashed))
    by_key = {manifest.key: manifest for manifest in manifests}
    for obj, digest in zip(hashed, digests, strict=True):
        expected = by_key[obj.key].sha256
        if digest != expected:
            raise CheckFailed(f"{what} {obj.key} has sha256 {digest} but its manifest says {expected}")
    rows = [{"key": m.key, "size": m.size, "sha256": m.sha256, "hashed": m.key in {o.key for o in hashed}}
            for m in manifests]  # fmt: skip
    return Evidence(f"{what} manifests", catalogue.location, len(hashed), len(manifests), "objects hashed", rows)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_off_server(storage_host: str, server_host: str, what: str, setting: str) -> Evidence:
    """The storage endpoint is not the server whose backups it holds, compared by the addresses they resolve to.

    Both names are resolved (within half a second each, :func:`harness.endpoints.resolve`); any loopback
    spelling is one host. A server name that does not resolve from the drill's machine (a private zone) can
    only be compared by name, and the evidence says so.

    Raises:
        HarnessError: the server's host is not configured, so nothing can be compared.
        CheckFailed: the two share an address (or are both this machine); names them.
    """
    if not server_host:
        raise HarnessError(f"{setting} is not set in drill.toml; the drill cannot tell whether {what} is off-server")
    storage, server = resolve(storage_host), resolve(server_host)
    shared = sorted(storage & server)
    if shared:
        raise CheckFailed(
            f"{what} is not off-server: the storage endpoint {storage_host} and the server {server_host} "
            f"({setting}) are the same host ({', '.join(shared)})"
        )
    named = normalise_host(server_host)
    resolved = len(server) > 1 or named == LOOPBACK or _is_address(named)
    basis = (
        "their addresses differ"
        if resolved
        else f"compared by name only: {server_host} does not resolve from the drill's machine"
    )
    return Evidence(f"{what} off-server", storage_host, storage_host, f"not {server_host}", "",
                    {"storage_host": storage_host, "storage_addresses": sorted(storage), "server_host": server_host,
                     "server_addresses": sorted(server), "basis": basis})  # fmt: skip
