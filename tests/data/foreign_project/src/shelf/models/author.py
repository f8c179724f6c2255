"""Authors. ``Book`` is a forward reference: it is defined in another module, resolved when mappers configure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shelf.models.base import Base

if TYPE_CHECKING:
    from shelf.models.book import Book


class Author(Base):
    """Someone who wrote a book."""

    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    books: Mapped[list["Book"]] = relationship(back_populates="author")
