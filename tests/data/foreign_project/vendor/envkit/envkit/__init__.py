"""envkit: the shelf project's own small dependency (a local package, not on PyPI)."""

from __future__ import annotations

import os

__all__ = ["environment"]


def environment(prefix: str) -> dict[str, str]:
    """The variables named ``<prefix>_*``, keys lower-cased without the prefix."""
    return {name[len(prefix) + 1 :].lower(): value for name, value in os.environ.items() if name.startswith(prefix + "_")}
