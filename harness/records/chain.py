"""Drill records on disk as a hash chain, so an edited, removed or reordered record is detected.

Records live in ``reports/drills/`` as ``drill-<UTC>-<runid>.json`` with a Markdown twin. Each JSON carries
``previous_hash`` (the previous record's ``hash``) and its own ``hash`` over its canonical content; file names
sort by time, which is the chain's order. ``HEAD`` names the newest record and its hash, so removing the
newest record is noticed too. This is tamper-evident, not tamper-proof: whoever can rewrite every later record
and ``HEAD`` can forge history, which is why the records also travel with the Allure results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.records.markdown import render_markdown
from harness.records.record import DrillRecord
from harness.records.trend import plot_trend
from harness.redact import redact

__all__ = ["HEAD_FILE", "ChainResult", "append_record", "load_chain", "record_stem", "verify_chain"]

HEAD_FILE = "HEAD"


@dataclass(frozen=True)
class ChainResult:
    """The outcome of a chain verification; ``problem`` is one line naming the first bad file."""

    records: int
    problem: str = ""

    @property
    def ok(self) -> bool:
        """True when every record is intact and in place."""
        return not self.problem

    def __str__(self) -> str:
        return f"drill record chain OK: {self.records} records" if self.ok else self.problem


def record_stem(record: DrillRecord) -> str:
    """The file name (without extension) of a record: its start time in UTC and its run id."""
    return f"drill-{record.started_at.strftime('%Y%m%dT%H%M%SZ')}-{record.run_id}"


def _record_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("drill-*.json"))


def _read(path: Path) -> DrillRecord:
    try:
        return DrillRecord.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise HarnessError(f"{path}: not a drill record: {exc.errors()[0]['msg']}") from None


def load_chain(directory: Path) -> list[DrillRecord]:
    """Every record in chain order (oldest first); an empty list when the directory holds none.

    Raises:
        HarnessError: a file is not a drill record.
    """
    return [_read(path) for path in _record_files(directory)] if directory.is_dir() else []


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def append_record(directory: Path, record: DrillRecord) -> tuple[DrillRecord, Path]:
    """Redact, link and seal a record, then write its JSON, its Markdown, its trend chart and ``HEAD``.

    Returns:
        The sealed record and the path of its JSON file (the chart is ``record.trend_image`` beside it).

    Raises:
        HarnessError: the chain is broken already (a new link on a broken chain would hide the damage).
    """
    directory.mkdir(parents=True, exist_ok=True)
    result = verify_chain(directory)
    if not result.ok:
        raise HarnessError(
            f"{result.problem}; refusing to append to a broken chain (restore the file or start a new directory)"
        )
    previous = load_chain(directory)
    stem = record_stem(record)
    clean = DrillRecord.model_validate_json(redact(record.model_dump_json()))
    sealed = clean.model_copy(update={"trend_image": f"{stem}-trend.png"}).sealed(previous[-1].hash if previous else "")
    path = directory / f"{stem}.json"
    plot_trend([*previous, sealed], directory / sealed.trend_image)
    _write_atomic(path, sealed.model_dump_json(indent=2) + "\n")
    _write_atomic(path.with_suffix(".md"), render_markdown(sealed))
    _write_atomic(directory / HEAD_FILE, f"{path.name} {sealed.hash}\n")
    return sealed, path


def verify_chain(directory: Path) -> ChainResult:
    """Check every record's hash, every link and ``HEAD``; report the first record that does not fit."""
    files = _record_files(directory) if directory.is_dir() else []
    previous_hash = ""
    for index, path in enumerate(files):
        try:
            record = _read(path)
        except HarnessError as exc:
            return ChainResult(index, str(exc))
        if record.compute_hash() != record.hash:
            return ChainResult(index, f"{path}: altered (its content no longer matches its hash)")
        if record.previous_hash != previous_hash:
            return ChainResult(
                index, f"{path}: the record before it was removed, altered or reordered (previous_hash does not match)"
            )
        markdown = path.with_suffix(".md")
        if markdown.exists() and markdown.read_text(encoding="utf-8") != render_markdown(record):
            return ChainResult(index, f"{markdown}: altered (differs from its JSON record)")
        previous_hash = record.hash
    head = directory / HEAD_FILE
    if head.exists():
        name, _, expected = head.read_text(encoding="utf-8").strip().partition(" ")
        if not files or files[-1].name != name or previous_hash != expected:
            return ChainResult(
                len(files), f"{directory / name}: the newest record was removed or replaced (HEAD names it)"
            )
    return ChainResult(len(files))
