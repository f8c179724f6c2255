"""The harness's side of the migration child: a namespace ``env.py`` cannot leave, and proof that it migrated.

The target's ``env.py`` is untrusted code that decides for itself where to connect: it may read ``DATABASE_URL``,
its own settings, or a URL written into it. So Alembic never runs in the harness: :class:`MigrationChild` starts
:mod:`harness.migrations.child` with the target's interpreter (``[migrations] python``), its ``alembic.ini``
(``[migrations] ini``), in a private network namespace, confined by :mod:`harness.migrations.confine` to a root of
its own (the system's ``/usr`` and ``/etc``, the interpreter, the project, read-only) and run as an unprivileged
pool account (:func:`~harness.services.accounts.acquire_account`), with an environment of
:func:`~harness.services.base.minimal_env` plus ``DATABASE_URL``, ``sqlalchemy.url`` and the variables of
``[migrations] env``, all naming the throwaway as :data:`~harness.services.postgres.OWNER_ROLE`. The namespace has
loopback only; its one way out is a Unix socket in a directory only that account can enter, which this module
forwards to the throwaway's port. No production secret, route, address or Unix socket is in the child, and it
cannot write a file of the host's.

After every step the harness reads the throwaway's ``alembic_version`` over its own connection: a step that
"succeeded" without moving it migrated something else (a SQLite file, a socket), and the gate says so, naming
``env.py``.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from harness.errors import CheckFailed, ConfigError, HarnessError, printable
from harness.migrations import child as child_module
from harness.migrations.child import Forwarder
from harness.migrations.jail import first_closed_directory, jail_command, readable_paths
from harness.services.accounts import ServiceAccount, acquire_account
from harness.services.base import child_setup, give_to_service_user, label_dir, minimal_env, remove_dir
from harness.services.postgres import ensure_throwaway

__all__ = [
    "EnvEscaped",
    "MigrationChild",
    "MigrationFailed",
    "MigrationSetupError",
    "MissingExtension",
    "Throwaway",
    "missing_extension",
]

_BOOT = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
_REPLY_TIMEOUT_S = 600.0
_SHOWN_FIELDS = frozenset({"error", "where"})  # what of a reply goes into messages; SQL and names stay as sent


def _escaped(reply: Any) -> Any:
    """``reply`` with every ``error`` and ``where`` (at any depth: a file's load error too) made printable.

    They are the project's exception texts, which reach the operator's terminal, the record and the report
    through the gate's one-line failure: a migration file raising a message with line breaks and terminal
    escapes printed a forged line ("CUT-OVER: GO") and cleared the screen.
    """
    if isinstance(reply, dict):
        return {key: printable(value) if key in _SHOWN_FIELDS and isinstance(value, str) else _escaped(value)
                for key, value in reply.items()}  # fmt: skip
    if isinstance(reply, list):
        return [_escaped(item) for item in reply]
    return reply


_MISSING_EXTENSION = re.compile(
    r'extension "(?P<name>[^"]+)" is not available|could not open extension control file "[^"]*/(?P<file>[^/"]+)'
    r'\.control"'
)
_CONTRACT = "it must migrate DATABASE_URL, sqlalchemy.url or config.attributes['connection']"


class Throwaway(Protocol):
    """A throwaway database the child may migrate: a DSN for the guard and a URL with the owner's password."""

    @property
    def dsn(self) -> str:
        """A libpq URL, checked with ``ensure_throwaway`` before the child starts."""

    @property
    def sqlalchemy_url(self) -> str:
        """The harness's own URL of it (passfile, no password), to read ``alembic_version`` after each step."""

    @property
    def app_database_url(self) -> str:
        """The owner role's SQLAlchemy URL with its password (the child cannot read the harness's passfile)."""


class MigrationFailed(CheckFailed):
    """A migration's ``upgrade()`` or ``downgrade()`` raised; the message names the target and the error."""

    def __init__(self, verb: str, target: str, error: str) -> None:
        super().__init__(f"alembic {verb} {target} raises {error}")
        self.error = error


class MigrationSetupError(HarnessError):
    """The project could not be loaded (a missing package, settings that do not validate): not a migration's fault."""


class MissingExtension(MigrationSetupError):
    """A migration creates an extension the gates' PostgreSQL does not provide: the setup's fault, not the code's."""


def missing_extension(error: str) -> str | None:
    """The extension a database error says is not installed (``None``: the error is about something else)."""
    found = _MISSING_EXTENSION.search(error)
    return (found.group("name") or found.group("file")) if found else None


class EnvEscaped(CheckFailed):
    """``env.py`` did not migrate the throwaway: it connected elsewhere, or migrated something else."""


@dataclass
class MigrationChild:
    """One isolated child serving Alembic requests for one project against one throwaway (or none: offline)."""

    python: str
    script_location: Path
    env_py: Path
    ini: Path | None = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    pythonpath: tuple[Path, ...] = ()
    driver: str = "psycopg"
    database: Throwaway | None = None
    _process: subprocess.Popen[bytes] | None = None
    _replies: Any = None
    _pending: bytes = b""
    _forwarder: Forwarder | None = None
    _workdir: Path | None = None
    _account: ServiceAccount | None = None

    # --- life cycle ---

    def __enter__(self) -> MigrationChild:
        self._workdir = label_dir("alembic")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _url_and_way_out(self) -> tuple[str, int, str]:
        assert self._workdir is not None
        if self.database is None:  # offline: a URL that names no server (nothing answers in the namespace)
            return f"postgresql+{self.driver}://offline@127.0.0.1:1/offline", 0, ""
        ensure_throwaway(self.database.dsn)
        url = make_url(self.database.app_database_url)
        host, port = url.host or "127.0.0.1", url.port or 5432
        way_out = str(self._workdir / "run" / "db.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(way_out)
        os.chmod(way_out, 0o600)
        if self._account is not None:
            os.chown(way_out, self._account.user.uid, self._account.user.gid)
        listener.listen(16)
        self._forwarder = Forwarder(listener, lambda: socket.create_connection((host, port), timeout=10)).start()
        inside = url.set(drivername=f"postgresql+{self.driver}", host="127.0.0.1")
        return inside.render_as_string(hide_password=False), port, way_out

    def _child_env(self, url: str, home: Path) -> dict[str, str]:
        parsed = make_url(url)
        values = {
            "database_url": url,
            "database_host": parsed.host or "",
            "database_port": str(parsed.port or ""),
            "database_name": parsed.database or "",
            "database_user": parsed.username or "",
            "database_password": parsed.password or "",
        }
        extra = {"DATABASE_URL": url, "HOME": str(home), "TMPDIR": "/tmp"}
        for name, template in self.env.items():
            try:
                extra[name] = template.format(**values)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(
                    f"[migrations] env.{name} = {template!r}: unknown placeholder {exc}; "
                    f"use {', '.join('{' + key + '}' for key in values)}"
                ) from None
        if self.pythonpath:
            extra["PYTHONPATH"] = os.pathsep.join(str(path) for path in self.pythonpath)
        return minimal_env(extra)

    def _project(self) -> list[Path]:
        """The project's paths the jail binds: the child's own module, the migrations, the path, ini and cwd."""
        return [Path(child_module.__file__ or ""), self.script_location, *self.pythonpath,
                *([self.ini] if self.ini else []), *([self.cwd] if self.cwd else [])]  # fmt: skip

    def _jail(self, home: Path, reply_fd: int) -> list[str]:
        """The command that confines the child (see :mod:`harness.migrations.confine`) and then runs it."""
        assert self._workdir is not None
        child_py = child_module.__file__ or ""
        return jail_command(
            self._workdir, self.python, self._project(), cwd=self.cwd or home,
            user=self._account.user if self._account is not None else None,
            argv=[self.python, "-c", _BOOT, child_py, str(reply_fd)], trees=[self.script_location],
        )  # fmt: skip

    def _start(self) -> None:
        if shutil.which(self.python) is None:
            raise ConfigError(f"[migrations] python: {self.python} is not an executable (the project's interpreter)")
        assert self._workdir is not None
        self._account = acquire_account()
        run = self._workdir / "run"
        home = run / "home"
        home.mkdir(parents=True, mode=0o700)
        if self._account is not None:  # the account's own directories, which no other account can enter
            give_to_service_user(run, self._account.user)
            run.chmod(0o700)
        url, port, way_out = self._url_and_way_out()
        read_end, write_end = os.pipe()
        log = (self._workdir / "child.log").open("wb")
        try:
            self._process = subprocess.Popen(
                self._jail(home, write_end), stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                env=self._child_env(url, home), pass_fds=(write_end,), preexec_fn=child_setup(None, signal.SIGKILL),
                start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise HarnessError(f"cannot start the migration child: {exc.filename!r} not found") from None
        finally:
            log.close()
            os.close(write_end)
        self._replies = os.fdopen(read_end, "rb", buffering=0)
        hello = self._request({"ini": str(self.ini) if self.ini else None,
                               "script_location": str(self.script_location), "url": url,
                               "port": port, "way_out": way_out})  # fmt: skip
        if not hello.get("ok"):
            raise HarnessError(f"cannot isolate the migration child in a network namespace: {hello['error']}")

    def close(self) -> None:
        """Stop the child and the forwarder, remove the socket's directory. Safe to call twice."""
        if self._process is not None:
            if self._process.stdin is not None:
                self._process.stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None
        if self._replies is not None:
            self._replies.close()
            self._replies = None
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
        if self._account is not None:  # whatever the child left running under the account dies with it
            self._account.release()
            self._account = None
        if self._workdir is not None:
            remove_dir(self._workdir)
            self._workdir = None

    def _log_tail(self) -> str:
        assert self._workdir is not None
        try:
            lines = (self._workdir / "child.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return printable(" | ".join(lines[-3:]))

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdin is not None
        try:
            self._process.stdin.write((json.dumps(message) + "\n").encode())
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the child is gone; reading says why
        line = self._reply_line(repr(message.get("op", "start")))
        if not line:  # the child answers every request; EOF means it died
            code = self._process.wait(_REPLY_TIMEOUT_S)
            raise HarnessError(
                f"the migration child ({self.python}) exited with code {code} before answering: {self._log_tail()}"
            )
        try:
            reply = _escaped(json.loads(line))
        except ValueError:
            reply = None
        if not isinstance(reply, dict):  # the project's code wrote on the reply descriptor
            raise CheckFailed(
                f"the migration child ({self.python}) answered with something else than a reply: {line[:80]!r}; "
                "the project's env.py or a migration file writes on its descriptor"
            )
        return reply

    def _reply_line(self, what: str) -> bytes:
        """The child's next reply line (``b""``: it closed the pipe), or the child killed after ``_REPLY_TIMEOUT_S``.

        Raises:
            CheckFailed: no answer in time: the project's code hangs (a migration file's top level, ``env.py``).
        """
        assert self._process is not None
        deadline = time.monotonic() + _REPLY_TIMEOUT_S
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                self._process.kill()  # unshare's --kill-child takes the child's pid namespace with it
                raise CheckFailed(
                    f"the migration child ({self.python}) gave no answer to {what} within {_REPLY_TIMEOUT_S:g} s: "
                    f"the project's env.py or a migration file in {self.script_location / 'versions'} does not "
                    "return; it was stopped"
                )
            chunk = os.read(self._replies.fileno(), 65536)
            if not chunk:
                return b""
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    # --- requests ---

    def _failed(self, reply: dict[str, Any], verb: str, target: str) -> Exception:
        error, where = reply["error"], reply.get("where") or str(self.env_py)
        extension = missing_extension(error) if reply["kind"] == "migration" else None
        if extension is not None:
            return MissingExtension(
                f"could not run alembic {verb} {target}: it creates extension {extension!r}, which the gates' "
                f"PostgreSQL does not provide ({error}); a setup error, not a fault of the migration: declare it "
                f'in [migrations] extensions = ["{extension}"] (the gates then run on an installed PostgreSQL '
                "that has it; Debian/Ubuntu: apt-get install postgresql-NN, which ships contrib) or point "
                "services.postgres_bin_dir at one"
            )
        if reply["kind"] == "migration":
            return MigrationFailed(verb, target, error)
        if reply["kind"] == "unreachable":
            return EnvEscaped(
                f"{self.env_py}: env.py did not reach the throwaway database for alembic {verb} {target}: it "
                f"connected elsewhere ({error}, at {where}); the migration child can reach only the throwaway, "
                f"so {_CONTRACT}"
            )
        closed = ""
        if self._account is not None and self._workdir is not None:  # a closed package directory reads as missing
            bound = readable_paths(self.python, self._project(), self.cwd or self._workdir)
            closed = first_closed_directory(bound, self._account.user)
        return MigrationSetupError(
            f"could not run alembic {verb} {target}: loading the project fails at {where}: {error} "
            f"(a setup error of [migrations] python, env or pythonpath, not a fault of the migration)"
            + (f"; {closed}" if closed else "")
        )

    def _current(self) -> str | None:
        from harness.migrations.project import connected, current_revision

        assert self.database is not None
        with connected(self.database) as connection:
            return current_revision(connection)

    def _step(self, verb: str, revision: str) -> str | None:
        before = self._current()
        reply = self._request({"op": verb, "revision": revision})
        if not reply["ok"]:
            raise self._failed(reply, verb, revision)
        expected, after = reply["target"], self._current()
        if after != expected:
            raise EnvEscaped(
                f"{self.env_py}: env.py did not migrate the throwaway database: alembic {verb} {revision} "
                f"succeeded, yet the throwaway's alembic_version is {after or 'empty'} (was {before or 'empty'}, "
                f"expected {expected or 'empty'}), so it migrated another database; {_CONTRACT}"
            )
        return after

    def upgrade(self, revision: str) -> str | None:
        """``alembic upgrade <revision>`` of the throwaway; returns the revision it is at afterwards.

        Raises:
            MigrationFailed: the migration raised.
            EnvEscaped: env.py connected elsewhere, or its step left the throwaway's ``alembic_version`` unmoved.
            MigrationSetupError: the project could not be loaded.
        """
        return self._step("upgrade", revision)

    def downgrade(self, revision: str) -> str | None:
        """``alembic downgrade <revision>`` (a revision id or ``base``); raises like :meth:`upgrade`."""
        return self._step("downgrade", revision)

    def compare(self, metadata_path: str) -> list[str]:
        """Alembic's autogenerate comparison of the throwaway with the models' ``MetaData``, as sentences.

        Raises:
            ConfigError: the metadata path is malformed or does not import.
        """
        if not metadata_path:
            raise ConfigError("[migrations] metadata is not set: the models' MetaData as 'package.module:attribute'")
        module_name, _, attribute = metadata_path.partition(":")
        where = f"[migrations] metadata = {metadata_path!r}"
        if not module_name or not attribute:
            raise ConfigError(f"{where}: expected 'package.module:attribute', e.g. 'app.models:Base.metadata'")
        reply = self._request({"op": "compare", "metadata": metadata_path})
        if not reply["ok"] and reply["kind"] == "metadata":
            raise ConfigError(f"{where}: {reply['error']}")
        if not reply["ok"]:
            raise self._failed(reply, "compare with", metadata_path)
        differences: list[str] = reply["differences"]
        return differences

    def _ask(self, request: dict[str, Any], verb: str, target: str) -> dict[str, Any]:
        reply = self._request(request)
        if not reply["ok"]:
            raise self._failed(reply, verb, target)
        return reply

    def history(self) -> dict[str, Any]:
        """The files under ``versions/`` and Alembic's revision graph, loaded in the child (plain data).

        Raises:
            MigrationSetupError: the project's Alembic could not be loaded at all.
        """
        return self._ask({"op": "history"}, "history of", str(self.script_location))

    def render(self, revisions: list[str]) -> list[dict[str, Any]]:
        """Each revision's ``upgrade()`` run offline in the child: its SQL, type changes, why it could not run."""
        rendered: list[dict[str, Any]] = self._ask({"op": "render", "revisions": revisions}, "render", "revisions")[
            "rendered"
        ]
        return rendered

    def offline_sql(self, revision_range: str) -> str:
        """The SQL ``alembic upgrade <range> --sql`` prints.

        Raises:
            MigrationFailed: a migration cannot be rendered offline.
            MigrationSetupError: the project could not be loaded.
        """
        sql: str = self._ask({"op": "offline", "range": revision_range}, "upgrade --sql", revision_range)["sql"]
        return sql


def default_python() -> str:
    """The drill's own interpreter: the default of ``[migrations] python``."""
    return sys.executable
