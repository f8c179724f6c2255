"""The jail of the migration child, entered for real, with a shell in place of the project's interpreter.

As root (namespaces made by root, then the pool account) and as an ordinary user (a user namespace, the way
the drill runs without root), the shell finds the listed project and its own socket directory read-only,
``HOME`` and a private ``/tmp`` writable, and none of the host's ``/run``, ``/var`` or ``/home``: no server's
Unix socket is there. In a user namespace the child is uid 0 of it, so it must hold no capability: a
migration file that tries to walk out of the ``chroot``, remount the project writable or make a user namespace
of its own to win them back is refused each time.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from harness.migrations import confine
from harness.services.accounts import acquire_account
from harness.services.base import ServiceUser, give_to_service_user

PROBE = (
    "id -u; echo $(ls /); touch {project}/planted 2>&1; touch {run}/socket-dir 2>&1; touch {home}/mine && echo wrote; "
    "ls /run /var /home 2>&1"
)


@pytest.fixture
def account() -> Iterator[ServiceUser]:
    """As root a pool account; without root the test's own user, whose jail is a user namespace as the drill's is."""
    held = acquire_account()
    if held is None:
        yield ServiceUser(pwd.getpwuid(os.getuid()).pw_name, os.getuid(), os.getgid())
        return
    yield held.user
    held.release()


ESCAPES = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, act):
    try:
        print(name, "done:", act())
    except OSError as exc:
        print(name, "refused:", exc.strerror)
def chroot_out():
    os.makedirs("/tmp/out", exist_ok=True)
    os.chroot("/tmp/out")
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    return open({secret!r}).read()
def remount(path):
    if libc.mount(None, path.encode(), None, 32 | 4096, None) != 0:  # MS_REMOUNT | MS_BIND: read-write again
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return open(path + "/planted", "w").write("x")
def user_namespace():
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "made"
attempt("chroot", chroot_out)
attempt("remount", lambda: remount({project!r}))
attempt("userns", user_namespace)
"""


def _enter(user: ServiceUser, *, as_root: bool, python: str = "") -> list[str]:
    """Run the probe (or, given, ``python`` code with the same ``{project}``, ``{secret}``) in the jail.

    ``{secret}`` is a file outside the jail that the account owns and may read (mode 0600): only a way out of
    the jail reaches it. Returns the output lines.
    """
    if as_root and os.geteuid() != 0:
        pytest.skip("needs root: the pool accounts are created and switched to by root")
    scratch = Path(tempfile.mkdtemp(prefix="jail-"))
    project = Path(tempfile.mkdtemp(prefix="jail-project-"))
    try:
        (scratch / "root").mkdir()
        (scratch / "run" / "home").mkdir(parents=True)
        give_to_service_user(scratch, user)
        scratch.chmod(0o755)
        project.chmod(0o755)
        run, home = scratch / "run", scratch / "run" / "home"
        secret = scratch / "secret"
        secret.write_text("the drill's secret")
        secret.chmod(0o600)
        os.chown(secret, user.uid, user.gid)
        probe = (["/usr/bin/python3", "-I", "-S", "-c", python.format(project=str(project), secret=str(secret))]
                 if python else ["/bin/sh", "-c", PROBE.format(project=project, run=run, home=home)])  # fmt: skip
        spec = {"root": str(scratch / "root"), "readable": [str(project)], "run": str(run), "home": str(home),
                "cwd": str(project), "uid": user.uid if as_root else None, "gid": user.gid if as_root else None,
                "argv": probe}  # fmt: skip
        jail = ["/usr/bin/python3", "-I", "-S", confine.__file__ or "", json.dumps(spec)]
        if as_root:
            argv = ["unshare", "--net", "--mount", "--", *jail]
        else:  # an ordinary user: the namespaces come from a user namespace, as without root
            ordinary = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"]
            argv = [*(ordinary if os.geteuid() == 0 else []),
                    "unshare", "--user", "--map-root-user", "--net", "--mount", "--", *jail]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert not (project / "planted").exists()
        return (done.stdout + done.stderr).splitlines()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)


@pytest.mark.parametrize("as_root", [True, False], ids=["root, then the pool account", "a user namespace"])
def test_the_jail_holds_the_project_read_only_and_no_host_socket_directory(account: ServiceUser, as_root: bool) -> None:
    lines = _enter(account, as_root=as_root)
    assert lines[0] == (str(account.uid) if as_root else "0"), lines  # uid 0 of the namespace: the account
    top = set(lines[1].split())
    assert {"usr", "etc", "tmp"} <= top, lines
    assert not {"run", "var", "home", "root", "proc"} & top, lines
    assert any(line.endswith("Read-only file system") and "planted" in line for line in lines), lines
    assert any(line.endswith("Read-only file system") and "socket-dir" in line for line in lines), lines
    assert "wrote" in lines
    assert [line for line in lines if line.startswith("ls: cannot access")] == [
        "ls: cannot access '/run': No such file or directory",
        "ls: cannot access '/var': No such file or directory",
        "ls: cannot access '/home': No such file or directory",
    ], lines


@pytest.mark.parametrize("as_root", [True, False], ids=["root, then the pool account", "a user namespace"])
def test_a_child_can_neither_leave_the_chroot_nor_remount_nor_make_a_user_namespace(
    account: ServiceUser, as_root: bool
) -> None:
    lines = _enter(account, as_root=as_root, python=ESCAPES)
    assert lines == [
        "chroot refused: Operation not permitted",
        "remount refused: Operation not permitted",
        "userns refused: Operation not permitted",
    ], lines


CHECK = """
from harness.errors import HarnessError
from harness.migrations.jail import check_user_namespaces
try:
    check_user_namespaces()
except HarnessError as exc:
    print(exc)
else:
    print("allowed")
"""


@pytest.mark.parametrize("allowed", [True, False], ids=["user namespaces allowed", "none allowed"])
def test_a_host_that_allows_no_user_namespace_is_one_line_saying_so_and_what_to_do(allowed: bool) -> None:
    # A user namespace of the test's own in which no further one may be made (user.max_user_namespaces = 0
    # there): what the harness meets on a host that forbids them to ordinary users.
    limit = "" if allowed else "echo 0 > /proc/sys/user/max_user_namespaces && "
    argv = ["unshare", "--user", "--map-root-user", "--", "sh", "-c", f'{limit}exec "$@"', "sh",
            sys.executable, "-c", CHECK]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "allowed"
        if allowed
        else "cannot isolate the migration child: without root its private network and file system come from a "
        "user namespace, which root may not create here (unshare: unshare failed: No space left on device); run "
        "the drill as root (sudo), or allow unprivileged user namespaces (sysctl user.max_user_namespaces above "
        "0; Debian before 11: kernel.unprivileged_userns_clone=1; Ubuntu 23.10 and later: "
        "kernel.apparmor_restrict_unprivileged_userns=0)"
    ], done.stderr
