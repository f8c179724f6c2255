"""``prune`` on a target of several databases: each keeps its own newest dump, whatever the others hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.backup.prune import prune
from harness.config import load_config
from harness.services.s3 import S3Server
from harness.storage.manifest import format_timestamp


def test_each_database_keeps_its_newest_dump_however_old(tmp_path: Path, s3_server: S3Server) -> None:
    path = tmp_path / "drill.toml"
    path.write_text("[target]\nname = 'shop'\nsandbox = false\n[[databases]]\nname = 'orders'\n"
                    "[[databases]]\nname = 'catalog'\n")  # fmt: skip
    config = load_config(path)
    client, bucket = s3_server.client(), f"prune-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    now = datetime.now(UTC)
    old, new = format_timestamp(now - timedelta(days=20)), format_timestamp(now)
    keys = {"orders_old": f"postgres/logical/orders/shop-{old}.dump",
            "orders_new": f"postgres/logical/orders/shop-{new}.dump",
            "catalog_only": f"postgres/logical/catalog/shop-{old}.dump"}  # fmt: skip
    for key in keys.values():
        client.put_object(Bucket=bucket, Key=key, Body=b"PGDMP")
    # The catalog's only dump is older than the retention, but it is the newest of its database: kept.
    assert prune(client, bucket, config, now=now, dry_run=True) == [keys["orders_old"]]
