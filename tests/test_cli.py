"""``codeblack-drills`` run for real, as cron would, against throwaway PostgreSQL, Redis and S3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.services.base import LABEL, RUN_ENV
from harness.services.postgres import PostgresServer
from harness.services.redis import RedisServer
from harness.services.s3 import MotoS3
from harness.storage.manifest import format_timestamp

PROGRAM = Path(sys.executable).parent / "codeblack-drills"


@pytest.fixture(name="site")
def site_fixture(
    tmp_path: Path, s3_server: MotoS3, pg_database: Any, pg_server: PostgresServer, redis_server: RedisServer
) -> dict[str, Any]:
    """A drill.toml pointing at the throwaway servers, the environment cron would give, and the bucket."""
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    with pg_server.connect(pg_database.name) as conn:
        conn.execute("CREATE TABLE orders (id bigint, created_at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO orders SELECT g FROM generate_series(1, 50) g")
    config = tmp_path / "drill.toml"
    config.write_text(
        f'[target]\nsandbox = false\n[storage]\nendpoint_url = "{s3_server.endpoint.url}"\n'
        f'backup_bucket = "{bucket}"\naccess_key_env = "T_S3_KEY"\nsecret_key_env = "T_S3_SECRET"\n'
        '[database]\ncritical_tables = ["orders"]\n'
    )
    endpoint = s3_server.endpoint
    env = {**os.environ, "T_S3_KEY": endpoint.access_key.get_secret_value(),
           "T_S3_SECRET": endpoint.secret_key.get_secret_value(), "DATABASE_URL": pg_database.dsn,
           "REDIS_URL": redis_server.url}  # fmt: skip
    return {"config": config, "env": env, "bucket": bucket, "client": s3_server.client(), "secret": env["T_S3_SECRET"]}


def run_cli(site: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """``codeblack-drills --config <site's drill.toml> ARGS`` as cron runs it; no secret may be in its output."""
    result = subprocess.run([PROGRAM, "--config", site["config"], *args], env=site["env"], capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert site["secret"] not in result.stdout + result.stderr
    return result


def _keys(site: dict[str, Any]) -> set[str]:
    return {item["Key"] for item in site["client"].list_objects_v2(Bucket=site["bucket"]).get("Contents", [])}


def test_backups_taken_then_pruned(site: dict[str, Any]) -> None:
    dump = run_cli(site, "backup", "postgres")
    assert dump.returncode == 0, dump.stderr
    manifest = json.loads(dump.stdout)
    assert manifest["tables"]["orders"]["rows"] == 50
    assert run_cli(site, "backup", "base", "--weekly").returncode == 0
    assert run_cli(site, "backup", "redis").returncode == 0
    taken = _keys(site)
    assert {manifest["key"], manifest["key"] + ".manifest.json"} <= taken
    assert any(k.startswith("postgres/base/weekly/") for k in taken)
    assert any(k.startswith("redis/rdb/") for k in taken)

    old = manifest["key"].replace(manifest["key"][-21:-5], format_timestamp(datetime.now(UTC) - timedelta(days=30)))
    for suffix in ("", ".manifest.json"):
        site["client"].copy_object(Bucket=site["bucket"], Key=old + suffix,
                                   CopySource={"Bucket": site["bucket"], "Key": manifest["key"] + suffix})  # fmt: skip
    dry = run_cli(site, "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.split() == [old, old + ".manifest.json"]
    assert old in _keys(site)
    assert run_cli(site, "prune").stdout == dry.stdout
    assert _keys(site) == taken


def test_a_list_of_one_database_is_backed_up_without_naming_it(site: dict[str, Any], pg_database: Any) -> None:
    """``--database`` is needed only to choose among several entries; a list of one names its database."""
    text = site["config"].read_text().replace("[database]\n", f"[[databases]]\nname = {pg_database.name!r}\n")
    site["config"].write_text(text)
    dump = run_cli(site, "backup", "postgres")
    assert dump.returncode == 0, dump.stderr
    assert json.loads(dump.stdout)["key"].startswith(f"postgres/logical/{pg_database.name}/")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backup", "postgres", "--dsn-env", "CLI_TEST_UNSET"), "error: environment variable CLI_TEST_UNSET"),
        (("prune", "--no-such-flag"), "error: No such option '--no-such-flag'"),
        (("--config", "/nonexistent/drill.toml", "prune"), "error: /nonexistent/drill.toml: drill configuration"),
        (("report", "--results", "/nonexistent/results"), "error: /nonexistent/results: no Allure results to render"),
        (("records", "verify", "/nonexistent/drills"), "error: /nonexistent/drills: no drill records here"),
        (("gates", "--drill-config", "/nonexistent/drill.toml"), "error: /nonexistent/drill.toml: drill configuration"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(message)
    assert len(stderr.strip().splitlines()) == 1


def test_unreachable_database_is_one_line_without_its_password(site: dict[str, Any]) -> None:
    site["env"]["DATABASE_URL"] = "postgresql://nobody:hunter22@127.0.0.1:1/none"
    result = run_cli(site, "backup", "postgres")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: cannot connect to the database")
    assert "hunter22" not in result.stderr


@pytest.mark.parametrize("command", [("backup", "postgres"), ("backup", "base"), ("backup", "redis"), ("prune",),
                                     ("report",), ("records", "verify"), ("sweep",), ("world", "up"),
                                     ("gates",), ("drill",)])  # fmt: skip
def test_every_command_has_help_with_examples(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    main([*command, "--help"])
    out = capsys.readouterr().out
    assert "Examples:" in out
    assert "Exit codes:" in out


def test_a_run_id_that_would_break_the_sweeper_is_refused_in_one_line() -> None:
    result = subprocess.run([PROGRAM, "sweep", "--dry-run"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, RUN_ENV: "nightly-42"}, check=False)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {RUN_ENV}='nightly-42': a run id may hold only letters, digits and underscores (1 to 64), "
        "because it names the run's temp directories and owner files; choose one such as 'nightly_42' or unset it"
    ]


def test_sweep_removes_only_what_dead_runs_left(tmp_path: Path) -> None:
    dead_run, live_run = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    # A temp dir of its own: every drill on this machine (and the other test worker's) sweeps the dead runs of
    # /tmp when it starts, and would take this run's leftovers first. A sweep knows a run by its owner files in
    # its own temp dir, so only the sweeps below, run with this TMPDIR, know this dead run.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    owner = subprocess.Popen(["sleep", "600"])
    (tmp / f"{LABEL}-{dead_run}-{owner.pid}.owner").write_text(str(owner.pid))
    (tmp / f"{LABEL}-{live_run}-{os.getpid()}.owner").write_text(str(os.getpid()))
    left = Path(tempfile.mkdtemp(prefix=f"{LABEL}-{dead_run}-pg-", dir=tmp))
    alive = Path(tempfile.mkdtemp(prefix=f"{LABEL}-{live_run}-pg-", dir=tmp))
    orphan = subprocess.Popen(["sleep", "60"], env={**os.environ, RUN_ENV: dead_run})
    owner.kill()
    owner.wait()
    try:
        listed = subprocess.run([PROGRAM, "sweep", "--dry-run"], capture_output=True, text=True, timeout=60,
                                check=True, env=env).stdout.splitlines()  # fmt: skip
        assert {f"process {orphan.pid} sleep", f"directory {left}"} <= set(listed)
        assert f"directory {alive}" not in listed
        assert left.exists()
        assert orphan.poll() is None
        swept = subprocess.run([PROGRAM, "sweep"], capture_output=True, text=True, timeout=60, check=True, env=env)
        assert {f"process {orphan.pid} sleep", f"directory {left}"} <= set(swept.stdout.splitlines())
        assert orphan.wait(10) != 0
        assert not left.exists()
        assert alive.exists()
    finally:
        orphan.kill()
        orphan.wait()
        shutil.rmtree(alive, ignore_errors=True)
        shutil.rmtree(left, ignore_errors=True)
        for owner in tmp.glob(f"{LABEL}-{live_run}-*.owner"):
            owner.unlink()
