"""Attach evidence to the current Allure step, always redacted (secrets never reach the report)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import allure

from harness.redact import redact


def attach_json(name: str, value: Any) -> None:
    """Attach a JSON document (dataclasses and pydantic models should be dumped by the caller)."""
    allure.attach(redact(json.dumps(value, indent=2, default=str)), name=name,
                  attachment_type=allure.attachment_type.JSON)  # fmt: skip


def attach_text(name: str, text: str) -> None:
    """Attach plain text (logs, SQL, lint output)."""
    allure.attach(redact(text), name=name, attachment_type=allure.attachment_type.TEXT)


def attach_table(name: str, header: list[str], rows: list[list[Any]]) -> None:
    """Attach a small table as CSV, which the Allure report renders as a table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    allure.attach(redact(buffer.getvalue()), name=name, attachment_type=allure.attachment_type.CSV)
