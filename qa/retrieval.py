"""Hybrid retrieval: sentence vectors and BM25 term statistics, fused.

Each sentence gets ``score = 0.6 * cosine + 0.4 * coverage`` where ``coverage``
is the IDF-weighted share of the question's terms (stemmed, no stop words) that
the sentence holds, plus a small bonus when it holds the kind of thing the
question asks for (a place for "where", a number for "how many").  Both parts
are absolute, so the score also serves as the confidence that decides
abstention.  Each sentence is read after the one before it in its paragraph,
where its "it" or "he" is named.  Candidates are the union of the dense top-N
and the term-coverage top-N of whichever store (``qa.store``) holds the index.

Measured on SQuAD v1.1 dev (../shared/eval, 5,397 questions, one article per
document, sentence-level hit@1): dense alone 0.577, BM25 alone 0.654, RRF of
the two 0.661, dense + 0.5 * max-normalized BM25 0.704, (cosine + coverage) / 2
0.728, and 0.745 with each sentence read in context (docs/choices.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .answer_types import answer_type
from .models.embedder import Embedder
from .segments import Segment
from .store import Store
from .terms import tokenize

CANDIDATES = 256

# A sentence holding the kind of thing asked for ("where": a place) gains this.
# On SQuAD v1.1 it raised hit@1 for those questions by 1 to 1.5 points.
TYPE_BONUS = 0.04

# The cosine's share of the score, and reading each sentence after the one before it
# (``_read_in_context``), chosen with the fine-tuned embedder on half the public SQuAD v1.1
# articles and tested on the other half, each half read by an embedder fine-tuned without it:
# hit@1 0.758 -> 0.766 over all 5,397 questions, hit@3 0.903 -> 0.902 (docs/choices.md;
# with the base embedder, an even split and half the cosine read in context had been best).
DENSE_WEIGHT = 0.6
CONTEXT_COSINE = 0.25
PREVIOUS_TERM_WEIGHT = 0.5


@dataclass(frozen=True)
class Passage:
    """A retrieved sentence and the evidence behind its score."""

    segment: Segment
    score: float  # DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * coverage (+ TYPE_BONUS), from about -0.6 to 1
    dense: float  # cosine similarity of question and sentence, read in context (``_read_in_context``)
    coverage: float  # IDF-weighted share of the question's terms in the sentence (and the one before)


class HybridRetriever:
    """Scores sentences of any ``Store``; the score's formula lives here, the engines only count."""

    def __init__(self, store: Store, segments: list[Segment], embedder: Embedder, candidates: int = CANDIDATES):
        self.store = store
        self.segments = segments
        self.embedder = embedder
        self.candidates = candidates

    def retrieve(self, question: str, top_k: int = 10, context: str = "") -> list[Passage]:
        """The best ``top_k`` sentences for ``question``.

        ``context`` holds the earlier turns a follow-up points back to.  The
        question is then scored both alone and with its context, and the two
        scores averaged: the context brings in the subject ("the foreign
        minister") without drowning what is asked now.  On the seed test set's
        follow-ups this found 6 of 11 right sentences first, against 5 when
        searching with the context alone.
        """
        texts = [question, f"{context} {question}"] if context else [question]
        return self.rank(question, texts, self.embedder.embed(texts), top_k)

    def rank(self, question: str, texts: list[str], vectors: np.ndarray, top_k: int = 10,
             terms: list[list[str]] | None = None) -> list[Passage]:
        """``retrieve`` once the search texts are embedded: ``vectors[i]`` is ``texts[i]``'s.  ``terms``:
        the texts' ``tokenize`` when already known (the reader's training mines where no stemmer is installed)."""
        store = self.store
        weights = [self._term_weights(tokens) for tokens in (tokenize(texts) if terms is None else terms)]
        candidates: set[int] = set()
        for ids in store.dense_search(vectors, self.candidates):
            candidates.update(ids.tolist())
        for w in weights:
            candidates.update(store.term_search(w, self.candidates)[0].tolist())
        ids = np.array(sorted(candidates), dtype=np.int64)
        dense, coverage = self._read_in_context(ids, vectors, weights)
        wanted = answer_type(question)
        passages = []
        for i, d, c in zip(ids.tolist(), dense.tolist(), coverage.tolist()):
            segment = self.segments[i]
            bonus = TYPE_BONUS if wanted and wanted.holds.search(segment.text) else 0.0
            passages.append(Passage(segment, DENSE_WEIGHT * d + (1 - DENSE_WEIGHT) * c + bonus, d, c))
        passages.sort(key=lambda p: (-p.score, p.segment.doc_id, p.segment.start))
        return passages[:top_k]

    def _read_in_context(self, ids: np.ndarray, vectors: np.ndarray, weights: list[dict[str, float]]
                         ) -> tuple[np.ndarray, np.ndarray]:
        """The cosine and coverage of sentences ``ids``, each read after the sentence before it.

        An answer sentence often names its subject only through "it" or "he",
        the name standing in the sentence before.  So ``CONTEXT_COSINE`` of the
        cosine is taken with the sum of the two sentences' vectors, the rest
        with the sentence alone, and a question term found only in the sentence
        before counts at ``PREVIOUS_TERM_WEIGHT``.  Within a paragraph only: across one the
        subject has usually changed (SQuAD v1.1, docs/choices.md).
        """
        previous = np.array([self._previous(i) for i in ids.tolist()], dtype=np.int64)
        has = previous >= 0
        both = np.concatenate([ids, previous[has]])
        stored = self.store.vectors(both)
        own = stored[:len(ids)]
        joint = own.copy()
        joint[has] += stored[len(ids):]
        joint /= np.linalg.norm(joint, axis=1, keepdims=True)
        dense = ((1 - CONTEXT_COSINE) * own + CONTEXT_COSINE * joint) @ vectors.T

        terms = list(dict.fromkeys(t for w in weights for t in w))
        present = self.store.term_presence(terms, both).astype(np.float32)
        held = present[:len(ids)]
        held[has] = np.maximum(held[has], PREVIOUS_TERM_WEIGHT * present[len(ids):])
        coverage = [held @ np.array([w.get(t, 0.0) for t in terms], dtype=np.float32) for w in weights]
        return dense.mean(axis=1), np.mean(coverage, axis=0)

    def _previous(self, i: int) -> int:
        """The sentence before sentence ``i`` in the same paragraph, or -1."""
        if i == 0:
            return -1
        here, before = self.segments[i], self.segments[i - 1]
        return i - 1 if (before.doc_id, before.paragraph) == (here.doc_id, here.paragraph) else -1

    def _term_weights(self, tokens: list[str]) -> dict[str, float]:
        """Each term's IDF as a share of all the question's terms' IDF, so a sentence holding them all scores 1."""
        terms = list(dict.fromkeys(tokens))
        n = self.store.size
        idf = {t: float(np.log(1 + (n - df + 0.5) / (df + 0.5))) for t, df in zip(terms, self.store.term_counts(terms))}
        total = sum(idf.values())
        # A term no sentence holds still counts in the total: the question asks for something absent.
        return {t: w / total for t, w in idf.items()} if total else {}
