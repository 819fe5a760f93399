"""The store protocol's term calls over bm25s's inverted lists, held in this process.

The default store (``qa.index.CorpusIndex``) answers its term calls this way
from its saved bm25s index; the Milvus store does too on a server older than
Milvus 2.4, which has no sparse vectors to hold terms (``qa.milvus``).
"""

from __future__ import annotations

import numpy as np


class TermPostings:
    """``term_counts``, ``term_search`` and ``term_presence`` (``qa.store.Store``) of ``self.bm25``'s sentences.

    A subclass sets ``bm25`` (a ``bm25s.BM25`` indexed over the sentences'
    ``qa.terms.tokenize`` tokens, in corpus order) and ``size``.
    """

    bm25 = None
    size: int

    def _postings(self, term: str) -> np.ndarray:
        term_id = self.bm25.vocab_dict.get(term)
        if term_id is None:
            return np.zeros(0, dtype=np.int64)
        indptr = self.bm25.scores["indptr"]
        return self.bm25.scores["indices"][indptr[term_id]:indptr[term_id + 1]]

    def term_counts(self, terms: list[str]) -> list[int]:
        return [len(self._postings(t)) for t in terms]

    def term_search(self, weights: dict[str, float], top: int) -> tuple[np.ndarray, np.ndarray]:
        sums = np.zeros(self.size, dtype=np.float32)
        for term, weight in weights.items():
            sums[self._postings(term)] += weight
        held = np.flatnonzero(sums > 0)
        if len(held) > top:
            held = held[np.argpartition(-sums[held], top - 1)[:top]]
        order = np.argsort(-sums[held], kind="stable")
        return held[order], sums[held][order]

    def term_presence(self, terms: list[str], ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        held = np.zeros((len(ids), len(terms)), dtype=bool)
        for column, term in enumerate(terms):
            postings = self._postings(term)  # sorted sentence ids
            if len(postings):
                at = np.minimum(np.searchsorted(postings, ids), len(postings) - 1)
                held[:, column] = postings[at] == ids
        return held


class LocalTerms(TermPostings):
    """The terms of sentences given as tokens, indexed in memory."""

    def __init__(self, tokens: list[list[str]]):
        import bm25s

        self.bm25 = bm25s.BM25()
        self.bm25.index(tokens, show_progress=False)
        self.size = len(tokens)
