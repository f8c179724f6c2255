"""``[[databases]]``: several databases in one drill; the single ``[database]`` stays the one-entry case."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT, load_config
from harness.errors import ConfigError

TARGET = "[target]\nname = 'shop'\nsandbox = false\n"
TWO = (
    TARGET + "[[databases]]\nname = 'orders'\ncritical_tables = ['orders']\n"
    "[[databases]]\nname = 'catalog'\ncritical_tables = ['products']\nrpo_hours = 24\n"
    "backup_prefix = 'dumps/catalog/'\n"
)


def test_each_entry_is_drilled_through_a_view_with_its_own_tables_prefix_and_rpo(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, TWO))
    assert config.database_names() == ["orders", "catalog"]
    assert config.database.name == "orders"  # the first: the one the app and the migrations go with
    orders, catalog = config.for_database("orders"), config.for_database("catalog")
    assert (orders.database.critical_tables, orders.storage.logical_prefix) == (["orders"], "postgres/logical/orders/")
    assert (catalog.database.critical_tables, catalog.storage.logical_prefix) == (["products"], "dumps/catalog/")
    assert (orders.database.rpo_hours, catalog.database.rpo_hours) == (None, 24)
    assert config.with_changes(restore={"jobs": 2}).database_names() == ["orders", "catalog"]
    with pytest.raises(ConfigError) as caught:
        config.for_database("billing")
    assert str(caught.value) == (
        f"{tmp_path / 'drill.toml'}: no database 'billing' in [[databases]] (it lists orders, catalog)"
    )


def test_a_list_of_databases_is_a_deployment_not_a_gates_only_target(tmp_path: Path) -> None:
    text = "[[databases]]\nname = 'orders'\n[migrations]\nexpected_head = 'abc'\n"
    assert not load_config(_write(tmp_path, text)).gates_only
    assert load_config(_write(tmp_path, "[migrations]\nexpected_head = 'abc'\n")).gates_only


def test_the_single_database_section_is_the_one_entry_case() -> None:
    config = load_config(PROJECT_ROOT / "drill.toml")
    assert not config.multiple_databases
    assert config.database_names() == ["codeblack"]
    assert config.for_database("") is config
    assert config.for_database("codeblack") is config
    assert config.restore.parallel_databases == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("databases = []\n" + TARGET, "[[databases]] is empty: list at least one database, or use [database]"),
        (TARGET + "[[databases]]\nname = 'a'\n[[databases]]\nname = 'a'\n",
         "[[databases]] name 'a' is listed twice: each entry names one database"),
        (TARGET + "[[databases]]\ncritical_tables = ['t']\n",
         "[[databases]] entry 1 name is not set: the database to restore"),
        (TARGET + "[database]\nname = 'a'\n[[databases]]\nname = 'b'\n",
         "[database] and [[databases]] are both set: list every database in [[databases]] (the first is the one "
         "the app and the migrations use), or keep the single [database]"),
        (TARGET + "[[databases]]\nname = 'a'\n[[databases]]\nname = 'b'\nbackup_prefix = 'postgres/logical/a/b/'\n",
         "[[databases]] backup_prefix 'postgres/logical/a/' of 'a' holds 'b''s 'postgres/logical/a/b/': each "
         "database's dumps need a prefix of their own"),
        (TARGET + "[[databases]]\nname = 'a'\nbackup_prefix = 'postgres/'\n",
         "[[databases]] backup_prefix 'postgres/' (the dumps of 'a') and [storage] base_daily_prefix "
         "'postgres/base/daily/' overlap: prune would delete the one's objects by the other's retention; give each "
         "a prefix of its own"),
        (TARGET + "[[databases]]\nname = 'a'\n[storage]\nredis_prefix = 'postgres/logical/a/redis/'\n",
         "[storage] logical_prefix 'postgres/logical/a/' (the dumps of 'a') and [storage] redis_prefix "
         "'postgres/logical/a/redis/' overlap: prune would delete the one's objects by the other's retention; "
         "give each a prefix of its own"),
        (TARGET + "[[databases]]\nname = 'a'\nbackup_prefix = 'drill-'\n[reports]\nstorage_prefix = 'drill-records/'\n",
         "[[databases]] backup_prefix 'drill-' (the dumps of 'a') and [reports] storage_prefix 'drill-records/' "
         "overlap: prune would delete the one's objects by the other's retention; give each a prefix of its own"),
        (TARGET + "[storage]\nbase_weekly_prefix = 'postgres/base/'\n",
         "[storage] base_daily_prefix 'postgres/base/daily/' and [storage] base_weekly_prefix 'postgres/base/' "
         "overlap: prune would delete the one's objects by the other's retention; give each a prefix of its own"),
        (TARGET + "[[databases]]\nname = 'a'\n[[databases]]\nname = 'b'\ncritical_table = ['t']\n",
         "[[databases]] entry 2 critical_table: unknown key"),
        (TARGET + "[restore]\nparallel_databases = 0\n",
         "[restore] parallel_databases: Input should be greater than or equal to 1"),
    ],
    ids=["empty", "duplicate-name", "no-name", "both-sections", "nested-prefix", "over-base-backups",
         "under-redis-copies", "over-records", "weekly-over-daily", "unknown-key", "no-parallelism"],
)  # fmt: skip
def test_a_bad_list_of_databases_fails_in_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert str(caught.value) == f"{tmp_path / 'drill.toml'}: {message}"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drill.toml"
    path.write_text(text)
    return path


def test_an_approval_for_the_rpo_of_a_database_not_listed_names_the_entry(tmp_path: Path) -> None:
    approval = ('[[objective_approvals]]\nobjective = "rpo_hours catalogue"\nvalue = 1\napproved_by = "cto-grace"\n'
                'reason = "the catalog moved to hourly dumps"\n')  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, TWO + approval))
    assert str(caught.value) == (
        f"{tmp_path / 'drill.toml'}: [[objective_approvals]] entry 1 objective 'rpo_hours catalogue': no database "
        "'catalogue' in [[databases]] (orders, catalog)"
    )
    approval = approval.replace("rpo_hours catalogue", "rpo_hour")
    with pytest.raises(ConfigError, match="'rpo_hour' is not a key of \\[objectives\\]"):
        load_config(_write(tmp_path, TWO + approval))
