"""Answers made of verbatim quotes, each pinned to its place in a document."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from . import answerability
from .documents import Document
from .models.reader import Reader, Reading
from .retrieval import Passage

NO_ANSWER = "The documents don't say."
POSSIBLE = "Possible answer: the passages below may hold it; check them."
KINDS = ("answer", "possible", "none")
# The engine's first candidates the reader reads (three hold the right sentence for ~0.9 of SQuAD
# questions, docs/results.md); it picks the first quote among them.
READ = 3


@dataclass(frozen=True)
class ShortAnswer:
    """The words inside a quote that answer the question: ``document.text[start:end] == text``."""

    text: str
    start: int
    end: int
    score: float = 0.0  # the reader's margin: the span's start and end scores less "no answer"'s


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


def distinct(passages: list[Passage]) -> list[Passage]:
    """``passages`` with repeated sentences (the same words in another place) left out."""
    seen, out = set(), []
    for p in passages:
        key = _normalized(p.segment.text)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def read(question: str, passages: list[Passage], reader: Reader | None) -> list[Reading | None]:
    """The reader's view of the first ``READ`` passages (none without a reader)."""
    if reader is None:
        return []
    return reader.read(question, [p.segment.text for p in passages[:READ]])


def weigh(question: str, passages: list[Passage], documents: dict[str, Document], reader: Reader | None, model
          ) -> tuple[list[Passage], list[Reading | None], np.ndarray]:
    """A standalone question's passages read, put in the decision ``model``'s order, and their evidence:
    (passages, the readings of the first ``READ`` in that order, the evidence of the first)."""
    passages, readings = model.rerank(passages, read(question, passages, reader))
    return passages, readings, answerability.features(question, passages, documents, readings)


def select_quotes(passages: list[Passage], documents: dict[str, Document], k: int,
                  first: Reading | None = None) -> tuple[Quote, ...]:
    """The first ``k`` passages as quotes; the first holds the short answer of its ``first`` reading."""
    quotes = []
    for n, p in enumerate(passages[:k]):
        s = p.segment
        doc = documents[s.doc_id]
        short = None
        if n == 0 and first is not None:
            start, end = s.start + first.start, s.start + first.end
            short = ShortAnswer(doc.text[start:end], start, end, round(first.margin, 3))
        quotes.append(Quote(
            text=doc.text[s.start:s.end], doc=doc.id, title=doc.title, section=s.section,
            position=s.position, start=s.start, end=s.end, score=round(p.score, 4), short_answer=short,
            page=doc.page_at(s.start),
        ))
    return tuple(quotes)


def compose(question: str, query: str, passages: list[Passage], documents: dict[str, Document],
            k: int, threshold: float, reader: Reader | None = None) -> Answer:
    """The reply to ``question``: retrieved ``passages`` read, then weighed; its kind and up to ``k`` quotes.

    A best score under ``threshold`` is off-topic: the documents don't say,
    and nothing is read.  Otherwise the reader reads the first ``READ``
    candidates, the decision model puts first the one it rates best (the
    reader's margin with the engine's score) and weighs the evidence into the
    reply's kind (``AnswerabilityModel.reply``).  A reply of "none" carries no
    short answers: its quotes are only the closest passages.
    """
    passages = distinct(passages)
    if not passages or passages[0].score < threshold:  # off-topic: nothing for the reader to read
        quotes = select_quotes(passages, documents, k)
        message = NO_ANSWER + (" The closest passages are listed." if quotes else "")
        return Answer(question, False, quotes, message, query, kind="none")
    if query != question:
        # A follow-up read with earlier turns: the reader and the model read the question alone, and
        # misjudge a short follow-up's "he" or "it" (seeds/followups.jsonl: 6 of 19 right first quotes
        # made possible or none), so the conversation's order stands, the score threshold decides,
        # and only the first quote is read, for its short answer.
        kind, confidence = "answer", None
        readings = read(question, passages[:1], reader)
    else:
        model = answerability.load_model()
        passages, readings, evidence = weigh(question, passages, documents, reader, model)
        kind, confidence = model.reply(evidence)
    first = readings[0] if readings else None
    quotes = select_quotes(passages, documents, k, first if kind != "none" else None)
    if kind == "answer":
        cited = "; ".join(dict.fromkeys(q.title for q in quotes))
        message = f"{len(quotes)} quote(s) from: {cited}"
    else:
        message = POSSIBLE if kind == "possible" else NO_ANSWER + " The closest passages are listed."
    return Answer(question, kind == "answer", quotes, message, query, kind=kind, confidence=confidence)
