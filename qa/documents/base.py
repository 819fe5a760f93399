"""What reading a document yields: its text, exactly as quoted, and the spans that structure it."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field


class DocumentError(ValueError):
    """A document cannot be read; the message names the file and the fix."""


@dataclass(frozen=True)
class Block:
    """A span of a document's text: its title, a heading, a paragraph, or a meta line.

    A meta line (an e-mail's sender and date) is shown with the document but is
    not a sentence to quote.
    """

    kind: str  # "title" | "heading" | "paragraph" | "meta"
    start: int
    end: int


@dataclass(frozen=True)
class Content:
    """What a format's reader finds in a file, before it is named and checked as a ``Document``."""

    text: str
    blocks: tuple[Block, ...] | list[Block]
    title: str | None = None
    date: str | None = None
    encoding: str | None = None
    pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class Document:
    id: str
    path: str
    title: str
    text: str
    blocks: tuple[Block, ...] = field(repr=False)
    date: str | None = None
    encoding: str | None = None  # how a text file's bytes were decoded ("utf-8", "cp1252", ...); None for PDF, Word, e-mail
    # Where each page of a PDF starts in ``text`` (page 1 first); empty for other formats.
    pages: tuple[int, ...] = field(default=(), repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def page_at(self, offset: int) -> int | None:
        """The page number (from 1) that ``offset`` stands on, or None when the document has no pages.

        A page without text starts where the next one does, so the last page
        starting at or before ``offset`` is the one holding it.
        """
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))

    def page_span(self, page: int) -> tuple[int, int]:
        """(start, end) of page ``page``'s text; the whole text when the document has no pages."""
        if not self.pages or not 1 <= page <= len(self.pages):
            return 0, len(self.text)
        end = self.pages[page] if page < len(self.pages) else len(self.text)
        return self.pages[page - 1], end
