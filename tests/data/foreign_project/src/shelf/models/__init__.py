"""The models; importing the package registers every class, so string-annotated relationships resolve."""

from shelf.models.author import Author
from shelf.models.base import Base
from shelf.models.book import Book

__all__ = ["Author", "Base", "Book"]
