"""Answers made of verbatim quotes, each pinned to its place in a document."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from . import answerability
from .documents import Document
from .models.short_answer import ShortAnswerReader
from .retrieval import Passage

NO_ANSWER = "The documents don't say."
POSSIBLE = "Possible answer: the passages below may hold it; check them."
KINDS = ("answer", "possible", "none")


@dataclass(frozen=True)
class ShortAnswer:
    """The words inside a quote that answer the question: ``document.text[start:end] == text``."""

    text: str
    start: int
    end: int
    score: float = 0.0  # the reader's confidence: its start and end scores added


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
    page: int | None = None  # the PDF page the sentence starts on, from 1; None for other formats

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """A reply of one of three kinds (``KINDS``).

    "answer": the first quote answers the question.  "possible": the quotes
    may hold the answer, for the reader to judge.  "none": the documents don't
    say; the quotes are only the closest passages.  ``answered`` is true for
    "answer" alone, so code that reads only ``answered`` never presents a
    possible answer as an answer.
    """

    question: str
    answered: bool
    quotes: tuple[Quote, ...]  # best first; when not answered, the closest passages
    message: str
    query: str = ""  # what was searched: the question, with earlier turns for a follow-up
    latency_ms: float = 0.0
    kind: str = ""  # one of KINDS; left empty, it follows ``answered`` ("answer" or "none")
    confidence: float | None = None  # the probability that the first quote answers (qa.answerability)

    def __post_init__(self):
        if not self.kind:
            object.__setattr__(self, "kind", "answer" if self.answered else "none")
        if self.kind not in KINDS or self.answered != (self.kind == "answer"):
            raise ValueError(f"kind={self.kind!r} with answered={self.answered}: kind must be one of {KINDS}, "
                             "and 'answer' exactly when answered")

    @property
    def answer(self) -> str | None:
        return self.quotes[0].text if self.answered and self.quotes else None

    def to_dict(self) -> dict:
        """The JSON contract of ``qa ask --json`` (README, "The JSON reply")."""
        return {
            "question": self.question,
            "answered": self.answered,
            "kind": self.kind,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "answer": self.answer,
            "quotes": [q.to_dict() for q in self.quotes],
            "message": self.message,
            "query": self.query,
            "latency_ms": round(self.latency_ms, 1),
        }


def _normalized(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def select_quotes(question: str, passages: list[Passage], documents: dict[str, Document],
                  k: int, reader: ShortAnswerReader | None = None) -> tuple[Quote, ...]:
    """Up to ``k`` quotes, best first, with repeated sentences collapsed; with a ``reader``, the
    first holds its short answer (the words the reader finds answering the question)."""
    chosen, seen = [], set()
    for p in passages:
        key = _normalized(p.segment.text)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(p)
        if len(chosen) == k:
            break
    texts = [documents[p.segment.doc_id].text[p.segment.start:p.segment.end] for p in chosen]
    # The first quote alone is read: the reader costs as much per sentence as the rest of a
    # question (docs/speed.md), and the first quote is the one that answers.
    spans = reader.spans(question, texts[:1]) if reader is not None else []
    spans += [None] * (len(chosen) - len(spans))
    quotes = []
    for p, text, span in zip(chosen, texts, spans):
        s = p.segment
        doc = documents[s.doc_id]
        short = None
        if span is not None:
            start, end = s.start + span.start, s.start + span.end
            short = ShortAnswer(doc.text[start:end], start, end, round(span.score, 3))
        quotes.append(Quote(
            text=text, doc=doc.id, title=doc.title, section=s.section,
            position=s.position, start=s.start, end=s.end, score=round(p.score, 4), short_answer=short,
            page=doc.page_at(s.start),
        ))
    return tuple(quotes)


def compose(question: str, query: str, passages: list[Passage], documents: dict[str, Document],
            k: int, threshold: float, reader: ShortAnswerReader | None = None) -> Answer:
    """The reply to ``question``: its kind, from the evidence in ``passages``, and up to ``k`` quotes.

    A best score under ``threshold`` is off-topic: the documents don't say.
    Otherwise the answerability model weighs the evidence and decides the kind
    (``AnswerabilityModel.reply``).  A reply of "none" carries no short answers:
    its quotes are only the closest passages.
    """
    if not passages or passages[0].score < threshold:  # off-topic: nothing for the reader to read
        quotes = select_quotes(question, passages, documents, k)
        message = NO_ANSWER + (" The closest passages are listed." if quotes else "")
        return Answer(question, False, quotes, message, query, kind="none")
    quotes = select_quotes(question, passages, documents, k, reader)
    if query != question:
        # A follow-up read with earlier turns: the model was fitted on standalone questions, and
        # misjudges a short follow-up's evidence (seeds/followups.jsonl: 6 of 19 right first
        # quotes made possible or none), so the score threshold alone decides, as before it.
        kind, confidence = "answer", None
    else:
        evidence = answerability.features(question, passages, documents, quotes[0].short_answer)
        kind, confidence = answerability.load_model().reply(evidence)
    if kind == "answer":
        cited = "; ".join(dict.fromkeys(q.title for q in quotes))
        message = f"{len(quotes)} quote(s) from: {cited}"
    else:
        message = POSSIBLE if kind == "possible" else NO_ANSWER + " The closest passages are listed."
        if kind == "none":
            quotes = tuple(replace(q, short_answer=None) for q in quotes)
    return Answer(question, kind == "answer", quotes, message, query, kind=kind, confidence=confidence)
