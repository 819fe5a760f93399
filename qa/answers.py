"""Answers made of verbatim quotes, each pinned to its place in a document."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .answer_types import short_answer_span
from .documents import Document
from .retrieval import Passage

NO_ANSWER = "The documents don't say."


@dataclass(frozen=True)
class ShortAnswer:
    """The words inside a quote that answer the question: ``document.text[start:end] == text``."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Quote:
    """A sentence quoted word for word: ``document.text[start:end] == text``."""

    text: str
    doc: str
    title: str
    section: str | None
    position: int  # sentence number in the document, from 0
    start: int
    end: int
    score: float
    short_answer: ShortAnswer | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    quotes: tuple[Quote, ...]  # best first; when not answered, the closest passages
    message: str
    query: str = ""  # what was searched: the question, with earlier turns for a follow-up
    latency_ms: float = 0.0

    @property
    def answer(self) -> str | None:
        return self.quotes[0].text if self.answered and self.quotes else None

    def to_dict(self) -> dict:
        """The JSON contract of ``qa ask --json`` (README, "JSON output")."""
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer,
            "quotes": [q.to_dict() for q in self.quotes],
            "message": self.message,
            "query": self.query,
            "latency_ms": round(self.latency_ms, 1),
        }


def _normalized(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def select_quotes(question: str, passages: list[Passage], documents: dict[str, Document],
                  k: int) -> tuple[Quote, ...]:
    """Up to ``k`` quotes, best first, with repeated sentences collapsed."""
    quotes, seen = [], set()
    for p in passages:
        key = _normalized(p.segment.text)
        if key in seen:
            continue
        seen.add(key)
        s = p.segment
        doc = documents[s.doc_id]
        short = None
        if span := short_answer_span(question, s.text):
            start, end = s.start + span[0], s.start + span[1]
            short = ShortAnswer(doc.text[start:end], start, end)
        quotes.append(Quote(
            text=doc.text[s.start:s.end], doc=doc.id, title=doc.title, section=s.section,
            position=s.position, start=s.start, end=s.end, score=round(p.score, 4), short_answer=short,
        ))
        if len(quotes) == k:
            break
    return tuple(quotes)


def compose(question: str, query: str, passages: list[Passage], documents: dict[str, Document],
            k: int, threshold: float) -> Answer:
    quotes = select_quotes(question, passages, documents, k)
    if quotes and quotes[0].score >= threshold:
        cited = "; ".join(dict.fromkeys(q.title for q in quotes))
        return Answer(question, True, quotes, f"{len(quotes)} quote(s) from: {cited}", query)
    message = NO_ANSWER + (" The closest passages are listed." if quotes else "")
    return Answer(question, False, quotes, message, query)
