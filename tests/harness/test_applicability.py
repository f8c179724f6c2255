"""What a target has: which scenarios apply to it, and which secrets a selection of scenarios needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.applicability import not_applicable, secret_keys
from harness.config import PROJECT_ROOT, DrillConfig, load_config
from harness.deployment import Deployment
from harness.errors import ConfigError
from harness.safety import check_secrets_set

EVERY_PART = ("app", "config_api", "redis", "migrations", "base_backups", "uploads", "audit")
RESTORE = {"monthly", "restore_drill", "staging"}
RESTORE_APP = RESTORE | {"app"}
MIGRATION_HISTORY = {"predeploy", "migration_gates", "migrations"}
REDIS_POLICY = {"monthly", "backup_policy", "redis"}


def _config(tmp_path: Path, text: str) -> DrillConfig:
    path = tmp_path / "drill.toml"
    path.write_text("[target]\nsandbox = false\n" + text)
    return load_config(path)


def test_the_embedded_default_has_every_part() -> None:
    config = load_config(PROJECT_ROOT / "drill.toml")
    assert [not_applicable(config, {tag}) for tag in EVERY_PART] == [None] * len(EVERY_PART)


@pytest.mark.parametrize(
    ("text", "tags", "reason"),
    [
        ("[redis]\nenabled = false\n", REDIS_POLICY, "no Redis ([redis] enabled = false in drill.toml)"),
        ("[app]\nenabled = false\n", RESTORE_APP, "no application ([app] enabled = false in drill.toml)"),
        ("[app]\nenabled = false\n", {"app", "config_api"}, "no application ([app] enabled = false in drill.toml)"),
        ("[app]\nconfig_api = false\n", {"app", "config_api"},
         "no config API ([app] config_api = false in drill.toml)"),
        ("[storage]\nbase_backups = false\n", {"base_backups"},
         "no base backups ([storage] base_backups = false in drill.toml)"),
        ('[storage]\nuploads_bucket = ""\n', {"uploads"},
         'no uploads bucket ([storage] uploads_bucket = "" in drill.toml)'),
        ("[migrations]\nenabled = false\n", MIGRATION_HISTORY,
         "no Alembic migrations ([migrations] enabled = false in drill.toml)"),
        ('[database]\naudit_table = ""\n', {"audit"}, 'no audit table ([database] audit_table = "" in drill.toml)'),
    ],
)  # fmt: skip
def test_a_part_the_target_lacks_is_not_applicable_naming_the_setting(
    tmp_path: Path, text: str, tags: set[str], reason: str
) -> None:
    config = _config(tmp_path, text)
    assert not_applicable(config, tags) == f"not applicable: the target has {reason}"
    assert not_applicable(config, RESTORE) is None  # PostgreSQL's restore always applies


def test_a_database_without_an_audit_table_is_named_by_its_entry(tmp_path: Path) -> None:
    entries = ("[[databases]]\nname = 'orders'\ncritical_tables = ['orders']\naudit_table = 'audit_log'\n"
               "[[databases]]\nname = 'catalog'\ncritical_tables = ['products']\naudit_table = ''\n")  # fmt: skip
    config = _config(tmp_path, entries)
    assert not_applicable(config.for_database("orders"), {"audit"}) is None
    assert not_applicable(config.for_database("catalog"), {"audit"}) == (
        'not applicable: the target has no audit table ([[databases]] catalog audit_table = "" in drill.toml)'
    )


def test_the_rehearsal_without_an_app_applies_only_to_a_target_without_an_app(tmp_path: Path) -> None:
    rehearsal = {"predeploy", "migration_gates", "migrations", "staging", "without_app"}
    assert not_applicable(load_config(PROJECT_ROOT / "drill.toml"), rehearsal) == (
        "not applicable: the target has an app, so the deploy is rehearsed with it (scenario tagged @app)"
    )
    assert not_applicable(_config(tmp_path, "[app]\nenabled = false\n"), rehearsal) is None
    gates_only = tmp_path / "gates" / "drill.toml"
    gates_only.parent.mkdir()
    gates_only.write_text("[migrations]\nscript_location = 'sandbox/migrations'\n")
    assert not_applicable(load_config(gates_only), rehearsal) == (
        f"not applicable: {gates_only} declares only [migrations] (no backups in [storage], no [app])"
    )


def test_only_the_secrets_of_the_selected_scenarios_are_needed(tmp_path: Path) -> None:
    config = _config(
        tmp_path, '[redis]\nurl_env = "DRILL_TEST_PRODUCTION_REDIS"\n[app]\nsigning_key_env = "T_APP_SEED"\n'
    )
    storage = ["storage.access_key_env", "storage.secret_key_env"]
    assert secret_keys(config, [MIGRATION_HISTORY]) == []  # a migration-only run reads no bucket
    assert secret_keys(config, [RESTORE, RESTORE]) == storage  # a restore-only run starts no app
    assert secret_keys(config, [RESTORE, RESTORE_APP]) == [*storage, "app.signing_key_env"]
    assert secret_keys(config, [REDIS_POLICY]) == [*storage, "redis.url_env"]
    unsigned = config.with_changes(app={"signing_key_env": ""})  # an app that signs nothing needs no seed
    assert secret_keys(unsigned, [RESTORE, RESTORE_APP]) == storage


def test_a_restore_only_run_asks_for_no_signing_key_and_a_migration_only_run_for_no_storage_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, '[app]\nsigning_key_env = "T_APP_SEED"\n')
    for name in ("DRILL_S3_ACCESS_KEY_ID", "DRILL_S3_SECRET_ACCESS_KEY", "T_APP_SEED"):
        monkeypatch.delenv(name, raising=False)
    check_secrets_set(config, secret_keys(config, [MIGRATION_HISTORY]))
    deployment = Deployment.from_config(config, secret_keys(config, [MIGRATION_HISTORY]))
    assert deployment.storage.access_key.get_secret_value() == ""
    with pytest.raises(ConfigError, match=r"\[storage\] access_key_env names environment variable 'DRILL_S3_ACCESS"):
        check_secrets_set(config, secret_keys(config, [RESTORE]))
    monkeypatch.setenv("DRILL_S3_ACCESS_KEY_ID", "AKIA-test-access")
    monkeypatch.setenv("DRILL_S3_SECRET_ACCESS_KEY", "very-secret-value-123")
    check_secrets_set(config, secret_keys(config, [RESTORE]))
    unread = Deployment.from_config(config, secret_keys(config, [RESTORE])).app_secrets["T_APP_SEED"]
    assert unread.get_secret_value() == ""
    with pytest.raises(ConfigError, match=r"\[app\] signing_key_env names environment variable 'T_APP_SEED'"):
        check_secrets_set(config, secret_keys(config, [RESTORE_APP]))


def test_relative_reports_dir_is_the_projects_not_the_files(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.toml").write_text("[target]\nsandbox = false\n")
    config = load_config(elsewhere / "x.toml")
    assert config.reports_dir(PROJECT_ROOT) == PROJECT_ROOT / "reports"
    assert config.with_changes(reports={"dir": str(tmp_path / "out")}).reports_dir(PROJECT_ROOT) == tmp_path / "out"
