"""drill.toml: validated settings; bad files fail with one line naming the file and the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.app.runner import AppProcess
from harness.config import PROJECT_ROOT, DrillConfig, load_config
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
        ("[app]\nenv = { APP_DB = '{databse_url}' }\n",
         "[app] env: Value error, APP_DB: {databse_url} is not a placeholder; use {database_url}, {redis_url}, "
         "{s3_endpoint_url}, {s3_region}, {uploads_bucket}, {approver}"),
        ("[app]\nenv = { APP_DB = '{database_url' }\n", "[app] env: Value error, APP_DB: expected '}' before end"),
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


def test_the_library_defaults_name_nothing_of_the_sandbox(tmp_path: Path) -> None:
    """The embedded default's tables, buckets, app, endpoints and variables live in its drill.toml, not here."""
    for config in (DrillConfig(), load_config(_write(tmp_path, "[target]\nsandbox = false\n"))):
        # The tool's own name (its images: codeblack-drills/postgres:15) is not the sandbox's.
        dumped = json.dumps(config.model_dump(mode="json")).lower().replace("codeblack-drills", "")
        for sandbox_value in ("codeblack", "sandbox/", "sandbox.", "applications", "orders", "blacklist",
                              "config_change_history", "/api/", "b6e8dcb19a40"):  # fmt: skip
            assert sandbox_value not in dumped
        assert (config.target.name, config.database.name, config.database.critical_tables) == ("", "", [])
        assert (config.storage.backup_bucket, config.storage.uploads_bucket, config.database.audit_table) == (
            "",
            "",
            "",
        )
        assert (config.app.command, config.app.health_path, config.app.env, config.app.signing_key_env) == (
            [],
            "",
            {},
            "",
        )
        assert (config.app.maintenance_path, config.app.probe_write_path, config.app.config_api_path) == ("", "", "")
        assert (config.migrations.metadata, config.migrations.expected_head) == ("", "")


def test_a_sandbox_file_takes_the_embedded_profile_under_what_it_sets_itself(tmp_path: Path) -> None:
    embedded = load_config(PROJECT_ROOT / "drill.toml")
    config = load_config(_write(tmp_path, '[target]\nsandbox = true\n[app]\nhealth_path = "/up"\n'))
    assert (config.app.command, config.app.env, config.app.health_path) == (
        embedded.app.command,
        embedded.app.env,
        "/up",
    )
    assert config.database.critical_tables == embedded.database.critical_tables
    assert config.migrations.metadata == embedded.migrations.metadata
    assert config.declared == frozenset({"target", "app"})
    assert load_config(_write(tmp_path, "[target]\nsandbox = false\n")).app.command == []


def test_a_setting_without_a_default_fails_naming_its_key_where_it_is_needed(tmp_path: Path) -> None:
    path = _write(tmp_path, "[target]\nsandbox = false\n")
    config = load_config(path)
    with pytest.raises(ConfigError, match=rf"^{path}: \[storage\] backup_bucket is not set: the bucket holding the"):
        config.backup_bucket()
    with pytest.raises(ConfigError, match=rf"^{path}: \[database\] name is not set: the database restored into"):
        config.database_name()
    with pytest.raises(ConfigError, match=rf"^{path}: \[app\] command is not set: the command that starts the app"):
        AppProcess.from_config(config, {})
    with pytest.raises(ConfigError, match=rf"^{path}: \[app\] health_path is not set: the application's deep"):
        AppProcess.from_config(config, {}, command=["{python}", "-V"])


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="drill configuration not found"):
        load_config(tmp_path / "nope.toml")


def test_secrets_come_only_from_the_environment_and_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[target]\nsandbox = false\n[storage]\nendpoint_url = 'http://127.0.0.1:9'\n"
                            "[app]\nsigning_key_env = 'T_APP_SEED'\n")  # fmt: skip
    config = load_config(path)
    with pytest.raises(ConfigError, match=r"\[storage\] access_key_env names environment variable 'DRILL_S3_ACCESS_"):
        Deployment.from_config(config)
    monkeypatch.setenv("DRILL_S3_ACCESS_KEY_ID", "AKIA-test-access")
    monkeypatch.setenv("DRILL_S3_SECRET_ACCESS_KEY", "very-secret-value-123")
    with pytest.raises(ConfigError, match=r"\[app\] signing_key_env names environment variable 'T_APP_SEED'"):
        Deployment.from_config(config)
    monkeypatch.setenv("T_APP_SEED", "c2lnbmluZy1zZWVkLXNlY3JldC0zMi1ieXRlcy0hIQ==")
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
