"""Sentences with exact offsets, and the section and paragraph each belongs to.

Sentence boundaries come from nupunkt.  Measured on the 1,023 SQuAD v1.1
paragraphs in ../shared/eval (see docs/choices.md), it split them 48 times
faster than pysbd and cut fewer gold answers in two (5 against 9 of 5,397).

Text typed fast breaks where nupunkt sees no sentence end, so a paragraph is
first cut where a reader sees one (``_breaks``): before a list item or a
field such as "Date:" at the start of a line; where an e-mail quote (">")
begins or ends; around a rule line ("-----"); after a line that ends without
punctuation although the next line's first word would have fitted on it, when
that word is capitalized; and at a full stop with no space after it ("sets.So
far").  docs/results.md has the figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .documents import Document
from .documents.lines import ends_like_sentence, line_spans

# Where split_sentences cuts, as a number an index records: raise it with any change to the cuts,
# so that an index whose sentences an earlier splitter cut is rebuilt (the vector cache keeps
# the vectors of every sentence that stays the same).  1: nupunkt alone; 2: informal text.
SPLITTER_VERSION = 2
# The embedder reads at most 256 word pieces; longer runs (tables, PDF text
# without punctuation) are cut at a space so that no text goes unread.
MAX_SEGMENT_CHARS = 600
# Not a bracketed chat stamp ("[08:34] Ollie: how much was it"): each line alone, a question's
# words pick the line that asks it over the reply below it (informal set: hit@1 0.557 -> 0.543).
_LINE_OPENS_ITEM = re.compile(r"[-*•–]\s|[A-Z][\w-]{0,24}:\s")  # "- item", "Date: ..."
_QUOTED = re.compile(r">")
# A numbered item ("2. ", "3) ") only continues a numbered list: after "formula O", "2. Diatomic" is
# the formula's subscript (SQuAD's Oxygen article).
_NUMBERED_ITEM = re.compile(r"\d{1,3}[.)]\s")
# A lower-case word, its full stop, and a capitalized word with no space between: "sets.So far".
# Not inside an address, a file name or an abbreviation ("e.g.", "St.Louis", "example.com/Page").
_GLUED_STOP = re.compile(r"(?<![\w./@])[a-z]{2,}[.!?]+(?=(?:[A-Z][a-z]+|I)(?![\w.@/]))")


@dataclass(frozen=True)
class Segment:
    """One sentence of a document: ``document.text[start:end] == text``."""

    doc_id: str
    position: int  # sentence number in its document, from 0
    start: int
    end: int
    text: str
    section: str | None
    paragraph: int  # paragraph number in its document, from 0


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text``, trimmed of surrounding space."""
    cuts = [0, *_breaks(text), len(text)]
    return [span for low, high in zip(cuts, cuts[1:]) for span in nupunkt_spans(text, low, high)]


def nupunkt_spans(text: str, low: int = 0, high: int | None = None) -> list[tuple[int, int]]:
    """nupunkt's sentences of ``text[low:high]``, stripped of surrounding space and capped in length."""
    import nupunkt

    high = len(text) if high is None else high
    spans = []
    for start, end in nupunkt.sent_spans(text[low:high]):
        start, end = low + start, low + end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        spans.extend(_cap_length(text, start, end))
    return spans


def _breaks(text: str) -> list[int]:
    """Offsets, in order, where ``text`` holds a sentence end that nupunkt does not see."""
    found = {m.end() for m in _GLUED_STOP.finditer(text)}
    lines = [text[s:e].strip() for s, e in line_spans(text)]
    starts = [s + len(text[s:e]) - len(text[s:e].lstrip()) for s, e in line_spans(text)]
    # Hard-wrapped prose breaks a line only where the next word would not fit: a line that ends
    # without punctuation although the next line's first word would have fitted on it was ended
    # by its writer, as was a rule line ("-----") and the line before one.
    width = max(map(len, lines), default=0)
    for n, (line, following) in enumerate(zip(lines, lines[1:])):
        if not line or not following:
            continue
        first_word = following.split(maxsplit=1)[0]
        deliberate = (not ends_like_sentence(line) and following[0].isupper()
                      and len(line) + 1 + len(first_word) <= width)
        rule = not any(c.isalnum() for c in line) or not any(c.isalnum() for c in following)
        item = _LINE_OPENS_ITEM.match(following) or (_NUMBERED_ITEM.match(following) and _NUMBERED_ITEM.match(line))
        quote_turns = bool(_QUOTED.match(line)) != bool(_QUOTED.match(following))  # into or out of an e-mail quote
        if deliberate or rule or item or quote_turns:
            found.add(starts[n + 1])
    return sorted(p for p in found if 0 < p < len(text))


def _cap_length(text: str, start: int, end: int):
    while end - start > MAX_SEGMENT_CHARS:
        cut = text.rfind(" ", start, start + MAX_SEGMENT_CHARS)
        if cut <= start:
            cut = start + MAX_SEGMENT_CHARS
        yield start, cut
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        yield start, end


def segment_document(document: Document) -> list[Segment]:
    segments: list[Segment] = []
    section = None
    heading_run = False
    paragraph = -1
    for block in document.blocks:
        if block.kind == "heading":
            # A heading right under another is its subtitle: the section keeps
            # the first one's name.
            if not heading_run:
                section = document.text[block.start:block.end]
            heading_run = True
            continue
        heading_run = False
        if block.kind != "paragraph":
            continue
        paragraph += 1
        body = document.text[block.start:block.end]
        for start, end in split_sentences(body):
            start, end = block.start + start, block.start + end
            segments.append(Segment(
                doc_id=document.id,
                position=len(segments),
                start=start,
                end=end,
                text=document.text[start:end],
                section=section,
                paragraph=paragraph,
            ))
    return segments
