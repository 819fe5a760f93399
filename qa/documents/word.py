"""Word files (.docx, through python-docx; the optional extra ``qa[docx]``).

Paragraphs are read in order with the tables between them; a paragraph styled
as a heading (or "Title") is a heading, and each table row is one paragraph of
its cells' text, so a row is quoted whole.  Offsets index this extracted text.
"""

from __future__ import annotations

import io
from pathlib import Path

from .base import Content, DocumentError
from .lines import TextBuilder

# A row's cells, as read aloud: "Plan | Price | Seats".
CELL_SEPARATOR = " | "


def read_docx(path: Path, data: bytes) -> Content:
    try:
        import docx
        from docx.table import Table
    except ImportError:
        raise DocumentError(f"{path}: reading Word files needs the optional extra: pip install 'qa[docx]'") from None
    try:
        document = docx.Document(io.BytesIO(data))
        items = list(document.iter_inner_content())
        core_title = document.core_properties.title
    except Exception as exc:  # a damaged zip or XML raises several kinds
        raise DocumentError(f"{path}: not a readable Word (.docx) file ({exc}); "
                            "open and save it again in Word, or save it as PDF or text") from None
    builder = TextBuilder()
    title = (core_title or "").strip() or None
    for item in items:
        if isinstance(item, Table):
            for row in item.rows:
                # A merged cell is repeated in every row position it spans: read once.
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                builder.add("paragraph", CELL_SEPARATOR.join(cells))
            continue
        style = (item.style.name if item.style is not None else "") or ""
        text = item.text
        if style == "Title" or style.startswith("Heading"):
            kind = "title" if style == "Title" and title is None else "heading"
            title = title or text.strip() or None
            builder.add(kind, text)
        else:
            builder.add_lines(text)
    return Content(builder.text, builder.blocks, title)
