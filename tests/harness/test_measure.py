"""Stopwatch phases, RPO/RTO against objectives, newest data from a real database, the cut-over verdict."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from alembic import command

from harness.config import DatabaseSettings, Objectives
from harness.measure import NewestData, Stopwatch, newest_data, redis_heartbeat, redis_rpo, rpo_measure, rto_measure
from sandbox.codeblack.revisions import alembic_config

INCIDENT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_phases_add_up_and_rto_runs_from_the_incident() -> None:
    watch = Stopwatch(incident=datetime.now(UTC) - timedelta(minutes=2))
    with watch.phase("download"):
        time.sleep(0.05)
    watch.add("download", 1.0)
    watch.stop()
    assert 1.05 <= watch.phases["download"] < 1.5
    measure = rto_measure(watch, Objectives(rto_minutes=60))
    assert 2.0 <= measure.value < 2.1
    assert measure.met
    assert measure.detail.startswith("download 1.")


def test_rpo_beyond_the_objective_is_missed_with_basis_and_backup_age() -> None:
    newest = NewestData(INCIDENT - timedelta(hours=7), "heartbeat heartbeats.beat_at")
    measure = rpo_measure(INCIDENT, newest, INCIDENT - timedelta(hours=6, minutes=30), Objectives(rpo_hours=6))
    assert not measure.met
    assert measure.describe() == (
        "RPO 7.00 h (objective 6 h, MISSED): newest data 2026-11-24T05:00:00+00:00 from heartbeat "
        "heartbeats.beat_at (25200 s); backup age 6.50 h"
    )


def test_an_empty_database_has_an_infinite_rpo() -> None:
    measure = rpo_measure(INCIDENT, NewestData(None, "newest row of orders"), INCIDENT, Objectives())
    assert not measure.met
    assert measure.detail == "no data found (newest row of orders)"


def test_newest_data_uses_the_heartbeat_when_configured_else_the_critical_tables(pg_database: Any) -> None:
    command.upgrade(alembic_config(pg_database.sqlalchemy_url), "head")
    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO blacklist_entries (kind, value, created_at) VALUES ('email', 'x', %s)",
            [INCIDENT - timedelta(hours=3)],
        )
        conn.execute("INSERT INTO heartbeats (source, beat_at) VALUES ('app', %s)", [INCIDENT - timedelta(minutes=5)])
        tables = newest_data(conn, DatabaseSettings(critical_tables=["blacklist_entries", "orders"]))
        beat = newest_data(conn, DatabaseSettings(heartbeat_table="heartbeats"))
    assert tables == NewestData(
        INCIDENT - timedelta(hours=3), "newest row of blacklist_entries, orders (no heartbeat configured)"
    )
    assert beat == NewestData(INCIDENT - timedelta(minutes=5), "heartbeat heartbeats.beat_at")


def test_each_store_has_an_rpo_in_hours_to_the_second_beside_the_backup_age(redis_server: Any) -> None:
    key = "codeblack:heartbeat:test-measure"
    with redis_server.client() as client:
        assert redis_heartbeat(client, key) == NewestData(None, f"Redis heartbeat key {key}")
        client.set(key, (INCIDENT - timedelta(seconds=90)).isoformat())
        beat = redis_heartbeat(client, key)
        client.delete(key)
    loss = redis_rpo(INCIDENT, beat, INCIDENT - timedelta(hours=2), Objectives(max_rdb_save_age_hours=24))
    detail = (f"newest data 2026-11-24T11:58:30+00:00 from Redis heartbeat key {key} (90 s); backup age 2.00 h; "
              "objective [objectives] max_rdb_save_age_hours")  # fmt: skip
    assert loss.row() == ["RPO Redis", 0.025, 24, "h", True, detail]
    missing = rpo_measure(INCIDENT, NewestData(None, "heartbeat heartbeats.beat_at"), INCIDENT, Objectives())
    assert (missing.name, missing.unit, missing.met) == ("RPO", "h", False)
    assert missing.detail == "no data found (heartbeat heartbeats.beat_at)"


def test_rpo_falls_back_to_the_backups_age_when_nothing_is_declared_and_rto_names_its_last_step() -> None:
    database = DatabaseSettings(critical_tables=[], heartbeat_table="")
    newest = newest_data(None, database)  # type: ignore[arg-type]  # nothing to read: no query is made
    assert newest.from_backup
    measure = rpo_measure(INCIDENT, newest, INCIDENT - timedelta(hours=2), Objectives(rpo_hours=6))
    assert measure.describe() == (
        "RPO 2.00 h (objective 6 h, met): backup age 2.00 h from the backup's time (no heartbeat_table and no time "
        "column declared in [database])"
    )
    assert rpo_measure(INCIDENT, newest, INCIDENT - timedelta(seconds=90), Objectives()).value == 90 / 3600
    watch = Stopwatch(incident=datetime.now(UTC))
    watch.add("restore", 1.0)
    watch.stop()
    stopped = rto_measure(watch, Objectives(), stopped_at="the restored database verified ([app] enabled = false)")
    assert stopped.detail == "stopped at the restored database verified ([app] enabled = false); restore 1.0 s"
