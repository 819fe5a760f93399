"""The structure of plain text: title, headings and paragraphs found in its lines.

Also ``TextBuilder``, which formats whose text is extracted (HTML, Word, e-mail,
PDF) use to lay their pieces out as one text with the blocks' spans.
"""

from __future__ import annotations

import re

from .base import Block

# A heading is a short line that does not end like a sentence.
HEADING_MAX_CHARS = 100
_SENTENCE_END = re.compile(r"[.!?…:;,][\"'”’)\]]*\s*$")
_DATED_TITLE = re.compile(r"^\s*date\s+(\d{4}-\d{2}-\d{2})\s+(.+?)\s*$")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def line_spans(text: str):
    """Yield (start, end) of each line, without its line break."""
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        yield pos, pos + len(body)
        pos += len(line)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def ends_like_sentence(line: str) -> bool:
    return bool(_SENTENCE_END.search(line))


def is_heading_line(line: str) -> bool:
    line = line.strip()
    return 0 < len(line) <= HEADING_MAX_CHARS and not ends_like_sentence(line)


def parse_lines(text: str, markdown: bool = False, headings: bool = True):
    """Blocks of a text or Markdown file, with its title and date: ``(blocks, title, date)``.

    Paragraphs are runs of non-blank lines; a line that ends like a sentence
    closes its paragraph, so one-paragraph-per-line text (as in news feeds)
    keeps its paragraphs while hard-wrapped prose stays whole.  In plain text a
    heading is a short line that does not end like a sentence, stands after a
    closed paragraph and is not continued in lower case on the next line.
    """
    lines = [_trimmed(text, s, e) for s, e in line_spans(text)]
    blocks: list[Block] = []
    title = date = None
    para: list[int] | None = None

    def close():
        nonlocal para
        if para:
            blocks.append(Block("paragraph", para[0], para[1]))
        para = None

    for i, (start, end) in enumerate(lines):
        line = text[start:end]
        if not line:
            close()
            continue
        if not blocks and para is None and (dated := _DATED_TITLE.match(line)):
            date, title = dated.group(1), dated.group(2)
            blocks.append(Block("title", start + dated.start(2), start + dated.end(2)))
            continue
        md = _MD_HEADING.match(line) if markdown else None
        if md:
            close()
            start, end = start + md.start(1), start + md.end(1)
            kind = "title" if not blocks and title is None else "heading"
            title = title or text[start:end]
            blocks.append(Block(kind, start, end))
            continue
        if headings and not markdown and para is None and _plain_heading(text, lines, i):
            blocks.append(Block("heading", start, end))
            continue
        para = [para[0] if para else start, end]
        if ends_like_sentence(line):
            close()
    close()
    return blocks, title, date


def _plain_heading(text: str, lines, i: int) -> bool:
    start, end = lines[i]
    line = text[start:end]
    if not is_heading_line(line) or not (line[0].isupper() or line[0].isdigit()):
        return False
    following = next((text[s:e] for s, e in lines[i + 1:] if e > s), "")
    return not following[:1].islower()


class TextBuilder:
    """One text made of pieces separated by blank lines, with the blocks of each piece."""

    SEPARATOR = "\n\n"

    def __init__(self):
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.length = 0

    def add(self, kind: str, text: str) -> None:
        """A piece that is one block (a title, a heading, a paragraph, a meta line); blank ones are dropped."""
        text = text.strip()
        if text:
            self._append(text, [Block(kind, 0, len(text))])

    def add_lines(self, text: str) -> None:
        """A piece of plain text, its paragraphs found by ``parse_lines``.

        No headings: in extracted text a short line is a layout wrap (PDF), a
        Word paragraph's soft break or a sign-off ("Kind regards"), not a heading.
        """
        text = text.strip()
        if text:
            self._append(text, parse_lines(text, headings=False)[0])

    def mark_start(self) -> int:
        """Where the next piece will start."""
        return self.length + (len(self.SEPARATOR) if self.parts else 0)

    def _append(self, text: str, blocks) -> None:
        start = self.mark_start()
        self.blocks.extend(Block(b.kind, start + b.start, start + b.end) for b in blocks)
        self.parts.append(text)
        self.length = start + len(text)

    @property
    def text(self) -> str:
        return self.SEPARATOR.join(self.parts)
