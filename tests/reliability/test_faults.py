"""Faults during a drill: each fails within its deadline naming the cause, writes the drill record, leaks nothing.

Each fault is injected into a real drill run as an operator runs it (``pytest features/test_restore_drill.py``
in a subprocess against the sandbox world): the staging PostgreSQL is SIGKILLed while pg_restore runs, the app
crashes at start or its health/deep hangs, object storage throttles or fails behind a real HTTP proxy, and the
download directory is a 64 KiB tmpfs. Every run carries planted secrets (storage keys, the signing key) that
must not appear in its output (with live logs), its JUnit report, its Allure results or its drill record; a
failing backup must not echo the database password of its DSN. Sensitive config values planted in the app are
checked by the config gates' own leak check (``tests/features/test_config_safety_broken.py``).

Covered elsewhere: pg_restore's own failure and the killed server at the library level
(``tests/harness/test_restore.py``), an app that answers unhealthy (``test_restore_drill_broken.py``), a full
disk at the library level (``tests/harness/test_download.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from harness.services.base import LABEL, RUN_ENV
from harness.storage.catalogue import list_backups
from harness.storage.download import download_object
from sandbox.breakage import bulky_newest
from sandbox.target import ENV, drill_env, write_drill_toml
from sandbox.world import World
from tests.features.drill_run import DrillRun, run_drill
from tests.ports import closed_port
from tests.reliability.checks import assert_fails_in_one_line, assert_recorded
from tests.reliability.faulty_s3 import faulty_s3

pytestmark = pytest.mark.slow

RESTORE = "test_the_newest_logical_backup_restores_into_isolated_staging"
HEALTH = "test_the_application_starts_against_staging_and_its_deep_health_is_healthy"
DUMP = r"postgres/logical/codeblack-\d{8}T\d{6}Z\.dump"
RUNS: list[tuple[DrillRun, Path]] = []  # every faulty run of this module, for the secrets check at its end


def _app(module: str) -> list[str]:
    return ["{python}", "-m", "uvicorn", f"tests.broken_backends.{module}:create_app", "--factory", "--host",
            "127.0.0.1", "--port", "{port}", "--timeout-graceful-shutdown", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def planted() -> dict[str, str]:
    """Storage credentials only these runs use (moto accepts any), to be searched for afterwards."""
    return {ENV["access"]: f"AKIAPLANTED{uuid.uuid4().hex[:12].upper()}",
            ENV["secret"]: f"planted-s3-secret-{uuid.uuid4().hex}"}  # fmt: skip


def _faulty_run(tmp_path: Path, world: World, select: str, planted: dict[str, str], **kwargs: object) -> DrillRun:
    target = kwargs.pop("target", world.deployment)
    done = run_drill(tmp_path, target, select, env=planted, args=["-o", "log_cli=true"], **kwargs)  # type: ignore[arg-type]
    RUNS.append((done, tmp_path))
    return done


def _signal(proc: psutil.Process, sig: int) -> bool:
    """Send ``sig`` to ``proc``; false when it has already exited."""
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        return False
    return True


def test_staging_killed_in_the_middle_of_pg_restore(
    tmp_path: Path, sandbox_world: World, planted: dict[str, str]
) -> None:
    bulky = sandbox_world.variant("bulky", bulky_newest(400_000))
    killed: list[int] = []

    def kill_staging_when_restoring(run: str, child: subprocess.Popen[str]) -> None:
        """Once pg_restore runs, hold it (SIGSTOP: it cannot finish meanwhile), kill staging, then let it go on."""
        label = f"cluster_name={LABEL}-{run}-staging"
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            restoring = [
                proc for proc in psutil.process_iter(["name", "cmdline", "environ"])
                if proc.info["name"] == "pg_restore" and "--dbname" in (proc.info["cmdline"] or [])
                and (proc.info["environ"] or {}).get(RUN_ENV) == run
            ]  # fmt: skip
            if restoring:
                held = [proc for proc in restoring if _signal(proc, signal.SIGSTOP)]
                for server in psutil.process_iter(["cmdline"]):
                    if label in (server.info["cmdline"] or []):
                        os.killpg(server.pid, signal.SIGKILL)
                        killed.append(server.pid)
                for proc in held:
                    _signal(proc, signal.SIGCONT)
                return
            time.sleep(0.02)

    done = _faulty_run(tmp_path, sandbox_world, "isolated_staging", planted, target=bulky,
                       during=kill_staging_when_restoring)  # fmt: skip
    assert killed, "pg_restore finished before the fault could be injected"
    assert_fails_in_one_line(
        done, RESTORE, rf"HarnessError: staging PostgreSQL staging died during pg_restore of {DUMP}"
    )
    assert_recorded(done, RESTORE, "died during pg_restore", {"download", "provision", "restore"})


def test_the_app_crashing_at_start(tmp_path: Path, sandbox_world: World, planted: dict[str, str]) -> None:
    done = _faulty_run(tmp_path, sandbox_world, "deep_health", planted, app={"command": _app("crash_at_start")})
    message = assert_fails_in_one_line(
        done,
        HEALTH,
        r"ServiceError: app staging exited with code 3 during start: fatal: "
        r"cannot load the payment provider's certificate",
    )
    assert "AWS_SECRET_ACCESS_KEY=***," in message  # the crash printed it; the drill quotes it scrubbed
    assert_recorded(done, HEALTH, "exited with code 3 during start", {"download", "restore", "app start"})


def test_health_deep_hanging(tmp_path: Path, sandbox_world: World, planted: dict[str, str]) -> None:
    done = _faulty_run(
        tmp_path,
        sandbox_world,
        "deep_health",
        planted,
        # The default startup deadline (30 s): the hang is seen only once the app listens, and uvicorn's start
        # alone took 4-8 s on a busy 2-core machine (with 4 s the drill failed "never answered" instead).
        app={"command": _app("hanging_health"), "request_timeout_s": 2},
    )
    assert_fails_in_one_line(
        done,
        HEALTH,
        r"CheckFailed: GET http://127\.0\.0\.1:\d+/api/v1/system/health/deep hangs: "
        r"no answer within 2 s \(app\.request_timeout_s\); not healthy within 30 s",
    )
    assert_recorded(done, HEALTH, "hangs", {"app start"})
    # Only a hang is caught here: the drill ends at its 30 s deadline, a drill waiting on the hung endpoint would
    # run until run_drill stops it at 300 s.
    assert done.seconds < 150, done.seconds


def test_throttling_and_server_errors_are_retried_with_backoff(sandbox_world: World, tmp_path: Path) -> None:
    storage, endpoint = sandbox_world.config.storage, sandbox_world.s3.endpoint
    with faulty_s3(endpoint.url or "", failures=3, status=503) as proxy:
        client = type(endpoint)(proxy.url, endpoint.region, endpoint.access_key, endpoint.secret_key).client()
        newest = list_backups(client, storage.backup_bucket, storage.logical_prefix).newest()
        assert (proxy.failed, proxy.requests) == (3, 4)  # three SlowDowns, then the listing went through
    with faulty_s3(endpoint.url or "", failures=2, status=500) as proxy:
        client = type(endpoint)(proxy.url, endpoint.region, endpoint.access_key, endpoint.secret_key).client()
        got = download_object(client, storage.backup_bucket, newest.key, tmp_path)
        assert (got.size, proxy.failed) == (newest.size, 2)


def test_object_storage_failing_every_request(tmp_path: Path, sandbox_world: World, planted: dict[str, str]) -> None:
    with faulty_s3(sandbox_world.s3.endpoint.url or "", failures=None, status=503) as proxy:
        done = _faulty_run(tmp_path, sandbox_world, "isolated_staging", planted, storage={"endpoint_url": proxy.url})
    bucket = sandbox_world.deployment.backup_bucket
    assert_fails_in_one_line(
        done,
        RESTORE,
        rf"HarnessError: s3://{bucket}/postgres/logical/: object storage at "
        rf"{proxy.url} answered SlowDown \(HTTP 503\) 6 times: Please reduce your request rate\.$",
    )
    # Bounded: the PostgreSQL and the Redis listings (restored side by side), each the first try and
    # max_attempts=5 retries of S3Endpoint.client.
    assert proxy.requests == 12
    assert_recorded(done, RESTORE, "answered SlowDown", set())


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 64 KiB tmpfs: a real ENOSPC from the kernel when a dump is downloaded into it."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                             text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount refused'}); needs root")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=False)


def test_the_download_disk_filling_up(tmp_path: Path, sandbox_world: World, planted: dict[str, str],
                                      small_disk: Path) -> None:  # fmt: skip
    done = _faulty_run(tmp_path / "run", sandbox_world, "isolated_staging", planted,
                       restore={"work_dir": str(small_disk)})  # fmt: skip
    assert_fails_in_one_line(done, RESTORE, rf"HarnessError: no space left in {small_disk}/{LABEL}-\w+-dump-\w+ while "
                             rf"downloading {DUMP} \(disk full\): it needs \d+ bytes, \d+ are free; ")  # fmt: skip
    assert_recorded(done, RESTORE, "no space left", {"download"})
    assert list(small_disk.iterdir()) == []


def test_no_planted_secret_leaks_from_any_faulty_run(planted: dict[str, str], sandbox_world: World) -> None:
    assert len(RUNS) >= 4, "runs of the fault tests above (run the module, not this test alone)"
    secrets = [*planted.values(), *(s.get_secret_value() for s in sandbox_world.deployment.app_secrets.values())]
    for done, directory in RUNS:
        files = [path for path in directory.rglob("*") if path.is_file() and path.name != "drill.toml"]
        assert any(path.match("*/drills/*.json") for path in files), f"{directory}: no drill record"
        for where, text in [("terminal output", done.output)] + [(str(p), p.read_bytes().decode(errors="replace"))
                                                                  for p in files]:  # fmt: skip
            leaked = [secret[:6] + "…" for secret in secrets if secret in text]
            assert not leaked, f"{where}: {leaked}"


def test_a_database_password_is_not_echoed_by_a_failing_backup(tmp_path: Path, sandbox_world: World) -> None:
    password = f"planted-db-password-{uuid.uuid4().hex}"
    config = write_drill_toml(tmp_path, sandbox_world.deployment)
    program = Path(sys.executable).parent / "codeblack-drills"
    with closed_port() as port:
        env = drill_env(sandbox_world.deployment, f"rel{uuid.uuid4().hex[:7]}",
                        {"DATABASE_URL": f"postgresql://backup:{password}@127.0.0.1:{port}/codeblack"})  # fmt: skip
        result = subprocess.run([program, "--config", config, "backup", "postgres"], env=env, capture_output=True,
                                text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: cannot connect to the database to back up: "), result.stderr
    assert password not in result.stdout + result.stderr
