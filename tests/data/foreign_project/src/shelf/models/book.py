"""Books, each by one author (``"Author"`` resolved by name, as the project's package import registers it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shelf.models.base import Base

if TYPE_CHECKING:
    from shelf.models.author import Author


class Book(Base):
    """A book on the shelf."""

    __tablename__ = "books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    author: Mapped["Author"] = relationship(back_populates="books")
