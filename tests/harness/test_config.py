"""drill.toml: validated settings; bad files fail with one line naming the file and the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT, load_config
from harness.deployment import Deployment
from harness.errors import ConfigError
from harness.redact import redact


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drill.toml"
    path.write_text(text)
    return path


def test_the_embedded_default_has_the_plans_numbers() -> None:
    config = load_config(PROJECT_ROOT / "drill.toml")
    assert config.target.sandbox
    assert config.objectives.rpo_hours == 6
    assert config.objectives.retention_days == 14
    assert (config.objectives.daily_snapshots, config.objectives.weekly_snapshots) == (7, 4)
    assert config.objectives.noncurrent_days == 30
    assert config.migrations.expected_head == "b6e8dcb19a40"
    assert config.database.critical_tables == ["applications", "orders", "blacklist_entries", "config_change_history"]


def test_a_path_may_name_a_directory_inside_a_package_wherever_the_file_is(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))
    assert config.resolve_path("sandbox:migrations") == PROJECT_ROOT / "sandbox" / "migrations"
    assert config.resolve_path("migrations") == tmp_path / "migrations"
    with pytest.raises(ConfigError) as error:
        config.resolve_path("no_such_package_here:migrations")
    assert str(error.value) == (
        f"{tmp_path / 'drill.toml'}: no_such_package_here:migrations: no package 'no_such_package_here' is installed"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[objectives]\nrpo_hours = 6\nrpo_hour = 5\n", "[objectives] rpo_hour: unknown key"),
        ("[objectives]\nrpo_hours = 'six'\n", "[objectives] rpo_hours: Input should be a valid number"),
        ("[objectives]\nrpo_hours = -1\n", "[objectives] rpo_hours: Input should be greater than 0"),
        ("[services]\nprovider = 'kubernetes'\n", "[services] provider: Input should be 'auto', 'local' or 'docker'"),
        ("[storage]\ntimestamp_pattern = '\\\\d{8}'\n", "[storage] timestamp_pattern: Value error, needs a named"),
        ("[surprise]\nx = 1\n", "surprise: unknown key"),
        ("[objectives\nrpo_hours = 6\n", "not valid TOML"),
        ("[[waivers]]\nrule = 'ban-drop-table'\nsubject = 'a1'\napproved_by = 'cto'\nreason = ''\n",
         "[waivers] 0.reason: String should have at least 10 characters"),
    ],
)  # fmt: skip
def test_a_bad_file_fails_with_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="drill configuration not found"):
        load_config(tmp_path / "nope.toml")


def test_secrets_come_only_from_the_environment_and_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[target]\nsandbox = false\n[storage]\nendpoint_url = 'http://127.0.0.1:9'\n")
    config = load_config(path)
    with pytest.raises(ConfigError, match=r"\[storage\] access_key_env names environment variable 'DRILL_S3_ACCESS_"):
        Deployment.from_config(config)
    monkeypatch.setenv("DRILL_S3_ACCESS_KEY_ID", "AKIA-test-access")
    monkeypatch.setenv("DRILL_S3_SECRET_ACCESS_KEY", "very-secret-value-123")
    with pytest.raises(ConfigError, match="CODEBLACK_SIGNING_KEY"):
        Deployment.from_config(config)
    monkeypatch.setenv("CODEBLACK_SIGNING_KEY", "c2lnbmluZy1zZWVkLXNlY3JldC0zMi1ieXRlcy0hIQ==")
    deployment = Deployment.from_config(config)
    assert "very-secret-value-123" not in repr(deployment)
    assert redact("key=very-secret-value-123") == "key=***"


def test_pytest_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[objectives]\nrpo_hour = 5\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features", "--drill-config", str(path), "-q"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 4
    assert f"ERROR: {path}: [objectives] rpo_hour: unknown key" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "gates_only", "sandbox"),
    [
        ('[target]\nname = "shelf"\n\n[migrations]\nexpected_head = "b7c8d9e0f1a2"\n', True, False),
        ('[migrations]\nexpected_head = "b7c8d9e0f1a2"\n\n[storage]\nbackup_bucket = "b"\n', False, True),
        ('[target]\nsandbox = true\n\n[migrations]\nexpected_head = "b7c8d9e0f1a2"\n', False, True),
    ],
    ids=["only-migrations", "with-storage", "sandbox-said-so"],
)
def test_a_file_declaring_only_migrations_is_a_gates_only_target(
    tmp_path: Path, text: str, gates_only: bool, sandbox: bool
) -> None:
    path = tmp_path / "drill.toml"
    path.write_text(text)
    config = load_config(path)
    assert (config.gates_only, config.target.sandbox) == (gates_only, sandbox)
    assert config.with_changes(migrations={"lock_budget_s": 1.0}).gates_only == gates_only
