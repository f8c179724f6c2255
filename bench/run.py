"""Benchmarks of the drill's cost, side by side with what it is measured against.

Run ``uv run python bench/run.py`` (about 100 MB and 1 GB dumps; ~15 minutes on 2 cores) or ``--smoke`` (tiny
sizes, proves the benchmark still works; CI runs it through tests/test_bench_smoke.py); ``--only migrations``
runs just the migration gate against pytest-alembic. Results go to
``bench/results/latest.json`` and ``latest.md``, with the machine's facts. Benchmarks are not tests: nothing
here asserts a timing; the targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.backup.postgres import backup_postgres, dump_options  # noqa: E402
from harness.config import DrillConfig, load_config  # noqa: E402
from harness.deployment import Deployment  # noqa: E402
from harness.measure.stopwatch import Stopwatch  # noqa: E402
from harness.policy.logical import check_dump_gaps, check_dump_retention, check_newest_dump  # noqa: E402
from harness.services.base import ManagedProcess, free_port, label_dir, remove_dir, run_tool, wait_until  # noqa: E402
from harness.services.npm import npm_tool  # noqa: E402
from harness.services.postgres import RESTORE_TUNED, PostgresServer  # noqa: E402
from harness.services.provider import Provider  # noqa: E402
from harness.services.s3 import LocalS3, MotoS3, S3Endpoint, S3Server  # noqa: E402
from harness.storage.catalogue import fetch_manifest, list_backups  # noqa: E402
from harness.storage.download import WORKERS, download_object  # noqa: E402
from sandbox.codeblack.revisions import alembic_config  # noqa: E402
from sandbox.staging_server import admin_dsn, existing_server  # noqa: E402
from sandbox.target import drill_env, toml_text, write_drill_toml  # noqa: E402
from sandbox.world import World  # noqa: E402

BUCKET = "bench-backups"
STAGING_ADMIN_ENV = "BENCH_STAGING_ADMIN_DSN"
S3_KEYS_ENV = ("BENCH_S3_ACCESS_KEY", "BENCH_S3_SECRET_KEY")  # the child restore's credentials of the stand-in
S3RVER_PACKAGE = "s3rver@3.7.1"
_COMPLETE_TIMEOUT_S = 900.0  # the backup's read timeout: s3rver's multipart completion copies the whole dump
S3RVER_CACHE = Path.home() / ".cache" / "codeblack-drills" / "s3rver"
PREFIX = "postgres/logical/"
MB = 1024 * 1024

# Rows of applications + orders per MB of compressed custom-format dump, measured once by calibrate().
_FILL = """
INSERT INTO applications (applicant_name, email, status, amount, created_at)
SELECT md5(g::text), md5((g * 7)::text) || '@example.com', 'approved', (g %% 9000) + 0.5,
       now() - make_interval(secs => g %% 1209600)
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g;
INSERT INTO orders (application_id, amount, currency, status, created_at)
SELECT a.id, a.amount, 'EUR', 'paid', a.created_at FROM applications a WHERE a.id BETWEEN %(start)s AND %(stop)s;
"""


def machine_facts(provider: Provider) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    assert provider.binaries is not None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "postgresql": provider.binaries.version, "kernel": platform.release(),
            "when": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip


def _fill(server: PostgresServer, dbname: str, start: int, stop: int) -> None:
    with server.connect(dbname) as conn:
        for statement in filter(str.strip, _FILL.split(";")):
            conn.execute(statement, {"start": start, "stop": stop})  # type: ignore[arg-type]


def make_production(provider: Provider, s3: S3Server, config: DrillConfig, target_mb: float) -> dict[str, Any]:
    """A production database of the sandbox schema whose compressed dump is about ``target_mb``.

    It is dumped to S3 by the harness's own backup code, the same path production cron runs.
    """
    server = provider.postgres("bench-production", settings=RESTORE_TUNED)  # disposable too: filled faster
    try:
        dbname = "codeblack"
        server.create_database(dbname)
        command.upgrade(alembic_config(server.sqlalchemy_url(dbname)), "head")
        probe_rows = 20_000
        _fill(server, dbname, 1, probe_rows)
        probe = run_tool([server.binaries.tool("pg_dump"), "-Fc", "-Z", "6", "-d", dbname],
                         what="calibration dump", timeout=600, env=server.tool_env())  # fmt: skip
        rows = max(probe_rows, int(probe_rows * target_mb * MB / len(probe.stdout)))
        step = 500_000
        for start in range(probe_rows + 1, rows + 1, step):
            _fill(server, dbname, start, min(rows, start + step - 1))
        # s3rver answers CompleteMultipartUpload only once it has copied every part into the object, silent
        # meanwhile (S3 keeps the connection alive), and at 5 GB on a busy machine that outlasts the client's 30 s
        # read timeout: the retry then meets the parts the first attempt is removing (InternalError).
        client = s3.endpoint.client(timeout=_COMPLETE_TIMEOUT_S / 3)
        client.create_bucket(Bucket=BUCKET)
        started = time.monotonic()
        manifest = backup_postgres(server.dsn(dbname), client, BUCKET, PREFIX, pg_dump=server.binaries.tool("pg_dump"),
                                   options=dump_options(config))  # fmt: skip
        return {"rows": rows * 2, "dump_mb": round(manifest.size / MB, 1), "key": manifest.key,
                "backup_seconds": round(time.monotonic() - started, 2)}  # fmt: skip
    finally:
        server.stop()


def _deployment(config: DrillConfig, endpoint: S3Endpoint) -> Deployment:
    return Deployment(name="bench", config=config, storage=endpoint, redis_url=None, database_host="",
                      verify_key="", provider="moto (local)")  # fmt: skip


class _PgRestoreSeconds(logging.Handler):
    """pg_restore's own seconds in the harness, from its progress lines (every pass: schemas, the rest, grants).

    What is left of the harness's restore is the drill's own cost, beside what bare pg_restore does alike.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        done = re.match(r"pg_restore of .*: done, .* in ([\d.]+) s ", record.getMessage())
        if done:
            self.seconds += float(done[1])


@dataclasses.dataclass
class S3rver(LocalS3):
    """s3rver (npm, "Fake S3 server for node") on a free loopback port: the bench's S3 stand-in for large dumps.

    moto reads a whole object into memory for every GET, ranged or not, so a 5 GB dump in four download ranges
    needs about 30 GiB; s3rver keeps objects as files and streams GETs (ranged ones with a read stream of that
    range) and multipart completions from disk. It speaks what the backup and restore paths ask of storage
    (PutObject, multipart upload, ListObjectsV2, HeadObject, GetObject with Range), not versioning, lifecycle or
    Object Lock, so it serves the benchmark only; the tests keep moto. It accepts its own fixed key pair alone.
    """

    @property
    def endpoint(self) -> S3Endpoint:
        """The endpoint with s3rver's fixed credentials."""
        return S3Endpoint(f"http://127.0.0.1:{self.port}", "us-east-1", SecretStr("S3RVER"), SecretStr("S3RVER"),
                          "s3rver (local)")  # fmt: skip

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[S3rver]:
        """Install s3rver (pinned, under the user's cache) if missing, start it, stop it and remove its files."""
        cli = npm_tool(S3RVER_PACKAGE, "s3rver", S3RVER_CACHE, purpose="the s3rver S3 stand-in (--s3 s3rver)")
        workdir = label_dir("s3rver")
        (workdir / "data").mkdir()
        port = free_port()
        node = shutil.which("node") or "node"
        process = ManagedProcess(name="s3rver", log_path=workdir / "s3rver.log",
                                 argv=[node, str(cli.resolve()), "-d", str(workdir / "data"), "-a", "127.0.0.1",
                                       "-p", str(port), "-s"])  # fmt: skip
        server = cls(port, workdir, process)
        try:
            process.start()
            wait_until(server._ready, timeout=30, what=f"s3rver on port {port}", interval=0.1)
            yield server
        finally:
            server.stop()

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory so far (``VmHWM``): flat if it streams, the object's size if not."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        return 0.0


S3_SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[S3Server]]] = {
    "moto": MotoS3.start,
    "s3rver": S3rver.start,
}


def child_restore(args: argparse.Namespace) -> None:
    """Run in a child process so its peak RSS is the harness's alone: download, provision, restore."""
    from harness.restore.staging import restore_logical

    pg_restore = _PgRestoreSeconds()
    logging.getLogger("harness.progress").addHandler(pg_restore)
    logging.getLogger("harness.progress").setLevel(logging.INFO)

    config = load_config(ROOT / "drill.toml").with_changes(storage={"backup_bucket": BUCKET, "logical_prefix": PREFIX},
                                                           services={"provider": args.provider})  # fmt: skip
    if args.staging == "server":
        config = config.with_changes(staging={"provider": "server", "admin_dsn_env": STAGING_ADMIN_ENV})
    access, secret = (SecretStr(os.environ[name]) for name in S3_KEYS_ENV)
    endpoint = S3Endpoint(args.endpoint, "us-east-1", access, secret)
    deployment = _deployment(config, endpoint)
    provider = Provider.from_settings(config.services)
    client = endpoint.client()
    catalogue = list_backups(client, BUCKET, PREFIX)
    dump = catalogue.newest()
    manifest = fetch_manifest(client, BUCKET, dump)
    watch = Stopwatch()
    started = time.monotonic()
    staging = restore_logical(provider, deployment, config, dump, manifest, watch=watch, name="bench-staging")
    seconds = time.monotonic() - started
    staging.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 2), "phases": watch.rounded_phases(), "peak_rss_mb": round(peak, 1),
                      "jobs": staging.jobs, "pg_restore_seconds": round(pg_restore.seconds, 1)}))  # fmt: skip


def harness_restore(s3: S3Endpoint, provider: str = "local", staging_admin_dsn: str = "") -> dict[str, Any]:
    """The harness's restore phase (download, provision, restore) in a child process, with ``provider``.

    ``staging_admin_dsn``: restore into that existing server (``[staging] provider = "server"``) instead.
    """
    staging = ["--staging", "server"] if staging_admin_dsn else []
    keys = dict(zip(S3_KEYS_ENV, (s3.access_key.get_secret_value(), s3.secret_key.get_secret_value()), strict=True))
    env = {**os.environ, **keys} | ({STAGING_ADMIN_ENV: staging_admin_dsn} if staging_admin_dsn else {})
    out = subprocess.run([sys.executable, __file__, "child-restore", "--endpoint", s3.url or "", "--provider", provider,
                          *staging], cwd=ROOT, capture_output=True, text=True, timeout=7200, check=True,
                         env=env)  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bare_restore(
    provider: Provider, s3: S3Server, key: str, *, jobs: int = 2, settings: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A baseline: ``pg_restore --jobs N`` of the same dump, already on local disk, into a fresh server.

    With ``settings=None`` the server keeps PostgreSQL's defaults (today's comparison); with the harness's own
    :data:`~harness.services.postgres.RESTORE_TUNED` it is the honest one: the same server the drill restores
    into, so what is left between the two is the drill's own cost (download, provisioning, checks, roles).
    """
    work = label_dir("bench-dump")
    try:
        local = download_object(s3.client(), BUCKET, key, work).path
        server = provider.postgres("bench-bare", settings=settings)
        try:
            server.create_database("codeblack")
            started = time.monotonic()
            argv = [server.binaries.tool("pg_restore"), "--jobs", str(jobs), "--no-owner", "--no-privileges",
                    "--dbname", "codeblack", local]  # fmt: skip
            run_tool(argv, what="bare pg_restore", timeout=7200, env=server.tool_env())
            return {"seconds": round(time.monotonic() - started, 2), "jobs": jobs}
        finally:
            server.stop()
    finally:
        remove_dir(work)


def provisioning(provider: Provider, runs: int = 7) -> dict[str, Any]:
    """Time to a ready throwaway PostgreSQL (from the cached template)."""
    provider.postgres("bench-warm").stop()
    times = []
    for index in range(runs):
        started = time.monotonic()
        server = provider.postgres(f"bench-provision{index}")
        times.append(time.monotonic() - started)
        server.stop()
    return {"median_seconds": round(statistics.median(times), 3), "max_seconds": round(max(times), 3), "runs": runs}


def listing(s3: S3Server, config: DrillConfig, count: int) -> dict[str, Any]:
    """Listing and the logical-dump policy checks over ``count`` backup objects."""
    client = s3.client()
    bucket = "bench-listing"
    client.create_bucket(Bucket=bucket)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    step = timedelta(days=config.objectives.retention_days) / count  # a dense history inside the retention window
    keys = [f"{PREFIX}codeblack-{(now - step * i).strftime('%Y%m%dT%H%M%SZ')}-{i:05d}.dump" for i in range(count)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
    started = time.monotonic()
    pages = list(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX))
    requests = time.monotonic() - started  # the floor: the LIST requests and botocore's parsing alone
    started = time.monotonic()
    catalogue = list_backups(client, bucket, PREFIX)
    listed = time.monotonic() - started
    check_newest_dump(catalogue, config.objectives, now)
    check_dump_gaps(catalogue, config.objectives, now)
    check_dump_retention(catalogue, config.objectives, now)
    total = time.monotonic() - started
    return {"objects": len(catalogue.objects), "pages": len(pages), "requests_seconds": round(requests, 2),
            "list_seconds": round(listed, 2), "list_and_checks_seconds": round(total, 2)}  # fmt: skip


def _pytest(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One ``pytest`` subprocess, timed from the outside (wall) and by pytest itself (the session alone)."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "-p", "no:randomly"], cwd=cwd,
                            capture_output=True, text=True, timeout=1800, check=False,
                            env={**os.environ, **(env or {})})  # fmt: skip
    seconds = time.monotonic() - started
    # The last line, without the "====" pytest draws around it when the live log is on.
    summary = (
        result.stdout.strip().splitlines()[-1].strip("= ") if result.stdout.strip() else f"exit {result.returncode}"
    )
    session = re.search(r" in ([0-9.]+)s", summary)
    # The sandbox world is production's stand-in, not the drill: its build time is reported apart.
    world = re.search(r"world: built in ([0-9.]+) s", result.stdout)
    return {"seconds": round(seconds, 1), "session_seconds": float(session.group(1)) if session else None,
            "exit_code": result.returncode, "summary": summary,
            "world_build_seconds": float(world.group(1)) if world else None}  # fmt: skip


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time (a failed run wins: it must not be hidden), with every run's seconds."""
    failed = [run for run in runs if run.get("exit_code")]
    chosen = failed[0] if failed else sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
    return {**chosen, "runs_seconds": [run["seconds"] for run in runs]}


def _pytest_features(
    *selection: str, config: Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``pytest <selection>`` as an operator or CI runs it, reports in a temp dir; with the drill's phases.

    Without ``config`` it runs the embedded default (the project's drill.toml, its reports moved to the temp dir).
    """
    reports = label_dir("bench-reports")
    if config is None:
        config = reports / "drill.toml"
        config.write_text(_drill_toml_in(reports))
    run = _pytest([*selection, "--drill-config", str(config), "--alluredir", str(reports / "allure-results")], ROOT,
                  env)  # fmt: skip
    drills = tomllib.loads(config.read_text()).get("reports", {}).get("dir", str(reports))
    records = sorted((Path(drills) / "drills").glob("*.json"))
    phases = json.loads(records[-1].read_text()).get("rto_phases", {}) if records else {}
    remove_dir(reports)
    return {**run, "phases": phases}


def _drill_toml_in(reports: Path) -> str:
    """The project's drill.toml for a copy in ``reports`` that writes its reports there.

    The copy lives elsewhere, so the paths the file gives relative to itself (``script_location``, ``ini``)
    become absolute.
    """
    sections = tomllib.loads((ROOT / "drill.toml").read_text())
    project = load_config(ROOT / "drill.toml")
    migrations = sections.setdefault("migrations", {})
    migrations["script_location"] = str(project.resolve_path(project.migrations.script_location))
    if "ini" in migrations:
        migrations["ini"] = str(project.resolve_path(migrations["ini"]))
    sections["reports"] = {"dir": str(reports)}
    return toml_text(sections)


def whole_drill() -> dict[str, Any]:
    """The monthly drill on the sandbox, end to end, as an operator runs it; phases from its drill record."""
    return _pytest_features("features/", "-m", "monthly")


# pytest-alembic as its users set it up: the two fixtures it asks for, in a conftest.py, each test on a
# fresh database of a throwaway PostgreSQL provisioned the way the gate's own fixtures provision theirs.
_ALEMBIC_CONFTEST = """
import uuid

import pytest
from sqlalchemy import create_engine, pool

from harness.config import load_config
from harness.services.provider import Provider
from sandbox.codeblack.revisions import alembic_config as sandbox_alembic_config


@pytest.fixture(scope="session")
def server():
    started = Provider.from_settings(load_config({config!r}).services).postgres("bench-pytest-alembic")
    yield started
    started.stop()


@pytest.fixture
def alembic_config():
    return sandbox_alembic_config()


@pytest.fixture
def alembic_engine(server):
    # An engine, as pytest-alembic's own fixtures give one.
    name = f"a_{{uuid.uuid4().hex[:12]}}"
    server.create_database(name)
    engine = create_engine(server.sqlalchemy_url(name), poolclass=pool.NullPool)
    yield engine
    engine.dispose()
    server.drop_database(name)
"""

# The four built-in tests, imported from the package's public pytest_alembic.tests into a test module.
# Not --test-alembic, nor a tests/conftest.py it binds to: its collector (0.13.1) fails under pytest 9 with
# "'TestCollector' object has no attribute '_nodeid'".
_ALEMBIC_TESTS = """
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
"""

# The scenarios of the migration gate that, like pytest-alembic, need no restored copy of production:
# tracked files and model drift, one linear history at the expected head, reversibility by catalogue snapshot.
_GATE_WITHOUT_STAGING = "tracked_by_a_migration_file or linear_chain or reversible"


def migration_gate(full: bool, repeat: int = 5) -> dict[str, Any]:
    """The migration gate beside pytest-alembic's built-in tests, on the same migrations, each as pytest runs.

    Each figure is the median of ``repeat`` runs, taken in turns (one of each per round) so that a slow spell
    of the machine weighs on all of them alike. The like-for-like figure is the gate's scenarios that need no
    restored copy (the same four questions, with the expected head and catalogue identity on top). ``full``
    adds the whole ``predeploy`` gate as CI runs it before a deploy: against a production that already exists
    (here a sandbox world built beforehand and described as a real target), so it downloads and restores the
    newest backup, checks checksums, checkpoint and lint, and rehearses the deploy with the app on the copy.
    The embedded default, which also builds its world inside the run, is reported beside it once.
    """
    work = label_dir("bench-pytest-alembic")
    (work / "conftest.py").write_text(_ALEMBIC_CONFTEST.format(config=str(ROOT / "drill.toml")))
    (work / "test_migrations.py").write_text(_ALEMBIC_TESTS)
    alembic_args = ["test_migrations.py", "-p", "no:cacheprovider", "--rootdir", str(work)]
    whole_gate = ("features/test_migration_gates.py", "-m", "predeploy")
    narrow = (*whole_gate, "-k", _GATE_WITHOUT_STAGING)
    runs: dict[str, list[dict[str, Any]]] = {"pytest_alembic": [], "gate": [], "full_gate": []}
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(remove_dir, work)
        production = cleanup.enter_context(_production_up()) if full else None
        for index in range(repeat):
            runs["pytest_alembic"].append(_pytest(alembic_args, work, {"PYTHONPATH": str(ROOT)}))
            runs["gate"].append(_pytest_features(*narrow))
            if production is not None:
                toml, deployment = production
                env = drill_env(deployment, f"bench{index}")
                runs["full_gate"].append(_pytest_features(*whole_gate, config=toml, env=env))
    baseline, gate = _median(runs["pytest_alembic"]), _median(runs["gate"])
    results = {"pytest_alembic": baseline, "gate": gate, **_ratios(gate, baseline)}
    if full:
        whole = _median(runs["full_gate"])
        results["full_gate"] = {**whole, **_ratios(whole, baseline)}
        results["embedded_default"] = _pytest_features(*whole_gate)
    return results


@contextlib.contextmanager
def _production_up() -> Iterator[tuple[Path, Deployment]]:
    """A sandbox world, built first and described as a real target: its drill.toml and its deployment."""
    config = load_config(ROOT / "drill.toml")
    world = World.build(Provider.from_settings(config.services), config)
    work = label_dir("bench-gate")
    try:
        migrations = {"script_location": str(ROOT / "sandbox" / "migrations")}
        yield write_drill_toml(work, world.deployment, migrations=migrations), world.deployment
    finally:
        world.stop()
        remove_dir(work)


def _ratios(run: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    """Wall-clock ratio, and the ratio of pytest's own session times (without interpreter and plugin start-up).

    Both are ``None`` when either run failed: a failing run stops early and its time compares nothing.
    """
    sessions = run["session_seconds"], baseline["session_seconds"]
    if run["exit_code"] or baseline["exit_code"] or not all(sessions):
        return {"ratio": None, "session_ratio": None}
    return {
        "ratio": round(run["seconds"] / baseline["seconds"], 2),
        "session_ratio": round(sessions[0] / sessions[1], 2),
    }


def _restore_markdown(results: dict[str, Any]) -> list[str]:
    lines = ["| dump | rows | harness restore (s) | bare pg_restore -j2, default settings (s) | ratio (target ≤ 1.0) "
             "| bare pg_restore -jN, staging's settings (s) | ratio (target ≤ 1.1) | peak RSS (MB) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for size in results["restore"]:
        tuned = size.get("bare_tuned", {})
        lines.append(f"| {size['dump_mb']} MB | {size['rows']} | {size['harness']['seconds']} "
                     f"({', '.join(f'{k} {v}' for k, v in size['harness']['phases'].items())}) | "
                     f"{size['bare']['seconds']} | {size['ratio']} | {tuned.get('seconds', '—')} "
                     f"(-j{tuned.get('jobs', '?')}) | {size.get('tuned_ratio', '—')} | "
                     f"{size['harness']['peak_rss_mb']} |")  # fmt: skip
    for size in results["restore"]:
        names = ("harness", "docker", "bare", "bare_tuned")
        runs = {name: size[name]["runs_seconds"] for name in names if name in size}
        lines.append(f"\n{size['dump_mb']} MB: medians of {len(runs['harness'])} runs each, taken in turns; every "
                     f"run's seconds: {runs}. Fastest against fastest, staging's settings: "
                     f"{size.get('tuned_ratio_best', '—')}.")  # fmt: skip
    for size in results["restore"]:
        if "own_seconds" in size["harness"]:
            own = size["harness"]["own_seconds"]
            lines.append(f"\n{size['dump_mb']} MB: the harness's own pg_restore took "
                         f"{size['harness']['pg_restore_seconds']} s in its median run; the drill's own cost beside it "
                         f"(download and provisioning overlapped, roles, the row counts), per run: {own}, median "
                         f"{round(statistics.median(own), 2)} s.")  # fmt: skip
    for size in results["restore"]:
        if "docker" in size:
            phases = ", ".join(f"{k} {v}" for k, v in size["docker"]["phases"].items())
            lines.append(f"\nWith the docker provider ({size['dump_mb']} MB dump, staging PostgreSQL and its "
                         f"pg_restore in the PostgreSQL image of the dump's major): {size['docker']['seconds']} s "
                         f"({phases}), ratio {size['docker_ratio']} against the bare pg_restore into default "
                         f"settings, {size.get('docker_tuned_ratio', '—')} against staging's.")  # fmt: skip
    rss = [size["harness"]["peak_rss_mb"] for size in results["restore"]]
    if len(rss) > 1:
        lines.append(f"\nPeak RSS spread across sizes: {round((max(rss) / min(rss) - 1) * 100, 1)} % "
                     "(target: within 10 %, under 200 MB).")  # fmt: skip
    prov = results["provisioning"]
    lines.append(f"\nProvisioning a ready throwaway PostgreSQL: median {prov['median_seconds']} s, "
                 f"max {prov['max_seconds']} s over {prov['runs']} runs (target < 1 s).")  # fmt: skip
    listing_result = results["listing"]
    lines.append(f"\nListing and logical-dump policy checks over {listing_result['objects']} objects: "
                 f"{listing_result['list_and_checks_seconds']} s (target < 5 s); the catalogue's listing "
                 f"{listing_result['list_seconds']} s against {listing_result.get('requests_seconds', '?')} s "
                 "for the bare LIST requests.")  # fmt: skip
    return lines


def _migrations_markdown(gate: dict[str, Any]) -> list[str]:
    baseline = gate["pytest_alembic"]
    lines = [f"\nMigration gate without a restored copy (tracked, no drift, linear at the expected head, reversible): "
             f"{gate['gate']['seconds']} s, {gate['gate']['summary']}; pytest-alembic's built-in tests (single head, "
             f"upgrade, model matches DDL, up/down consistency): {baseline['seconds']} s, {baseline['summary']}; "
             f"ratio {gate['ratio']} (target ≤ 1.5; {gate['session_ratio']} inside pytest's session)."]  # fmt: skip
    if "full_gate" in gate:
        full, default = gate["full_gate"], gate["embedded_default"]
        lines.append(f"\nThe whole `predeploy` migration gate against a production that is already up (restore of "
                     f"the newest backup, checksums, checkpoint, lint, deploy rehearsal with the app on the copy): "
                     f"{full['seconds']} s, {full['summary']}: {full['ratio']}x pytest-alembic (target ≤ 1.5; "
                     f"{full['session_ratio']} inside pytest's session). On the embedded default, which first builds "
                     f"its world ({default['world_build_seconds']} s: production's stand-in, with 56 dumps), the same "
                     f"gate takes {default['seconds']} s.")  # fmt: skip
    runs = {name: gate[name]["runs_seconds"] for name in ("pytest_alembic", "gate", "full_gate") if name in gate}
    lines.append(f"\nMedians of {len(runs['gate'])} runs each, taken in turns; every run's wall seconds: {runs}.")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """The results as the table bench/README.md points at."""
    facts = results["machine"]
    lines = [f"# Benchmark results ({facts['when']})", "",
             f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['memory_gib']} GiB; PostgreSQL "
             f"{facts['postgresql']}; Python {facts['python']}.", ""]  # fmt: skip
    if "restore" in results:
        lines += _restore_markdown(results)
    if "scale" in results:
        lines += _scale_markdown(results)
    if "migrations" in results:
        lines += _migrations_markdown(results["migrations"])
    drill = results.get("drill")
    if drill:
        lines.append(f"\nWhole monthly drill on the sandbox (`pytest features/ -m monthly`): {drill['seconds']} s, "
                     f"{drill['summary']}; phases: {drill['phases']} (target < 60 s).")  # fmt: skip
    return "\n".join(lines) + "\n"


def _ratio(run: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    return round(run["seconds"] / baseline["seconds"], 2) if baseline["seconds"] else None


def restore_rounds(
    provider: Provider, s3: S3Server, key: str, repeat: int, docker: bool = False
) -> dict[str, dict[str, Any]]:
    """The harness's restore and both bare ones, each ``repeat`` times in turns; the median run of each.

    In turns (one of each per round), so that a slow spell of a shared machine weighs on all of them alike.
    """
    runs: dict[str, list[dict[str, Any]]] = {"harness": [], "bare": [], "bare_tuned": []} | (
        {"docker": []} if docker else {}
    )
    for _ in range(repeat):
        harness = harness_restore(s3.endpoint)
        runs["harness"].append(harness)
        if docker:
            runs["docker"].append(harness_restore(s3.endpoint, "docker"))
        runs["bare"].append(bare_restore(provider, s3, key))
        runs["bare_tuned"].append(bare_restore(provider, s3, key, jobs=harness["jobs"], settings=RESTORE_TUNED))
    medians = {name: _median(each) for name, each in runs.items()}
    # The drill's own seconds per run: the harness's restore less its pg_restore (progress lines, 0.1 s steps).
    own = [round(run["seconds"] - run["pg_restore_seconds"], 2) for run in runs["harness"]]
    medians["harness"]["own_seconds"] = own
    return medians


def restore_and_storage(
    provider: Provider, config: DrillConfig, sizes: list[float], smoke: bool, docker: bool = False, repeat: int = 3,
    s3_server: str = "moto",
) -> dict[str, Any]:  # fmt: skip
    """Restore against the bare baselines per dump size (``docker``: with containers too), provisioning, listing.

    ``s3_server`` names the S3 stand-in the dumps are backed up to and restored from (:data:`S3_SERVERS`).
    """
    results: dict[str, Any] = {"restore": [], "s3": s3_server}
    for size in sizes:
        with S3_SERVERS[s3_server]() as s3:
            production = make_production(provider, s3, config, size)
            medians = restore_rounds(provider, s3, production["key"], repeat, docker)
        harness, bare, tuned = medians["harness"], medians["bare"], medians["bare_tuned"]
        ratio, tuned_ratio = _ratio(harness, bare), _ratio(harness, tuned)
        # The fastest runs beside the medians: on a machine shared with other work, the least disturbed run of
        # each is the closest to what it costs by itself.
        best = round(min(harness["runs_seconds"]) / min(tuned["runs_seconds"]), 2)
        results["restore"].append({**production, **medians, "ratio": ratio, "tuned_ratio": tuned_ratio,
                                   "tuned_ratio_best": best})  # fmt: skip
        print(f"{production['dump_mb']} MB dump: harness {harness['seconds']} s, bare {bare['seconds']} s "
              f"(ratio {ratio}), bare with staging's settings {tuned['seconds']} s (ratio {tuned_ratio}), "
              f"peak RSS {harness['peak_rss_mb']} MB", flush=True)  # fmt: skip
        if "docker" in medians:
            in_docker = medians["docker"]
            docker_ratio, docker_tuned = _ratio(in_docker, bare), _ratio(in_docker, tuned)
            results["restore"][-1] |= {"docker_ratio": docker_ratio, "docker_tuned_ratio": docker_tuned}
            print(f"  with the docker provider: {in_docker['seconds']} s, ratio {docker_ratio} "
                  f"(same settings: {docker_tuned})", flush=True)  # fmt: skip
    results["provisioning"] = provisioning(provider)
    with MotoS3.start() as s3:
        results["listing"] = listing(s3, config, 500 if smoke else 10_000)
    return results


def _moto_peak_bytes(dump_bytes: float) -> float:
    """What moto holds at once while the harness downloads a dump of ``dump_bytes``.

    moto reads the whole object into memory for every GET, ranged or not, and copies the range out of it: one
    copy per download worker, and one for the header's ranged read.
    """
    return dump_bytes * (WORKERS + 1) * 1.25


def _available_bytes() -> int:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def _existing_server() -> Iterator[str]:
    """A second local PostgreSQL of its own ``initdb`` and default settings, as the tests' existing staging server.

    Yields its admin DSN, as an operator exports it for ``[staging] admin_dsn_env``.
    """
    server = existing_server("bench-existing")
    try:
        yield admin_dsn(server)
    finally:
        server.stop()


def scale(
    provider: Provider, config: DrillConfig, sizes: list[float], out: Path, s3_server: str = "moto"
) -> dict[str, Any]:
    """The harness's restore of each dump size into the local throwaway and into an existing server; peak RSS.

    Sizes run in the order given, and the results are written to ``out`` after each, so a run stopped at a
    deadline keeps every size it finished. With moto, a size whose dump moto could not serve within this
    machine's free memory is skipped with that reason (nothing here may push a shared machine out of memory);
    s3rver streams from disk (``s3_server = "s3rver"``, results in ``scale-s3rver.*``). The load averages before
    and after each size are recorded beside its figures: the machine is shared.
    """
    name = "scale" if s3_server == "moto" else f"scale-{s3_server}"
    results: dict[str, Any] = {"machine": machine_facts(provider), "s3": s3_server, "scale": []}
    for size in sizes:
        need, free = _moto_peak_bytes(size * MB), _available_bytes()
        if s3_server == "moto" and need > free * 0.8:
            results["scale"].append({"target_mb": size, "skipped": (
                f"not measured: moto (the local S3 stand-in) reads the whole object into memory for every ranged GET "
                f"({WORKERS} download ranges and the header), about {need / 1024**3:.1f} GiB at once; "
                f"{free / 1024**3:.1f} GiB of memory were available")})  # fmt: skip
            print(results["scale"][-1]["skipped"], flush=True)
            _write(out, name, results)
            continue
        load_before = _load()
        with S3_SERVERS[s3_server]() as s3, _existing_server() as dsn:
            production = make_production(provider, s3, config, size)
            local = harness_restore(s3.endpoint)
            existing = harness_restore(s3.endpoint, staging_admin_dsn=dsn)
            tuned = bare_restore(provider, s3, production["key"], jobs=local["jobs"], settings=RESTORE_TUNED)
            s3_peak = s3.peak_rss_mb() if isinstance(s3, S3rver) else None
        results["scale"].append({**production, "local": local, "existing": existing, "bare_tuned": tuned,
                                 "tuned_ratio": _ratio(local, tuned), "load_before": load_before,
                                 "load_after": _load(), "s3_peak_rss_mb": s3_peak})  # fmt: skip
        print(
            f"{production['dump_mb']} MB dump: local throwaway {local['seconds']} s, existing server "
            f"{existing['seconds']} s, peak RSS {local['peak_rss_mb']} / {existing['peak_rss_mb']} MB",
            flush=True,
        )
        _write(out, name, results)
    return results


def _load() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded: how busy the shared machine was."""
    return [round(load, 2) for load in os.getloadavg()]


def _scale_markdown(results: dict[str, Any]) -> list[str]:
    lines = ["| dump | rows | into the local throwaway (s) | into an existing server, default settings (s) "
             "| peak RSS, throwaway / existing (MB) | bare pg_restore -jN, staging's settings (s) | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    measured = [size for size in results["scale"] if "skipped" not in size]
    for size in measured:
        phases = {
            name: ", ".join(f"{k} {v}" for k, v in size[name]["phases"].items()) for name in ("local", "existing")
        }
        lines.append(f"| {size['dump_mb']} MB | {size['rows']} | {size['local']['seconds']} ({phases['local']}) | "
                     f"{size['existing']['seconds']} ({phases['existing']}) | {size['local']['peak_rss_mb']} / "
                     f"{size['existing']['peak_rss_mb']} | {size['bare_tuned']['seconds']} | "
                     f"{size['tuned_ratio']} |")  # fmt: skip
    lines += [f"\n{size['target_mb']:g} MB: {size['skipped']}." for size in results["scale"] if "skipped" in size]
    lines += [f"\n{size['dump_mb']} MB: load average (1, 5, 15 min) {size['load_before']} before, "
              f"{size['load_after']} after; S3 stand-in {results.get('s3', 'moto')}"
              + (f", its peak RSS {size['s3_peak_rss_mb']} MB" if size.get("s3_peak_rss_mb") else "") + "."
              for size in measured if "load_before" in size]  # fmt: skip
    rss = [size[name]["peak_rss_mb"] for size in measured for name in ("local", "existing")]
    if len(rss) > 1:
        lines.append(f"\nPeak RSS spread across sizes and targets: {round((max(rss) / min(rss) - 1) * 100, 1)} % "
                     "(target: flat, within 10 %).")  # fmt: skip
    return lines


def _write(out: Path, name: str, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(render_markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "child-restore"])
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="100,1000", help="dump sizes in MB (default: 100,1000)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no whole drill: proves the bench works")
    parser.add_argument("--no-drill", action="store_true", help="skip the end-to-end monthly drill")
    parser.add_argument("--only", choices=["migrations", "restore", "scale"],
                        help="run one part alone (results in <out>/<part>.*); scale: --sizes into the local "
                             "throwaway and an existing server, with peak RSS")  # fmt: skip
    parser.add_argument(
        "--docker",
        action="store_true",
        help="restore with the docker provider too (a Docker engine and scripts/images postgres:18)",
    )
    parser.add_argument("--repeat", type=int, default=3,
                        help="restore runs per size, taken in turns; the median is reported (default: 3)")  # fmt: skip
    parser.add_argument("--s3", choices=sorted(S3_SERVERS), default="moto",
                        help="the S3 stand-in of --only restore/scale (default: moto; s3rver streams from disk, "
                             "for dumps of GBs: installed with npm on first use)")  # fmt: skip
    parser.add_argument("--provider", default="local", help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--staging", default="throwaway", help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.mode == "child-restore":
        child_restore(args)
        return
    config = load_config(ROOT / "drill.toml")
    provider = Provider.from_settings(config.services)
    sizes = [2.0] if args.smoke else [float(size) for size in args.sizes.split(",")]
    results: dict[str, Any] = {"machine": machine_facts(provider)}
    if args.only == "scale":
        scale(provider, config, sizes, args.out, args.s3)
        return
    if args.only in (None, "restore"):
        repeat = 1 if args.smoke else args.repeat
        results.update(restore_and_storage(provider, config, sizes, args.smoke, args.docker, repeat, args.s3))
    if args.only in (None, "migrations"):
        results["migrations"] = migration_gate(full=not args.smoke, repeat=1 if args.smoke else 5)
        print(*_migrations_markdown(results["migrations"]), flush=True)
    if not (args.smoke or args.no_drill or args.only):
        results["drill"] = whole_drill()
    _write(args.out, args.only or ("smoke" if args.smoke else "latest"), results)
    print(render_markdown(results))


if __name__ == "__main__":
    main()
