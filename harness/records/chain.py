"""Drill records on disk as a hash chain, so an edited, removed or reordered record is detected.

Records live in ``reports/drills/`` as ``drill-<UTC>-<runid>.json`` with a Markdown twin; ``<UTC>`` is the moment
the record was appended (to the millisecond, under a lock). Each JSON carries
``previous_hash`` (the previous record's ``hash``) and its own ``hash`` over its canonical content; file names
sort by time, which is the chain's order. ``HEAD`` names the newest record and its hash, so removing the
newest record is noticed too. This is tamper-evident, not tamper-proof: whoever can rewrite every later record
and ``HEAD`` can forge history, which is why the records also travel with the Allure results.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.records.markdown import render_markdown
from harness.records.record import DrillRecord, content_hash
from harness.records.trend import TREND_SUFFIX, plot_trend
from harness.redact import redact

__all__ = ["HEAD_FILE", "ChainResult", "append_record", "load_chain", "record_stem", "verify_chain"]

HEAD_FILE = "HEAD"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 60.0


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


def record_stem(moment: datetime, run_id: str) -> str:
    """The file name (without extension) of a record appended at ``moment`` (UTC, to the millisecond)."""
    utc = moment.astimezone(UTC)
    return f"drill-{utc.strftime('%Y%m%dT%H%M%S')}.{utc.microsecond // 1000:03d}Z-{run_id}"


def _record_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("drill-*.json"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> tuple[DrillRecord, dict[str, Any]]:
    """The record and the document as stored (the hash is checked against the latter)."""
    raw = path.read_bytes()
    try:
        return DrillRecord.model_validate_json(raw), json.loads(raw)
    except ValidationError as exc:
        raise HarnessError(f"{path}: not a drill record: {exc.errors()[0]['msg']}") from None


def load_chain(directory: Path) -> list[DrillRecord]:
    """Every record in chain order (oldest first); an empty list when the directory holds none.

    Raises:
        HarnessError: a file is not a drill record.
    """
    return [_read(path)[0] for path in _record_files(directory)] if directory.is_dir() else []


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the directory's append lock, so two sessions finishing together cannot fork the chain."""
    with (directory / LOCK_FILE).open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"{directory / LOCK_FILE}: another session held the drill record lock for "
                        f"{LOCK_TIMEOUT_S:g} s; wait for it to finish and run the drill again"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_record(directory: Path, record: DrillRecord) -> tuple[DrillRecord, Path]:
    """Redact, link and seal a record, then write its JSON, its Markdown, its trend chart and ``HEAD``.

    The file name carries the moment of appending, taken under the directory's lock, so names sort in chain
    order even when drills overlap.

    Returns:
        The sealed record and the path of its JSON file (the chart is ``record.trend_image`` beside it).

    Raises:
        HarnessError: the chain is broken already (a new link on a broken chain would hide the damage), or the
            newest record is dated after now (a clock or copy problem the chain order cannot absorb).
    """
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        result = verify_chain(directory)
        if not result.ok:
            raise HarnessError(
                f"{result.problem}; refusing to append to a broken chain (restore the file or start a new directory)"
            )
        previous = load_chain(directory)
        stem = record_stem(datetime.now(UTC), record.run_id)
        newest = _record_files(directory)[-1:]
        if newest and f"{stem}.json" <= newest[0].name:
            raise HarnessError(f"{newest[0]}: dated after now ({stem}); check the clock before appending")
        clean = DrillRecord.model_validate_json(redact(record.model_dump_json()))
        linked = clean.model_copy(
            update={"trend_image": f"{stem}{TREND_SUFFIX}", "previous_hash": previous[-1].hash if previous else ""}
        )
        markdown = render_markdown(linked)
        sealed = linked.model_copy(update={"markdown_sha256": _sha256(markdown.encode())}).sealed()
        path = directory / f"{stem}.json"
        plot_trend([*previous, sealed], directory / sealed.trend_image)
        _write_atomic(path, sealed.model_dump_json(indent=2) + "\n")
        _write_atomic(path.with_suffix(".md"), markdown)
        _write_atomic(directory / HEAD_FILE, f"{path.name} {sealed.hash}\n")
    return sealed, path


def verify_chain(directory: Path) -> ChainResult:
    """Check every record's hash, every link and ``HEAD``; report the first record that does not fit."""
    files = _record_files(directory) if directory.is_dir() else []
    previous_hash = ""
    for index, path in enumerate(files):
        try:
            record, stored = _read(path)
        except HarnessError as exc:
            return ChainResult(index, str(exc))
        if content_hash(stored) != record.hash:
            return ChainResult(index, f"{path}: altered (its content no longer matches its hash)")
        if record.previous_hash != previous_hash:
            return ChainResult(
                index, f"{path}: the record before it was removed, altered or reordered (previous_hash does not match)"
            )
        markdown = path.with_suffix(".md")
        if record.markdown_sha256 and (
            not markdown.exists() or _sha256(markdown.read_bytes()) != record.markdown_sha256
        ):
            return ChainResult(index, f"{markdown}: altered or removed (its sha256 differs from its JSON record's)")
        previous_hash = record.hash
    head = directory / HEAD_FILE
    if head.exists():
        name, _, expected = head.read_text(encoding="utf-8").strip().partition(" ")
        if not files or files[-1].name != name or previous_hash != expected:
            return ChainResult(
                len(files), f"{directory / name}: the newest record was removed or replaced (HEAD names it)"
            )
    return ChainResult(len(files))
