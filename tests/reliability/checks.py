"""What every reliability test asserts about a failed run: one clear line, a non-zero exit, nothing left."""

from __future__ import annotations

import re
from typing import Any

from tests.features.drill_run import DrillRun, leftovers

#: pytest's marks of a traceback: a "Traceback (most recent call last)" or a "file.py:123: Error" location line.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\S+\.py:\d+: \w+", re.MULTILINE)


def assert_fails_in_one_line(done: DrillRun, scenario: str, expected: str) -> str:
    """The run failed, ``scenario`` failed with one line matching ``expected``, no traceback, nothing left."""
    assert done.returncode not in (0, None), done.output[-3000:]
    message = done.failures.get(scenario, "")
    assert re.search(expected, message), f"{scenario}: {message!r}\n{done.output[-3000:]}"
    assert "\n" not in message.strip(), message
    assert not TRACEBACK.search(done.output), done.output[-3000:]
    assert leftovers(done.run) == []
    return message


def assert_recorded(done: DrillRun, scenario: str, cause: str, phases: set[str]) -> dict[str, Any]:
    """The run wrote its drill record: NO-GO, ``scenario`` failed naming ``cause``, ``phases`` measured."""
    [record] = done.records()
    assert record["verdict"]["decision"] == "NO-GO"
    [check] = [c for c in record["checks"] if scenario.removeprefix("test_").replace("_", " ") in _slug(c["scenario"])]
    assert check["status"] == "failed", check
    assert cause in check["message"], check
    assert phases <= set(record["rto_phases"]), record["rto_phases"]
    return record


def _slug(scenario: str) -> str:
    """A scenario's title as pytest-bdd names its test (lower case, words only)."""
    return re.sub(r"[^a-z0-9]+", " ", scenario.lower()).strip()
