"""A Redis copy from the bucket is untrusted: loading it may not take the drill host's memory.

The copy is a crafted RDB (:mod:`tests.security.rdb_bomb`) whose values expand about 88 times on load, put in
the sandbox's bucket with a manifest signed as a compromised backup host would: hashes and signature agree, so
only the restore's memory cap stands between it and the host.

Its manifest's key sample is untrusted too: one beyond the caps on its size or its key names is refused before
any restore, in one line naming the manifest.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from harness.backup.store import put_manifest
from harness.errors import CheckFailed, HarnessError
from harness.restore.redis import restore_redis
from harness.restore.select import newest_backup
from harness.services.base import run_id
from harness.services.provider import Provider
from harness.services.redis import LocalRedis
from harness.storage.manifest import MAX_SAMPLE, MAX_SAMPLED_KEY, KeyspaceSample, SampledKey
from sandbox.world import VariantContext, World
from tests.features.drill_run import leftovers
from tests.harness.test_containers import (
    docker_provider_fixture,  # noqa: F401 - the fixture
    either_provider_fixture,  # noqa: F401 - the fixture
)
from tests.security.rdb_bomb import rdb_bomb

BOMB = rdb_bomb(4, 100 * 2**20)  # 4.8 MB that load as 400 MB


def test_the_crafted_copy_is_a_real_bomb() -> None:
    # The control: without a cap, Redis loads it and holds hundreds of megabytes.
    path = Path(tempfile.mkdtemp(prefix="rdb-bomb-")) / "dump.rdb"
    path.write_bytes(BOMB)
    server = LocalRedis.create(f"bomb{uuid.uuid4().hex[:6]}", rdb_file=path)
    try:
        with server.client() as client:
            assert client.dbsize() == 4
            assert int(client.info("memory")["used_memory"]) > 400 * 2**20
    finally:
        server.stop()
        path.unlink()


#: How each provider's Redis says it hit the cap: its own allocator's refusal, or the container's kernel OOM kill.
OUT_OF_MEMORY = {
    "local": r"Redis bomb ran out of memory loading its RDB within its limit of 256 MB "
    r"\(Short read or OOM loading DB\)",
    "docker": r"Redis bomb container from codeblack-drills/redis:7 did not start: it ran out of memory within its "
    r"limit of 256 MB \(the kernel ended it\): .*",
}


def test_a_redis_copy_that_expands_past_the_memory_cap_is_refused(
    either_provider: Provider, sandbox_world: World
) -> None:
    prefix = sandbox_world.config.storage.redis_prefix

    def bomb(ctx: VariantContext) -> None:
        _, newest = newest_backup(ctx.world.deployment, [prefix], suffix=".rdb")
        assert newest is not None
        ctx.client.put_object(Bucket=ctx.bucket, Key=newest.key, Body=BOMB)
        forged = newest.model_copy(update={"sha256": hashlib.sha256(BOMB).hexdigest(), "size": len(BOMB)})
        put_manifest(ctx.client, ctx.bucket, forged, ctx.world.manifest_signer)

    broken = sandbox_world.variant("redis bomb", bomb)
    capped = replace(broken, config=broken.config.with_changes(restore={"redis_memory_mb": 256}))
    _, copy = newest_backup(capped, [prefix], suffix=".rdb")
    assert copy is not None
    with pytest.raises(CheckFailed, match=rf"^{copy.key}: loading it takes more than \[restore\] redis_memory_mb = 256 "
                       rf"\(a {len(BOMB)}-byte copy\): {OUT_OF_MEMORY[either_provider.kind]}$"):  # fmt: skip
        restore_redis(either_provider, capped, copy, name="bomb")
    assert [left for left in leftovers(run_id()) if "redis-bomb" in left] == []


TOO_MANY = MAX_SAMPLE + 1


def _oversized(sample: KeyspaceSample) -> KeyspaceSample:
    entry = SampledKey(key="k", type="string", size=1, digest="0" * 64)
    keys = [entry.model_copy(update={"key": f"k{i}"}) for i in range(TOO_MANY)]
    return sample.model_copy(update={"keys": keys})  # model_copy does not validate: the forger's JSON


def _long_key(sample: KeyspaceSample) -> KeyspaceSample:
    long = sample.keys[0].model_copy(update={"key": "x" * (MAX_SAMPLED_KEY + 1)})
    return sample.model_copy(update={"keys": [long, *sample.keys[1:]]})


def _hostile_type(sample: KeyspaceSample) -> KeyspaceSample:
    return sample.model_copy(update={"persistent": {"\x1b[2J" + "t" * 100: 1}})


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (
            _hostile_type,
            r"sample.persistent.'\x1b[2Jttt" + "t" * 33 + "'… (104 characters).[key]: String should match "
            "pattern '^[A-Za-z0-9_.-]{1,32}$'",
        ),
        (
            _oversized,
            f"sample.keys: List should have at most {MAX_SAMPLE} items after validation, not {MAX_SAMPLE + 1}",
        ),
        (_long_key, f"sample.keys.0.key: String should have at most {MAX_SAMPLED_KEY} characters"),
    ],
)
def test_a_signed_manifest_with_an_oversized_sample_is_refused_in_one_line(
    sandbox_world: World, forge: Callable[[KeyspaceSample], KeyspaceSample], reason: str
) -> None:
    """The sample is read before anything is restored; one beyond the caps is refused, never trimmed or used."""
    prefix = sandbox_world.config.storage.redis_prefix

    def oversized(ctx: VariantContext) -> None:
        _, newest = newest_backup(ctx.world.deployment, [prefix], suffix=".rdb")
        assert newest is not None
        assert newest.sample is not None
        put_manifest(ctx.client, ctx.bucket, newest.model_copy(update={"sample": forge(newest.sample)}),
                     ctx.world.manifest_signer)  # fmt: skip

    broken = sandbox_world.variant("redis sample", oversized)
    with pytest.raises(HarnessError) as refused:
        newest_backup(broken, [prefix], suffix=".rdb")
    assert re.fullmatch(rf"\S+\.rdb\.manifest\.json: malformed manifest: {re.escape(reason)}", str(refused.value))
