"""PDF files (needs the optional extra ``qa[pdf]``): the text of each page, and where each page starts.

A PDF's lines are wrapped by its layout, so short lines say nothing of
headings: its text is read as paragraphs only.  Pages are separated by a blank
line, so no paragraph (and no quote) runs across a page break.
"""

from __future__ import annotations

import io
from pathlib import Path

from .base import Content, DocumentError
from .lines import TextBuilder


def read_pdf(path: Path, data: bytes) -> Content:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise DocumentError(f"{path}: reading PDF needs the optional extra: pip install 'qa[pdf]'") from None
    try:
        pages = [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]
    except Exception as exc:  # pypdf raises many kinds for damaged files
        raise DocumentError(f"{path}: not a readable PDF ({exc})") from None
    builder = TextBuilder()
    starts = []
    for page in pages:
        # A page without text starts where the next one does (Document.page_at).
        starts.append(builder.mark_start())
        builder.add_lines(page)
    # Pages without text at the end start at the end, not after a separator never written.
    return Content(builder.text, builder.blocks, pages=tuple(min(s, builder.length) for s in starts))
