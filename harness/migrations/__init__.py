"""Alembic gates of the plan's Migration Workflow and Rollback policy, one module per gate.

:mod:`.project` resolves the target's Alembic project from ``drill.toml``; :mod:`.history` (tracked files, one
linear chain, expected head), :mod:`.drift`, :mod:`.roundtrip` with :mod:`.catalogue_snapshot`,
:mod:`.destructive` (with the backup checkpoint), :mod:`.lint` (squawk) and :mod:`.deploy` (the rehearsal on a
staging copy) each check one rule and raise ``CheckFailed`` naming the revision and the reason.
"""
