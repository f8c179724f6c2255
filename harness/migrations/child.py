"""The migration child: Alembic run in the target's own interpreter, in a network namespace of its own.

This file is run *by path* with the interpreter of ``[migrations] python`` (which may be another Python than the
drill's), so it imports only the standard library at module level; Alembic and SQLAlchemy are the target's own
(they are its dependencies) and are imported where used. :mod:`harness.migrations.isolation` starts it through
:mod:`harness.migrations.confine` as ``<python> -c <boot> child.py <reply fd>``, in a network namespace with only
a loopback interface, in a root of its own, as an unprivileged account; its one way out is a Unix socket the
harness forwards to the throwaway database. The child
listens on the throwaway's loopback port and forwards every connection to that socket, so ``DATABASE_URL``,
``sqlalchemy.url`` and ``config.attributes["connection"]`` all reach the throwaway, and nothing else does: an
``env.py`` that builds its own URL to another server finds no route to it.

Even reading the revision graph runs the migration files' module code, so that too happens here (``history``,
``render``), and the harness gets plain data back. Requests arrive one JSON object per line on stdin; each reply is
one JSON line on the reply descriptor, so whatever ``env.py`` prints (stdout, logging) cannot be mistaken for a
reply. A failure is classified where its traceback is: raised inside a migration's ``upgrade()``/``downgrade()``
(``migration``), a connection that did not reach the throwaway (``unreachable``), anything else while importing or
configuring the project (``setup``: a missing package, settings that do not validate, an ``assert`` in ``env.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["Forwarder", "describe_difference", "describe_type", "main"]

_CHUNK = 65536
# The files Alembic itself treats as migrations (alembic.script.base._only_source_rev_file).
_MIGRATION_FILE = re.compile(r"(?!\.#|__init__)(.*\.py)$")
_UNREACHABLE = re.compile(
    r"connection (?:to server )?.*failed|could not connect|connection refused|network is unreachable|"
    r"could not translate host name|name or service not known|temporary failure in name resolution|"
    r"no route to host|connect call failed|cannot assign requested address",
    re.IGNORECASE,
)


class Forwarder:
    """Accept connections on ``listener`` and pump each one both ways to a fresh ``connect()``, in threads."""

    def __init__(self, listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
        self.listener = listener
        self.connect = connect
        self.thread = threading.Thread(target=self._accept, name="migration-forwarder", daemon=True)

    def start(self) -> Forwarder:
        """Start accepting (the listener is already bound and listening)."""
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop accepting; connections under way end when either side closes."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = self.connect()
            except OSError:
                client.close()
                continue
            threading.Thread(target=_bridge, args=(client, upstream), daemon=True).start()


def _bridge(client: socket.socket, upstream: socket.socket) -> None:
    """Pump both ways until both sides are done, then close both sockets (left open, GC warns at a random time)."""
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    try:
        _pump(client, upstream)
        back.join()
    finally:
        client.close()
        upstream.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            source.shutdown(socket.SHUT_RD)


# --- what the child does -------------------------------------------------------------------------------------


def describe_difference(entry: Any) -> str:
    """One autogenerate difference as a sentence naming the table or column (``repr`` for unknown kinds)."""
    if isinstance(entry, list):  # modify_* entries come grouped per column
        return "; ".join(describe_difference(item) for item in entry)
    kind = entry[0]
    table_level = {
        "add_table": "table {0.name} is in the models, but no migration creates it",
        "remove_table": "table {0.name} is built by the migrations, but the models do not declare it",
        "add_index": "index {0.name} on {0.table.name} is in the models, but no migration creates it",
        "remove_index": "index {0.name} on {0.table.name} is built by the migrations, but not in the models",
        "add_constraint": "constraint {0.name} on {0.table.name} is in the models, but no migration creates it",
        "remove_constraint": "constraint {0.name} on {0.table.name} is built by the migrations, but not in the models",
        "add_fk": "foreign key {0.name} on {0.parent.name} is in the models, but no migration creates it",
        "remove_fk": "foreign key {0.name} on {0.parent.name} is built by the migrations, but not in the models",
    }
    column_level = {
        "add_column": "column {1}.{2.name} is in the models, but no migration adds it",
        "remove_column": "column {1}.{2.name} is built by the migrations, but the models do not declare it",
    }
    modify = {"modify_type": "type", "modify_nullable": "nullable", "modify_default": "server default",
              "modify_comment": "comment"}  # fmt: skip
    if kind in table_level:
        return table_level[kind].format(entry[1])
    if kind in column_level:
        return column_level[kind].format(*entry[1:])
    if kind in modify:
        _, _, table, column, _, migrated, modelled = entry
        return f"column {table}.{column}: {modify[kind]} is {migrated} after the migrations, {modelled} in the models"
    return repr(entry)


class _Child:
    """One project's Alembic, configured from the first request (``setup``)."""

    def __init__(self, setup: dict[str, Any]) -> None:
        self.ini: str | None = setup["ini"]
        self.script_location: str = setup["script_location"]
        self.url: str = setup["url"]

    def config(self, output: io.StringIO | None = None) -> Any:
        from alembic.config import Config

        config = Config(self.ini, stdout=output or io.StringIO())
        config.set_main_option("script_location", self.script_location)
        if config.get_main_option("path_separator") is None:
            config.set_main_option("path_separator", "os")
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        if output is not None:
            config.output_buffer = output
        return config

    @contextlib.contextmanager
    def connection(self) -> Any:
        """A connection to the throwaway for ``config.attributes``; ``None`` when the driver is not a sync one."""
        from sqlalchemy import create_engine, pool

        try:
            engine = create_engine(self.url, poolclass=pool.NullPool)
        except Exception:  # an async-only driver: env.py opens its own from the URL
            yield None
            return
        try:
            with engine.connect() as connection:
                yield connection
                connection.commit()
        finally:
            engine.dispose()

    def step(self, verb: str, revision: str) -> dict[str, Any]:
        from alembic import command
        from alembic.script import ScriptDirectory

        config = self.config()
        with self.connection() as connection:
            if connection is not None:
                config.attributes["connection"] = connection
            getattr(command, verb)(config, revision)
        target: str | None = revision
        if revision == "head":
            target = ScriptDirectory.from_config(config).get_current_head()
        return {"target": None if target == "base" else target}

    def compare(self, metadata_path: str) -> dict[str, Any]:
        import importlib

        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext
        from alembic.script import ScriptDirectory
        from sqlalchemy import MetaData

        ScriptDirectory.from_config(self.config())  # applies the ini's prepend_sys_path, as env.py's import had
        module_name, _, attribute = metadata_path.partition(":")
        try:
            value: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError) as exc:
            return {"ok": False, "kind": "metadata", "error": f"cannot import it: {exc}"}
        if not isinstance(value, MetaData):
            return {"ok": False, "kind": "metadata", "error": f"is a {type(value).__name__}, not a SQLAlchemy MetaData"}
        with self.connection() as connection:
            if connection is None:
                raise RuntimeError(f"cannot compare the schema: no synchronous driver for {self.url.split(':')[0]}")
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return {"differences": [describe_difference(entry) for entry in compare_metadata(context, value)]}

    def offline(self, revision_range: str) -> dict[str, Any]:
        from alembic import command

        output = io.StringIO()
        command.upgrade(self.config(output), revision_range, sql=True)
        return {"sql": output.getvalue()}

    def history(self) -> dict[str, Any]:
        """Every file under ``versions/`` (its revision id, or why it is none) and Alembic's graph, as plain data."""
        import warnings

        from alembic.script import ScriptDirectory
        from alembic.util import load_python_file

        versions = os.path.join(self.script_location, "versions")
        files: list[dict[str, Any]] = []
        for folder, subfolders, names in os.walk(versions):
            subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
            for name in sorted(names):
                if not _MIGRATION_FILE.match(name):
                    continue
                entry: dict[str, Any] = {"file": os.path.relpath(os.path.join(folder, name), versions),
                                         "nested": folder != versions, "revision": None, "error": None}  # fmt: skip
                if folder == versions:
                    try:
                        revision = getattr(load_python_file(folder, name), "revision", None)
                        entry["revision"] = revision if isinstance(revision, str) else None
                    except Exception as exc:  # any error a migration file raises on import
                        entry["error"] = f"{type(exc).__name__}: {exc}"
                files.append(entry)
        graph: dict[str, Any] = {"files": files, "revisions": [], "heads": [], "error": None}
        with warnings.catch_warnings(record=True) as warned:  # Alembic only warns of a missing down revision
            warnings.simplefilter("always")
            try:
                scripts = ScriptDirectory.from_config(self.config())
                walked = list(scripts.walk_revisions("base", "heads"))
                graph["heads"] = list(scripts.get_heads())
            except Exception as exc:  # CommandError, or whatever a migration file raises on import
                graph["error"] = f"{type(exc).__name__}: {exc}"
                walked = []
        graph["warnings"] = [str(warning.message) for warning in warned]
        for script in reversed(walked):
            down = script.down_revision
            graph["revisions"].append({
                "revision": script.revision,
                "down_revisions": [] if down is None else [down] if isinstance(down, str) else list(down),
                "file": os.path.relpath(script.path, versions),
                "doc": script.doc or "",
            })  # fmt: skip
        return graph

    def render(self, revisions: list[str]) -> dict[str, Any]:
        """Each revision's ``upgrade()`` run offline: its SQL, its column type changes, why it could not run."""
        from alembic.migration import MigrationContext
        from alembic.operations import Operations
        from alembic.operations.ops import AlterColumnOp
        from alembic.script import ScriptDirectory

        scripts = ScriptDirectory.from_config(self.config())
        rendered = []
        for revision in revisions:
            script = scripts.get_revision(revision)
            output = io.StringIO()
            context = MigrationContext.configure(
                dialect_name="postgresql", opts={"as_sql": True, "output_buffer": output, "literal_binds": True}
            )
            alters: list[dict[str, Any]] = []
            unrenderable = None
            with Operations.context(context) as operations:
                invoke = operations.invoke

                def record(operation: Any, invoke: Any = invoke, alters: list[dict[str, Any]] = alters) -> Any:
                    if isinstance(operation, AlterColumnOp) and operation.modify_type is not None:
                        alters.append({"table": operation.table_name, "column": operation.column_name,
                                       "existing": describe_type(operation.existing_type),
                                       "new": describe_type(operation.modify_type)})  # fmt: skip
                    return invoke(operation)

                operations.invoke = record  # type: ignore[method-assign]
                try:
                    script.module.upgrade()
                except Exception as exc:  # a migration that needs a live connection cannot be judged offline
                    unrenderable = f"{type(exc).__name__}: {exc}"
            rendered.append({"revision": revision, "file": os.path.basename(script.path), "sql": output.getvalue(),
                             "alters": alters, "unrenderable": unrenderable})  # fmt: skip
        return {"rendered": rendered}


def describe_type(type_: Any) -> dict[str, Any] | None:
    """A SQLAlchemy type as plain data: its SQL, its class and bases by name, its length, precision and scale."""
    if type_ is None:
        return None
    return {
        "sql": str(type_),
        "kinds": [kind.__name__ for kind in type(type_).__mro__],
        "length": getattr(type_, "length", None),
        "precision": getattr(type_, "precision", None),
        "scale": getattr(type_, "scale", None),
    }


def _where(tb: Any, location: str) -> tuple[str, bool]:
    """The innermost frame in the project (not a library) as ``file:line``, and whether a migration raised."""
    frames = traceback.extract_tb(tb)
    versions = os.path.join(location, "versions") + os.sep
    in_migration = any(
        frame.filename.startswith(versions) and frame.name in ("upgrade", "downgrade") for frame in frames
    )
    cwd = os.getcwd() + os.sep
    ours = [
        frame for frame in frames
        if frame.filename.startswith((cwd, location + os.sep)) and "site-packages" not in frame.filename
        and not frame.filename.endswith("child.py")
    ]  # fmt: skip
    chosen = ours[-1] if ours else (frames[-1] if frames else None)
    if chosen is None:
        return "", in_migration
    name = chosen.filename
    for root in (location + os.sep, cwd):
        if name.startswith(root):
            name = name[len(root) :]
            break
    return f"{name}:{chosen.lineno}", in_migration


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    errors = getattr(orig, "errors", None)
    if type(orig).__name__ == "ValidationError" and callable(errors):  # pydantic: name every field
        try:
            fields = [
                f"{'.'.join(str(part) for part in error.get('loc', ())) or '(model)'}: {error.get('msg', '')}"
                for error in errors()
            ]
        except Exception:  # not pydantic's after all
            fields = []
        if fields:
            title = getattr(orig, "title", "settings")
            return f"{len(fields)} validation error(s) for {title}: " + "; ".join(fields)
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else ""


def _classify(exc: BaseException, location: str) -> dict[str, Any]:
    where, in_migration = _where(exc.__traceback__, location)
    if isinstance(exc, SyntaxError) and exc.filename:  # the file that does not parse, not the importer's frame
        where = f"{exc.filename}:{exc.lineno}"
    error = f"{type(exc).__name__}: {_first_line(exc)}"
    if in_migration or type(exc).__name__ == "CommandError":  # a migration raised, or Alembic refused the history
        kind = "migration"
    elif _UNREACHABLE.search(error) or isinstance(exc, (ConnectionError, socket.gaierror)):
        kind = "unreachable"
    else:
        kind = "setup"
    return {"ok": False, "kind": kind, "error": error, "where": where}


def _listen_for_throwaway(port: int, way_out: str) -> Forwarder:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)

    def connect() -> socket.socket:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(way_out)
        return upstream

    return Forwarder(listener, connect).start()


def main(argv: list[str]) -> int:
    """Serve the harness's requests until stdin closes; see the module's docstring."""
    reply = os.fdopen(int(argv[1]), "w", buffering=1)

    def answer(message: dict[str, Any]) -> None:
        reply.write(json.dumps(message) + "\n")

    setup = json.loads(sys.stdin.readline())
    try:
        if setup.get("port"):
            _listen_for_throwaway(setup["port"], setup["way_out"])
    except OSError as exc:
        answer({"ok": False, "kind": "isolation", "error": f"{type(exc).__name__}: {exc}", "where": ""})
        return 1
    child = _Child(setup)
    answer({"ok": True, "python": sys.version.split()[0]})
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        try:
            if op in ("upgrade", "downgrade"):
                result = child.step(op, request["revision"])
            elif op == "compare":
                result = child.compare(request["metadata"])
            elif op == "history":
                result = child.history()
            elif op == "render":
                result = child.render(request["revisions"])
            else:
                result = child.offline(request["range"])
            answer({"ok": True, **result})
        except BaseException as exc:  # whatever the project's code raises is reported, never fatal here
            answer(_classify(exc, setup["script_location"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
