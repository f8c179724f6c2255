"""Alembic gates of the plan's Migration Workflow and Rollback policy, one module per gate.

:mod:`.project` resolves the target's Alembic project from ``drill.toml``; :mod:`.history` (tracked files, one
linear chain, expected head), :mod:`.drift`, :mod:`.roundtrip` with :mod:`.catalogue_snapshot`,
:mod:`.destructive` with :mod:`.checkpoint` (the newest full backup), :mod:`.lint` (squawk), :mod:`.deploy`
(the rehearsal on a staging copy) with :mod:`.locks` (lock and duration budget) and :mod:`.checksums`
(tamper-evident history) each check one rule and raise ``CheckFailed`` naming the revision and the reason;
:mod:`.waivers` lets ``drill.toml`` excuse one rule for one subject, with who approved it and why.
The project's own code (``env.py``, models, migration files) runs only in :mod:`.child`, started by
:mod:`.isolation` inside the jail :mod:`.confine` builds (from :mod:`.jail`'s list); :mod:`.gates_server`
picks the PostgreSQL it migrates.
"""
