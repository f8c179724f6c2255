from __future__ import annotations

import io
import shutil
import subprocess
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection

from sandbox.codeblack.models import Base
from sandbox.codeblack.revisions import EXPECTED_HEAD, MIGRATIONS_DIR, alembic_config, head_revision
from sandbox.codeblack.seed import DEFAULT_CONFIG, SENSITIVE_KEYS

CHAIN = ["3f1c2a9d7b10", "7a2d4e6b8c21", "9c4e1f2a3b54", "d2a7c3e9f165", "b6e8dcb19a40"]


def _snapshot(connection: Connection) -> dict[str, Any]:
    """Describe the application's tables (not Alembic's bookkeeping): columns, keys, indexes, constraints."""
    inspector = inspect(connection)
    snapshot: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        snapshot[table] = {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"], column["default"])
                for column in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "fks": sorted(inspector.get_foreign_keys(table), key=lambda fk: fk["name"]),
            "indexes": sorted(inspector.get_indexes(table), key=lambda ix: ix["name"]),
            "uniques": sorted(inspector.get_unique_constraints(table), key=lambda uq: uq["name"]),
            "checks": sorted(inspector.get_check_constraints(table), key=lambda ck: ck["name"]),
        }
    return snapshot


def test_chain_is_linear_and_ends_at_the_plan_head() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    assert scripts.get_heads() == [EXPECTED_HEAD]
    assert head_revision() == EXPECTED_HEAD
    walked = [script.revision for script in scripts.walk_revisions("base", "heads")]
    assert list(reversed(walked)) == CHAIN
    for script in scripts.walk_revisions():
        assert not script.is_merge_point
        assert not script.is_branch_point


def test_upgrade_to_head_then_downgrade_to_base_leaves_an_empty_schema(pg_database: Any) -> None:
    config = alembic_config(pg_database.sqlalchemy_url)
    command.upgrade(config, "head")
    engine = create_engine(pg_database.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == EXPECTED_HEAD
            assert set(inspect(connection).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
        command.downgrade(config, "base")
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == ["alembic_version"]
            assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 0
    finally:
        engine.dispose()


def test_each_downgrade_restores_the_schema_before_its_upgrade(pg_database: Any) -> None:
    engine = create_engine(pg_database.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            config = alembic_config(connection=connection)
            for revision in CHAIN:
                before = _snapshot(connection)
                command.upgrade(config, revision)
                after = _snapshot(connection)
                assert after != before, f"{revision} changed nothing"
                command.downgrade(config, "-1")
                assert _snapshot(connection) == before, f"downgrade of {revision} is not its exact inverse"
                command.upgrade(config, revision)
                assert _snapshot(connection) == after
            connection.commit()
    finally:
        engine.dispose()


def test_models_and_migrations_agree_at_head(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_head_seeds_the_default_config_without_secret_values(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT key, value, critical, sensitive FROM config_entries")).all()
    finally:
        engine.dispose()
    assert {row.key for row in rows} == {entry.key for entry in DEFAULT_CONFIG}
    assert {row.key for row in rows if row.sensitive} == set(SENSITIVE_KEYS)
    assert all(row.value is None for row in rows if row.sensitive)


@pytest.fixture(scope="module")
def offline_sql() -> str:
    config = alembic_config("postgresql+psycopg://offline@127.0.0.1/none")
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()


def test_offline_mode_renders_the_whole_chain_with_lock_timeouts(offline_sql: str) -> None:
    assert offline_sql.index("SET LOCAL lock_timeout") < offline_sql.index("CREATE TABLE applications")
    assert "SET LOCAL statement_timeout" in offline_sql
    assert f"UPDATE alembic_version SET version_num='{EXPECTED_HEAD}'" in offline_sql
    assert "INSERT INTO config_entries" in offline_sql


def test_offline_sql_passes_the_migration_linter(offline_sql: str, tmp_path: Any) -> None:
    squawk = shutil.which("squawk")
    assert squawk is not None, "squawk-cli is a project dependency; run `uv sync`"
    script = tmp_path / "upgrade.sql"
    script.write_text(offline_sql)
    # alembic_version's VARCHAR(32) belongs to Alembic, not to these migrations.
    result = subprocess.run(
        [squawk, "--exclude=prefer-text-field", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
