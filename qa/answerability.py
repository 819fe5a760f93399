"""Whether the retrieved sentences answer the question: evidence, weighed.

The retrieval score alone barely tells an answerable question from an
on-topic one the documents do not answer (AUC 0.59 on SQuAD v2.0,
docs/choices.md).  This module gathers more evidence from the top
passages and their documents: is the thing asked for there (a number for
"how many", a date for "when", a name for "who"), are the question's key
terms, names and numbers present in the best sentence, its paragraph and the
document, do the best candidates agree on one paragraph.  A logistic
regression over these features, fitted on held-out SQuAD articles by
``python -m qa.training.answerability``, turns them into a probability that
the first quote answers the question.  Its weights ship in ``models/`` and
are checked against their manifest before use, like the embedder's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .answer_types import answer_type, short_answer_span
from .documents import Document
from .models.manifest import ModelError
from .models.reader import Reading
from .retrieval import Passage
from .terms import tokenize

MODELS = Path(__file__).resolve().parent.parent / "models"
MANIFEST = MODELS / "answerability.json"

_WHO = re.compile(r"^\s*(?:who|whom|whose)\b|\bnames? of\b|\bwhat (?:is|was|are|were) (?:the|their|his|her) names?\b"
                  r"|\bwhich (?:person|man|woman)\b", re.I)
_NEGATION = re.compile(r"\b(?:not|never|no|n't|without|neither|nor)\b|n't\b", re.I)
_NAME = re.compile(r"\b[A-Z][\w'-]*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WH = ("what", "who", "when", "where", "which", "why", "how")
NO_READING = -10.0  # the margin of a sentence not read: a sure "no answer"

FEATURES = (
    "score", "dense", "coverage", "margin", "gap_top5",
    "type_asked", "type_missing", "short_missing", "number_time_missing", "who_asked", "who_missing",
    "terms_sentence", "terms_paragraph", "terms_document", "terms_missing_document",
    "names_asked", "names_sentence", "names_document", "numbers_asked", "numbers_paragraph",
    "same_paragraph_top5", "negation", "question_terms",
    *(f"wh_{w}" for w in _WH),
    "reader_margin", "reader_span", "reader_other", "reader_in_question", "z_top",
)


class AnswerabilityModelError(ModelError):
    """The answerability weights are missing or do not match their manifest (a ModelError, so the
    command line reports it in one line like a damaged embedder)."""


def _share(wanted: set[str], present: set[str]) -> float:
    return len(wanted & present) / len(wanted) if wanted else 1.0


@functools.lru_cache(maxsize=64)
def _document_terms(document: Document) -> frozenset[str]:
    return frozenset(tokenize([document.text])[0])


@functools.lru_cache(maxsize=64)
def _document_words(document: Document) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", document.text.lower()))


def _paragraph_text(document: Document, segment) -> str:
    """The paragraph that holds ``segment``: the sentence and its neighbours."""
    for block in document.blocks:
        if block.kind == "paragraph" and block.start <= segment.start < block.end:
            return document.text[block.start:block.end]
    return segment.text


def _names(question: str) -> set[str]:
    """Capitalized words of the question after its first word (a rough stand-in for names)."""
    return {m.group(0).lower() for m in _NAME.finditer(question) if m.start() > 0}


def features(question: str, passages: Sequence[Passage], documents: dict[str, Document],
             readings: Sequence[Reading | None] = ()) -> np.ndarray:
    """The evidence vector (in ``FEATURES`` order) for ``question``, its ``passages`` (the first is the one
    the reply quotes first) and the reader's ``readings`` of the first of them, in the same order."""
    if not passages:
        return np.zeros(len(FEATURES))
    top = passages[0]
    segment = top.segment
    reading = readings[0] if readings else None
    others = [r.margin for r in readings[1:] if r is not None]
    document = documents[segment.doc_id]
    paragraph = _paragraph_text(document, segment)
    scores = [p.score for p in passages]
    q_terms, s_terms, p_terms = (set(t) for t in tokenize([question, segment.text, paragraph]))
    doc_terms = _document_terms(document)
    wanted = answer_type(question)
    who = bool(_WHO.search(question))
    names = _names(question)
    sentence_words = set(re.findall(r"\w+", segment.text.lower()))
    numbers = set(_NUMBER.findall(question))
    top5 = passages[:5]
    first = question.strip().split(maxsplit=1)[0].lower() if question.strip() else ""
    values = {
        "score": top.score,
        "dense": top.dense,
        "coverage": top.coverage,
        "margin": scores[0] - scores[1] if len(scores) > 1 else scores[0],
        "gap_top5": scores[0] - float(np.mean(scores[1:5])) if len(scores) > 1 else scores[0],
        "type_asked": float(wanted is not None),
        "type_missing": float(wanted is not None and not wanted.holds.search(segment.text)),
        "short_missing": float(wanted is not None and short_answer_span(question, segment.text) is None),
        "number_time_missing": float(wanted is not None and wanted.name in ("number", "when")
                                     and short_answer_span(question, segment.text) is None),
        "who_asked": float(who),
        # A name in the sentence that the question does not already hold.
        "who_missing": float(who and not (_names(" " + segment.text) - names)),
        "terms_sentence": _share(q_terms, s_terms),
        "terms_paragraph": _share(q_terms, p_terms),
        "terms_document": _share(q_terms, doc_terms),
        "terms_missing_document": float(len(q_terms - doc_terms)),
        "names_asked": float(len(names)),
        "names_sentence": _share(names, sentence_words),
        "names_document": _share(names, _document_words(document)),
        "numbers_asked": float(len(numbers)),
        "numbers_paragraph": _share(numbers, set(_NUMBER.findall(paragraph))),
        "same_paragraph_top5": sum(p.segment.doc_id == segment.doc_id and p.segment.paragraph == segment.paragraph
                                   for p in top5[1:]) / max(len(top5) - 1, 1),
        "negation": float(bool(_NEGATION.search(question))),
        "question_terms": float(len(q_terms)),
        **{f"wh_{w}": float(first == w or (w == "what" and first not in _WH)) for w in _WH},
        # Above 0 the reader takes the first quote to say what is asked (``qa.models.reader``).
        "reader_margin": reading.margin if reading is not None else NO_READING,
        "reader_span": reading.score if reading is not None else 0.0,
        # Another candidate the reader takes to answer too: the question is answered somewhere.
        "reader_other": max(others, default=NO_READING),
        # The reader's answer made only of the question's own words is no answer.
        "reader_in_question": float(reading is not None and set(re.findall(r"\w+", segment.text[reading.start:reading.end].lower()))
                                    <= set(re.findall(r"\w+", question.lower()))),
        # The best score against the rest of the top 20, in their own spread: it does not move when
        # a kind of text scores lower everywhere.
        "z_top": (scores[0] - float(np.mean(scores[1:]))) / (float(np.std(scores[1:])) + 1e-3) if len(scores) > 2 else 0.0,
    }
    return np.array([values[name] for name in FEATURES], dtype=np.float64)


# On SQuAD v2.0 a missing number or time makes the question more often unanswerable (64% against
# 44-48% when found), and so does a missing name (4 of 5); a missing place does not (51% against
# 40%, near the 49% of all questions: the "where" pattern misses places like "hospital beds").
VETO = (FEATURES.index("number_time_missing"), FEATURES.index("who_missing"))


def missing_asked(x: np.ndarray) -> bool:
    """Whether the question asks for a kind of thing (number, time, name) the best sentence lacks."""
    return np.any(x[..., list(VETO)] == 1, axis=-1)


def kind(probability, missing, answer: float, possible: float, off_topic=False):
    """"answer", "possible" or "none"; works elementwise on arrays too (for training)."""
    p, missing, off_topic = np.asarray(probability), np.asarray(missing), np.asarray(off_topic)
    out = np.where((p < possible) | off_topic, "none", np.where((p >= answer) & ~missing, "answer", "possible"))
    return str(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Logistic:
    """A logistic regression over ``FEATURES``, standardized by ``mean`` and ``scale``."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(((x - self.mean) / self.scale) @ self.weights + self.bias)))

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist(),
                "bias": self.bias}

    @classmethod
    def from_json(cls, data: dict) -> "Logistic":
        return cls(np.array(data["mean"]), np.array(data["scale"]), np.array(data["weights"]), float(data["bias"]))


@dataclass(frozen=True)
class AnswerabilityModel:
    """Two logistic regressions over ``FEATURES`` and the thresholds that sort replies into kinds.

    ``off_topic`` is the probability that the question is about something else
    than the documents altogether (its terms and names absent from them): at or
    above ``off_topic_cut`` the documents don't say.  Otherwise ``answers``
    gives the probability that the first quote answers: ``>= answer`` is an
    answer, ``>= possible`` a possible answer, below that the documents don't
    say.  A question whose asked-for thing (a number, a time, a name) is
    missing from the best sentence is at most a possible answer (``VETO``).
    """

    answers: Logistic
    answer: float
    possible: float
    off_topic: Logistic | None = None
    off_topic_cut: float = 1.0
    score_weight: float = 0.0  # the engine's score against the reader's margin, in ``rerank``

    def rerank(self, passages: list[Passage], readings: list[Reading | None]
               ) -> tuple[list[Passage], list[Reading | None]]:
        """The read passages ordered by the reader's margin plus ``score_weight`` times the engine's
        score (the rest after them as they were), and their readings in the same order."""
        return rerank(passages, readings, self.score_weight)

    def probability(self, x: np.ndarray) -> float:
        return float(self.answers.probabilities(x))  # a plain float: numpy's would reach JSON as a string via Gradio

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``probability`` of each row of ``x``."""
        return self.answers.probabilities(x)

    def is_off_topic(self, x: np.ndarray):
        if self.off_topic is None:
            return np.zeros(np.shape(x)[:-1], dtype=bool)
        return self.off_topic.probabilities(x) >= self.off_topic_cut

    def reply(self, x: np.ndarray) -> tuple[str, float]:
        """The kind of reply for the evidence ``x``, and the probability that the first quote answers."""
        p = self.probability(x)
        return kind(p, missing_asked(x), self.answer, self.possible, self.is_off_topic(x)), p

    def to_json(self) -> dict:
        return {"features": list(FEATURES), **self.answers.to_json(), "score_weight": self.score_weight,
                "off_topic": None if self.off_topic is None else self.off_topic.to_json(),
                "thresholds": {"answer": self.answer, "possible": self.possible, "off_topic": self.off_topic_cut}}

    @classmethod
    def from_json(cls, data: dict) -> "AnswerabilityModel":
        if data.get("features") != list(FEATURES):
            raise AnswerabilityModelError("the answerability weights were fitted on other features: "
                                          "rebuild them with `python -m qa.training.answerability`")
        thresholds = data["thresholds"]
        return cls(Logistic.from_json(data), float(thresholds["answer"]), float(thresholds["possible"]),
                   Logistic.from_json(data["off_topic"]) if data.get("off_topic") else None,
                   float(thresholds.get("off_topic", 1.0)), float(data["score_weight"]))


def rerank(passages: list[Passage], readings: list[Reading | None], score_weight: float
           ) -> tuple[list[Passage], list[Reading | None]]:
    """``AnswerabilityModel.rerank`` with a given weight (training chooses it)."""
    key = [(r.margin if r is not None else NO_READING) + score_weight * p.score for p, r in zip(passages, readings)]
    order = sorted(range(len(readings)), key=lambda i: -key[i])
    return [passages[i] for i in order] + list(passages[len(readings):]), [readings[i] for i in order]


@functools.cache
def load_model(manifest: Path = MANIFEST) -> AnswerabilityModel:
    """The shipped weights, verified against the sha256 in their manifest."""
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        path = manifest.parent / meta["weights"]
        data = path.read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        raise AnswerabilityModelError(f"{manifest}: answerability model unreadable ({exc}); "
                                      "rebuild it with `python -m qa.training.answerability`") from None
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise AnswerabilityModelError(f"{path} does not match its manifest {manifest}: "
                                      "rebuild it with `python -m qa.training.answerability`")
    return AnswerabilityModel.from_json(json.loads(data))
