"""Drill records on disk as a hash chain, so an edited, removed or reordered record is detected.

Records live in ``reports/drills/`` as ``drill-<UTC>-<runid>.json`` with a Markdown twin; ``<UTC>`` is the moment
the record was appended (to the millisecond, under a lock). Each JSON carries
``previous_hash`` (the previous record's ``hash``) and its own ``hash`` over its canonical content; file names
sort by time, which is the chain's order. ``HEAD`` names the newest record and its hash, so removing the
newest record is noticed too. This is tamper-evident, not tamper-proof: whoever can rewrite every later record
and ``HEAD`` can forge history with the harness's own functions. Two things close that gap: each record's hash
is signed with an Ed25519 key held only in the environment (a re-sealed record carries no valid signature), and
each record is copied to write-once storage (:mod:`harness.records.store`) that the local chain is compared with,
so a record deleted here together with a rewritten ``HEAD`` is still named.
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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from harness.errors import HarnessError
from harness.records.markdown import render_markdown
from harness.records.record import DrillRecord, content_hash
from harness.records.trend import TREND_SUFFIX, plot_trend
from harness.redact import redact
from harness.storage.signing import ManifestSigner, signature_valid

__all__ = [
    "ALLURE_SUFFIX",
    "HEAD_FILE",
    "VERDICT_CASE",
    "ChainResult",
    "RecordKey",
    "append_record",
    "load_chain",
    "record_files",
    "record_stem",
    "results_digest",
    "verify_chain",
]

HEAD_FILE = "HEAD"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 60.0
ALLURE_SUFFIX = "-allure.sha256"
"""What the list of a record's Allure results (``sha256  path`` per line) is named after its stem."""


@dataclass(frozen=True)
class RecordKey:
    """The public key the records must be signed by (``[reports] verify_key``), its id, and whose records it signs.

    One records directory may hold the drills of several targets (a rehearsal on the sandbox, then the real
    deployment), each signed with its own key or not at all: ``target`` names the target whose records this key
    must have signed (empty: every record's).
    """

    key: Ed25519PublicKey
    key_id: str
    target: str = ""

    def covers(self, record: DrillRecord) -> bool:
        """Whether ``record`` is one this key must have signed."""
        return not self.target or record.target == self.target


@dataclass(frozen=True)
class ChainResult:
    """The outcome of a chain verification; ``problem`` is one line naming the first bad file."""

    records: int
    problem: str = ""
    warnings: tuple[str, ...] = ()

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


def record_files(directory: Path) -> list[Path]:
    """Every record's JSON in chain order, with the files it covers (Markdown, chart, Allure list) after it."""
    files: list[Path] = []
    for path in sorted(directory.glob("drill-*.json")):
        stem = path.stem
        twins = [path.with_suffix(".md"), directory / f"{stem}{TREND_SUFFIX}", directory / f"{stem}{ALLURE_SUFFIX}"]
        files += [path, *(twin for twin in twins if twin.exists())]
    return files


def _record_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("drill-*.json"))


def results_digest(results: Path) -> str:
    """The ``sha256  path`` list of every file under an Allure results directory, sorted by path."""
    files = sorted(path for path in results.rglob("*") if path.is_file())
    return "".join(f"{_sha256(path.read_bytes())}  {path.relative_to(results).as_posix()}\n" for path in files)


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


def append_record(
    directory: Path, record: DrillRecord, *, signer: ManifestSigner | None = None, results: Path | None = None
) -> tuple[DrillRecord, Path]:
    """Redact, link, seal and sign a record, then write its JSON, its Markdown, its trend chart and ``HEAD``.

    ``results`` is the run's Allure results directory: the sha256 of each of its files is listed beside the
    record and the list is covered by the record's hash. ``signer`` signs the hash (``[reports]
    signing_key_env``); without it the record is unsigned, and ``records verify`` says so.

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
        if results is not None and results.is_dir():
            digest = results_digest(results)
            _write_atomic(directory / f"{stem}{ALLURE_SUFFIX}", digest)
            linked = linked.model_copy(
                update={"allure_digest": f"{stem}{ALLURE_SUFFIX}", "allure_sha256": _sha256(digest.encode())}
            )
        chart = plot_trend([*previous, linked], directory / linked.trend_image)
        markdown = render_markdown(linked)
        update = {"markdown_sha256": _sha256(markdown.encode()), "trend_sha256": _sha256(chart.read_bytes())}
        sealed = linked.model_copy(update=update).sealed()
        if signer is not None:
            sealed = sealed.model_copy(update={"signature": signer.sign_bytes(sealed.hash.encode())})
        path = directory / f"{stem}.json"
        _write_atomic(path, sealed.model_dump_json(indent=2) + "\n")
        _write_atomic(path.with_suffix(".md"), markdown)
        _write_atomic(directory / HEAD_FILE, f"{path.name} {sealed.hash}\n")
    return sealed, path


def _covered_file_problem(directory: Path, record: DrillRecord, path: Path) -> str:
    """The first file the record covers by sha256 (Markdown, chart, Allure list and results) that no longer fits."""
    covered = [
        (path.with_suffix(".md"), record.markdown_sha256),
        (directory / record.trend_image, record.trend_sha256),
        (directory / record.allure_digest, record.allure_sha256),
    ]
    for twin, expected in covered:
        if expected and (not twin.is_file() or _sha256(twin.read_bytes()) != expected):
            return f"{twin}: altered or removed (its sha256 differs from its JSON record's)"
    results = directory.parent / "runs" / record.run_id / "allure-results"
    if record.allure_digest and results.is_dir():
        for line in (directory / record.allure_digest).read_text(encoding="utf-8").splitlines():
            expected, _, name = line.partition("  ")
            result = results / name
            if not result.is_file() or _sha256(result.read_bytes()) != expected:
                return f"{result}: altered or removed (its sha256 differs from the one {path.name} lists)"
    return ""


VERDICT_CASE = "codeblack-drills.verdict"
"""The Allure test case id of the verdict result a drill session writes beside its scenarios."""


def _stray_verdict(directory: Path, run_ids: set[str]) -> str:
    """A run under ``<reports>/runs/`` whose verdict reached Allure but whose record is not in this chain."""
    for results in sorted((directory.parent / "runs").glob("*/allure-results")):
        if results.parent.name in run_ids:
            continue
        for result in sorted(results.glob("*-result.json")):
            try:
                case = json.loads(result.read_bytes()).get("testCaseId")
            except (ValueError, AttributeError):
                continue  # not a result of ours: Allure's own problem, not the chain's
            if case == VERDICT_CASE:
                return (
                    f"{result}: a drill verdict whose record is not in {directory} (written to another records "
                    "directory, never written, or removed)"
                )
    return ""


def _signature_problem(path: Path, record: DrillRecord, key: RecordKey | None, signed_before: bool) -> str:
    if key is None:
        return ""
    if record.signature is None:
        if not signed_before:
            return ""  # written before the records were signed: a warning, not a failure
        return f"{path}: re-sealed: unsigned after signed records (its hash was recomputed without the signing key)"
    if record.signature.key_id != key.key_id or not signature_valid(key.key, record.signature, record.hash.encode()):
        return (
            f"{path}: re-sealed: its hash matches its content but not its signature by key {key.key_id} "
            "(recomputed without the signing key)"
        )
    return ""


def verify_chain(directory: Path, key: RecordKey | None = None) -> ChainResult:
    """Check every record's hash and signature, every link, the files each covers and ``HEAD``.

    Args:
        directory: the records directory.
        key: ``[reports] verify_key``; without it signatures are not checked, and a warning says so.

    Returns:
        The count of records and the first record that does not fit, with warnings for unsigned or unverified
        records.
    """
    files = _record_files(directory) if directory.is_dir() else []
    previous_hash = ""
    unsigned = signed = 0
    others: dict[str, int] = {}
    run_ids: set[str] = set()
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
        previous_hash = record.hash
        run_ids.add(record.run_id)
        problem = ""
        if key is not None and not key.covers(record):
            others[record.target] = others.get(record.target, 0) + 1
        else:
            problem = _signature_problem(path, record, key, signed > 0)
            signed, unsigned = (signed + 1, unsigned) if record.signature else (signed, unsigned + 1)
        problem = problem or _covered_file_problem(directory, record, path)
        if problem:
            return ChainResult(index, problem)
    head = directory / HEAD_FILE
    if head.exists():
        name, _, expected = head.read_text(encoding="utf-8").strip().partition(" ")
        if not files or files[-1].name != name or previous_hash != expected:
            return ChainResult(
                len(files), f"{directory / name}: the newest record was removed or replaced (HEAD names it)"
            )
    stray = _stray_verdict(directory, run_ids)
    if stray:
        return ChainResult(len(files), stray)
    warnings = []
    if unsigned:
        warnings.append(
            f"WARNING: {unsigned} of {len(files)} drill records in {directory} are unsigned: whoever can write "
            "this directory could have re-sealed them (set [reports] signing_key_env and verify_key)"
        )
    if others and key is not None:
        names = ", ".join(f"{name or '(unnamed)'} ({count})" for name, count in sorted(others.items()))
        warnings.append(
            f"WARNING: records of other targets in {directory} were not checked against the verify key of "
            f"{key.target}: {names}; verify them with their own drill.toml"
        )
    if signed and key is None:
        warnings.append(
            f"WARNING: {signed} signed drill records in {directory} were not verified: [reports] verify_key is not set"
        )
    return ChainResult(len(files), warnings=tuple(warnings))
