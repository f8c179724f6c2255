"""Drift and round trip, on real PostgreSQL: one shared server, a fresh database per case."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from harness.config import load_config
from harness.errors import CheckFailed, ConfigError
from harness.migrations.catalogue_snapshot import diff_snapshots, take_snapshot
from harness.migrations.drift import check_drift
from harness.migrations.history import load_graph
from harness.migrations.project import MigrationProject, connected
from harness.migrations.roundtrip import check_roundtrip
from tests.data.migration_sets import build_project

SANDBOX_METADATA = "sandbox.codeblack.models:Base.metadata"


def _project(case: str, tmp_path: Path, metadata: str = SANDBOX_METADATA) -> MigrationProject:
    return MigrationProject(build_project(case, tmp_path), "b6e8dcb19a40", metadata)


@pytest.fixture(scope="module")
def sandbox() -> MigrationProject:
    return MigrationProject.from_config(load_config())


def test_the_sandbox_migrations_build_its_models(sandbox: MigrationProject, pg_database: Any) -> None:
    assert check_drift(sandbox, pg_database) == []


def test_a_model_column_with_no_migration_is_drift_naming_the_column_and_the_head(
    tmp_path: Path, pg_database: Any
) -> None:
    project = _project(
        "column_without_migration", tmp_path, "tests.data.migration_sets.column_without_migration.models:metadata"
    )
    with pytest.raises(
        CheckFailed,
        match=r"schema drift: the migrations up to head b6e8dcb19a40 \(b6e8dcb19a40_orders_currency\.py\) and the "
        r"models \(tests.data.migration_sets."
        r"column_without_migration.models:metadata\) differ in 1 place\(s\): column orders.note is in the models, "
        r"but no migration adds it",
    ):
        check_drift(project, pg_database)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("sandbox.codeblack.models", "expected 'package.module:attribute'"),
        ("sandbox.codeblack.nothing:metadata", "cannot import it: No module named 'sandbox.codeblack.nothing'"),
        ("sandbox.codeblack.models:Base", "is a DeclarativeAttributeIntercept, not a SQLAlchemy MetaData"),
    ],
)
def test_a_bad_metadata_path_is_a_setup_error_naming_the_key(
    sandbox: MigrationProject, path: str, reason: str, pg_database: Any
) -> None:
    project = dataclasses.replace(sandbox, metadata_path=path)
    with pytest.raises(ConfigError, match=rf"\[migrations\] metadata = '{path}': {reason}"):
        check_drift(project, pg_database)


def test_every_sandbox_revision_round_trips_to_an_identical_catalogue(
    sandbox: MigrationProject, pg_database: Any
) -> None:
    results = check_roundtrip(sandbox, load_graph(sandbox), pg_database)
    assert [result.revision for result in results] == load_graph(sandbox).order
    assert all(result.reversed and result.objects_changed > 0 for result in results)


def test_a_downgrade_that_raises_fails_naming_the_revision(tmp_path: Path, pg_database: Any) -> None:
    project = _project("downgrade_fails", tmp_path)
    with pytest.raises(
        CheckFailed,
        match=r"revision d0d0d0d0d001 \(d0d0d0d0d001_orders_status_index\.py\): downgrade raises ProgrammingError: "
        r'.*index "ix_order_status" does not exist',
    ):
        check_roundtrip(project, load_graph(project), pg_database)


def test_a_downgrade_that_does_nothing_fails_naming_what_it_left(tmp_path: Path, pg_database: Any) -> None:
    project = _project("downgrade_noop", tmp_path)
    with pytest.raises(CheckFailed) as failure:
        check_roundtrip(project, load_graph(project), pg_database)
    message = str(failure.value)
    assert message.startswith(
        "revision d0d0d0d0d002 (d0d0d0d0d002_review_marks.py): downgrade does not restore the schema before it ("
    )
    assert "relation public.review_marks was left behind (table)" in message


def test_a_downgrade_that_leaves_a_trace_fails_naming_the_object(tmp_path: Path, pg_database: Any) -> None:
    project = _project("downgrade_trace", tmp_path)
    with pytest.raises(
        CheckFailed,
        match=r"revision d0d0d0d0d003 \(d0d0d0d0d003_orders_note\.py\): downgrade does not restore the schema "
        r"before it \(1 difference\(s\)\): "
        r"constraint public.orders.ck_orders_amount_positive was left behind \(CHECK \(\(amount > \(0\)::numeric\)\)\)",
    ):
        check_roundtrip(project, load_graph(project), pg_database)


def test_an_exempt_revision_is_upgraded_without_a_round_trip(tmp_path: Path, pg_database: Any) -> None:
    project = _project("downgrade_fails", tmp_path)
    results = check_roundtrip(project, load_graph(project), pg_database, exempt={"d0d0d0d0d001"})
    assert results[-1].row() == ["d0d0d0d0d001", 1, "exempt: destructive, judged by the backup checkpoint gate instead"]


def test_the_snapshot_sees_enums_sequences_defaults_and_nullability(pg_database: Any) -> None:
    with connected(pg_database) as connection:
        empty = take_snapshot(connection)
        connection.execute(text("CREATE TYPE mood AS ENUM ('ok', 'sad')"))
        connection.execute(text("CREATE SEQUENCE tickets START 10 INCREMENT 5"))
        connection.execute(text("CREATE TABLE t (m mood NOT NULL DEFAULT 'ok', n varchar(8))"))
        connection.commit()
        built = take_snapshot(connection)
    assert empty == {}
    assert built["enum public.mood"] == "'ok', 'sad'"
    assert built["sequence public.tickets"].startswith("bigint start 10 increment 5 ")
    assert built["column public.t.m"] == "mood NOT NULL DEFAULT 'ok'::mood"
    assert built["column public.t.n"] == "character varying(8) NULL"
    changed = {**built, "column public.t.n": "character varying(4) NULL"}
    assert diff_snapshots(built, changed) == [
        "column public.t.n changed from 'character varying(8) NULL' to 'character varying(4) NULL'"
    ]


def test_two_heads_cannot_build_the_schema_to_compare(tmp_path: Path, pg_database: Any) -> None:
    with pytest.raises(
        CheckFailed,
        match=r"the migrations cannot build the schema to compare: alembic upgrade head raises CommandError: "
        r"Multiple head revisions",
    ):
        check_drift(_project("two_heads", tmp_path), pg_database)


def test_a_missing_project_interpreter_is_a_setup_error_naming_the_key(
    sandbox: MigrationProject, pg_database: Any
) -> None:
    project = dataclasses.replace(sandbox, python="/no/such/python")
    with pytest.raises(ConfigError, match=r"^\[migrations\] python: /no/such/python is not an executable"):
        check_drift(project, pg_database)
