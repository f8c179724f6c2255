"""A Redis copy's keys: what the copy held (taken at backup time) and whether the restored Redis holds the same.

A key count alone passes a copy in which one key was renamed, retyped or overwritten. So ``backup redis``
loads its own copy into a throwaway Redis (:func:`survey_keyspace`; the live server keeps changing after its
save, the copy does not) and records in the copy's signed manifest the keys per type, with and without an
expiry, and a sample of keys without one: key, type, size and a digest of the value. After the restore the
drill reads the same from the restored Redis (:func:`observe_keyspace`, right after loading, before the app can
write to it) and :func:`harness.integrity.redis_compare.compare_keyspace` holds the two against each other.

The digest is sha256 over a canonical, type-aware rendering (:func:`value_digest`): a string's bytes; a hash's
fields and values sorted by field; a set's members sorted; a sorted set's members in score order with their
scores as Python renders the double (the shortest form that reads back the same, whatever format the server
used); a list in order; a stream's entries (ID, fields and values as stored; consumer groups are not part of
it). Each part is length-prefixed, so ``["ab", "c"]`` and ``["a", "bc"]`` differ. ``DEBUG DIGEST-VALUE`` was
not used: the throwaway Redis that loads an untrusted copy runs with ``enable-debug-command no`` (DEBUG can
crash or reconfigure the server), and its output is the server's own, not promised stable across versions.

The sample is deterministic and spread over the key space: of the eligible keys (no expiry, a name that is
UTF-8 of at most :data:`MAX_SAMPLED_KEY` characters, a size of at most :data:`MAX_SAMPLED_SIZE` bytes or
elements, and a memory use of at most a quarter of :data:`MAX_DIGESTED_BYTES`) the ones whose ``sha256(db, key)``
is smallest, so the same copy always gives the same sample and
no key prefix crowds out the others. Hash fields with their own expiry (Redis 7.4+) are not known to it.

A sample's size counts elements, not bytes: 65,536 elements of a list may each be a 512 MB string. So the drill
reads a sampled key whole only when its ``MEMORY USAGE`` is at most :data:`MAX_DIGESTED_BYTES`; a bigger one,
which the backup could not have sampled, differs from the copy's manifest without being read.

Values never leave this module, only their digests, which sit in the manifest beside the copy (which holds
the values themselves) and go nowhere else.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from harness.services.redis import RedisServer
from harness.storage.manifest import MAX_SAMPLED_KEY, MAX_SAMPLED_SIZE, KeyspaceSample, SampledKey

__all__ = [
    "MAX_DIGESTED_BYTES",
    "RestoredKeyspace",
    "SeenKey",
    "observe_keyspace",
    "survey_keyspace",
    "value_digest",
]

MAX_DIGESTED_BYTES = 64 * 2**20
"""The most memory a sampled key may take in the restored Redis for the drill to read it whole and digest it."""
_SAMPLED_BYTES = MAX_DIGESTED_BYTES // 4  # what the backup samples: room for another Redis's encoding of it

_SIZE = {"string": "STRLEN", "list": "LLEN", "set": "SCARD", "zset": "ZCARD", "hash": "HLEN", "stream": "XLEN"}
_BATCH = 1000


def _call(client: redis.Redis, *args: str | bytes | int) -> Any:
    """A command's reply as the server sent it (the client has no response callbacks: :func:`_client`)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def _parts(client: redis.Redis, key: bytes, kind: str) -> Iterator[bytes]:
    """The value of ``key`` as the canonical rendering's parts (see the module docstring)."""
    if kind == "string":
        yield _call(client, "GET", key) or b""
    elif kind == "list":
        yield from _call(client, "LRANGE", key, 0, -1)
    elif kind == "set":
        yield from sorted(_call(client, "SMEMBERS", key))
    elif kind == "zset":
        for member, score in _pairs(_call(client, "ZRANGE", key, 0, -1, "WITHSCORES")):
            yield from (member, repr(float(score)).encode())
    elif kind == "hash":
        for name, value in sorted(_pairs(_call(client, "HGETALL", key))):
            yield from (name, value)
    elif kind == "stream":
        for entry_id, fields in _call(client, "XRANGE", key, "-", "+"):
            yield from (entry_id, str(len(fields)).encode(), *fields)
    else:
        raise ValueError(f"no canonical rendering of Redis type {kind!r}")


def value_digest(client: redis.Redis, key: bytes, kind: str) -> str:
    """sha256 of the canonical rendering of ``key``'s value, a key of type ``kind`` (``client``: :func:`_client`)."""
    digest = hashlib.sha256(kind.encode() + b"\0")
    for part in _parts(client, key, kind):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _client(server: RedisServer, db: int) -> redis.Redis:
    """A client of ``db`` that returns replies as the server sent them in RESP 2.

    redis-py's callbacks (and RESP 3 maps) would turn a stream entry's fields into a dict, losing a field that
    repeats, and give other types other shapes than the flat arrays :func:`_parts` renders.
    """
    client = server.client(db, protocol=2)
    client.response_callbacks.clear()
    return client


def _databases(server: RedisServer) -> list[int]:
    with server.client() as client:
        keyspace: dict[str, Any] = client.info("keyspace")
    return sorted(int(name[2:]) for name in keyspace if name.startswith("db"))


def _scan(client: redis.Redis) -> Iterator[tuple[bytes, str, bool]]:
    """Every key of the client's database with its type and whether it has an expiry."""
    cursor = b"0"
    while True:
        cursor, batch = _call(client, "SCAN", cursor, "COUNT", _BATCH)
        if batch:
            with client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.execute_command("TYPE", key)  # type: ignore[no-untyped-call]
                    pipe.execute_command("PTTL", key)  # type: ignore[no-untyped-call]
                replies = pipe.execute()
            for index, key in enumerate(batch):
                kind, ttl = replies[2 * index].decode(), int(replies[2 * index + 1])
                if kind != "none":  # expired between SCAN and TYPE
                    yield key, kind, ttl >= 0
        if int(cursor) == 0:
            return


def _size(client: redis.Redis, key: bytes, kind: str) -> int:
    return int(_call(client, _SIZE[kind], key))


def _memory(client: redis.Redis, key: bytes) -> int:
    """Bytes ``key`` takes in the server, every element counted (``SAMPLES 0``): read before reading it whole."""
    return int(_call(client, "MEMORY", "USAGE", key, "SAMPLES", 0) or 0)


def _rank(db: int, key: bytes) -> bytes:
    """Where a key stands in the sample's order: its hash, so the order is fixed and spread over the key space."""
    return hashlib.sha256(f"{db}\0".encode() + key).digest()


def _every_key(server: RedisServer, databases: list[int]) -> Iterator[tuple[int, bytes, str, bool]]:
    """Every key of ``databases``: its database, name, type and whether it has an expiry."""
    for db in databases:
        with _client(server, db) as client:
            for key, kind, expires in _scan(client):
                yield db, key, kind, expires


@dataclass
class _Tally:
    """Keys per type, apart for keys with an expiry and without one."""

    persistent: Counter[str] = field(default_factory=Counter)
    expiring: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, expires: bool) -> None:
        (self.expiring if expires else self.persistent)[kind] += 1


def survey_keyspace(server: RedisServer, cap: int) -> KeyspaceSample:
    """What the Redis at ``server`` holds (a throwaway loaded from the copy): counts per type and ``cap`` sampled keys.

    Raises:
        redis.RedisError: the server stopped answering.
    """
    tally = _Tally()
    ranked: list[tuple[bytes, int, bytes, str]] = []  # a heap of the 2 * cap best-ranked candidates, worst on top
    for db, key, kind, expires in _every_key(server, _databases(server)):
        tally.add(kind, expires)
        if expires or kind not in _SIZE or len(key) > 4 * MAX_SAMPLED_KEY or cap == 0:
            continue
        entry = (bytes(255 - b for b in _rank(db, key)), db, key, kind)  # inverted: the heap's top is the worst
        if len(ranked) < 2 * cap:
            heapq.heappush(ranked, entry)
        elif entry > ranked[0]:
            heapq.heapreplace(ranked, entry)
    sampled: list[SampledKey] = []
    for _, db, key, kind in sorted(ranked, reverse=True):  # best first; oversized or non-UTF-8 keys are passed over
        if len(sampled) == cap:
            break
        try:
            name = key.decode()
        except UnicodeDecodeError:
            continue
        with _client(server, db) as client:
            size = _size(client, key, kind)
            small = len(name) <= MAX_SAMPLED_KEY and size <= MAX_SAMPLED_SIZE
            if small and _memory(client, key) <= _SAMPLED_BYTES:
                digest = value_digest(client, key, kind)
                sampled.append(SampledKey.model_validate({"db": db, "key": name, "type": kind, "size": size,
                                                          "digest": digest}))  # fmt: skip
    return KeyspaceSample(persistent=dict(tally.persistent), expiring=dict(tally.expiring), keys=sampled)


@dataclass(frozen=True)
class SeenKey:
    """One sampled key as the restored Redis holds it (``None``: not read, an earlier property differed).

    ``memory``: set only when the key takes more than :data:`MAX_DIGESTED_BYTES` and so was not read.
    """

    type: str
    expires: bool = False
    size: int | None = None
    digest: str | None = None
    memory: int | None = None


@dataclass
class RestoredKeyspace:
    """What the restored Redis held right after loading: keys in all, per type, and each sampled key."""

    total: int
    persistent: dict[str, int]
    expiring: dict[str, int]
    sampled: list[SeenKey] = field(default_factory=list)


def _seen(client: redis.Redis, entry: SampledKey) -> SeenKey:
    key = entry.key.encode()
    kind = _call(client, "TYPE", key).decode()
    if kind != entry.type:
        return SeenKey(kind)
    if int(_call(client, "PTTL", key)) >= 0:
        return SeenKey(kind, expires=True)
    size = _size(client, key, kind)
    if size != entry.size:  # only a key of the sampled (capped) size is read whole
        return SeenKey(kind, size=size)
    memory = _memory(client, key)
    if memory > MAX_DIGESTED_BYTES:
        return SeenKey(kind, size=size, memory=memory)
    return SeenKey(kind, size=size, digest=value_digest(client, key, kind))


def observe_keyspace(server: RedisServer, sample: KeyspaceSample | None) -> RestoredKeyspace:
    """Read the restored Redis: its keys (per type, with and without expiry when a sample asks) and sampled keys.

    Call it right after the restore: whatever writes to the server afterwards (the app) is not the copy's.

    Raises:
        redis.RedisError: the server stopped answering.
    """
    databases = _databases(server)
    if sample is None:
        total = 0
        for db in databases:
            with _client(server, db) as client:
                total += int(_call(client, "DBSIZE"))
        return RestoredKeyspace(total, {}, {})
    tally = _Tally()
    for _, _, kind, expires in _every_key(server, databases):
        tally.add(kind, expires)
    seen: list[SeenKey] = []
    for entry in sample.keys:
        if entry.db not in databases:  # a database that holds no key here (or does not exist)
            seen.append(SeenKey("none"))
            continue
        with _client(server, entry.db) as client:
            seen.append(_seen(client, entry))
    total = sum(tally.persistent.values()) + sum(tally.expiring.values())
    return RestoredKeyspace(total, dict(tally.persistent), dict(tally.expiring), seen)
