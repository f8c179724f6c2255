"""A target of two PostgreSQL databases drilled in one run (``[[databases]]``), each on a copy of its own.

The shop keeps its orders (``public.customers``, ``public.orders``) and its catalog (``catalog.products``,
``public.price_changes``) in two databases of different schemas. Each is backed up as cron would, by
``codeblack-drills backup postgres --database NAME`` under its own prefix; then ``pytest features/ -m
restore_drill`` runs in a subprocess as an operator runs it: both are restored into staging copies of their own,
counted against their own manifests and held to their own RPO, in one record and one verdict. A broken world
breaks one of the two (its dump short of a row, its data older than its RPO): the verdict is NO-GO naming that
database, and the other's scenarios still pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import psutil
import pytest

from harness.backup.postgres import backup_postgres, dump_options
from harness.backup.store import put_manifest
from harness.config import PROJECT_ROOT, load_config
from harness.deployment import Deployment
from harness.services.postgres import PostgresServer
from harness.services.s3 import S3Server
from harness.storage.catalogue import fetch_manifest, list_configured
from sandbox.staging_server import admin_dsn, existing_server
from sandbox.target import ENV, toml_text, write_drill_toml
from tests.features.drill_run import DrillRun, During, leftovers, run_drill
from tests.harness.test_staging_server import ADMIN_ENV
from tests.test_cli import PROGRAM

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent.parent / "data" / "many_databases"
ROW_COUNTS = "Row counts of the critical tables match the backup's manifest"


def _entries(orders: str, catalog: str) -> list[dict[str, Any]]:
    """The two ``[[databases]]`` entries: different tables, time columns and schemas."""
    return [
        {"name": orders, "critical_tables": ["customers", "orders"],
         "time_columns": {"customers": "signed_up_at", "orders": "placed_at"}},
        {"name": catalog, "critical_tables": ["catalog.products", "price_changes"],
         "time_columns": {"catalog.products": "listed_on", "price_changes": "changed_at"}},
    ]  # fmt: skip


def _sections(bucket: str, databases: list[dict[str, Any]]) -> dict[str, Any]:
    return {"storage": {"backup_bucket": bucket, "uploads_bucket": "", "base_backups": False,
                        "database_host": "db.shop.invalid"},
            "databases": databases, "redis": {"enabled": False}, "app": {"enabled": False},
            "migrations": {"enabled": False}}  # fmt: skip


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PostgresServer, s3_server: S3Server
) -> Iterator[dict[str, Any]]:
    """The shop's two production databases, and the target as the drill sees it (without backups yet)."""
    suffix = uuid.uuid4().hex[:6]
    orders, catalog = f"orders_{suffix}", f"catalog_{suffix}"
    for name, schema in ((orders, "orders.sql"), (catalog, "catalog.sql")):
        pg_server.create_database(name)
        with pg_server.connect(name) as conn:
            conn.execute((DATA / schema).read_text())  # type: ignore[arg-type]
    home = tmp_path_factory.mktemp("shop")
    (home / "drill.toml").write_text(toml_text({"target": {"name": "shop", "sandbox": False},
                                                **_sections("shop-backups", _entries(orders, catalog))}))  # fmt: skip
    config = load_config(home / "drill.toml")
    target = Deployment(name="shop", config=config, storage=s3_server.endpoint, redis_url=None,
                        database_host=config.storage.database_host, verify_key="")  # fmt: skip
    yield {"target": target, "orders": orders, "catalog": catalog, "home": home, "pg": pg_server, "s3": s3_server}
    for name in (orders, catalog):
        pg_server.drop_database(name)


def _backed_up(shop: dict[str, Any], directory: Path, databases: list[dict[str, Any]]) -> dict[str, Any]:
    """A bucket of its own with each database's newest dump, taken by the CLI as cron takes it; the sections."""
    bucket = f"shop-{uuid.uuid4().hex[:8]}"
    client = shop["s3"].client()
    client.create_bucket(Bucket=bucket)
    sections = _sections(bucket, databases)
    toml = write_drill_toml(directory / "cron", shop["target"], **sections)
    endpoint = shop["s3"].endpoint
    env = {**os.environ, ENV["access"]: endpoint.access_key.get_secret_value(),
           ENV["secret"]: endpoint.secret_key.get_secret_value()}  # fmt: skip
    env.pop("CODEBLACK_SIGNING_KEY", None)
    for entry in databases:
        taken = subprocess.run([PROGRAM, "--config", str(toml), "backup", "postgres", "--database", entry["name"]],
                               env={**env, "DATABASE_URL": shop["pg"].dsn(entry["name"])}, capture_output=True,
                               text=True, timeout=120, check=False)  # fmt: skip
        assert taken.returncode == 0, taken.stderr
        assert json.loads(taken.stdout)["key"].startswith(f"postgres/logical/{entry['name']}/shop-")
    return {"bucket": bucket, "sections": sections, "client": client}


def _drill(
    directory: Path, shop: dict[str, Any], sections: dict[str, Any], *args: str, during: During | None = None
) -> DrillRun:
    directory.mkdir(exist_ok=True)
    done = run_drill(directory, shop["target"], "", feature="features/", timeout=300, during=during,
                     env={"CODEBLACK_SIGNING_KEY": ""}, args=("-m", "restore_drill", *args), **sections)  # fmt: skip
    assert leftovers(done.run) == []
    return done


def _statuses(record: dict[str, Any]) -> dict[str, str]:
    return {check["scenario"]: check["status"] for check in record["checks"]}


def test_two_databases_of_different_schemas_reach_go_in_one_drill(tmp_path: Path, shop: dict[str, Any]) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    world = _backed_up(shop, tmp_path, _entries(orders, catalog))
    done = _drill(tmp_path, shop, world["sections"])
    assert done.returncode == 0, done.output[-4000:]
    [record] = done.records()
    assert record["verdict"]["decision"] == "GO", record["verdict"]
    assert record["database_rows"] == {
        orders: {"customers": 30, "orders": 120},
        catalog: {"catalog.products": 50, "price_changes": 200},
    }
    assert record["restored_rows"] == record["database_rows"][orders]  # the first database's, as before
    [markdown] = (done.reports / "drills").glob("drill-*.md")
    assert f"- Rows restored in {catalog}: catalog.products 50, price_changes 200\n" in markdown.read_text()
    rpo = {m["name"]: m for m in record["measures"] if m["name"].startswith("RPO")}
    assert set(rpo) == {f"RPO {orders}", f"RPO {catalog}"}
    assert all(m["met"] and m["objective"] == 6 for m in rpo.values())
    assert "placed_at" not in rpo[f"RPO {catalog}"]["detail"]  # each from its own tables
    assert "newest row of public.catalog" not in rpo[f"RPO {orders}"]["detail"]
    dumps = {entry["what"]: entry["key"] for entry in record["restored"]}
    assert dumps[f"PostgreSQL dump {orders}"].startswith(f"postgres/logical/{orders}/")
    assert dumps[f"PostgreSQL dump {catalog}"].startswith(f"postgres/logical/{catalog}/")
    servers = {server["what"] for server in record["staging"]}
    assert {f"staging PostgreSQL of {orders}", f"staging PostgreSQL of {catalog}"} <= servers
    statuses = _statuses(record)
    for database in (orders, catalog):
        assert statuses[f"{ROW_COUNTS} (database {database})"] == "passed"
        assert statuses[f"The restored database has no corruption (database {database})"] == "passed"
    assert statuses["Cut-over to production is decided only after staging verification"] == "passed"
    assert record["environment"]["rto.stopped_at"] == "every restored database verified ([app] enabled = false)"


def _checks(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {check["scenario"]: (check["status"], check["message"]) for check in record["checks"]}


def test_two_workers_drill_the_two_databases_into_the_one_record_a_single_process_writes(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    world = _backed_up(shop, tmp_path, _entries(orders, catalog))
    single = _drill(tmp_path / "single", shop, world["sections"])
    spread = _drill(tmp_path / "spread", shop, world["sections"], "-n", "2")
    assert spread.returncode == single.returncode == 0, spread.output[-4000:]
    [one], [merged] = single.records(), spread.records()
    assert merged["verdict"]["decision"] == one["verdict"]["decision"] == "GO", merged["verdict"]
    assert _checks(merged) == _checks(one)
    assert (
        merged["database_rows"]
        == one["database_rows"]
        == {
            orders: {"customers": 30, "orders": 120},
            catalog: {"catalog.products": 50, "price_changes": 200},
        }
    )
    assert merged["restored_rows"] == one["restored_rows"]
    assert {entry["what"]: entry["key"] for entry in merged["restored"]} == {
        entry["what"]: entry["key"] for entry in one["restored"]
    }
    assert {server["what"] for server in merged["staging"]} == {server["what"] for server in one["staging"]}
    measures = {m["name"]: m for m in merged["measures"]}
    assert {name: m["met"] for name, m in measures.items()} == {m["name"]: m["met"] for m in one["measures"]}
    assert {f"RPO {orders}", f"RPO {catalog}", "RTO"} <= set(measures)
    assert measures["RTO"]["detail"].startswith("the slowest of 2 workers (set "), measures["RTO"]["detail"]
    phases = Counter(span["name"] for span in merged["rto_timeline"])  # each database's, timed on its worker
    assert phases == Counter(span["name"] for span in one["rto_timeline"]), phases
    assert phases["restore"] >= 2
    assert "drill verdict: GO" in spread.output
    # The worker that ran cut-over saw its share only: its line leaves the decision to the verdict, and the
    # report shows the decision (passed), not the worker's skip.
    [case] = [c for c in ElementTree.parse(tmp_path / "spread" / "junit.xml").iter("testcase")
              if c.get("name", "").startswith("test_cutover")]  # fmt: skip
    [skipped] = case.iter("skipped")
    assert "cut-over is decided once every worker's share is in" in (skipped.get("message") or ""), skipped.attrib
    assert _cut_over_result(tmp_path / "spread")["status"] == "passed"
    assert _cut_over(merged)["status"] == "passed"


def _kill_the_worker_of(*databases: str, killed: list[int]) -> During:
    """Once each database's staging server runs, SIGKILL the pytest-xdist worker that started it (a known state).

    The first ``[[databases]]`` entry's server is ``staging``, the others' ``staging-<name>``; pass ``""`` for it.
    """

    def during(run: str, child: subprocess.Popen[str]) -> None:
        servers = {re.compile(rf"{run}-staging{f'-{d}' if d else ''}(?![\w-])"): d for d in databases}
        deadline = time.monotonic() + 240
        while servers and time.monotonic() < deadline and child.poll() is None:
            for proc in psutil.process_iter(["cmdline", "ppid"]):
                with contextlib.suppress(psutil.Error, StopIteration):
                    command = " ".join(proc.info["cmdline"] or [])
                    for server in [pattern for pattern in servers if pattern.search(command)]:
                        worker = next(p for p in proc.parents() if p.ppid() == child.pid)
                        killed.append(worker.pid)
                        worker.kill()
                        del servers[server]
            time.sleep(0.05)

    return during


def _drill_killing(tmp_path: Path, shop: dict[str, Any], *databases: str, args: tuple[str, ...] = ()) -> DrillRun:
    """The shop's drill on two workers, each database's worker killed once its staging server runs."""
    world = _backed_up(shop, tmp_path, _entries(shop["orders"], shop["catalog"]))
    killed: list[int] = []
    done = _drill(tmp_path, shop, world["sections"], "-n", "2", *args,
                  during=_kill_the_worker_of(*databases, killed=killed))  # fmt: skip
    assert len(killed) == len(databases), done.output[-4000:]
    assert done.returncode == 1, done.output[-4000:]
    return done


def test_a_worker_killed_mid_drill_is_no_go_naming_its_database_and_leaves_nothing_behind(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    done = _drill_killing(tmp_path, shop, catalog)
    [record] = done.records()  # the controller still writes the one record
    assert record["verdict"]["decision"] == "NO-GO"
    lost = {scenario: message for scenario, (status, message) in _checks(record).items()
            if status == "failed" and "crashed" in message}  # fmt: skip
    assert lost, _checks(record)
    assert all(scenario.endswith(f"(database {catalog})") for scenario in lost), lost
    assert all(message.startswith("worker gw") for message in lost.values()), lost
    assert any(f"(database {catalog})" in reason for reason in record["verdict"]["reasons"]), record["verdict"]
    statuses = _statuses(record)
    assert statuses[f"{ROW_COUNTS} (database {orders})"] == "passed"  # the other worker's database is whole
    assert statuses["Cut-over to production is decided only after staging verification"] == "failed"


def test_every_worker_killed_without_restarts_still_leaves_a_no_go_record_naming_each_database(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    done = _drill_killing(tmp_path, shop, "", catalog, args=("--max-worker-restart", "0"))
    records = done.records()
    assert len(records) == 1, done.output[-4000:]  # no worker's share arrived: the controller still writes one
    record = records[0]
    assert record["verdict"]["decision"] == "NO-GO"
    reasons = " ".join(record["verdict"]["reasons"])
    assert f"(database {orders})" in reasons, record["verdict"]
    assert f"(database {catalog})" in reasons, record["verdict"]
    # Named as one process names them, from the features: no worker was left to say what they were.
    statuses = _statuses(record)
    for database in (orders, catalog):
        assert statuses[f"The newest logical backup restores into isolated staging (database {database})"] == "failed"
        assert statuses[f"{ROW_COUNTS} (database {database})"] == "skipped"
    assert "drill verdict: NO-GO" in done.output


def _drill_on_an_existing_server(
    tmp_path: Path, shop: dict[str, Any], server: PostgresServer, *args: str, during: During | None = None
) -> DrillRun:
    """The shop's restore drill, its staging copies made on ``server`` (``[staging] provider = "server"``)."""
    world = _backed_up(shop, tmp_path, _entries(shop["orders"], shop["catalog"]))
    sections = {**world["sections"], "staging": {"provider": "server", "admin_dsn_env": ADMIN_ENV}}
    env = {"CODEBLACK_SIGNING_KEY": "", ADMIN_ENV: admin_dsn(server)}
    return run_drill(tmp_path, shop["target"], "", feature="features/", timeout=300, during=during,
                     args=("-m", "restore_drill", *args), env=env, **sections)  # fmt: skip


def test_on_an_existing_staging_server_each_database_gets_a_database_of_its_own(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    server = existing_server("shop-staging")
    try:
        before = _databases(server)
        done = _drill_on_an_existing_server(tmp_path, shop, server)
        assert done.returncode == 0, done.output[-4000:]
        [record] = done.records()
        assert record["verdict"]["decision"] == "GO", record["verdict"]
        servers = {server["what"] for server in record["staging"]}
        assert {f"staging PostgreSQL of {orders} (an existing server)",
                f"staging PostgreSQL of {catalog} (an existing server)"} <= servers  # fmt: skip
        assert set(record["database_rows"]) == {orders, catalog}
        assert _databases(server) == before  # both of the run's databases dropped at the end
    finally:
        server.stop()


def _databases(server: PostgresServer) -> set[str]:
    with server.connect() as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def _kill_the_workers_once_a_copy_is_on(server: PostgresServer, database: str, killed: list[int]) -> During:
    """Once the run's staging database for ``database`` exists on ``server``, SIGKILL every xdist worker."""

    def during(run: str, child: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and child.poll() is None:
            if any(run in name and database in name for name in _databases(server)):
                for worker in psutil.Process(child.pid).children():
                    killed.append(worker.pid)
                    worker.kill()
                return
            time.sleep(0.05)

    return during


def test_workers_killed_mid_restore_on_an_existing_staging_server_leave_no_database_there(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    server = existing_server("shop-staging-killed")
    try:
        before, killed = _databases(server), []
        kill = _kill_the_workers_once_a_copy_is_on(server, shop["catalog"], killed)
        done = _drill_on_an_existing_server(tmp_path, shop, server, "-n", "2", "--max-worker-restart", "0", during=kill)
        assert killed, done.output[-4000:]
        assert done.returncode == 1, done.output[-4000:]
        # Dropped by this run's controller once its workers were down, not left for the next run.
        assert _databases(server) == before, done.output[-4000:]
        assert leftovers(done.run) == []
    finally:
        server.stop()


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "two-workers"])
def test_a_dump_short_of_a_row_in_one_database_is_no_go_naming_that_database(
    tmp_path: Path, shop: dict[str, Any], workers: tuple[str, ...]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    world = _backed_up(shop, tmp_path, _entries(orders, catalog))
    config = shop["target"].config.with_changes(storage={"backup_bucket": world["bucket"]})
    [dump] = list_configured(world["client"], world["bucket"], f"postgres/logical/{catalog}/", config.storage).objects
    manifest = fetch_manifest(world["client"], world["bucket"], dump)
    counted = manifest.tables["price_changes"]  # the manifest counted one row more than the dump holds
    tables = {**manifest.tables, "price_changes": counted.model_copy(update={"rows": counted.rows + 1})}
    put_manifest(world["client"], world["bucket"], manifest.model_copy(update={"tables": tables}))
    done = _drill(tmp_path, shop, world["sections"], *workers)
    [record] = done.records()
    assert record["verdict"]["decision"] == "NO-GO"
    statuses = _statuses(record)
    assert statuses[f"{ROW_COUNTS} (database {catalog})"] == "failed"
    assert statuses[f"{ROW_COUNTS} (database {orders})"] == "passed"
    message = next(c["message"] for c in record["checks"] if c["scenario"] == f"{ROW_COUNTS} (database {catalog})")
    assert message.startswith("row counts"), message
    assert "price_changes: restored 200 rows, manifest 201" in message, message
    assert any(f"{ROW_COUNTS} (database {catalog})" in reason for reason in record["verdict"]["reasons"])
    assert not any(orders in reason for reason in record["verdict"]["reasons"]), record["verdict"]["reasons"]
    assert any(f"(database {catalog})" in item["what"] for item in record["action_items"])
    assert all(m["met"] for m in record["measures"])
    # The report shows the verdict the record holds: with -n, the worker that ran cut-over saw only its share.
    cut_over = _cut_over_result(tmp_path)
    assert cut_over["status"] == "failed"
    assert cut_over["statusDetails"]["message"].endswith(_cut_over(record)["message"])


def _cut_over(record: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in record["checks"] if c["scenario"].startswith("Cut-over to production"))


def _cut_over_result(directory: Path) -> dict[str, Any]:
    """The cut-over scenario's Allure result."""
    [result] = [r for p in (directory / "allure").glob("*-result.json") if (r := json.loads(p.read_text()))
                ["name"] == "Cut-over to production is decided only after staging verification"]  # fmt: skip
    return result


def test_data_older_than_one_databases_own_rpo_is_no_go_naming_that_database(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    entries = _entries(orders, catalog)
    entries[1]["rpo_hours"] = 0.25  # its newest price change is 45 minutes old: beyond its own RPO
    world = _backed_up(shop, tmp_path, entries)
    done = _drill(tmp_path, shop, {**world["sections"], "restore": {"parallel_databases": 1}})
    [record] = done.records()
    restores = sorted((span["start_s"], span["end_s"]) for span in record["rto_timeline"] if span["name"] == "restore")
    assert len(restores) == 2
    assert restores[0][1] <= restores[1][0]  # one database at a time: [restore] parallel_databases = 1
    assert record["verdict"]["decision"] == "NO-GO"
    rpo = {m["name"]: m for m in record["measures"] if m["name"].startswith("RPO")}
    assert (rpo[f"RPO {catalog}"]["met"], rpo[f"RPO {catalog}"]["objective"]) == (False, 0.25)
    assert (rpo[f"RPO {orders}"]["met"], rpo[f"RPO {orders}"]["objective"]) == (True, 6)
    statuses = _statuses(record)
    per_store = "Data loss is measured to the second for each store from its newest heartbeat"
    assert statuses[f"{per_store} (database {catalog})"] == "failed"
    assert statuses[f"{per_store} (database {orders})"] == "passed"
    assert statuses[f"{ROW_COUNTS} (database {catalog})"] == "passed"
    assert any(reason.startswith(f"RPO {catalog} ") for reason in record["verdict"]["reasons"]), record["verdict"]
    items = {item["what"]: item for item in record["action_items"] if item["what"] != "manifests"}  # unsigned
    assert list(items) == [f"RPO {catalog}"]
    assert items[f"RPO {catalog}"]["todo"].startswith("increase pg_dump frequency")


def test_rto_projected_to_a_large_second_database_is_no_go_though_the_first_is_small(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    entries = _entries(orders, catalog)
    entries[1]["production_size_gb"] = 2048  # the catalog is 2 TB in production; orders is as small as its dump
    world = _backed_up(shop, tmp_path, entries)
    done = _drill(tmp_path, shop, world["sections"])
    [record] = done.records()
    assert record["verdict"]["decision"] == "NO-GO"
    projected = next(m for m in record["measures"] if m["name"] == "RTO projected")
    assert not projected["met"]
    assert f"(2 databases: {orders} " in projected["detail"], projected["detail"]
    assert f"; {catalog} 2 TB ([[databases]] {catalog} production_size_gb))" in projected["detail"]
    assert any(reason.startswith("RTO projected ") for reason in record["verdict"]["reasons"]), record["verdict"]
    assert next(m for m in record["measures"] if m["name"] == "RTO")["met"]  # the small drill itself met it


def test_the_backup_policy_judges_each_databases_dumps_under_its_own_prefix(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    world = _backed_up(shop, tmp_path, _entries(orders, catalog)[:1])
    config = shop["target"].config.for_database(catalog)  # the catalog's cron stopped 8 hours ago
    pg = shop["pg"]
    stale = backup_postgres(pg.dsn(catalog), world["client"], world["bucket"], config.storage.logical_prefix,
                            pg_dump=pg.binaries.tool("pg_dump"), options=dump_options(config),
                            taken_at=datetime.now(UTC) - timedelta(hours=8))  # fmt: skip
    sections = {**world["sections"], "databases": _entries(orders, catalog)}
    done = run_drill(tmp_path, shop["target"], "dumped", feature="features/", timeout=300,
                     env={"CODEBLACK_SIGNING_KEY": ""}, args=("-m", "backup_policy"), **sections)  # fmt: skip
    [record] = done.records()
    cadence = "PostgreSQL is dumped with pg_dump at least every 6 hours"
    checks = {c["scenario"]: c for c in record["checks"] if c["scenario"].startswith(cadence)}
    assert checks[f"{cadence} (database {orders})"]["status"] == "passed", checks
    failed = checks[f"{cadence} (database {catalog})"]
    assert failed["status"] == "failed"
    assert stale.key in failed["message"], failed["message"]


def test_a_database_without_backups_fails_its_own_scenarios_and_the_verdict(
    tmp_path: Path, shop: dict[str, Any]
) -> None:
    orders, catalog = shop["orders"], shop["catalog"]
    world = _backed_up(shop, tmp_path, _entries(orders, catalog)[:1])  # the catalog's backup job never ran
    done = _drill(tmp_path, shop, {**world["sections"], "databases": _entries(orders, catalog)})
    [record] = done.records()
    assert record["verdict"]["decision"] == "NO-GO"
    statuses = _statuses(record)
    restores = "The newest logical backup restores into isolated staging"
    assert statuses[f"{restores} (database {orders})"] == "passed"
    assert statuses[f"{ROW_COUNTS} (database {orders})"] == "passed"
    failed = {c["scenario"]: c["message"] for c in record["checks"] if c["status"] == "failed"}
    assert failed[f"{restores} (database {catalog})"] == (
        f"no backups under s3://{world['bucket']}/postgres/logical/{catalog}/"
    ), failed
    cut_over = failed["Cut-over to production is decided only after staging verification"]
    assert cut_over.endswith(f"; RPO {catalog} was not measured"), cut_over
    assert any(f"(database {catalog})" in reason for reason in record["verdict"]["reasons"])
    assert not any(f"(database {orders})" in reason for reason in record["verdict"]["reasons"])
    assert record["database_rows"] == {orders: {"customers": 30, "orders": 120}}


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("[[databases]]\nname = 'orders'\n[[databases]]\nname = 'orders'\n",
         "[[databases]] name 'orders' is listed twice: each entry names one database"),
        ("databases = []\n", "[[databases]] is empty: list at least one database, or use [database]"),
        ("[database]\nname = 'orders'\n[[databases]]\nname = 'catalog'\n",
         "[database] and [[databases]] are both set: list every database in [[databases]] (the first is the one "
         "the app and the migrations use), or keep the single [database]"),
    ],
    ids=["duplicate-name", "empty-list", "both-sections"],
)  # fmt: skip
def test_a_bad_list_of_databases_stops_the_drill_in_one_line_naming_the_key(
    tmp_path: Path, listed: str, expected: str
) -> None:
    path = tmp_path / "drill.toml"
    path.write_text(_rooted(listed))
    done = subprocess.run([sys.executable, "-m", "pytest", "features/", "-p", "no:randomly", f"--drill-config={path}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 4, output[-2000:]  # pytest's usage error: nothing ran
    assert f"ERROR: {path}: {expected}" in output.splitlines(), output[-2000:]
    assert "Traceback" not in output


def _rooted(listed: str) -> str:
    """A file for a real target around ``listed`` (a root key such as ``databases = []`` comes first)."""
    target = "[target]\nname = 'shop'\nsandbox = false\n"
    return listed + target if listed.startswith("databases =") else target + listed
