"""``codeblack-drills``: the commands an operator and a cron job run beside the drill.

The backup subcommands are the production side of the contract the drill verifies: they write every backup
object with its manifest, signed with the Ed25519 seed ``[backup] signing_key_env`` names, so the drill has
numbers to compare a restore with that whoever writes the bucket cannot forge. ``migrations record-checksums``
records the reviewed migration files for the gates; ``gates`` and ``drill`` run the pre-deploy gates and the
monthly drill themselves (pytest on the features the package ships). ``report`` and ``records verify``
serve the auditor (the HTML report, the drill records' hash chain), ``sweep`` removes what a killed run left,
and ``world up`` starts the sandbox world for exploring by hand. Every command logs progress to stderr,
prints results to stdout, and exits 0 (ok), 1 (a check failed) or 2 (usage or configuration error, one line
on stderr). No secret is printed:
credentials come from environment variables named in ``drill.toml`` and are scrubbed from every log line.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import click

from harness.backup.base import backup_base
from harness.backup.postgres import backup_postgres, dump_binaries, dump_options
from harness.backup.prune import prune
from harness.backup.redis import backup_redis
from harness.config import DrillConfig, load_config
from harness.errors import CheckFailed, ConfigError, HarnessError
from harness.migrations.checksums import record_checksums
from harness.records.chain import RecordKey, record_files, verify_chain
from harness.records.handover import render_handover
from harness.records.store import RecordStore
from harness.redact import RedactingFilter, redact, register_secret
from harness.services.external import StagingServer
from harness.services.postgres import find_binaries
from harness.services.redis import find_redis_check_rdb
from harness.services.s3 import S3Endpoint
from harness.services.sweeper import check_run_id, find_leftovers, sweep
from harness.storage.signing import load_verify_key, signer_from_config

__all__ = ["cli", "main"]

log = logging.getLogger("harness.cli")

EXIT_CODES = """\b
Exit codes:
  0  done
  1  a check failed
  2  usage or configuration error (one line on stderr)"""


def _examples(*lines: str) -> str:
    """A help epilog: the examples kept as written (not re-wrapped by click), then the exit codes."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines) + "\n\n" + EXIT_CODES


def _config(ctx: click.Context) -> DrillConfig:
    """The drill configuration, loaded once per invocation from ``--config`` (or the default places)."""
    state: dict[str, Any] = ctx.ensure_object(dict)
    if "config" not in state:
        state["config"] = load_config(state.get("config_path"))
    config: DrillConfig = state["config"]
    return config


def _reports(ctx: click.Context) -> Path:
    """The reports directory: ``[reports] dir`` of the configuration, a relative one from the current directory."""
    return _config(ctx).reports_dir()


def _storage(config: DrillConfig) -> Any:
    """A client for the configured backup storage (credentials from the variables the file names)."""
    endpoint = S3Endpoint(
        url=config.storage.endpoint_url or None,
        region=config.storage.region,
        access_key=config.secret("storage.access_key_env"),
        secret_key=config.secret("storage.secret_key_env"),
    )
    register_secret(endpoint.access_key.get_secret_value())
    register_secret(endpoint.secret_key.get_secret_value())
    return endpoint.client()


def _from_env(name: str, option: str) -> str:
    """A secret (DSN, URL) read from the environment variable an option names; registered for redaction."""
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} (named by {option}) is not set")
    return register_secret(value)


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="drill.toml to use (default: $DRILL_CONFIG, then the project's drill.toml).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, quiet: bool) -> None:
    """Run the restore drill and its pre-deploy gates; back up, prune and explore the deployment they verify."""
    check_run_id()  # every labelled directory a command makes carries it
    ctx.ensure_object(dict)["config_path"] = config_path
    if not logging.getLogger().handlers:  # leave a host's logging (or pytest's capture) alone
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(RedactingFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler])
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@cli.group(epilog=EXIT_CODES)
def backup() -> None:
    """Take a backup and store it off-server with its manifest."""


@backup.command(
    "postgres",
    epilog=_examples(
        "DATABASE_URL=postgresql://backup@db:5432/codeblack codeblack-drills backup postgres",
        "codeblack-drills --config prod.toml backup postgres --dsn-env CODEBLACK_DB_URL",
        "CATALOG_URL=postgresql://backup@db:5432/catalog codeblack-drills backup postgres --database catalog "
        "--dsn-env CATALOG_URL",
    ),
)
@click.option("--dsn-env", default="DATABASE_URL", show_default=True, help="Variable holding the database DSN.")
@click.option(
    "--database",
    "database",
    default="",
    help="The [[databases]] entry to back up (its tables and backup_prefix); needed when drill.toml lists several.",
)
@click.pass_context
def backup_postgres_command(ctx: click.Context, dsn_env: str, database: str) -> None:
    """Stream a compressed pg_dump (custom format) to storage with its manifest.

    The manifest's row counts are read in the same snapshot as the dump. Memory stays flat: the dump goes
    to storage in 8 MiB parts and never touches local disk. pg_dump comes from services.postgres_bin_dir,
    else from the installed PostgreSQL of the server's major version (PostgreSQL 13 to 18), else the newest.
    """
    config = _config(ctx)
    if not database and len(config.databases) > 1:
        raise ConfigError(
            f"{config.source}: [[databases]] lists {', '.join(config.database_names())}: name the one to back up "
            "with --database"
        )
    config = config.for_database(database or config.database.name)  # a list of one needs no --database
    dsn = _from_env(dsn_env, "--dsn-env")
    signer = signer_from_config(config)
    pg_dump = dump_binaries(dsn, config.services.postgres_bin_dir).tool("pg_dump")
    manifest = backup_postgres(dsn, _storage(config), config.backup_bucket(), config.storage.logical_prefix,
                               pg_dump=pg_dump, options=dump_options(config), signer=signer)  # fmt: skip
    click.echo(manifest.model_dump_json(indent=2))


@backup.command(
    "base",
    epilog=_examples(
        "DATABASE_URL=postgresql://replicator@db:5432/postgres codeblack-drills backup base",
        "codeblack-drills backup base --weekly          # on Sundays, from cron",
    ),
)
@click.option("--dsn-env", default="DATABASE_URL", show_default=True, help="Variable holding the cluster's DSN.")
@click.option("--weekly", is_flag=True, help="Store under the weekly prefix instead of the daily one.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None, help="Room for the temporary copy.")
@click.pass_context
def backup_base_command(ctx: click.Context, dsn_env: str, weekly: bool, work_dir: str | None) -> None:
    """Take a pg_basebackup (tar, gzip, SHA-256 backup manifest) and store it under the daily or weekly prefix.

    The source needs wal_level = replica and a replication entry in pg_hba.conf for the connecting role.
    """
    config = _config(ctx)
    dsn = _from_env(dsn_env, "--dsn-env")
    signer = signer_from_config(config)
    tool = find_binaries(config.services.postgres_bin_dir).tool("pg_basebackup")
    prefix = config.storage.base_weekly_prefix if weekly else config.storage.base_daily_prefix
    manifest = backup_base(dsn, _storage(config), config.backup_bucket(), prefix, pg_basebackup=tool,
                           work_dir=None if work_dir is None else Path(work_dir), signer=signer)  # fmt: skip
    click.echo(manifest.model_dump_json(indent=2))


@backup.command(
    "redis",
    epilog=_examples(
        "REDIS_URL=redis://localhost:6379/0 codeblack-drills backup redis",
        "codeblack-drills backup redis --no-bgsave      # copy the newest existing RDB",
    ),
)
@click.option("--url-env", default="REDIS_URL", show_default=True, help="Variable holding the Redis URL.")
@click.option("--bgsave/--no-bgsave", default=True, show_default=True, help="Trigger BGSAVE and wait for it.")
@click.option("--wait-timeout", type=click.FloatRange(min=1), default=600, show_default=True, help="Seconds.")
@click.pass_context
def backup_redis_command(ctx: click.Context, url_env: str, bgsave: bool, wait_timeout: float) -> None:
    """Copy Redis's RDB snapshot off-server with its manifest (run it on the Redis host)."""
    config = _config(ctx)
    url = _from_env(url_env, "--url-env")
    signer = signer_from_config(config)
    manifest = backup_redis(url, _storage(config), config.backup_bucket(), config.storage.redis_prefix,
                            bgsave=bgsave, wait_timeout=wait_timeout, key_name=config.backup_key_name(), signer=signer,
                            redis_check_rdb=find_redis_check_rdb(config.services.redis_server),
                            sample_keys=config.backup.redis_sample_keys, redis_server=config.services.redis_server,
                            sample_memory_mb=config.restore.redis_memory_mb)  # fmt: skip
    click.echo(manifest.model_dump_json(indent=2))


@cli.command(
    "prune",
    epilog=_examples("codeblack-drills prune --dry-run               # list what would go", "codeblack-drills prune"),
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.pass_context
def prune_command(ctx: click.Context, dry_run: bool) -> None:
    """Apply the plan's retention: 14 days of dumps, 7 daily and 4 weekly base backups, Redis copies.

    The newest backup of each kind is always kept. Prints one key per line.
    """
    config = _config(ctx)
    removed = prune(_storage(config), config.backup_bucket(), config, now=datetime.now(UTC), dry_run=dry_run)
    for key in removed:
        click.echo(key)


@cli.command(
    "report",
    epilog=_examples(
        "codeblack-drills report                      # the newest run -> reports/allure-report (with history)",
        "codeblack-drills report --single-file --pdf  # a folder to hand over: opens from disk, record as PDF",
        "codeblack-drills report --results ci/allure-results --output ci/html",
    ),
)
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Allure results to render (default: the newest run's, under [reports] dir/runs).")  # fmt: skip
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the HTML goes (default: allure-report under [reports] dir).")  # fmt: skip
@click.option("--single-file", is_flag=True,
              help="One index.html with everything inlined, that opens from disk without a web server.")  # fmt: skip
@click.option("--pdf", is_flag=True,
              help="Also write the run's drill record as HTML and PDF (printed by headless Chromium).")  # fmt: skip
@click.pass_context
def report_command(ctx: click.Context, results: Path | None, output: Path | None, single_file: bool,
                   pdf: bool) -> None:  # fmt: skip
    """Render a run's Allure HTML report (Allure 3 CLI, installed with npm on first use) with its history.

    Prints the paths written: the report's index.html (without --single-file, open it through a web server:
    it fetches its data), plan.html when [reports] plan is set, and the record's HTML and PDF with --pdf.
    """
    reports = _reports(ctx)
    handover = render_handover(_config(ctx), reports, output or reports / "allure-report", results=results,
                               single_file=single_file, pdf=pdf)  # fmt: skip
    click.echo(f"report: {handover.index}")
    for path in handover.files:
        click.echo(f"{path.suffix.lstrip('.')}: {path}")


@cli.group(epilog=EXIT_CODES)
def records() -> None:
    """The drill records: one JSON and Markdown record per drill, hash-chained."""


@records.command(
    "verify",
    epilog=_examples(
        "codeblack-drills records verify                # the drills/ directory under [reports] dir",
        "codeblack-drills records verify /srv/audit/drills",
    ),
)
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def records_verify(ctx: click.Context, directory: Path | None) -> None:
    """Check the records' signatures, chain and stored copy; exit 1 naming the first missing, altered or re-sealed."""
    config = _config(ctx)
    directory = directory or _reports(ctx) / "drills"
    if not directory.is_dir():
        raise HarnessError(f"{directory}: no drill records here; run the monthly drill or pass the directory")
    key = None
    if config.reports.verify_key:
        public, key_id = load_verify_key(config.reports.verify_key, f"{config.source}: [reports] verify_key")
        key = RecordKey(public, key_id, target=config.target.name)
    result = verify_chain(directory, key)
    if not result.ok:
        raise CheckFailed(result.problem)
    for warning in result.warnings:
        click.echo(warning, err=True)
    if not config.reports.storage_prefix:
        click.echo("WARNING: no stored copy to compare with: [reports] storage_prefix is not set", err=True)
    elif config.target.sandbox:
        click.echo("WARNING: stored copy not compared: the sandbox's storage lives only during its drill", err=True)
    else:
        store = RecordStore.from_config(config, _storage(config))
        assert store is not None  # storage_prefix is set
        problem = store.compare(directory, record_files(directory))
        if problem:
            raise CheckFailed(problem)
        click.echo(f"stored copy at {store.where} matches")
    click.echo(str(result))


@cli.group(epilog=EXIT_CODES)
def migrations() -> None:
    """The target's Alembic migrations: record what was reviewed, for the migration gates."""


@migrations.command(
    "record-checksums",
    epilog=_examples(
        "codeblack-drills migrations record-checksums                      # the drill.toml of the project",
        "codeblack-drills --config ci/drill.toml migrations record-checksums",
    ),
)
@click.pass_context
def migrations_record_checksums(ctx: click.Context) -> None:
    """Write versions.sha256 beside migrations/versions (after review); commit it with the migrations."""
    path, count = record_checksums(_config(ctx))
    click.echo(f"wrote {path} ({count} revisions)")


def _suite_command(suite: Literal["gates", "drill"], summary: str, *examples: str) -> None:
    """Add ``gates`` or ``drill``: pytest on the features the package ships (or the clone holds), in this process.

    The configuration is loaded first, so that a bad file is one line and exit 2 before pytest starts; then
    this process becomes pytest (a CI runner's SIGTERM reaches the drill itself), and its exit code is pytest's.
    """

    @cli.command(
        suite,
        help=f"{summary}\n\nExtra arguments go to pytest. Reports go under [reports] dir, a relative one from the "
        "current directory (from a clone's root when run from a clone).",
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
        epilog=_examples(*examples).replace(EXIT_CODES, _PYTEST_EXIT),
    )
    @click.option(
        "--drill-config",
        type=click.Path(dir_okay=False),
        default=None,
        help="The target's drill.toml (default: --config, then $DRILL_CONFIG, then the embedded sandbox).",
    )
    @click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def command(ctx: click.Context, drill_config: str | None, pytest_args: tuple[str, ...]) -> None:
        from codeblack_drills.run import pytest_argv  # the pytest side; the library commands do not need it

        if drill_config is not None:
            ctx.obj["config_path"] = drill_config
        argv = pytest_argv(suite, _config(ctx).source, pytest_args)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)


_PYTEST_EXIT = """\b
Exit codes: pytest's own
  0  every selected scenario passed or was not applicable
  1  a check failed
  2  drill.toml is invalid (one line on stderr), or the run was interrupted
  4  usage error (an unknown pytest option or marker)"""

_suite_command(
    "gates",
    "Run the pre-deploy gates (the scenarios tagged @predeploy) on the target of drill.toml.",
    "codeblack-drills gates --drill-config drill.toml",
    "codeblack-drills gates --drill-config drill.toml --junitxml gates.xml",
)
_suite_command(
    "drill",
    "Run the monthly restore drill (every scenario) on the target of drill.toml.",
    "codeblack-drills drill                         # the embedded sandbox",
    "codeblack-drills drill --drill-config prod.toml",
)


@cli.command(
    "sweep",
    epilog=_examples("codeblack-drills sweep --dry-run                # list what would go", "codeblack-drills sweep"),
)
@click.option("--dry-run", is_flag=True, help="List the leftovers; remove nothing.")
@click.pass_context
def sweep_command(ctx: click.Context, dry_run: bool) -> None:
    """Remove what killed drill runs left: their throwaway servers and labelled temp directories.

    Only runs whose every owner process has exited are touched; a drill running now is left alone. The
    drill sweeps at its start too, so this is for a machine where no drill will run soon. Prints one
    process, directory or container per line. With ``[staging] provider = "server"``, also the stamped
    databases and roles those runs left on the staging server.
    """
    found = find_leftovers(stale_only=True) if dry_run else sweep()
    for process in found.processes:
        click.echo(f"process {process.pid} {process.info.get('name', '')}")
    for directory in found.directories:
        click.echo(f"directory {directory}")
    for container in found.containers:
        click.echo(f"container {container}")
    config = _config(ctx)
    if config.staging.provider == "server":
        server = StagingServer.from_config(config)
        left = [f"{kind} {name}" for kind, name in server.leftovers()] if dry_run else server.sweep()
        for name in left:
            click.echo(f"{name} on {server.address}")


@cli.group(epilog=EXIT_CODES)
def world() -> None:
    """The sandbox world: production built on this machine."""


@world.command(
    "up",
    epilog=_examples(
        "codeblack-drills world up                      # until Ctrl-C", "codeblack-drills world up --for 600"
    ),
)
@click.option("--for", "seconds", type=click.FloatRange(min=0), default=None, help="Stop after this many seconds.")
@click.pass_context
def world_up(ctx: click.Context, seconds: float | None) -> None:
    """Build the sandbox world and keep it running, printing its endpoints (no secrets)."""
    from harness.services.provider import Provider
    from sandbox.world import World  # the sandbox is optional for a production backup host

    config = _config(ctx)
    built = World.build(Provider.from_settings(config.services), config)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        deployment = built.deployment
        storage = config.storage
        lines = {
            "s3 endpoint": deployment.storage.url,
            "backup bucket": deployment.backup_bucket,
            "uploads bucket": deployment.uploads_bucket,
            "postgres": built.production_pg.dsn(built.database),
            "redis": deployment.redis_url,
            "verify key": deployment.verify_key,
            "logical dumps": f"s3://{deployment.backup_bucket}/{storage.logical_prefix}",
            "built in": f"{built.build_seconds:.1f} s",
        }
        for name, value in lines.items():
            click.echo(f"{name:>18}: {redact(str(value))}")
        click.echo("S3 credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of moto's (see harness.services.s3)")
        click.echo("running; Ctrl-C stops and removes everything" if seconds is None else f"running for {seconds:g} s")
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(min(0.2, deadline - time.monotonic()), 0))
    finally:
        built.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command, turning errors into one line and the documented exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="codeblack-drills", standalone_mode=False)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "codeblack-drills"
        click.echo(f"error: {exc.format_message()} (see {command} --help)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {redact(exc.format_message())}", err=True)
        sys.exit(2)
    except CheckFailed as exc:
        click.echo(f"check failed: {redact(str(exc))}", err=True)
        sys.exit(1)
    except HarnessError as exc:
        click.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
