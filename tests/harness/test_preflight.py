"""The schema preflight on a real database: names as SQL reads them (mixed case, other schemas), mismatches by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.config import DrillConfig, load_config
from harness.errors import ConfigError
from harness.restore.preflight import check_schema

SCHEMA = """
CREATE SCHEMA lending;
CREATE TABLE lending."Loans" (id int, "LentAt" timestamptz);
CREATE TABLE members (id int, joined_at timestamptz);
CREATE TABLE beats (beat_at timestamptz);
"""


def _config(tmp_path: Path, database: str) -> DrillConfig:
    path = tmp_path / "drill.toml"
    path.write_text(f"[target]\nsandbox = false\n\n[database]\n{database}")
    return load_config(path)


GOOD = """critical_tables = ["members", 'lending."Loans"']
time_columns = { members = "joined_at", 'lending."Loans"' = '"LentAt"' }
audit_table = ""
heartbeat_table = "beats"
"""


@pytest.fixture
def restored(pg_database: Any) -> Any:
    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        yield conn


def test_names_are_matched_as_sql_reads_them(tmp_path: Path, restored: Any) -> None:
    check_schema(restored, _config(tmp_path, GOOD))
    folded = GOOD.replace('"members"', '"MEMBERS"')  # unquoted names fold to lower case, as in SQL
    check_schema(restored, _config(tmp_path, folded))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('critical_tables = ["members", "loans"]\ntime_columns = { members = "joined_at" }\naudit_table = ""\n',
         "[database] critical_tables 'loans' is not in the restored database"),
        ('critical_tables = ["members"]\ntime_columns = { members = "joined_at" }\naudit_table = "history"\n',
         "[database] audit_table 'history' is not in the restored database"),
        ('critical_tables = ["members", "beats"]\ntime_columns = { members = "joined" }\naudit_table = ""\n',
         "[database] time_columns.members: critical table 'members' has no column 'joined'; "
         "[database] default_time_column: critical table 'beats' has no column 'created_at'"),
        ('count_all_tables = true\nheartbeat_table = "beat"\n',
         "[database] heartbeat_table 'beat' is not in the restored database"),
        ('count_all_tables = true\nheartbeat_table = "members"\n',
         "[database] heartbeat_column 'beat_at' is not a column of heartbeat table 'members'"),
        ("", "[database] critical_tables is empty: name the tables to count exactly, or set count_all_tables = true"),
    ],
    ids=["table", "audit-table", "time-columns", "heartbeat-table", "heartbeat-column", "nothing-counted"],
)  # fmt: skip
def test_each_mismatch_is_named_by_its_key_in_one_line(
    tmp_path: Path, restored: Any, change: str, problem: str
) -> None:
    config = _config(tmp_path, change)
    with pytest.raises(ConfigError) as failure:
        check_schema(restored, config)
    assert str(failure.value) == f"{config.source}: {problem} (fix drill.toml or the backup)"


def test_a_name_of_a_databases_entry_is_named_as_the_entrys_key(tmp_path: Path, restored: Any) -> None:
    path = tmp_path / "drill.toml"
    path.write_text("[target]\nsandbox = false\n\n[[databases]]\nname = 'library'\n" + GOOD +
                    "\n[[databases]]\nname = 'archive'\ncritical_tables = ['members', 'loans']\n")  # fmt: skip
    config = load_config(path)
    check_schema(restored, config.for_database("library"))
    with pytest.raises(ConfigError) as caught:
        check_schema(restored, config.for_database("archive"))
    assert str(caught.value) == (
        f"{path}: [[databases]] 'archive' default_time_column: critical table 'members' has no column 'created_at'; "
        "[[databases]] 'archive' critical_tables 'loans' is not in the restored database (fix drill.toml or the backup)"
    )
