"""Hybrid retrieval: sentence vectors and BM25 term statistics, fused.

Each sentence gets ``score = (cosine + coverage) / 2`` where ``coverage`` is
the IDF-weighted share of the question's terms (stemmed, no stop words) that
the sentence holds, plus a small bonus when it holds the kind of thing the
question asks for (a place for "where", a number for "how many").  Both parts are absolute, so the score also serves as the
confidence that decides abstention.  Candidates are the union of the FAISS
top-N and the BM25 top-N.

Measured on SQuAD v1.1 dev (../shared/eval, 5,397 questions, one article per
document, sentence-level hit@1): dense alone 0.577, BM25 alone 0.654, RRF of
the two 0.661, dense + 0.5 * max-normalized BM25 0.704, this fusion 0.728
(README, "Choices", gives the command).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .answer_types import answer_type
from .embeddings import Embedder
from .index import CorpusIndex, tokenize
from .segments import Segment

CANDIDATES = 256

# A sentence holding the kind of thing asked for ("where": a place) gains this.
# On SQuAD v1.1 it raised hit@1 for those questions by 1 to 1.5 points.
TYPE_BONUS = 0.04


@dataclass(frozen=True)
class Passage:
    """A retrieved sentence and the evidence behind its score."""

    segment: Segment
    score: float  # (dense + coverage) / 2, from about -0.5 to 1
    dense: float  # cosine similarity of question and sentence
    coverage: float  # IDF-weighted share of the question's terms in the sentence


class HybridRetriever:
    def __init__(self, index: CorpusIndex, embedder: Embedder, candidates: int = CANDIDATES):
        self.index = index
        self.embedder = embedder
        self.candidates = candidates

    def retrieve(self, query: str, top_k: int = 10, question: str | None = None) -> list[Passage]:
        """The best ``top_k`` sentences for ``query``.

        ``question`` (default: the query) is what decides the answer type; for
        a follow-up it is the last question alone, not the earlier turns.
        """
        index = self.index
        vector = self.embedder.embed([query])[0]
        ids, sims = index.dense_scores(vector, self.candidates)
        dense = dict(zip(ids.tolist(), sims.tolist()))
        coverage = self._coverage(tokenize([query])[0])
        lexical = np.argsort(-coverage)[: self.candidates]
        extra = [int(i) for i in lexical if coverage[i] > 0 and int(i) not in dense]
        if extra:
            vectors = index.dense.reconstruct_batch(np.array(extra, dtype=np.int64))
            dense.update(zip(extra, (vectors @ vector).tolist()))
        wanted = answer_type(question or query)
        passages = []
        for i, d in dense.items():
            if i < 0:
                continue
            segment = index.segments[i]
            bonus = TYPE_BONUS if wanted and wanted.holds.search(segment.text) else 0.0
            passages.append(Passage(segment, (d + float(coverage[i])) / 2 + bonus, d, float(coverage[i])))
        passages.sort(key=lambda p: (-p.score, p.segment.doc_id, p.segment.start))
        return passages[:top_k]

    def _coverage(self, tokens: list[str]) -> np.ndarray:
        """IDF-weighted share of ``tokens`` present in each sentence."""
        bm25 = self.index.bm25
        n = len(self.index.segments)
        coverage = np.zeros(n, dtype=np.float32)
        indptr = bm25.scores["indptr"]
        indices = bm25.scores["indices"]
        total = 0.0
        for token in dict.fromkeys(tokens):
            token_id = bm25.vocab_dict.get(token)
            docs = indices[indptr[token_id]:indptr[token_id + 1]] if token_id is not None else ()
            idf = float(np.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5)))
            total += idf
            if len(docs):
                coverage[docs] += idf
        return coverage / total if total else coverage
