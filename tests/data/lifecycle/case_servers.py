"""Run in a child pytest by tests/harness/test_lifecycle.py: starts every kind of throwaway server, then
passes, fails, or waits to be interrupted, as the environment variable LIFECYCLE_CASE says."""

import os
import time
from pathlib import Path


def test_servers(pg_server, pg_database, redis_server, s3_server):
    Path(os.environ["LIFECYCLE_READY"]).write_text("ready")
    case = os.environ["LIFECYCLE_CASE"]
    if case == "fail":
        raise AssertionError("this run fails on purpose")
    if case == "wait":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
