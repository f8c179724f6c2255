"""What a policy check saw, returned on success so the report can show the auditor the numbers behind a pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Evidence"]


@dataclass(frozen=True)
class Evidence:
    """One rule's evidence: the subject checked, the measured value against the limit, and the raw rows.

    Attributes:
        rule: the rule in the plan's words, e.g. ``newest logical backup age``.
        subject: what was checked: an object key, a bucket, a Redis server.
        measured: the number (or setting) observed.
        limit: the objective it was compared with.
        unit: the unit of ``measured`` and ``limit`` (``h``, ``days``, ``count``...), empty for settings.
        details: the rows behind the number: the timeline, the gaps, the bucket policy document.
    """

    rule: str
    subject: str
    measured: Any
    limit: Any
    unit: str = ""
    details: list[dict[str, Any]] | dict[str, Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The evidence as a JSON-ready document (datetimes are rendered by the attachment writer)."""
        return asdict(self)
