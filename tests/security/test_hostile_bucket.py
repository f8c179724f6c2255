"""Hostile objects in the backup bucket, refused in one line naming the object, before anything is restored.

Each test builds its attack for real in a copy of the sandbox world's buckets (moto's S3 server), the way
someone who can write the bucket but holds no signing key would, and runs the drill's own choice of the
dump (:func:`harness.restore.select.newest_backup`), listing or download against it. The drill as an
operator runs it (a child ``pytest features/...``) is exercised for the future-dated key and the unsigned
manifest in ``test_hostile_drills.py``; the rendering of every other message is the same one line.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from harness.errors import CheckFailed, HarnessError
from harness.policy.target import catalogue_of
from harness.restore.select import newest_backup
from harness.storage.catalogue import BackupObject, list_backups
from harness.storage.download import TransferLimits, download_object
from harness.storage.manifest import BackupManifest, backup_file_name, format_timestamp, manifest_key
from harness.storage.signing import ManifestSigner
from sandbox.world import Mutation, VariantContext, World
from tests.reliability.faulty_s3 import faulty_s3

pytestmark = pytest.mark.slow

PREFIX = "postgres/logical/"
DUMP = r"postgres/logical/codeblack-\d{8}T\d{6}Z\.dump"
KEY_ID = "261da79f3e2d4918"  # the sandbox's rehearsal key, whose public key the embedded drill.toml carries


def _dumps(ctx: VariantContext) -> tuple[BackupObject, ...]:
    return list_backups(ctx.client, ctx.bucket, PREFIX).objects


def _manifest_of(ctx: VariantContext, obj: BackupObject) -> BackupManifest:
    raw = ctx.client.get_object(Bucket=ctx.bucket, Key=manifest_key(obj.key))["Body"].read()
    return BackupManifest.model_validate_json(raw)


def _put_manifest_raw(ctx: VariantContext, obj: BackupObject, body: bytes) -> None:
    ctx.client.put_object(Bucket=ctx.bucket, Key=manifest_key(obj.key), Body=body)


def _newest(world: World, *mutations: Mutation) -> BaseException:
    broken = world.variant("hostile", *mutations)
    with pytest.raises((CheckFailed, HarnessError)) as caught:
        newest_backup(broken, [broken.config.storage.logical_prefix])
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_100_mb_manifest_is_refused_unread(sandbox_world: World) -> None:
    def bloated(ctx: VariantContext) -> None:
        newest = _dumps(ctx)[-1]
        document = _manifest_of(ctx, newest).to_json()
        _put_manifest_raw(ctx, newest, document[:-1] + b" " * (100 * 1024 * 1024) + b"}")

    error = _newest(sandbox_world, bloated)
    assert re.fullmatch(
        rf"s3://\S+/{DUMP}\.manifest\.json: manifest is \d+ bytes, over storage\.max_manifest_bytes = 1048576; "
        r"not read",
        str(error),
    ), error


def test_a_future_dated_copy_of_the_newest_dump_is_refused_by_policy_and_restore(sandbox_world: World) -> None:
    def from_2099(ctx: VariantContext) -> None:
        newest = _dumps(ctx)[-1]
        future = f"{PREFIX}codeblack-20991231T000000Z.dump"
        ctx.client.copy_object(Bucket=ctx.bucket, Key=future, CopySource={"Bucket": ctx.bucket, "Key": newest.key})

    broken = sandbox_world.variant("future", from_2099)
    expected = (
        rf"^s3://{broken.backup_bucket}/postgres/logical/: 'postgres/logical/codeblack-20991231T000000Z\.dump' is "
        r"dated 2099-12-31 00:00:00 UTC, [\d,]+\.\d h in the future, beyond storage\.max_clock_skew_s = 300 s; a "
        r"backup cannot be newer than now: remove the object or fix the clock of the host that wrote it$"
    )
    with pytest.raises(CheckFailed, match=expected):
        catalogue_of(broken, "logical")
    with pytest.raises(CheckFailed, match=expected):
        newest_backup(broken, [broken.config.storage.logical_prefix])


def test_a_manifest_naming_an_old_dump_beside_the_newest_is_refused(sandbox_world: World) -> None:
    def old_beside_new(ctx: VariantContext) -> None:
        dumps = _dumps(ctx)
        old = next(obj for obj in dumps if obj.taken_at <= dumps[-1].taken_at - timedelta(days=13))
        _put_manifest_raw(ctx, dumps[-1], _manifest_of(ctx, old).to_json())  # genuinely signed, for the old one

    error = _newest(sandbox_world, old_beside_new)
    assert re.fullmatch(
        rf"s3://\S+/({DUMP})\.manifest\.json: the manifest names '{DUMP}', not the object it sits beside, '(\1)'",
        str(error),
    ), error


def test_an_object_larger_than_its_manifest_says_is_never_downloaded(sandbox_world: World, tmp_path: Path) -> None:
    big = 24 * 1024 * 1024

    def swollen(ctx: VariantContext) -> None:
        newest = _dumps(ctx)[-1]
        manifest = _manifest_of(ctx, newest)
        ctx.client.put_object(Bucket=ctx.bucket, Key=newest.key, Body=os.urandom(big))
        _put_manifest_raw(ctx, newest, ctx.world.manifest_signer.sign(manifest.model_copy(update={"size": 1024}))
                          .to_json())  # fmt: skip

    error = _newest(sandbox_world, swollen)
    assert re.fullmatch(
        rf"s3://\S+/{DUMP}\.manifest\.json: storage lists {DUMP} at {big} bytes but its manifest says 1024 bytes",
        str(error),
    ), error
    # And the download itself, given the manifest's size, asks storage for the size only (one HEAD, no GET).
    broken = sandbox_world.variant("swollen", swollen)
    endpoint = sandbox_world.s3.endpoint
    key = list_backups(broken.storage.client(), broken.backup_bucket, PREFIX).newest().key
    with faulty_s3(endpoint.url or "", failures=0) as proxy:
        client = proxy.client(endpoint)
        with pytest.raises(CheckFailed, match=rf"^{key}: storage holds {big} bytes but its manifest says 1024; "
                                              r"not downloaded$"):  # fmt: skip
            download_object(client, broken.backup_bucket, key, tmp_path, expected_size=1024)
    assert proxy.requests == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("{key}/", r"it ends with '/'"),
        ("{key}/..", r"its last part is '\.\.'"),
        ("{key}-" + "x" * 600 + ".dump", r"its last part is 632 bytes, more than the 255 a file name may have"),
    ],
    ids=["trailing-slash", "dot-dot", "600-characters"],
)
def test_an_odd_key_is_refused_in_one_line_and_never_names_a_path(
    sandbox_world: World, tmp_path: Path, name: str, reason: str
) -> None:
    stamp = format_timestamp(sandbox_world.now + timedelta(seconds=1))
    key = name.format(key=f"{PREFIX}codeblack-{stamp}.dump" if "/" in name else f"{PREFIX}codeblack-{stamp}")

    def odd(ctx: VariantContext) -> None:
        ctx.client.put_object(Bucket=ctx.bucket, Key=key, Body=b"PGDMP")

    error = _newest(sandbox_world, odd)
    assert re.fullmatch(rf"'{PREFIX}codeblack-{stamp}.*cannot name a backup object: {reason}; rename or remove "
                        r"the object", str(error)), error  # fmt: skip
    directory = tmp_path / "downloads"
    directory.mkdir()
    broken = sandbox_world.variant("odd", odd)
    with pytest.raises(CheckFailed, match=reason):
        download_object(broken.storage.client(), broken.backup_bucket, key, directory)
    assert list(tmp_path.rglob("*")) == [directory]


def test_a_key_with_a_control_character_cannot_name_a_file() -> None:
    # moto cannot store one; S3 can, and a newline in a key would break every one-line message.
    with pytest.raises(CheckFailed, match=r"^'postgres/logical/a\\n\.dump' cannot name a backup object: it holds a "
                                          r"control character; rename or remove the object$"):  # fmt: skip
        backup_file_name("postgres/logical/a\n.dump")


def _unsigned(ctx: VariantContext) -> None:
    newest = _dumps(ctx)[-1]
    _put_manifest_raw(ctx, newest, _manifest_of(ctx, newest).model_copy(update={"signature": None}).to_json())


def _signed_by_attacker(ctx: VariantContext) -> None:
    newest = _dumps(ctx)[-1]
    attacker = ManifestSigner(base64.b64encode(os.urandom(32)).decode())
    _put_manifest_raw(ctx, newest, attacker.sign(_manifest_of(ctx, newest)).to_json())


def _counts_edited(ctx: VariantContext) -> None:
    newest = _dumps(ctx)[-1]
    document = json.loads(ctx.client.get_object(Bucket=ctx.bucket, Key=manifest_key(newest.key))["Body"].read())
    document["tables"]["orders"]["rows"] -= 500  # hide 500 lost orders; the signature is left as it was
    _put_manifest_raw(ctx, newest, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("forgery", "expected"),
    [
        (_unsigned, rf"unsigned manifest; \[storage\] manifest_verify_key requires a signature by key {KEY_ID}"),
        (_signed_by_attacker, rf"manifest signed by key [0-9a-f]{{16}}, not by the verify key {KEY_ID} "
                              r"\(rotated key\? update \[storage\] manifest_verify_key\)"),
        (_counts_edited, rf"manifest signature does not match its content with key {KEY_ID}: altered after signing"),
    ],
    ids=["unsigned", "another-key", "edited"],
)  # fmt: skip
def test_a_forged_manifest_is_refused_when_a_verify_key_is_configured(
    sandbox_world: World, forgery: Mutation, expected: str
) -> None:
    error = _newest(sandbox_world, forgery)
    assert isinstance(error, CheckFailed)
    assert re.fullmatch(rf"s3://\S+/{DUMP}\.manifest\.json: {expected}", str(error)), error


def test_without_a_verify_key_a_forged_manifest_is_read_but_not_authenticated(sandbox_world: World) -> None:
    broken = sandbox_world.variant("unsigned", _unsigned)
    unverified = replace(broken, config=broken.config.with_changes(storage={"manifest_verify_key": ""}))
    _, manifest = newest_backup(unverified, [PREFIX])
    assert manifest is not None
    assert manifest.signature is None
    trust = unverified.manifest_trust()
    assert not trust.authenticated
    assert trust.describe().startswith("NOT authenticated: [storage] manifest_verify_key is not set")


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (TransferLimits(deadline_s=60, min_bytes_per_s=1000, window_s=1),
         r"too slow: \d+ bytes in the last \d+ s \(\d+ B/s\), under storage\.download_min_bytes_per_s = 1000 over "
         r"storage\.download_rate_window_s = 1 s; \d+ of (\d+) bytes received"),
        (TransferLimits(deadline_s=1.5, min_bytes_per_s=0, window_s=1),
         r"not finished within storage\.download_deadline_s = 1\.5 s: \d+ of (\d+) bytes received"),
    ],
    ids=["under-the-minimum-rate", "past-the-deadline"],
)  # fmt: skip
def test_a_trickling_endpoint_is_cut_off_naming_the_object_bytes_and_limit(
    sandbox_world: World, tmp_path: Path, limits: TransferLimits, expected: str
) -> None:
    endpoint, bucket = sandbox_world.s3.endpoint, sandbox_world.deployment.backup_bucket
    newest = list_backups(endpoint.client(), bucket, PREFIX).newest()
    with faulty_s3(endpoint.url or "", failures=0, trickle=".dump", trickle_every_s=0.1) as proxy:
        client = proxy.client(endpoint)
        with pytest.raises(HarnessError) as caught:
            download_object(client, bucket, newest.key, tmp_path, limits=limits)
    message = str(caught.value)
    match = re.fullmatch(rf"s3://{bucket}/{re.escape(newest.key)}: download: {expected}", message)
    assert match, message
    assert int(match[1]) == newest.size, message
    assert 0 < proxy.trickled < newest.size
