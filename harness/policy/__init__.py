"""Backup policy checks: the plan's "Backup Strategy" as functions over real storage and servers.

Each check raises :class:`harness.errors.CheckFailed` naming the object or setting, the rule (with its
``drill.toml`` key) and the measured number, or returns the :class:`~harness.policy.evidence.Evidence` it
saw for the report. Modules:

* :mod:`.timeline`: newest age, gaps, coverage, retention and counts over any backup timeline;
* :mod:`.logical`: the PostgreSQL dump schedule and retention;
* :mod:`.contents`: compression from real header bytes, manifests (size, sha256), off-server storage;
* :mod:`.snapshots`: daily and weekly base backups, ``pg_verifybackup`` of the newest;
* :mod:`.redis_persistence`: live Redis settings and save status (read-only), daily RDB copies,
  ``redis-check-rdb`` of the newest;
* :mod:`.buckets`: versioning, noncurrent-version lifecycle rules, the deleted-object canary;
* :mod:`.target`: the deployment's catalogues and the objectives a scenario states.
"""
