"""The drill configuration: ``drill.toml`` validated into typed settings.

Precedence is argument > CLI (``--drill-config``) > environment (``DRILL_CONFIG``) > the default file
``drill.toml`` at the project root. Secrets never live in the file: it names the environment variables that
hold them, and :meth:`DrillConfig.secret` reads them, failing with one line naming the file, the key and the
variable when one is missing. Every table forbids unknown keys so that a typo fails the session at once
instead of silently falling back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from harness.errors import ConfigError

__all__ = [
    "PROJECT_ROOT",
    "AppSettings",
    "DatabaseSettings",
    "DrillConfig",
    "MigrationSettings",
    "Objectives",
    "RedisSettings",
    "RestoreSettings",
    "ServiceSettings",
    "StorageSettings",
    "Waiver",
    "load_config",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "drill.toml"
CRITICAL_TABLES = ("applications", "orders", "blacklist_entries", "config_change_history")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSettings(_Section):
    """Which deployment the drill verifies."""

    name: str = "codeblack-sandbox"
    sandbox: bool = Field(
        default=True,
        description="build the sandbox world on this machine and verify it, instead of a real one",
    )


class ServiceSettings(_Section):
    """How throwaway servers are provided."""

    provider: Literal["auto", "local", "docker"] = "auto"
    postgres_bin_dir: str = ""
    redis_server: str = ""
    postgres_image: str = Field(
        default="",
        description="the PostgreSQL image under Docker; empty: postgres:<major of the local binaries>, so that "
        "the local pg_restore, pg_dump and pg_amcheck match the server",
    )
    redis_image: str = "redis:7"
    minio_image: str = "minio/minio:latest"


class StorageSettings(_Section):
    """Object storage holding the backups and the uploads."""

    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_env: str = "DRILL_S3_ACCESS_KEY_ID"
    secret_key_env: str = "DRILL_S3_SECRET_ACCESS_KEY"
    backup_bucket: str = "codeblack-backups"
    uploads_bucket: str = "codeblack-uploads"
    logical_prefix: str = "postgres/logical/"
    base_daily_prefix: str = "postgres/base/daily/"
    base_weekly_prefix: str = "postgres/base/weekly/"
    redis_prefix: str = "redis/rdb/"
    timestamp_pattern: str = r"(?P<ts>\d{8}T\d{6}Z)"
    timestamp_format: str = "%Y%m%dT%H%M%SZ"
    database_host: str = ""
    allow_canary_write: bool = False

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


class DatabaseSettings(_Section):
    """The production database and its critical tables."""

    name: str = "codeblack"
    critical_tables: list[str] = Field(default_factory=lambda: list(CRITICAL_TABLES))
    time_columns: dict[str, str] = Field(default_factory=dict)
    audit_table: str = "config_change_history"
    heartbeat_table: str = ""
    heartbeat_column: str = "beat_at"
    minimum_rows: dict[str, int] = Field(default_factory=dict)

    def time_column(self, table: str) -> str:
        """The column holding a row's insert time (``created_at`` unless the file says otherwise)."""
        return self.time_columns.get(table, "created_at")


class RedisSettings(_Section):
    """The live production Redis, read only."""

    url_env: str = ""
    heartbeat_key: str = ""


class AppSettings(_Section):
    """How to start the target application against a staging copy."""

    command: list[str] = Field(
        default_factory=lambda: [
            "{python}", "-m", "uvicorn", "sandbox.codeblack.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", "{port}",
        ]
    )  # fmt: skip
    health_path: str = "/api/v1/system/health/deep"
    startup_timeout_s: float = Field(default=30.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    signing_key_env: str = "CODEBLACK_SIGNING_KEY"
    verify_key: str = ""
    proposer: str = "ops-alice"
    approver: str = "ops-bob"
    critical_keys: list[str] = Field(default_factory=list)
    sensitive_keys: list[str] = Field(default_factory=list)


class MigrationSettings(_Section):
    """Where the Alembic history lives and what its head must be."""

    script_location: str = "sandbox/migrations"
    expected_head: str = "b6e8dcb19a40"
    metadata: str = "sandbox.codeblack.models:Base.metadata"
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


class RestoreSettings(_Section):
    """How the drill restores."""

    jobs: int = Field(default=0, ge=0)
    dump_key: str = ""
    work_dir: str = ""
    incident_time: str = ""


class Waiver(_Section):
    """A gate bypassed on purpose: who approved it and why."""

    rule: str
    subject: str
    approved_by: str
    reason: str = Field(min_length=10)


class ReportSettings(_Section):
    """Where results go."""

    dir: str = "reports"


class DrillConfig(_Section):
    """The whole ``drill.toml``."""

    target: TargetSettings = Field(default_factory=TargetSettings)
    services: ServiceSettings = Field(default_factory=ServiceSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    objectives: Objectives = Field(default_factory=Objectives)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    app: AppSettings = Field(default_factory=AppSettings)
    migrations: MigrationSettings = Field(default_factory=MigrationSettings)
    restore: RestoreSettings = Field(default_factory=RestoreSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    waivers: list[Waiver] = Field(default_factory=list)
    source: Path = Field(default=DEFAULT_CONFIG, exclude=True)
    declared: frozenset[str] = Field(default=frozenset(), exclude=True)

    @property
    def gates_only(self) -> bool:
        """The file declares ``[migrations]`` and none of a deployment's parts: only the migration gates apply.

        Such a target has no backups to restore, no app to start, no storage or signing secret to ask for.
        """
        return "migrations" in self.declared and not self.declared & _DEPLOYMENT_PARTS and not self.target.sandbox

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

    def resolve_path(self, relative: str) -> Path:
        """A path from the file, taken relative to the file's own directory."""
        path = Path(relative)
        return path if path.is_absolute() else (self.source.parent / path).resolve()

    def with_changes(self, **sections: dict[str, Any]) -> DrillConfig:
        """A copy with some keys of some sections replaced, validated like the file (used for variants)."""
        data = self.model_dump(mode="python")
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return _validate(data, self.source, self.declared | set(sections))


#: The sections that describe a deployment beyond its migrations (their absence makes a gates-only target).
_DEPLOYMENT_PARTS = frozenset({"storage", "redis", "app", "database", "restore"})


def _validate(data: dict[str, Any], source: Path, declared: frozenset[str] | None = None) -> DrillConfig:
    if declared is None:  # read from a file: what it declares decides which parts the target has
        declared = frozenset(data)
        if "migrations" in declared and not declared & _DEPLOYMENT_PARTS:
            target = data.get("target")
            if not isinstance(target, dict) or "sandbox" not in target:  # no world to build for it
                data = {**data, "target": {**(target if isinstance(target, dict) else {}), "sandbox": False}}
    try:
        config = DrillConfig.model_validate({**data, "source": source, "declared": declared})
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(part) for part in first["loc"]]
        section = f"[{location[0]}] " if len(location) > 1 else ""
        key = ".".join(location[1:]) if len(location) > 1 else location[0]
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{source}: {section}{key}: {message}") from None
    return config


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
