"""CodeBlack reference backend: the embedded default target the drills restore, migrate and probe.

It is small on purpose but shaped like the production service the plan describes, so that every gate of the
suite has something real to check: a PostgreSQL schema owned by Alembic, Redis, an uploads bucket, a deep
health endpoint and a config API with two-step approval, secret refusal, signed responses and an audit trail.
Run it with ``uvicorn sandbox.codeblack.app:create_app --factory``.
"""
