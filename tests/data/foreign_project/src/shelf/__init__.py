"""shelf: a small library catalogue backend (a foreign Alembic project for the drill's self-tests)."""
