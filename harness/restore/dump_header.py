"""What a custom-format dump says about itself: the archive version and the PostgreSQL it was dumped from.

A ``pg_dump -Fc`` file opens with ``PGDMP``, the archive format version (major, minor, revision bytes), the
sizes of its integers and offsets, the format, the compression, the creation time, the database name, the
source server's version string and ``pg_dump``'s (``ReadHead`` in PostgreSQL's ``pg_backup_archiver.c``).
The drill reads those first bytes before the download ends, to start a staging server of the dump's major
version while the rest streams in. The bytes are untrusted: anything that does not parse is ``None``, and
``pg_restore`` then says what is wrong with the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HEADER_BYTES", "DumpHeader", "major_of", "parse_dump_header"]

HEADER_BYTES = 4096
"""How much of a dump to read for its header (a database name or version string longer than that: no header)."""

_CUSTOM_FORMAT = 1


@dataclass(frozen=True)
class DumpHeader:
    """The facts of a custom-format dump's header.

    Attributes:
        archive_version: the archive format version, e.g. ``(1, 14, 0)``; a ``pg_restore`` reads only versions
            up to its own.
        source_version: the version string of the server that was dumped (``15.18 (Debian 15.18-0+deb12u1)``).
        dumper_version: the version string of the ``pg_dump`` that wrote the file.
        database: the name of the database that was dumped (``""``: not read).
    """

    archive_version: tuple[int, int, int]
    source_version: str
    dumper_version: str
    database: str = ""

    @property
    def source_major(self) -> int | None:
        """The dumped server's major version (``15``), or ``None`` when the string does not say."""
        return major_of(self.source_version)

    @property
    def dumper_major(self) -> int | None:
        """The major version of the ``pg_dump`` that wrote the file."""
        return major_of(self.dumper_version)

    @property
    def archive(self) -> str:
        """The archive version as ``pg_restore`` prints it (``1.16``)."""
        return f"{self.archive_version[0]}.{self.archive_version[1]}"


def major_of(version: str) -> int | None:
    """The major of a PostgreSQL version string (``15.18 (Debian ...)``: ``15``); ``None`` when it names none."""
    match = re.match(r"(\d+)", version)
    return int(match[1]) if match else None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.int_size = data, 0, 4

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def integer(self) -> int:
        negative = self.byte()
        value = sum(self.byte() << (8 * i) for i in range(self.int_size))
        return -value if negative else value

    def string(self) -> str:
        length = self.integer()
        if length < 0:
            return ""
        if self.pos + length > len(self.data):
            raise ValueError("truncated")
        self.pos += length
        return self.data[self.pos - length : self.pos].decode("utf-8", errors="replace")


def parse_dump_header(data: bytes) -> DumpHeader | None:
    """The header of a custom-format dump from its first bytes, or ``None`` (another format, or garbage)."""
    if not data.startswith(b"PGDMP"):
        return None
    reader = _Reader(data)
    reader.pos = 5
    try:
        major, minor = reader.byte(), reader.byte()
        version = (major, minor, reader.byte() if (major, minor) > (1, 0) else 0)
        reader.int_size = reader.byte()
        if not 1 <= reader.int_size <= 8:
            return None
        if version >= (1, 7, 0):
            reader.byte()  # offset size
        if reader.byte() != _CUSTOM_FORMAT or version < (1, 10, 0):  # before 1.10 no version strings
            return None
        if version >= (1, 15, 0):
            reader.byte()  # compression algorithm
        else:
            reader.integer()  # compression level
        for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
            reader.integer()
        database = reader.string()
        source, dumper = reader.string(), reader.string()
        return DumpHeader(version, source, dumper, database)
    except ValueError:
        return None
