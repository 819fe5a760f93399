"""HTML pages: their visible text, one block per element, headings from h1-h6.

Offsets of an HTML document index this extracted text (``Document.text``),
not the markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from .base import Content
from .lines import TextBuilder
from .text import decode

_HTML_BLOCK_TAGS = {
    "p", "div", "li", "td", "th", "blockquote", "pre", "section", "article",
    "br", "tr", "dd", "dt", "figcaption", "main", "header", "footer",
}
_HTML_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HTML_SKIP = {"script", "style", "head", "noscript", "template", "svg"}


class _HTMLText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self.current: list[str] = []
        self.kind = "paragraph"
        self.skip = 0
        self.in_title = False
        self.title = ""

    def flush(self):
        text = re.sub(r"\s+", " ", "".join(self.current)).strip()
        if text:
            self.blocks.append((self.kind, text))
        self.current = []
        self.kind = "paragraph"

    def handle_starttag(self, tag, attrs):
        if tag in _HTML_SKIP:
            self.skip += 1
        if tag == "title":
            self.in_title = True
        if tag in _HTML_BLOCK_TAGS or tag in _HTML_HEADINGS:
            self.flush()
        if tag in _HTML_HEADINGS:
            self.kind = "heading"

    def handle_endtag(self, tag):
        if tag in _HTML_SKIP and self.skip:
            self.skip -= 1
        if tag == "title":
            self.in_title = False
        if tag in _HTML_BLOCK_TAGS or tag in _HTML_HEADINGS:
            self.flush()

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        elif not self.skip:
            self.current.append(data)

    def parse_marked_section(self, i, report=1):
        # "<![name ...>" other than CDATA makes Python's parser raise
        # AssertionError; browsers skip it as a bogus comment, up to ">".
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return -1 if end < 0 else end + 1


def html_text(raw: str, into: TextBuilder) -> str | None:
    """Add the visible text of the page ``raw`` to ``into``; return the page's title, if any."""
    parser = _HTMLText()
    parser.feed(raw)
    # What feed() left unparsed is markup the page never finished: an unclosed
    # "<!--", "<!DOCTYPE", "<?..." or "<tag".  Browsers show none of it, but
    # close() would hand it over as text, so it is dropped here.
    if parser.rawdata.startswith("<"):
        parser.rawdata = ""
    parser.close()
    parser.flush()
    first_heading = next((text for kind, text in parser.blocks if kind == "heading"), None)
    for kind, text in parser.blocks:
        into.add(kind, text)
    return parser.title.strip() or first_heading


def read_html(path: Path, data: bytes) -> Content:
    raw, encoding = decode(path, data)
    builder = TextBuilder()
    title = html_text(raw, builder)
    return Content(builder.text, builder.blocks, title, encoding=encoding)
