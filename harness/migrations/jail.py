"""The harness's side of the migration child's jail: what it may read, whether it can, and the command.

:mod:`harness.migrations.confine` builds the jail; this module decides what goes in. The jail binds, read-only,
the project's interpreter (its installation, its virtual environment and what that environment's ``.pth``
files add, read as text, never run) and the project's paths. It keeps the host's permissions, so a path the
unprivileged account cannot read would fail deep inside the child; :func:`check_readable` says so first, naming
the path.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import ConfigError, HarnessError
from harness.migrations import confine
from harness.services.base import ServiceUser

__all__ = ["check_readable", "check_user_namespaces", "jail_command", "readable_paths"]


_PACKAGE_DIRS = {"site-packages", "dist-packages"}
_SYSTEM_DIRS = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/etc/")
_USER_NAMESPACE = ["--user", "--map-root-user"]  # the jail's namespaces without root: uid 0 of one is the user


def _held(path: Path, venv: Path, project: list[str]) -> bool:
    """Whether a ``.pth`` entry is the kind of path such a file is for: the venv's, the project's, a site-packages."""
    inside = (str(path) + "/").startswith(tuple(kept + "/" for kept in [str(venv), *project]))
    return inside or bool(_PACKAGE_DIRS & set(path.parts))


def _venv_paths(python: str, project: list[str]) -> list[str]:
    """A virtual environment's own directory and what its ``.pth`` files put on ``sys.path`` (read, not run).

    A project's environment is the project's, as untrusted as its ``env.py``: an entry its ``.pth`` files name
    outside the environment, the project's paths and any site-packages (``/run/postgresql``, a home directory)
    would bring a host directory into the jail, so it is refused. The drill's own environment is trusted.

    Raises:
        ConfigError: naming the ``.pth`` file and the entry.
    """
    venv = Path(os.path.abspath(python)).parent.parent
    if not (venv / "pyvenv.cfg").is_file():
        return []
    trusted = os.path.realpath(venv) == os.path.realpath(sys.prefix)
    found = [str(venv)]
    for pth in venv.glob("lib*/python*/site-packages/*.pth"):
        for line in pth.read_text(errors="replace").splitlines():
            entry = line.strip()
            if not entry or entry.startswith(("#", "import ", "import\t")):
                continue
            path = (pth.parent / entry).resolve()
            if not path.exists():
                continue
            if not trusted and not _held(path, Path(os.path.realpath(venv)), project):
                raise ConfigError(
                    f"{pth}: {path} is outside the project's interpreter, its paths and any site-packages, so the "
                    "migration child's jail does not hold it; list it in [migrations] pythonpath if the project "
                    "needs it"
                )
            found.append(str(path))
    return found


def _project_paths(project: list[Path], cwd: Path) -> list[str]:
    """The project's paths as the jail binds them (resolved); one inside ``cwd`` must resolve inside it too.

    The project's files are untrusted: a link among them (``src -> /run/postgresql``) would bind its target,
    sockets and all, into the jail.

    Raises:
        ConfigError: naming the path and where it leads.
    """
    inside, real_inside = os.path.abspath(cwd) + "/", os.path.realpath(cwd) + "/"
    found = []
    for path in project:
        real = os.path.realpath(path)
        if (os.path.abspath(path) + "/").startswith(inside) and not (real + "/").startswith(real_inside):
            raise ConfigError(
                f"{path} is a path of the project that leads out of it (to {real}): the migration child's jail "
                "holds only the project; replace the link with what it points to"
            )
        found.append(real)
    return found


def readable_paths(python: str, project: list[Path], cwd: Path) -> list[str]:
    """What the jail binds read-only: the interpreter's installation, its venv, and the project's paths.

    Paths under the system directories (bound whole) and paths inside another listed one are left out.

    Raises:
        ConfigError: a ``.pth`` file of the project's environment names a path outside it (see :func:`_venv_paths`),
            or a path in the project (``cwd``) leads out of it.
    """
    executable = shutil.which(python) or python
    real = os.path.realpath(executable)
    paths = _project_paths(project, cwd)
    wanted = [os.path.dirname(os.path.dirname(real)), *_venv_paths(executable, paths), *paths]
    chosen: list[str] = []
    for path in sorted(set(wanted), key=len):
        if (path + "/").startswith(_SYSTEM_DIRS) or any((path + "/").startswith(kept + "/") for kept in chosen):
            continue
        chosen.append(path)
    return chosen


def closed_to(path: str, user: ServiceUser) -> str:
    """Why ``user`` cannot read ``path`` (or enter it, a directory), with how to open it; ``""`` when it can."""
    status = os.stat(path)
    need = 0o5 if stat.S_ISDIR(status.st_mode) else 0o4
    bits = status.st_mode & 0o7
    if status.st_uid == user.uid:
        bits = (status.st_mode >> 6) & 0o7
    elif status.st_gid == user.gid:
        bits = (status.st_mode >> 3) & 0o7
    if bits & need == need:
        return ""
    try:
        owner = pwd.getpwuid(status.st_uid).pw_name
    except KeyError:
        owner = str(status.st_uid)
    return (
        f"{path} is not readable by {user.name}, the unprivileged account the migration child runs as "
        f"(mode {stat.filemode(status.st_mode)}, owner {owner}): make the project and its interpreter "
        f"readable by other users (chmod -R o+rX {path})"
    )


def check_readable(paths: list[str], user: ServiceUser) -> None:
    """Each path the jail binds can be read (and a directory entered) by the child's unprivileged account.

    The jail keeps the host's permissions: a bound directory of mode 0700 stays closed to the account.

    Raises:
        ConfigError: naming the path, its mode and owner, and how to open it.
    """
    for path in paths:
        if reason := closed_to(path, user):
            raise ConfigError(reason)


def first_closed_directory(paths: list[str], user: ServiceUser, *, limit: int = 20_000) -> str:
    """Why the first directory below ``paths`` that ``user`` cannot enter is closed (``""``: none, or too many).

    Asked only once loading the project failed: a closed package directory inside an open project reads as
    a mere ``ModuleNotFoundError``. Files are not judged: a project may keep a private file the child never needs.
    """
    seen = 0
    for root in paths:
        for directory, dirs, _files in os.walk(root):
            dirs.sort()
            for name in dirs:
                seen += 1
                if seen > limit:
                    return ""
                if reason := closed_to(os.path.join(directory, name), user):
                    return reason
    return ""


def tree_paths(root: Path) -> list[str]:
    """``root`` and every directory and file below it, ``__pycache__`` left out (Python does without it)."""
    found = [str(root)]
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        found += [os.path.join(directory, name) for name in [*dirs, *sorted(files)]]
    return found


@functools.cache
def _user_namespace_refusal() -> str:
    """Why this user may not make the jail's namespaces (``unshare``'s own line), or ``""`` when it may."""
    try:
        probe = ["unshare", *_USER_NAMESPACE, "--net", "--mount", "true"]
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return "unshare is not installed (Debian/Ubuntu: apt-get install util-linux)"
    except subprocess.TimeoutExpired:
        return "unshare --user did not return within 30 s"
    if done.returncode == 0:
        return ""
    return (done.stderr.strip().splitlines() or [f"unshare --user exited with code {done.returncode}"])[-1]


def check_user_namespaces() -> None:
    """Without root the jail's namespaces come from a user namespace: where the host allows none, say so at once.

    Otherwise the child would die before its first answer with ``unshare``'s bare complaint, which names
    neither the cause nor the two ways out.

    Raises:
        HarnessError: one line with ``unshare``'s reason and what to do.
    """
    if reason := _user_namespace_refusal():
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:  # a container's uid with no passwd entry
            user = f"uid {os.geteuid()}"
        raise HarnessError(
            f"cannot isolate the migration child: without root its private network and file system come from a "
            f"user namespace, which {user} may not create here ({reason}); run the drill as root (sudo), or "
            "allow unprivileged user namespaces (sysctl user.max_user_namespaces above 0; Debian before 11: "
            "kernel.unprivileged_userns_clone=1; Ubuntu 23.10 and later: "
            "kernel.apparmor_restrict_unprivileged_userns=0)"
        )


def jail_command(
    workdir: Path,
    python: str,
    project: list[Path],
    *,
    cwd: Path,
    user: ServiceUser | None,
    argv: list[str],
    trees: Sequence[Path] = (),
) -> list[str]:
    """``unshare … confine.py <spec>``: the jail in ``workdir`` (``root/``, the account's ``run/``), then ``argv``.

    ``trees`` (the migrations directory) must be readable throughout: a closed ``versions/`` would otherwise
    read as a project without revisions, since Alembic skips a directory it cannot list.

    Raises:
        ConfigError: a path the jail binds, or one inside ``trees``, is not readable by ``user``; or one of the
            project's leads out of it.
        HarnessError: without root, the host allows no user namespace (:func:`check_user_namespaces`).
    """
    if os.geteuid() != 0:
        check_user_namespaces()
    readable = readable_paths(python, project, cwd)
    if user is not None:
        check_readable(readable + [path for tree in trees for path in tree_paths(tree)], user)
    spec = {"root": str(workdir / "root"), "readable": readable, "run": str(workdir / "run"),
            "home": str(workdir / "run" / "home"), "cwd": str(cwd), "uid": user.uid if user else None,
            "gid": user.gid if user else None, "argv": argv}  # fmt: skip
    (workdir / "root").mkdir()
    # A pid namespace of its own, its first process the child: when the child ends (or unshare is killed,
    # --kill-child), the kernel kills every process in it at once. Killing the account's processes one pid at a
    # time misses one that forks and exits faster than the walk. An IPC namespace of its own: System V shared
    # memory, semaphores and queues are the host's otherwise, and without root every segment of the user's
    # (mode 0600 or not) is the child's to read and write.
    namespaces = ["--net", "--mount", "--ipc", "--pid", "--kill-child"]
    if os.geteuid() != 0:
        namespaces = [*_USER_NAMESPACE, *namespaces]
    return ["unshare", *namespaces, "--", sys.executable, "-I", "-S", confine.__file__ or "", json.dumps(spec)]
