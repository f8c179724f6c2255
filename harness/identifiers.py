"""Table and column names as ``drill.toml`` writes them: PostgreSQL's own notation, parsed once.

A name is written as in SQL: ``orders``, ``sales.order_lines``, ``"Sales"."OrderLines"``. Unquoted parts fold
to lower case and quoted parts keep their case and may hold dots or doubled quotes, exactly as PostgreSQL reads
them, so a name copied from a query means the same table here. A table without a schema is in ``public``
(never resolved through a search path, which differs between the backup role and the restore role).

Every table has one stable :attr:`TableName.key`, used in manifests, drill records and messages: the bare name
for a table of ``public`` whose name needs no quotes (``orders``, the keys manifests always had), else the
schema-qualified name quoted where SQL needs it (``sales.order_lines``, ``"Sales"."OrderLines"``). However a
table is written, it gets the same key. Queries never splice names: they use :meth:`TableName.identifier`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

__all__ = ["DEFAULT_SCHEMA", "TableName", "parse_column", "parse_table", "quote_part"]

DEFAULT_SCHEMA = "public"
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
_UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def quote_part(part: str) -> str:
    """One identifier as SQL needs it written: bare when it would read back the same, else double-quoted."""
    return part if _PLAIN.fullmatch(part) else '"' + part.replace('"', '""') + '"'


def _split(text: str) -> list[str]:
    """The dotted parts of ``text``, folded or unquoted as PostgreSQL would.

    Raises:
        ValueError: an empty part, an unterminated quote, or characters that need quotes.
    """
    parts: list[str] = []
    position = 0
    while True:
        if text.startswith('"', position):
            end = position + 1
            chunk = []
            while True:
                close = text.find('"', end)
                if close < 0:
                    raise ValueError(f"{text!r}: unterminated quoted name")
                chunk.append(text[end:close])
                if text.startswith('"', close + 1):  # a doubled quote inside a quoted name
                    chunk.append('"')
                    end = close + 2
                    continue
                position = close + 1
                break
            part = "".join(chunk)
        else:
            match = _UNQUOTED.match(text, position)
            if match is None:
                raise ValueError(f"{text!r}: not a name; write it as in SQL, quoting parts with other characters")
            part = match.group().lower()
            position = match.end()
        if not part:
            raise ValueError(f"{text!r}: empty name")
        parts.append(part)
        if position == len(text):
            return parts
        if text[position] != ".":
            raise ValueError(f"{text!r}: unexpected {text[position]!r}; quote the part that holds it")
        position += 1


@dataclass(frozen=True, order=True)
class TableName:
    """A table's schema and name as the server spells them (case kept, no quotes)."""

    schema: str
    name: str

    @property
    def key(self) -> str:
        """The table's stable name in manifests, records and messages (see the module)."""
        if self.schema == DEFAULT_SCHEMA and _PLAIN.fullmatch(self.name):
            return self.name
        return f"{quote_part(self.schema)}.{quote_part(self.name)}"

    def identifier(self) -> sql.Identifier:
        """The schema-qualified identifier, quoted by psycopg."""
        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return self.key


def parse_table(text: str) -> TableName:
    """Parse ``table`` or ``schema.table`` (parts quoted or not) into a :class:`TableName`.

    Raises:
        ValueError: not a name, or more than two parts.
    """
    parts = _split(text.strip())
    if len(parts) > 2:
        raise ValueError(f"{text!r}: a table is written table or schema.table")
    return TableName(DEFAULT_SCHEMA, parts[0]) if len(parts) == 1 else TableName(parts[0], parts[1])


def parse_column(text: str) -> str:
    """Parse one column name (quoted or not); the empty string stays empty (no column).

    Raises:
        ValueError: not a name, or a dotted one.
    """
    if not text.strip():
        return ""
    parts = _split(text.strip())
    if len(parts) != 1:
        raise ValueError(f"{text!r}: a column is one name; quote it if it holds a dot")
    return parts[0]
