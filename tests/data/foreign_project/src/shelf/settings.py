"""Settings from SHELF_* environment variables, read through the project's own envkit package."""

from __future__ import annotations

from envkit import environment
from pydantic import BaseModel


class Settings(BaseModel):
    """What the backend needs to start; the database URL comes from SHELF_DATABASE_URL."""

    database_url: str
    page_size: int = 20


def load() -> Settings:
    """Validate the environment now (a missing variable fails here, naming the field)."""
    return Settings(**environment("SHELF"))
