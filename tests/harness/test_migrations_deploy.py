"""The deploy rehearsal on a database holding data: pending revisions, failures on real rows, the write switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from harness.app.runner import AppProcess
from harness.config import DrillConfig, load_config
from harness.errors import CheckFailed, ServiceError
from harness.migrations.deploy import DeployRehearsal, MaintenanceWindow, WriteSwitch, wait_listening
from harness.migrations.destructive import DestructiveOperation
from harness.migrations.history import load_graph
from harness.migrations.project import MigrationProject, connected
from harness.migrations.roundtrip import check_roundtrip
from tests.data.migration_sets import build_project
from tests.harness.test_app_runner import app_environment  # noqa: F401  (fixture: the sandbox app's stores)


@pytest.fixture(scope="module")
def sandbox() -> MigrationProject:
    return MigrationProject.from_config(load_config())


def _with_orders(project: MigrationProject, database: Any) -> None:
    """Production-like data: the sandbox at head with one application and its order."""
    project.upgrade(database, "head")
    with connected(database) as connection:
        connection.execute(
            text("INSERT INTO applications (applicant_name, email, amount) VALUES ('Ada', 'ada@example.org', 10)")
        )
        connection.execute(text("INSERT INTO orders (application_id, amount) SELECT id, 10 FROM applications"))
        connection.commit()


def test_a_copy_behind_head_is_upgraded_to_the_expected_head(sandbox: MigrationProject, pg_database: Any) -> None:
    sandbox.upgrade(pg_database, "d2a7c3e9f165")
    rehearsal = DeployRehearsal(sandbox, load_graph(sandbox), pg_database)
    assert rehearsal.pending() == ["b6e8dcb19a40"]
    assert rehearsal.deployed == "d2a7c3e9f165"
    assert rehearsal.upgrade() == ["b6e8dcb19a40"]
    assert rehearsal.check_current() == "b6e8dcb19a40"
    assert rehearsal.pending() == []


@pytest.fixture
def real_data(sandbox: MigrationProject, tmp_path: Path) -> MigrationProject:
    return MigrationProject(build_project("real_data", tmp_path), "da7a00000001", sandbox.metadata_path)


def test_the_real_data_migration_passes_on_an_empty_database(real_data: MigrationProject, pg_database: Any) -> None:
    assert check_roundtrip(real_data, load_graph(real_data), pg_database)[-1].revision == "da7a00000001"


def test_a_migration_that_fails_on_real_data_is_named_with_the_database_error(
    sandbox: MigrationProject, real_data: MigrationProject, pg_database: Any
) -> None:
    _with_orders(sandbox, pg_database)
    rehearsal = DeployRehearsal(real_data, load_graph(real_data), pg_database)
    with pytest.raises(
        CheckFailed,
        match=r"revision da7a00000001 fails on the restored production data: IntegrityError: "
        r'column "region" of relation "orders" contains null values \(applied before it: none\)',
    ):
        rehearsal.upgrade()
    with pytest.raises(
        CheckFailed, match=r"alembic current on the staging copy is b6e8dcb19a40, not the expected head da7a00000001"
    ):
        rehearsal.check_current()


def test_a_copy_at_a_revision_the_code_does_not_know_fails(sandbox: MigrationProject, pg_database: Any) -> None:
    sandbox.upgrade(pg_database, "head")
    with connected(pg_database) as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'feedfacecafe'"))
        connection.commit()
    with pytest.raises(CheckFailed, match=r"the staging copy is at revision feedfacecafe, which the migration"):
        DeployRehearsal(sandbox, load_graph(sandbox), pg_database).pending()


@pytest.fixture
def running_app(app_environment: dict[str, str], drill_config: DrillConfig) -> Iterator[AppProcess]:  # noqa: F811
    app = AppProcess.from_config(drill_config, app_environment).start()
    try:
        yield wait_listening(app, timeout=30)
    finally:
        app.stop()


def test_maintenance_mode_refuses_writes_until_they_are_re_enabled(
    running_app: AppProcess, drill_config: DrillConfig
) -> None:
    switch = WriteSwitch.from_settings(running_app.base_url, drill_config.app)
    drop = DestructiveOperation("de1e7e000001", "ALTER TABLE orders DROP COLUMN currency", "drops a column")
    window = MaintenanceWindow(switch, [drop]).open()
    assert window.reason() == "deploy rehearsal: destructive migration(s) de1e7e000001 pending"
    with pytest.raises(CheckFailed, match=r"after writes were re-enabled answered 503, expected 201"):
        switch.check_writes(refused=False)
    assert window.check_refused() == 503
    window.close()
    assert switch.check_writes(refused=False) == 201
    with pytest.raises(CheckFailed, match=r"POST /api/v1/blacklist in maintenance mode answered 201, expected 503"):
        switch.check_writes(refused=True)
    unneeded = MaintenanceWindow(switch, []).open()
    assert (unneeded.needed, unneeded.check_refused()) == (False, None)
    unneeded.close()
    assert switch.check_writes(refused=False) == 201


def test_an_app_without_a_maintenance_switch_or_probe_write_is_never_called() -> None:
    # Nothing listens on port 9: any request would fail with a HarnessError naming it.
    switch = WriteSwitch.from_settings("http://127.0.0.1:9", DrillConfig().app)
    drop = DestructiveOperation("de1e7e000001", "ALTER TABLE orders DROP COLUMN currency", "drops a column")
    window = MaintenanceWindow(switch, [drop]).open()
    assert (window.needed, window.check_refused(), switch.check_writes(refused=False)) == (False, None, None)
    window.close()


def test_an_app_that_dies_before_listening_fails_quoting_its_log(drill_config: DrillConfig) -> None:
    crash = ["{python}", "-c", "import sys; print('alembic_version missing'); sys.exit(4)"]
    app = AppProcess.from_config(drill_config, {}, command=crash, name="rehearsal").start()
    try:
        with pytest.raises(ServiceError, match=r"exited with code 4 during start: alembic_version missing"):
            wait_listening(app, timeout=30)
    finally:
        app.stop()
