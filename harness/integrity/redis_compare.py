"""The restored Redis against its copy's manifest: each sampled key, then the keys per type; else the count.

What is exact and what cannot be:

- Keys without an expiry cannot vanish by themselves, so their counts per type must match exactly, and each
  sampled one must exist, without an expiry, with the same type, size and digest.
- Keys with an expiry may expire between the copy and the restore (their expiry is absolute in the RDB): they
  are never sampled, and after the restore each type may hold fewer of them than the copy, never more.
- A manifest without a sample (an older copy, or ``[backup] redis_sample_keys = 0``) can only be held to its
  key count; the comparison says so, and advises how to get the stronger one.

The sampled keys are compared first: the first that differs is named (escaped and cut,
:func:`harness.storage.manifest.shown_key`), with what differs. Records and evidence carry counts, never a
value or a digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import CheckFailed
from harness.integrity.redis_keys import MAX_DIGESTED_BYTES, RestoredKeyspace, SeenKey
from harness.storage.manifest import BackupManifest, KeyspaceSample, SampledKey, shown_key

__all__ = ["KeyComparison", "compare_keyspace"]


def _key(entry: SampledKey) -> str:
    return shown_key(entry.key, 80) + (f" (db {entry.db})" if entry.db else "")


def _mismatch(entry: SampledKey, seen: SeenKey) -> str:
    """Why a sampled key differs after the restore ('' when it does not)."""
    if seen.type == "none":
        return f"key {_key(entry)} sampled in the copy's manifest is missing after restore"
    if seen.type != entry.type:
        return f"key {_key(entry)} is a {entry.type} in the copy's manifest but a {seen.type} after restore"
    if seen.expires:
        return f"key {_key(entry)} has an expiry after restore but none in the copy's manifest"
    what = f"key {_key(entry)} ({entry.type})"
    unit = "bytes" if entry.type == "string" else "elements"
    if seen.size != entry.size:
        return f"{what} holds {seen.size} {unit} after restore, {entry.size} in the copy's manifest"
    if seen.memory is not None:
        return (f"{what} takes {seen.memory} bytes after restore, more than the {MAX_DIGESTED_BYTES} a sampled key "
                "may (the backup samples none that large); it was not read")  # fmt: skip
    if seen.digest != entry.digest:
        return f"{what} holds another value after restore than the one the copy's manifest digested"
    return ""


def _count_mismatch(sample: KeyspaceSample, restored: RestoredKeyspace) -> str:
    for kind in sorted(set(sample.persistent) | set(restored.persistent)):
        want, got = sample.persistent.get(kind, 0), restored.persistent.get(kind, 0)
        if want != got:
            return f"restored Redis holds {got} {kind} keys without an expiry, the copy's manifest {want}"
    for kind in sorted(set(sample.expiring) | set(restored.expiring)):
        want, got = sample.expiring.get(kind, 0), restored.expiring.get(kind, 0)
        if got > want:
            return f"restored Redis holds {got} {kind} keys with an expiry, more than the {want} of the copy's manifest"
    return ""


@dataclass(frozen=True)
class KeyComparison:
    """The restored Redis against its copy's manifest: what was compared, the evidence, the first mismatch.

    ``advice``: an action item when the comparison was weaker than it could be (a manifest without a sample).
    """

    copy_key: str
    basis: str
    evidence: dict[str, Any]
    mismatch: str = ""
    advice: str = ""

    def check(self) -> None:
        """Raise on the first mismatch.

        Raises:
            CheckFailed: one line naming the copy's object key and the first key or type that differs.
        """
        if self.mismatch:
            raise CheckFailed(f"{self.copy_key}: {self.mismatch}")


def compare_keyspace(copy: BackupManifest, restored: RestoredKeyspace) -> KeyComparison:
    """Compare the restored Redis with its copy's manifest: sampled keys and counts per type, else the count only."""
    sample = copy.sample
    if sample is None:
        basis = "keys compared by count only: the manifest has no sample"
        mismatch = ""
        if copy.keys is not None and restored.total != copy.keys:
            mismatch = f"restored Redis holds {restored.total} keys, manifest {copy.keys}"
        counted: dict[str, Any] = {
            "key": copy.key,
            "compared": basis,
            "keys in the manifest": copy.keys,
            "keys": restored.total,
        }
        advice = (f"{copy.key}: its manifest has no key sample, so only the key count was compared; take Redis "
                  "copies with `codeblack-drills backup redis` ([backup] redis_sample_keys above 0)")  # fmt: skip
        return KeyComparison(copy.key, basis, counted, mismatch, advice)
    reasons = [_mismatch(entry, seen) for entry, seen in zip(sample.keys, restored.sampled, strict=True)]
    matched = reasons.count("")
    kinds = sorted(set(sample.persistent) | set(sample.expiring) | set(restored.persistent) | set(restored.expiring))
    basis = (f"{matched} of {len(sample.keys)} sampled keys matched type, size and value digest; keys per type "
             "compared (exactly without an expiry, at most the copy's with one)")  # fmt: skip
    evidence: dict[str, Any] = {
        "key": copy.key,
        "compared": basis,
        "keys sampled": len(sample.keys),
        "sampled keys matched": matched,
        "keys": restored.total,
        "per type (copy's manifest / restored)": {
            kind: {
                "without expiry": f"{sample.persistent.get(kind, 0)} / {restored.persistent.get(kind, 0)}",
                "with expiry": f"{sample.expiring.get(kind, 0)} / {restored.expiring.get(kind, 0)}",
            }
            for kind in kinds
        },
    }
    first = next((reason for reason in reasons if reason), "") or _count_mismatch(sample, restored)
    return KeyComparison(copy.key, basis, evidence, first)
