"""Bad input ends in one line naming what is wrong and where, a non-zero exit, no traceback and nothing left.

Covered elsewhere, not repeated here: an unknown key (``tests/harness/test_config.py``, also through
``pytest features``), a missing file and bad CLI input (``tests/test_cli.py``), a truncated or tampered dump
(``tests/features/test_restore_drill_broken.py``), unreachable storage (``test_backup_policy_broken.py``).
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT, load_config
from harness.deployment import Deployment
from harness.errors import CheckFailed, ConfigError, HarnessError
from harness.measure import Stopwatch
from harness.restore.select import newest_backup
from harness.restore.staging import restore_logical
from harness.services.provider import Provider
from sandbox.breakage import malformed_manifest, no_manifest, replaced_newest, uncompressed_dump, unparsable_key
from sandbox.target import drill_env, write_drill_toml
from sandbox.world import Mutation, World
from tests.features.drill_run import run_drill
from tests.reliability.checks import TRACEBACK, assert_fails_in_one_line

pytestmark = pytest.mark.slow

RESTORE = "test_the_newest_logical_backup_restores_into_isolated_staging"
CUT_OVER = "test_cutover_to_production_is_decided_only_after_staging_verification"
DUMP = r"postgres/logical/codeblack-\d{8}T\d{6}Z\.dump"


def _restore_newest(provider: Provider, target: Deployment) -> None:
    """What the drill's staging fixture does: pick the newest dump, download, verify and restore it."""
    dump, manifest = newest_backup(target, [target.config.storage.logical_prefix])
    restore_logical(provider, target, target.config, dump, manifest, watch=Stopwatch(), name="bad-input").stop()


def _pytest_features(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "features", "-q", f"--drill-config={config}", "-p", "no:randomly"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


def test_a_malformed_drill_toml_stops_pytest_features_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "drill.toml"
    config.write_text("[target\nname = 'x'\n")
    result = _pytest_features(config)
    assert result.returncode == 4, result.stdout + result.stderr
    assert re.fullmatch(
        rf"ERROR: {re.escape(str(config))}: not valid TOML: .*\(at line 1, column 8\)", result.stderr.strip()
    )
    assert not TRACEBACK.search(result.stdout + result.stderr)


def test_an_incomplete_drill_toml_names_the_missing_key(tmp_path: Path) -> None:
    config = tmp_path / "drill.toml"
    config.write_text("[[waivers]]\nrule = 'ban-drop-column'\nsubject = 'a1'\nreason = 'a long enough reason'\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(config))}: \[waivers\] 0\.approved_by: Field required$"):
        load_config(config)


def test_a_missing_secret_stops_the_drill_before_anything_starts(tmp_path: Path, sandbox_world: World) -> None:
    config = write_drill_toml(tmp_path, sandbox_world.deployment, storage={"secret_key_env": "DRILL_TEST_UNSET"})
    result = _pytest_features(config, drill_env(sandbox_world.deployment, f"rel{uuid.uuid4().hex[:7]}"))
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"ERROR: {config}: [storage] secret_key_env names environment variable 'DRILL_TEST_UNSET', which is not set"
    )


def test_an_empty_bucket_fails_in_one_line(tmp_path: Path, sandbox_world: World) -> None:
    empty = f"empty-{uuid.uuid4().hex[:8]}"
    sandbox_world.s3.client().create_bucket(Bucket=empty)
    done = run_drill(tmp_path, sandbox_world.deployment, "isolated_staging or cutover",
                     storage={"backup_bucket": empty})  # fmt: skip
    assert_fails_in_one_line(done, RESTORE, rf"HarnessError: no backups under s3://{empty}/postgres/logical/$")
    # Every NO-GO ends in the cut-over scenario: it reads as the verdict's reasons, not pytest's traceback.
    assert_fails_in_one_line(done, CUT_OVER, r"CheckFailed: NO-GO: could not run: .*restores into isolated staging")


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (replaced_newest(b""),
         rf"CheckFailed: {DUMP}: does not restore: pg_restore of {DUMP} failed: pg_restore: error: .*too short"),
        (no_manifest(),
         rf"CheckFailed: {DUMP}: no manifest beside the dump, so its size and sha256 cannot be verified$"),
    ],
    ids=["zero-byte", "no-manifest"],
)  # fmt: skip
def test_a_bad_backup_object_fails_its_scenario_in_one_line(
    tmp_path: Path, sandbox_world: World, breakage: Mutation, expected: str
) -> None:
    broken = sandbox_world.variant("bad input", breakage)
    done = run_drill(tmp_path, broken, "isolated_staging")
    assert_fails_in_one_line(done, RESTORE, expected)


@pytest.mark.parametrize(
    ("breakage", "error", "expected"),
    [
        (unparsable_key("codeblack-latest.dump"), HarnessError,
         r"^s3://\S+/postgres/logical/: 1 key\(s\) carry no timestamp matching storage\.timestamp_pattern .* first "
         r"'postgres/logical/codeblack-latest\.dump'; fix the pattern or move the objects$"),
        (replaced_newest(gzip.compress(b"COPY orders FROM stdin;\n")), CheckFailed,
         rf"^{DUMP}: does not restore: pg_restore of {DUMP} failed: .*not appear to be a valid archive"),
        (uncompressed_dump(), CheckFailed,
         rf"^{DUMP}: does not restore: pg_restore of {DUMP} failed: .*appears to be a text format dump"),
        (malformed_manifest('{"kind": "logical", "key": '), HarnessError,
         rf"^s3://\S+/{DUMP}\.manifest\.json: malformed manifest: document: Invalid JSON: [^\n]*$"),
        (malformed_manifest('{"kind": "logical", "taken_at": "yesterday"}'), HarnessError,
         rf"^s3://\S+/{DUMP}\.manifest\.json: malformed manifest: key: Field required$"),
    ],
    ids=["unparsable-key", "wrong-format", "plain-sql", "cut-manifest", "not-a-manifest"],
)  # fmt: skip
def test_a_bad_backup_object_is_refused_naming_it(
    provider: Provider, sandbox_world: World, breakage: Mutation, error: type[Exception], expected: str
) -> None:
    # The operator's rendering of these errors (one line, no traceback) is the same as for the cases above;
    # here each message is checked through the drill's own calls, without a child pytest per case.
    broken = sandbox_world.variant("bad input", breakage)
    with pytest.raises(error, match=expected):
        _restore_newest(provider, broken)


def test_a_missing_alembic_directory_fails_naming_the_key(tmp_path: Path, sandbox_world: World) -> None:
    done = run_drill(tmp_path, sandbox_world.deployment, "linear_chain", feature="features/test_migration_gates.py",
                     migrations={"script_location": "no/such/migrations"})  # fmt: skip
    assert_fails_in_one_line(
        done,
        "test_the_migration_history_is_one_linear_chain_ending_at_the_expected_head",
        rf"ConfigError: {re.escape(str(tmp_path))}/drill\.toml: \[migrations\] script_location: "
        rf"{re.escape(str(tmp_path))}/no/such/migrations has no env\.py",
    )
