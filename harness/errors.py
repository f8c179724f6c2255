"""Two kinds of failure, kept apart so a report can tell them apart.

A ``HarnessError`` means the drill could not do its job (bad configuration, a server that would not start,
storage that cannot be read): the operator must fix the setup. A ``CheckFailed`` means the drill did its job
and the target broke a rule of the plan: it is an ``AssertionError`` so pytest reports it as a test failure,
and its message names the object, the rule and the measured number.
"""

from __future__ import annotations

import re

__all__ = ["CheckFailed", "ConfigError", "HarnessError", "ServiceError", "UnsafeTargetError", "printable"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    r"""``text`` with every control character escaped (``\n``, ``\x1b``): one line, no terminal escape.

    Messages quote what the bucket and the target wrote (pg_restore's and Redis's output, key and table
    names, a project's exception text); a line break there forges a line of the drill's output ("CUT-OVER:
    GO"), and an escape sequence clears the operator's screen or writes their clipboard.
    """
    return _CONTROL.sub(lambda found: repr(found[0])[1:-1], text)


def _printable_args(args: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(printable(arg) if isinstance(arg, str) else arg for arg in args)


class HarnessError(Exception):
    """The harness could not do what it was asked; the message (one line, made printable) says what to fix."""

    def __init__(self, *args: object) -> None:
        super().__init__(*_printable_args(args))


class ConfigError(HarnessError):
    """The drill configuration is malformed, incomplete or unsafe; the message names the file and key."""


class ServiceError(HarnessError):
    """A throwaway server could not be started, reached or stopped."""


class UnsafeTargetError(HarnessError):
    """The harness was asked to write to a server it did not create; it refuses."""


class CheckFailed(AssertionError):
    """A rule of the plan is broken; the message (one line, made printable) names the object, rule and number."""

    def __init__(self, *args: object) -> None:
        super().__init__(*_printable_args(args))
