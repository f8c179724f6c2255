"""Which backup the drill restores: the newest under a prefix (or the one the config names), with its manifest.

The catalogue (:mod:`harness.storage.catalogue`) lists and orders the backups; this module only picks one and
reads the manifest beside it. A backup without a manifest (taken by other tools) is still restorable: the
caller then verifies against ``[database] minimum_rows`` and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.restore.dump_header import DumpHeader
from harness.storage.catalogue import BackupObject, fetch_manifest, list_configured
from harness.storage.manifest import BackupManifest, shown_key

__all__ = ["Chosen", "check_dumped_database", "newest_backup"]

Chosen = tuple[BackupObject, BackupManifest | None]


def newest_backup(deployment: Deployment, prefixes: Sequence[str], *, suffix: str = "", named: str = "") -> Chosen:
    """The newest backup under any of ``prefixes`` (or the one whose key is ``named``) and its manifest.

    The manifest must name the chosen key and its listed size and, when a verify key is configured, be
    signed (:func:`harness.storage.catalogue.fetch_manifest`); keys dated in the future are refused.

    Raises:
        HarnessError: nothing under the prefixes, or ``named`` is not among them (one line naming it).
        CheckFailed: a future-dated or unusable key, or a manifest that is too large, names another object
            or size, or is not signed by the verify key.
    """
    storage = deployment.config.storage
    client = deployment.storage.client()
    objects: list[BackupObject] = []
    empty: list[HarnessError] = []
    for prefix in prefixes:
        try:
            catalogue = list_configured(client, deployment.backup_bucket, prefix, storage, suffix=suffix)
        except HarnessError as exc:
            if not str(exc).startswith("no backups under"):
                raise
            empty.append(exc)
            continue
        objects.extend(catalogue.objects)
    if not objects:
        raise empty[0]
    if named:
        matches = [obj for obj in objects if obj.key == named]
        if not matches:
            raise HarnessError(
                f"restore.dump_key {named!r} is not among the backups under {', '.join(prefixes)} in "
                f"s3://{deployment.backup_bucket}; fix restore.dump_key in drill.toml"
            )
        chosen = matches[0]
    else:
        chosen = max(objects, key=lambda obj: (obj.taken_at, obj.key))
    try:
        manifest = fetch_manifest(client, deployment.backup_bucket, chosen, deployment.manifest_trust())
    except HarnessError as exc:
        if "no such object" not in str(exc):
            raise
        manifest = None
    return chosen, manifest


def check_dumped_database(
    config: DrillConfig, key: str, manifest: BackupManifest | None, header: DumpHeader | None
) -> None:
    """A ``[[databases]]`` entry's dump must be of that database, as its manifest and its header record.

    Several databases of the same schema (one per tenant, say) count alike: a dump of one stored under
    another's prefix (a cron job whose DSN was not changed) would restore and count as the other's, and
    earn a GO for a database that has no backup at all. The manifest records ``current_database()``, the
    custom-format header the database ``pg_dump`` connected to (a dump without a manifest has it too). A lone
    ``[database]`` is not held to its name: the production database may be named otherwise than the one
    restored into staging.

    Raises:
        CheckFailed: the manifest or the header records another database; one line naming the dump and both.
    """
    wanted = config.database.name
    if not config.multiple_databases:
        return
    for source, dumped in (("manifest", manifest.database if manifest else ""),
                           ("header", header.database if header else "")):  # fmt: skip
        if dumped and dumped != wanted:
            raise CheckFailed(
                f"{shown_key(key)}: its {source} records a dump of database {shown_key(dumped, 80)}, not of "
                f"{wanted!r} ([[databases]]); back {wanted!r} up with a DSN of that database (backup postgres "
                f"--database {wanted})"
            )
