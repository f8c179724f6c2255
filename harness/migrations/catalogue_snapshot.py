"""A full snapshot of a database's schema, read from ``pg_catalog``, for exact before/after comparisons.

The round-trip gate needs more than "downgrade ran": a downgrade that forgets an index, a default or an enum
type leaves a trace that SQLAlchemy's inspector does not always show. The snapshot maps one line per catalogue
object (``column public.orders.currency``) to its full definition as PostgreSQL prints it, so a difference
reads as a sentence naming the object. Alembic's own ``alembic_version`` table is left out.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["Snapshot", "diff_snapshots", "take_snapshot"]

Snapshot = dict[str, str]

_USER_SCHEMA = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
_NOT_ALEMBIC = "c.relname <> 'alembic_version'"

_QUERIES: dict[str, str] = {
    "relation": f"""
        SELECT n.nspname || '.' || c.relname,
               CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
                              WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END
               || coalesce(' AS ' || pg_get_viewdef(c.oid), '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMA} AND {_NOT_ALEMBIC}""",
    "column": f"""
        SELECT n.nspname || '.' || c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
               || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
               || CASE a.attidentity WHEN 'a' THEN ' IDENTITY ALWAYS' WHEN 'd' THEN ' IDENTITY BY DEFAULT'
                                     ELSE '' END
               || CASE a.attgenerated WHEN 's' THEN ' GENERATED STORED' ELSE '' END
               || coalesce(' COLLATE ' || co.collname, '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND {_USER_SCHEMA} AND {_NOT_ALEMBIC}""",
    "constraint": f"""
        SELECT n.nspname || '.' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMA} AND {_NOT_ALEMBIC}""",
    "index": f"""
        SELECT n.nspname || '.' || c.relname, pg_get_indexdef(c.oid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class t ON t.oid = i.indrelid
        WHERE {_USER_SCHEMA} AND t.relname <> 'alembic_version'""",
    "sequence": f"""
        SELECT n.nspname || '.' || c.relname,
               format('%s start %s increment %s min %s max %s cache %s%s', s.seqtypid::regtype, s.seqstart,
                      s.seqincrement, s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END)
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMA}""",
    "enum": f"""
        SELECT n.nspname || '.' || t.typname, string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_USER_SCHEMA}
        GROUP BY 1""",
    "trigger": f"""
        SELECT n.nspname || '.' || c.relname || '.' || g.tgname, pg_get_triggerdef(g.oid)
        FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT g.tgisinternal AND {_USER_SCHEMA}""",
}


def take_snapshot(connection: Connection) -> Snapshot:
    """Every schema object of the user's schemas, as ``"<kind> <name>" -> definition``."""
    snapshot: Snapshot = {}
    for kind, query in _QUERIES.items():
        for name, definition in connection.execute(text(query)):
            snapshot[f"{kind} {name}"] = definition
    return dict(sorted(snapshot.items()))


def diff_snapshots(before: Snapshot, after: Snapshot) -> list[str]:
    """The differences from ``before`` to ``after``, one sentence per object (empty when identical)."""
    lines = [f"{key} is missing (was: {before[key]})" for key in before if key not in after]
    lines += [f"{key} was left behind ({after[key]})" for key in after if key not in before]
    lines += [
        f"{key} changed from {before[key]!r} to {after[key]!r}"
        for key in before
        if key in after and before[key] != after[key]
    ]
    return lines
