"""Waivers: a gate bypassed on purpose, only by an entry in ``drill.toml`` naming who approved it and why.

A waiver (``[[waivers]]``: rule, subject, approved_by, reason; the config refuses one without a reason) excuses
exactly one rule for exactly one subject, and the gate reports every waiver it used. The rules:

* ``destructive-checkpoint``: subject is a revision; its destructive operations need no fresh checkpoint.
* ``reversible``: subject is a revision; its downgrade is not required to restore the schema.
* ``expected-head``: subject is the head found; a head other than ``expected_head`` passes.
* any squawk rule name (``ban-drop-column``...): subject is a revision; that finding does not block.

Tracked files and drift cannot be waived: a migration that never runs or a model no migration builds has no
safe "on purpose".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from harness.config import Waiver

__all__ = ["DESTRUCTIVE", "EXPECTED_HEAD", "NO_WAIVERS", "REVERSIBLE", "Waivers"]

DESTRUCTIVE = "destructive-checkpoint"
REVERSIBLE = "reversible"
EXPECTED_HEAD = "expected-head"

T = TypeVar("T")


@dataclass(frozen=True)
class Waivers:
    """The waivers of the drill configuration, looked up by rule and subject."""

    entries: tuple[Waiver, ...] = ()

    @classmethod
    def of(cls, entries: Sequence[Waiver]) -> Waivers:
        """Wrap ``config.waivers``."""
        return cls(tuple(entries))

    def find(self, rule: str, subject: str) -> Waiver | None:
        """The waiver of ``rule`` for ``subject``, if the file has one."""
        return next((w for w in self.entries if w.rule == rule and w.subject == subject), None)

    def split(self, rule: str, items: Iterable[T], subject: Callable[[T], str]) -> tuple[list[T], list[Waiver]]:
        """Keep the items no waiver of ``rule`` excuses; return them with the waivers that were used."""
        kept: list[T] = []
        used: list[Waiver] = []
        for item in items:
            waiver = self.find(rule, subject(item))
            if waiver is None:
                kept.append(item)
            elif waiver not in used:
                used.append(waiver)
        return kept, used

    HEADER: ClassVar[list[str]] = ["rule", "subject", "approved by", "reason"]

    @staticmethod
    def evidence(used: Sequence[Waiver]) -> list[list[str]]:
        """Rows for the report: rule, subject, who approved it and why."""
        return [[w.rule, w.subject, w.approved_by, w.reason] for w in used]


#: The default of every check: nothing is waived.
NO_WAIVERS = Waivers()
