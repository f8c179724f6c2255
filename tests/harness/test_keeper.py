"""A keeper runs a start-up job in the background and its servers still die with a killed harness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import psutil
import pytest

from harness.config import PROJECT_ROOT
from harness.services.base import RUN_ENV, remove_dir
from harness.services.keeper import Keeper, keeps_children
from harness.services.sweeper import find_leftovers


def test_a_keeper_hands_over_the_jobs_value() -> None:
    keeper = Keeper(lambda: 42, name="value")
    assert keeper.result() == 42
    assert keeper.done()
    keeper.release()


def test_a_keeper_raises_the_jobs_error_where_the_result_is_asked_for() -> None:
    def job() -> int:
        raise ValueError("no dump under postgres/logical/")

    keeper = Keeper(job, name="error")
    with pytest.raises(ValueError, match="no dump under postgres/logical/"):
        keeper.result()
    keeper.release()


def test_discarding_stops_what_the_job_made_and_nothing_for_a_failed_or_unfinished_job() -> None:
    stopped: list[str] = []
    assert Keeper(lambda: "staging", name="made").discard(stopped.append) is True

    def failing() -> str:
        raise ValueError("no dump")

    assert Keeper(failing, name="failed").discard(stopped.append) is True
    slow = Keeper(lambda: time.sleep(0.5) or "late", name="slow")
    assert slow.discard(stopped.append, timeout=0.1) is False
    assert stopped == ["staging"]


def test_children_keep_their_parent_death_signal_only_on_threads_that_outlive_them() -> None:
    seen: dict[str, bool] = {}
    worker = threading.Thread(target=lambda: seen.update(worker=keeps_children()))
    worker.start()
    worker.join()
    keeper = Keeper(keeps_children, name="flag")
    assert (keeps_children(), seen["worker"], keeper.result()) == (True, False, True)
    keeper.release()


_CHILD = textwrap.dedent(
    """
    import time
    from harness.services.keeper import Keeper
    from harness.services.postgres import LocalPostgres

    keeper = Keeper(lambda: LocalPostgres.create("kept"), name="kept")
    print(keeper.result().process.pid, flush=True)
    time.sleep(120)
    """
)


def test_servers_a_keeper_started_die_with_a_killed_harness() -> None:
    run = uuid.uuid4().hex[:10]
    child = subprocess.Popen([sys.executable, "-c", _CHILD], cwd=PROJECT_ROOT, env={**os.environ, RUN_ENV: run},
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    postmaster: psutil.Process | None = None
    try:
        assert child.stdout is not None
        postmaster = psutil.Process(int(child.stdout.readline()))
        assert postmaster.is_running()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 10
        while _alive(postmaster) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(postmaster), "the server outlived the killed harness"
    finally:
        child.kill()
        child.wait(10)
        if postmaster is not None and _alive(postmaster):  # the failure above: do not leave it running
            postmaster.kill()
        left = find_leftovers(run)
        for directory in left.directories:  # a bare script registers no owner for the sweeper: removed here
            remove_dir(directory)
    assert not left.processes, left.describe()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
