"""Unpack a base backup's tarball without trusting it: our own ustar reader, our own checks, our own writes.

Everything in the backup bucket is untrusted (DESIGN.md, "Targets and trust"), and the interpreter's
extraction filters have had escapes (CVE-2025-4517: a symlink chain that overflows ``PATH_MAX`` in
``os.path.realpath`` let ``filter="data"`` write outside the target). So ``tarfile`` is not used at all.
``pg_basebackup`` writes plain POSIX ustar (names under 100 bytes, sizes in octal or base-256), holding
regular files and directories, plus symbolic links only for tablespaces, and that is all this reader accepts:

- member types: regular files and directories; links, devices, FIFOs, pax and GNU extension headers are
  refused (a ``pg_tblspc/<oid>`` link as "tablespaces are not supported": the drill restores no tablespace);
- names: UTF-8, at most :data:`MAX_NAME` bytes, relative, no ``..``, empty or control-character component;
- modes: no setuid, setgid or sticky bit; whatever the header says, files are created ``0600`` and
  directories ``0700`` (what PostgreSQL wants), so nothing unpacked is group- or world-writable;
- writes: every path is walked from the target's descriptor with ``O_NOFOLLOW``, and files are created with
  ``O_CREAT | O_EXCL``, so neither a link nor a second member of the same name can redirect a write;
- size: the uncompressed stream is counted as it is read (headers, padding and data alike, not just what
  headers claim) and the unpack stops before writing the first byte past the cap the manifest allows.

Every refusal is one :class:`~harness.errors.CheckFailed` line naming the object and the member.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CheckFailed, HarnessError

__all__ = ["MAX_NAME", "expanded_size", "size_cap", "unpack"]

MAX_NAME = 255
"""The longest member name accepted, in bytes (ustar itself cannot hold more than 256; PostgreSQL's are < 100)."""

_BLOCK = 512
_CHUNK = 1024 * 1024
_FILE, _DIR = (b"0", b"\0"), b"5"
_REFUSED_TYPES = {
    b"1": "hard links are not allowed",
    b"2": "symbolic links are not allowed",
    b"3": "device nodes are not allowed",
    b"4": "device nodes are not allowed",
    b"6": "FIFOs are not allowed",
}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def size_cap(declared: int) -> int:
    """The most bytes a tarball whose manifest declares ``declared`` expanded bytes may expand to (1 %, >= 1 MiB)."""
    return declared + max(declared // 100, 1024 * 1024)


def expanded_size(archive: Path) -> int:
    """Bytes of the uncompressed tar stream in ``archive`` (what a manifest records as ``expanded``)."""
    total = 0
    with gzip.open(archive, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
    return total


class _Refused(Exception):
    """One member breaks a rule; :func:`unpack` names the object and the member."""


class _Capped:
    """The uncompressed stream, counted; reading past the cap fails before the bytes reach the disk."""

    def __init__(self, stream: gzip.GzipFile, what: str, cap: int, declared: int) -> None:
        self.stream, self.what, self.cap, self.declared = stream, what, cap, declared
        self.read_bytes = 0

    def over(self) -> CheckFailed:
        return CheckFailed(f"{self.what}: expands past its cap of {self.cap} bytes (the manifest declares "
                           f"{self.declared} expanded bytes); refused as an expansion bomb")  # fmt: skip

    def header(self) -> bytes:
        """The next 512-byte header, or ``b""`` at the end-of-archive marker or a clean end between members."""
        block = self.exactly(_BLOCK, at_end=b"")
        return b"" if block == b"\0" * _BLOCK else block

    def exactly(self, size: int, at_end: bytes | None = None) -> bytes:
        """``size`` bytes, or a one-line failure if the stream ends first or the cap would be passed."""
        if self.read_bytes + size > self.cap:
            raise self.over()
        data = self.stream.read(size)
        if not data and at_end is not None:
            return at_end
        while len(data) < size:
            more = self.stream.read(size - len(data))
            if not more:
                raise CheckFailed(f"{self.what}: truncated after {self.read_bytes + len(data)} uncompressed bytes")
            data += more
        self.read_bytes += size
        return data


@dataclass(frozen=True)
class _Header:
    name: str
    parts: list[str]
    kind: bytes
    size: int


def _shown(name: str) -> str:
    """A member name as quoted in a message: repr (so control characters stay on the line), at most 80 characters."""
    return repr(name[:80] + ("..." if len(name) > 80 else ""))


def _number(field: bytes) -> int | None:
    """A ustar numeric field: NUL/space-terminated octal, or base-256 (first byte 0x80) as PostgreSQL writes."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if text.strip(b"01234567"):
        return None
    return int(text, 8)


def _parse(block: bytes) -> _Header:
    """Check one 512-byte header and return what it declares."""
    raw, prefix = block[:100].split(b"\0", 1)[0], block[345:500].split(b"\0", 1)[0]
    joined = prefix + b"/" + raw if prefix else raw
    shown = _shown(joined.decode("utf-8", "replace"))
    if _number(block[148:156]) != sum(block[:148]) + 8 * 0x20 + sum(block[156:]):
        raise _Refused(f"{shown}: header checksum is wrong")
    if block[257:265] != b"ustar\x0000":
        raise _Refused(f"{shown}: not a POSIX ustar header (pg_basebackup writes only those)")
    try:
        name = joined.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(f"{shown}: name is not UTF-8") from None
    parts = _parts(name)
    kind = block[156:157]
    if kind not in (*_FILE, _DIR):
        raise _Refused(f"{shown}: {_REFUSED_TYPES.get(kind, f'unsupported member type {kind!r}')}")
    mode, size = _number(block[100:108]), _number(block[124:136])
    if mode is None or size is None:
        raise _Refused(f"{shown}: malformed mode or size field")
    if mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        raise _Refused(f"{shown}: mode {mode:o} has a setuid, setgid or sticky bit")
    if kind == _DIR and size:
        raise _Refused(f"{shown}: a directory that carries {size} bytes of data")
    return _Header(name, parts, kind, size)


def _parts(name: str) -> list[str]:
    """The components of a member name, refused unless it stays below the target."""
    if len(name.encode()) > MAX_NAME:
        raise _Refused(f"{_shown(name)}: name is longer than {MAX_NAME} bytes")
    if name.startswith("/"):
        raise _Refused(f"{_shown(name)}: absolute path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise _Refused(f"{_shown(name)}: control character in name")
    parts = name.split("/")
    while parts[:1] == ["."]:
        parts = parts[1:]
    if parts[-1:] == [""]:
        parts = parts[:-1]
    if ".." in parts:
        raise _Refused(f"{_shown(name)}: '..' component")
    if any(part in ("", ".") for part in parts):
        raise _Refused(f"{_shown(name)}: empty or '.' component")
    if parts[:1] == ["pg_tblspc"] and len(parts) > 1:
        raise _Refused(f"{_shown(name)}: tablespaces are not supported (the drill restores only the main data "
                       "directory)")  # fmt: skip
    return parts


class _Tree:
    """Writes below one directory, through descriptors: no link is ever followed, no file ever replaced."""

    def __init__(self, root: Path) -> None:
        self.root = os.open(root, _DIR_FLAGS)

    def close(self) -> None:
        os.close(self.root)

    def _open_parent(self, parts: list[str], shown: str) -> int:
        fd = os.dup(self.root)
        try:
            for part in parts:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _Refused(f"{shown}: a parent directory is a link or a file") from None
            raise
        return fd

    def mkdir(self, parts: list[str], shown: str) -> None:
        parent = self._open_parent(parts[:-1], shown)
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode):
                raise _Refused(f"{shown}: a directory where a file already is") from None
        finally:
            os.close(parent)

    def create(self, parts: list[str], shown: str) -> int:
        parent = self._open_parent(parts[:-1], shown)
        try:
            return os.open(parts[-1], _NEW_FILE, 0o600, dir_fd=parent)
        except FileExistsError:
            raise _Refused(f"{shown}: already exists (a second member of that name)") from None
        finally:
            os.close(parent)


def _copy(stream: _Capped, fd: int, size: int) -> None:
    left = size
    while left:
        chunk = memoryview(stream.exactly(min(left, _CHUNK)))
        left -= len(chunk)
        while chunk:
            chunk = chunk[os.write(fd, chunk) :]
    stream.exactly(-size % _BLOCK)


def _members(stream: _Capped, tree: _Tree) -> None:
    while True:
        block = stream.header()
        if not block:
            return
        header = _parse(block)
        if not header.parts:
            continue  # "./": the target itself
        shown, parts = _shown(header.name), header.parts
        if stream.read_bytes + header.size > stream.cap:
            raise CheckFailed(f"{stream.what}: member {shown} declares {header.size} bytes, past the "
                              f"archive's cap of {stream.cap} bytes; refused as an expansion bomb")  # fmt: skip
        if header.kind == _DIR:
            tree.mkdir(parts, shown)
            continue
        fd = tree.create(parts, shown)
        try:
            _copy(stream, fd, header.size)
        finally:
            os.close(fd)


def unpack(archive: Path, target: Path, *, what: str, declared: int) -> int:
    """Unpack the gzip'd tarball ``archive`` into the existing directory ``target``, trusting none of it.

    Args:
        archive: the downloaded (and hash-verified) ``.tar.gz``.
        target: where its members go; nothing is ever written outside it.
        what: the object's name in messages (its key).
        declared: the expanded size its manifest declares; the stream may exceed it by :func:`size_cap`.

    Returns:
        The uncompressed bytes read.

    Raises:
        CheckFailed: a member breaks a rule above, the stream is corrupt or truncated, or it expands past the cap
            (one line naming ``what`` and the member; whatever was written before stays inside ``target``).
        HarnessError: the disk filled up.
    """
    cap = size_cap(declared)
    tree = _Tree(target)
    try:
        with gzip.open(archive, "rb") as raw:
            stream = _Capped(raw, what, cap, declared)
            _members(stream, tree)
            return stream.read_bytes
    except _Refused as exc:
        raise CheckFailed(f"{what}: member {exc}; refused") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CheckFailed(f"{what}: not a valid gzip stream: {exc}") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HarnessError(f"no space left in {target} while unpacking {what}: {exc.strerror}") from None
        raise CheckFailed(f"{what}: cannot be unpacked: {exc.strerror or exc}") from None
    finally:
        tree.close()
