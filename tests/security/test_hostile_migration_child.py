"""A migration file's top level may hang or leave processes behind: the gate must end, and so must they.

Loading the revision graph runs each migration file's module code in the jailed child. A file that never returns
must not hang the gate (the child gets a deadline for each answer, then is killed, and the gate names what it
was asked); a file that forks a process which keeps changing its pid (so a kill of the account's processes,
one pid at a time, misses it) must not outlive the child. Nor may it reach the host's System V shared memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.config import PROJECT_ROOT
from harness.errors import CheckFailed, ConfigError
from harness.migrations import isolation
from harness.migrations.history import check_tracked, load_graph
from harness.migrations.project import MigrationProject
from tests.data.migration_sets import build_project
from tests.security.listening import Listening
from tests.security.test_hostile_migration_file import FILE, REVISION, REVISION_BODY

METADATA = "sandbox.codeblack.models:Base.metadata"
HANG = "import time\ntime.sleep(3600)\n"
# Forks processes that fork again and exit, over and over, so each pid lives a moment; the first generation
# waits for the leapfrog to run before the file returns. It stops by itself after a minute (a test's cleanup).
LEAPFROG = """
import ctypes, os, time
read, write = os.pipe()
if os.fork() == 0:
    ctypes.CDLL(None).prctl(15, b"{name}", 0, 0, 0)  # PR_SET_NAME: the name the test looks for
    os.close(read)
    for _ in range(2):  # three chains, so one at least outruns a kill that walks the pids once
        if os.fork() == 0:
            break
    end = time.monotonic() + 60
    os.write(write, b"x")
    while time.monotonic() < end:
        if os.fork():
            os._exit(0)
    os._exit(0)
os.close(write)
os.read(read, 1)
"""


def _project(tmp_path: Path, top_level: str) -> MigrationProject:
    root = build_project("hostile_child", tmp_path)
    (root / "versions" / FILE).write_text(f'"""notes"""\n{top_level}{REVISION_BODY}')
    return MigrationProject(root, REVISION, METADATA)


def _load_failure(tmp_path: Path, top_level: str) -> str:
    """How the tracked-files check reports a migration file whose top level is ``top_level``."""
    with pytest.raises(CheckFailed) as failure:
        check_tracked(_project(tmp_path, top_level))
    return str(failure.value)


def _named(name: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "status"]):
        if process.info["name"] == name and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


@pytest.fixture
def leapfrog_name(tmp_path: Path) -> Iterator[str]:
    name = "leap" + tmp_path.name[-8:].replace("_", "")[:8]
    yield name
    deadline = time.monotonic() + 90
    while (left := _named(name)) and time.monotonic() < deadline:  # a leapfrog escaped: stop it for the next test
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()


def test_a_migration_file_that_never_returns_stops_the_gate_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "_REPLY_TIMEOUT_S", 5.0)
    project = _project(tmp_path, HANG)

    with pytest.raises(CheckFailed) as failure:
        load_graph(project)

    assert str(failure.value) == (
        f"the migration child ({project.python}) gave no answer to 'history' within 5 s: the project's env.py or "
        f"a migration file in {project.versions_dir} does not return; it was stopped"
    )


def test_a_process_a_migration_file_leaves_behind_dies_with_the_child(tmp_path: Path, leapfrog_name: str) -> None:
    project = _project(tmp_path, LEAPFROG.format(name=leapfrog_name))

    graph = load_graph(project)

    assert graph.order[-1] == REVISION
    assert _named(leapfrog_name) == [], "a process forked by a migration file outlived the migration child"


@pytest.fixture
def host_directory() -> Iterator[Path]:
    """A directory of the host anyone may read, outside every path of the project: the jail must not hold it."""
    directory = Path(tempfile.mkdtemp(prefix="host-only-"))
    directory.chmod(0o755)
    (directory / "secret").write_text("planted-host-file")
    (directory / "secret").chmod(0o644)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _venv_project(tmp_path: Path, pth_lines: list[str]) -> MigrationProject:
    """A project with an interpreter of its own whose ``.pth`` file lists ``pth_lines`` beside its dependencies."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    packages = next((venv / "lib").glob("python3*/site-packages"))
    (packages / "deps.pth").write_text("\n".join([site.getsitepackages()[0], *pth_lines]) + "\n")
    root = build_project("hostile_pth", tmp_path)
    reader = "import glob\nraise RuntimeError(' '.join(open(f).read() for f in glob.glob('/tmp/host-only-*/secret')))\n"
    (root / "versions" / FILE).write_text(f'"""notes"""\n{reader}{REVISION_BODY}')
    python = str(venv / "bin" / "python")
    return MigrationProject(root, REVISION, METADATA, python=python, pythonpath=(PROJECT_ROOT,))


def test_a_pth_file_of_the_projects_interpreter_cannot_bring_a_host_directory_into_the_jail(
    tmp_path: Path, host_directory: Path
) -> None:
    project = _venv_project(tmp_path, [str(host_directory)])
    pth = next((tmp_path / "venv" / "lib").glob("python3*/site-packages")) / "deps.pth"

    with pytest.raises(ConfigError) as failure:
        check_tracked(project)

    assert str(failure.value) == (
        f"{pth}: {host_directory} is outside the project's interpreter, its paths and any site-packages, so the "
        "migration child's jail does not hold it; list it in [migrations] pythonpath if the project needs it"
    )


def test_a_pth_file_naming_site_packages_is_held_by_the_jail(tmp_path: Path) -> None:
    project = _venv_project(tmp_path, [])

    with pytest.raises(CheckFailed) as failure:
        check_tracked(project)

    assert str(failure.value).endswith(f"{FILE}: fails to load (RuntimeError: )"), failure.value


# Fills the jail's /tmp and HOME past their limits and asks for more memory than the child may take; each outcome
# is reported through the error the file raises (the only thing a jailed file can send back).
HOARD = """
import errno, os
def fill(directory):
    try:
        for number in range(1100):
            with open(os.path.join(directory, f"hoard-{number}"), "wb") as out:
                out.write(bytes(1 << 20))
        return "filled"
    except OSError as exc:
        return errno.errorcode[exc.errno]
    finally:
        for name in os.listdir(directory):
            if name.startswith("hoard-"):
                os.remove(os.path.join(directory, name))
try:
    bytearray(6 << 30)
    memory = "allocated"
except MemoryError:
    memory = "MemoryError"
raise RuntimeError(f"tmp={fill('/tmp')} home={fill(os.environ['HOME'])} memory={memory}")
"""


def test_a_migration_file_cannot_fill_the_disk_or_take_unbounded_memory(tmp_path: Path) -> None:
    message = _load_failure(tmp_path, HOARD)
    assert message.endswith(f"{FILE}: fails to load (RuntimeError: tmp=ENOSPC home=ENOSPC memory=MemoryError)"), message


# Forks sleeping children until a fork fails or 600 exist: a fork bomb's first steps, stopped before the host's.
BOMB = """
import errno, os, time
forked = 0
try:
    while forked < 600:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forked += 1
    outcome = "unbounded"
except OSError as exc:
    outcome = errno.errorcode[exc.errno]
raise RuntimeError(f"fork={outcome}")
"""


def test_a_migration_file_cannot_fork_without_limit(tmp_path: Path) -> None:
    message = _load_failure(tmp_path, BOMB)
    assert message.endswith(f"{FILE}: fails to load (RuntimeError: fork=EAGAIN)"), message


# Prints without end: the child's output goes to a log file on the host's disk, which must not grow without limit.
CHATTER = """
import errno, os
try:
    for _ in range(200):
        os.write(1, bytes(1 << 20))
    outcome = "written"
except OSError as exc:
    outcome = errno.errorcode[exc.errno]
raise RuntimeError(f"stdout={outcome}")
"""


def test_a_migration_file_cannot_fill_the_disk_through_its_output(tmp_path: Path) -> None:
    message = _load_failure(tmp_path, CHATTER)
    assert message.endswith(f"{FILE}: fails to load (RuntimeError: stdout=EFBIG)"), message


@pytest.fixture
def trusting_socket() -> Iterator[tuple[Path, Listening]]:
    """A Unix socket anyone may open, in a directory outside the project, recording what connects to it."""
    directory = Path(tempfile.mkdtemp(prefix="standin-run-"))
    directory.chmod(0o755)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(directory / "server.sock"))
    (directory / "server.sock").chmod(0o777)
    listener.listen(4)
    listening = Listening(listener, read=False)
    yield directory, listening
    listening.close()
    shutil.rmtree(directory, ignore_errors=True)


def test_a_symlink_in_the_project_cannot_bring_a_host_socket_into_the_jail(
    tmp_path: Path, trusting_socket: tuple[Path, Listening]
) -> None:
    directory, listening = trusting_socket
    root = build_project("hostile_link", tmp_path)
    (root / "src").symlink_to(directory)  # [migrations] pythonpath = ["src"], as the operator wrote it
    dial = f"import socket\nsocket.socket(socket.AF_UNIX).connect({str(directory / 'server.sock')!r})\n"
    (root / "versions" / FILE).write_text(f'"""notes"""\n{dial}{REVISION_BODY}')
    project = MigrationProject(root, REVISION, METADATA, pythonpath=(root / "src",), cwd=root)

    with pytest.raises(ConfigError) as failure:
        check_tracked(project)

    assert str(failure.value) == (
        f"{root / 'src'} is a path of the project that leads out of it (to {directory}): the migration child's "
        "jail holds only the project; replace the link with what it points to"
    )
    assert listening.received == []


# Looks up a System V shared memory segment of the host by its key, and reads it when found.
SHARED_MEMORY = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
found = libc.shmget({key}, 0, 0)
if found < 0:
    raise RuntimeError("shm=" + errno.errorcode[ctypes.get_errno()])
raise RuntimeError("shm=" + ctypes.string_at(libc.shmat(found, None, 0), 6).decode())
"""


@pytest.fixture
def shared_memory() -> Iterator[int]:
    """A System V segment on the host holding b"secret", open to every user (mode 0666): its key."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    key = random.randint(1 << 20, 1 << 30)
    segment = libc.shmget(key, 4096, 0o1000 | 0o2000 | 0o666)  # IPC_CREAT | IPC_EXCL
    assert segment >= 0, f"shmget: errno {ctypes.get_errno()}"
    try:
        ctypes.memmove(libc.shmat(segment, None, 0), b"secret", 6)
        yield key
    finally:
        libc.shmctl(segment, 0, None)  # IPC_RMID: gone once detached (at the test process's exit)


def test_a_migration_file_finds_no_shared_memory_of_the_host(tmp_path: Path, shared_memory: int) -> None:
    message = _load_failure(tmp_path, SHARED_MEMORY.format(key=shared_memory))
    assert message.endswith(f"{FILE}: fails to load (RuntimeError: shm=ENOENT)"), message
