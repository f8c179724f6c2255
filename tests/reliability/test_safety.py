"""The drill writes only to servers it created, and refuses a configuration that points staging at production.

The world's production PostgreSQL was started by this run but stands in for production (``throwaway=False``),
so it is what a real production server is to the guard: every write path of the drill is aimed at it here and
must refuse before writing. Covered elsewhere: the guard's own checks (a stand-in, a foreign ``cluster_name``:
``tests/harness/test_lifecycle.py``, ``tests/harness/test_restore.py``); the restore itself always provisions
its own server and checks it before ``pg_restore`` (``harness/restore/staging.py``).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from fixtures.services import Database
from harness.app.config_session import ConfigGates
from harness.config import PROJECT_ROOT, load_config
from harness.errors import ConfigError, UnsafeTargetError
from harness.integrity import check_amcheck
from harness.migrations.deploy import DeployRehearsal
from harness.migrations.history import load_graph
from harness.migrations.project import MigrationProject
from harness.safety import check_staging_isolated
from sandbox.target import drill_env, write_drill_toml
from sandbox.world import PRODUCTION_DB_HOST, World
from tests.reliability.checks import TRACEBACK

REFUSED = r"^refusing to write to PostgreSQL at 127\.0\.0\.1:\d+: "


def _production_state(world: World) -> tuple[object, ...]:
    with world.production_pg.connect(world.database) as conn:
        extensions = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'").fetchone()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        audit = conn.execute("SELECT count(*) FROM config_change_history").fetchone()
    return extensions, version, audit


def test_every_write_path_refuses_production(sandbox_world: World) -> None:
    before = _production_state(sandbox_world)
    production = Database(sandbox_world.database, sandbox_world.dsn,
                          sandbox_world.production_pg.sqlalchemy_url(sandbox_world.database))  # fmt: skip
    project = MigrationProject.from_config(sandbox_world.config)
    with pytest.raises(UnsafeTargetError, match=REFUSED):
        check_amcheck(sandbox_world.production_pg, sandbox_world.database)
    with pytest.raises(UnsafeTargetError, match=REFUSED):
        DeployRehearsal(project, load_graph(project), production).upgrade()
    with pytest.raises(UnsafeTargetError, match=REFUSED):
        ConfigGates.connect("http://127.0.0.1:9", sandbox_world.config, sandbox_world.deployment.verify_key,
                            sandbox_world.dsn, {})  # fmt: skip
    assert _production_state(sandbox_world) == before


@pytest.mark.parametrize("bypass", [False, True], ids=["production-by-name", "loopback-production-by-port"])
def test_staging_settings_pointing_at_production_stop_the_drill(
    tmp_path: Path, sandbox_world: World, bypass: bool
) -> None:
    """Refused at start-up, before any server: production's audit trail gains no row from the config gates.

    The bypass case is the one reproduced against the old denylist: ``database_host = "localhost"`` and the
    app's URL naming production's real port on ``127.0.0.1``, which the denylist accepted.
    """
    before = _production_state(sandbox_world)
    if bypass:
        database_host, production_url = "localhost", sandbox_world.production_pg.sqlalchemy_url(sandbox_world.database)
        why = "is a connection setting but not exactly one placeholder"
    else:
        database_host, production_url = (
            PRODUCTION_DB_HOST,
            f"postgresql+psycopg://app@{PRODUCTION_DB_HOST}:5432/codeblack",
        )
        why = f"names production's database host {PRODUCTION_DB_HOST} (as {PRODUCTION_DB_HOST!r})"
    config = write_drill_toml(tmp_path, sandbox_world.deployment, storage={"database_host": database_host},
                              app={"env": {"CODEBLACK_DATABASE_URL": production_url}})  # fmt: skip
    run = f"rel{uuid.uuid4().hex[:7]}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features", "-q", f"--drill-config={config}", "-p", "no:randomly"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False,
        env=drill_env(sandbox_world.deployment, run),
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"ERROR: {config}: [app] env.CODEBLACK_DATABASE_URL {why}: the staging app may name a store only as "
        "{database_url} or {redis_url} in [app] env, which the drill fills with its throwaway copies"
    )
    assert not TRACEBACK.search(result.stdout + result.stderr)
    assert "started" not in result.stdout + result.stderr, "a server or the app started before the preflight"
    assert _production_state(sandbox_world) == before


def test_production_redis_in_the_app_is_refused_and_placeholders_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRILL_TEST_PRODUCTION_REDIS", "redis://:pw@10.0.0.7:6380/0")
    config = tmp_path / "drill.toml"
    config.write_text(
        '[storage]\ndatabase_host = "db.internal"\n[redis]\nurl_env = "DRILL_TEST_PRODUCTION_REDIS"\n'
        '[app]\ncommand = ["app", "--redis", "redis://10.0.0.7:6380/1", "--db", "db.internal2"]\n'
        'env = {DB = "{database_url}", CACHE = "{redis_url}", OTHER = "redis://10.0.0.7:6381/0"}\n'
    )
    with pytest.raises(ConfigError) as refusal:
        check_staging_isolated(load_config(config))
    assert str(refusal.value).startswith(
        f"{config}: [app] env.OTHER names production's Redis 10.0.0.7:6380 (as '10.0.0.7'); command[2] names "
        "production's Redis 10.0.0.7:6380 (as '10.0.0.7'): the staging app may name a store only as "
    )
    config.write_text(config.read_text().replace(', OTHER = "redis://10.0.0.7:6381/0"', "")
                      .replace('"--redis", "redis://10.0.0.7:6380/1", ', ""))  # fmt: skip
    check_staging_isolated(load_config(config))
