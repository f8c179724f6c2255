"""Throwaway servers leave nothing behind: after a passing, a failing and an interrupted run."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.config import Interrupts
from harness.config import PROJECT_ROOT
from harness.errors import ConfigError
from harness.services.base import LABEL, RUN_ENV, free_port
from harness.services.sweeper import check_run_id, find_leftovers, sweep

CASE = PROJECT_ROOT / "tests" / "data" / "lifecycle" / "case_servers.py"


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp dir of the test's own, for this process and its children, open to the servers' accounts as /tmp is.

    Every drill on this machine (and the other test worker's) sweeps the dead runs of /tmp when it starts, and
    could take a dead run's leftovers before this test's own sweep looks. A sweep knows a run by the owner files
    in its temp dir, so a run whose owner files are here is known to this test's sweeps only.
    """
    own = Path(tempfile.mkdtemp(prefix="sweep-tests-"))
    own.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(own))
    monkeypatch.setattr(tempfile, "tempdir", str(own))
    yield own
    shutil.rmtree(own, ignore_errors=True)


def _start(case: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    run = uuid.uuid4().hex[:10]
    ready = tmp_path / "ready"
    env = {**os.environ, RUN_ENV: run, "LIFECYCLE_CASE": case, "LIFECYCLE_READY": str(ready)}
    argv = [sys.executable, "-m", "pytest", str(CASE), "-q", "-p", "no:randomly", "-o", "python_files=case_*.py",
            "--alluredir", str(tmp_path / "allure"), "-o", "log_cli=false"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return process, run, ready


def _wait_ready(process: subprocess.Popen[bytes], ready: Path) -> None:
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else "exited"
        assert time.monotonic() < deadline, "the child run never started its servers"
        time.sleep(0.1)


@pytest.mark.parametrize(("case", "expected_exit"), [("pass", 0), ("fail", 1)])
def test_a_finished_run_leaves_nothing(case: str, expected_exit: int, tmp_path: Path) -> None:
    process, run, ready = _start(case, tmp_path)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == expected_exit, output
    assert ready.exists()
    leftovers = find_leftovers(run)
    assert not leftovers, leftovers.describe()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_nothing(signum: int, tmp_path: Path) -> None:
    process, run, ready = _start("wait", tmp_path)
    _wait_ready(process, ready)
    assert find_leftovers(run).processes, "the child should be running servers now"
    process.send_signal(signum)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode != 0, output
    leftovers = find_leftovers(run)
    assert not leftovers, leftovers.describe()


def test_a_killed_run_is_swept_by_the_next(tmp_path: Path, own_tmp: Path) -> None:
    process, run, ready = _start("wait", tmp_path)
    _wait_ready(process, ready)
    process.kill()
    process.wait(10)
    # The parent-death signal takes the servers down; the directories stay until a sweep.
    deadline = time.monotonic() + 10
    while find_leftovers(run).processes and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not find_leftovers(run).processes, find_leftovers(run).describe()
    assert find_leftovers(run).directories
    swept = sweep()
    assert swept.directories
    assert not find_leftovers(run), find_leftovers(run).describe()


MAKES_A_THROWAWAY = """
import sys, time
from harness.services.base import label_dir
print(label_dir("cli-throwaway"), flush=True)
time.sleep(120)
"""


def test_any_process_that_made_a_throwaway_is_swept_after_a_kill(own_tmp: Path) -> None:
    """Not only a drill: a command or the bench making throwaways claims its run, so a kill -9 is swept."""
    run = f"cli{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen([sys.executable, "-c", MAKES_A_THROWAWAY], cwd=PROJECT_ROOT, text=True,
                               stdout=subprocess.PIPE, env={**os.environ, RUN_ENV: run})  # fmt: skip
    assert process.stdout is not None
    made = Path(process.stdout.readline().strip())  # the directory exists once its path is printed
    assert made.is_dir()
    process.kill()
    process.wait(10)
    sweep()
    assert not made.exists()
    assert not find_leftovers(run)


@pytest.mark.parametrize("run", ["nightly-42", "../etc", "a b", "", "x" * 65, "run.1"])
def test_a_run_id_that_is_not_a_safe_token_is_refused(run: str) -> None:
    with pytest.raises(ConfigError) as refusal:
        check_run_id(run)
    assert str(refusal.value) == (
        f"{RUN_ENV}={run!r}: a run id may hold only letters, digits and underscores (1 to 64), because it names "
        "the run's temp directories and owner files; choose one such as 'nightly_42' or unset it"
    )
    assert check_run_id("Nightly_42") == "Nightly_42"


def test_dead_runs_of_any_id_are_swept_and_live_ones_kept(own_tmp: Path) -> None:
    # A dead non-hex run, a dead legacy run "<x>" and a live legacy run "<x>-b" (dashes predate the check):
    # the dead "<x>" must not take the live "<x>-b"'s directory, whose name starts with "<x>-" too.
    tag = uuid.uuid4().hex[:6]
    dead_pid = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    tmp = Path(tempfile.gettempdir())
    runs = {"dead_Run_" + tag: dead_pid, "zz" + tag: dead_pid, f"zz{tag}-b": str(os.getpid())}
    owners = [tmp / f"{LABEL}-{run}-{pid}.owner" for run, pid in runs.items()]
    directories = {run: Path(tempfile.mkdtemp(prefix=f"{LABEL}-{run}-pg-staging-")) for run in runs}
    try:
        for owner in owners:
            owner.write_text(owner.stem.rpartition("-")[2])
        swept = sweep()
        assert {directories["dead_Run_" + tag], directories["zz" + tag]} <= set(swept.directories)
        assert [owner.exists() for owner in owners] == [False, False, True]
        assert [directory.exists() for directory in directories.values()] == [False, False, True]
    finally:
        for owner in owners:
            owner.unlink(missing_ok=True)
        for directory in directories.values():
            shutil.rmtree(directory, ignore_errors=True)


def test_a_user_other_than_root_leaves_another_users_dead_run_alone_and_names_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The sweep of an ordinary user meeting a dead root drill's leftovers: in the sticky temp directory they are
    # not its to remove (it ended in a PermissionError). Here the test's own files play the other user's, the
    # sweep's user id being another.
    run = "theirs_" + uuid.uuid4().hex[:6]
    dead_pid = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    owner = Path(tempfile.gettempdir()) / f"{LABEL}-{run}-{dead_pid}.owner"
    owner.write_text(dead_pid)
    directory = Path(tempfile.mkdtemp(prefix=f"{LABEL}-{run}-pg-staging-"))
    try:
        monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
        with caplog.at_level(logging.WARNING, logger="harness.services"):
            listed, swept = find_leftovers(stale_only=True), sweep()
        assert directory not in listed.directories + swept.directories
        assert owner.exists()
        assert directory.exists()
        (left,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("left the leftovers")]
        assert run in left.split(" in ")[0], left
        assert left.endswith("another user's, which only that user or root may remove (sudo codeblack-drills sweep)")
    finally:
        owner.unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_server_standing_in_for_production_is_refused_by_the_guard(provider) -> None:  # type: ignore[no-untyped-def]
    from harness.errors import UnsafeTargetError
    from harness.services.postgres import ensure_throwaway

    production = provider.postgres("stand-in", throwaway=False)
    try:
        with pytest.raises(UnsafeTargetError, match=r"refusing to write to PostgreSQL at 127\.0\.0\.1:\d+"):
            ensure_throwaway(production.dsn())
    finally:
        production.stop()


def _shared_memory_of(uid: int) -> list[str]:
    return [line.split()[1] for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
            if int(line.split()[7]) == uid]  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="servers have accounts of their own only under root (CI runs as root)")
def test_a_killed_servers_shared_memory_goes_with_its_account(provider) -> None:  # type: ignore[no-untyped-def]
    server = provider.postgres("killed")
    try:
        uid = server.account.user.uid
        server.kill()
        left = _shared_memory_of(uid)
        assert left, "PostgreSQL's interlock segment should outlive a kill -9 (the state this test needs)"
    finally:
        server.stop()
    assert not set(left) & set(_shared_memory_of(uid))


def test_an_interrupt_python_swallowed_is_raised_again_at_the_next_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler's KeyboardInterrupt lost in a finaliser ("Exception ignored") must still stop the drill."""
    import signal

    from fixtures import config as plugin

    interrupts = plugin.Interrupts()
    monkeypatch.setattr(plugin, "_interrupts", interrupts)
    plugin.pytest_bdd_before_step()  # nothing received: the drill goes on
    interrupts.received.append(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match=f"signal {signal.SIGTERM.value}"):
        plugin.pytest_bdd_before_step()


# ``uv run`` without a terminal forwards a SIGINT the process group already delivered, so a cancelled CI job's
# drill gets two at once. The signals below are real (sent to this process); only the "later" case reads a
# given clock instead of waiting a second.
@pytest.fixture
def handler() -> Iterator[Interrupts]:
    """An :class:`Interrupts` handling this process's SIGINT for the test (pytest's own handler put back)."""
    installed = Interrupts()
    previous = signal.signal(signal.SIGINT, installed)
    try:
        yield installed
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_repeated_at_once_is_one_interrupt_and_the_cleanup_it_started_runs_to_its_end(
    handler: Interrupts,
) -> None:
    cleaned: list[str] = []

    def drill() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the process group's copy
            signal.sigtimedwait([], 0)  # a moment for the handler to run
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # uv's forwarded copy, while the first one unwinds
            cleaned.append("server stopped")

    with pytest.raises(KeyboardInterrupt, match="signal 2"):
        drill()
    assert cleaned == ["server stopped"]
    assert handler.received == [signal.SIGINT, signal.SIGINT]


def test_a_signal_after_the_first_has_had_its_time_is_the_operator_insisting_and_raised() -> None:
    times = iter([100.0, 100.0 + Interrupts.SAME_S])
    interrupts = Interrupts(clock=lambda: next(times))
    with pytest.raises(KeyboardInterrupt):
        interrupts(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        interrupts(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt, match="signal 2"):
        interrupts.again_if_swallowed()


def test_free_port_never_hands_the_same_port_to_two_servers_of_one_run() -> None:
    """Servers started side by side (staging PostgreSQL and Redis) are each handed a port they bind a moment later.

    The kernel picks a port at random each time, so among a run's picks some repeat (a birthday draw from ~14,000:
    2,000 picks all but surely hold one), and the second server to bind a repeated port would fail to start.
    """
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports), sorted(port for port in set(ports) if ports.count(port) > 1)
