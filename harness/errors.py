"""Two kinds of failure, kept apart so a report can tell them apart.

A ``HarnessError`` means the drill could not do its job (bad configuration, a server that would not start,
storage that cannot be read): the operator must fix the setup. A ``CheckFailed`` means the drill did its job
and the target broke a rule of the plan: it is an ``AssertionError`` so pytest reports it as a test failure,
and its message names the object, the rule and the measured number.
"""

from __future__ import annotations

__all__ = ["CheckFailed", "ConfigError", "HarnessError", "ServiceError", "UnsafeTargetError"]


class HarnessError(Exception):
    """The harness could not do what it was asked; the message says what to fix."""


class ConfigError(HarnessError):
    """The drill configuration is malformed, incomplete or unsafe; the message names the file and key."""


class ServiceError(HarnessError):
    """A throwaway server could not be started, reached or stopped."""


class UnsafeTargetError(HarnessError):
    """The harness was asked to write to a server it did not create; it refuses."""


class CheckFailed(AssertionError):
    """A rule of the plan is broken; the message names the object, the rule and the number."""
