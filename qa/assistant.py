"""The assistant: documents, model and index put together behind ``ask``."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from . import conversation
from .answers import Answer, compose
from .documents import Document, load_documents
from .embeddings import DEFAULT_MODEL, Embedder
from .index import CorpusIndex, MissingIndexError, StaleIndexError, index_dir_for
from .retrieval import HybridRetriever

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "seeds"
DEFAULT_K = 3
# Between the off-topic and the answered seed questions (README, "Choices, measured").
DEFAULT_THRESHOLD = 0.2


class Assistant:
    """Answers questions about a set of documents with verbatim quotes.

    The constructor is cheap.  ``load()`` reads the documents, verifies and
    loads the model, and opens the index (building it when ``rebuild`` allows).

    >>> assistant = Assistant(["seeds/"]).load()          # doctest: +SKIP
    >>> assistant.ask("Where were the soldiers captured?")  # doctest: +SKIP
    """

    def __init__(
        self,
        paths: Sequence[str | Path] = (DEFAULT_CORPUS,),
        model: str | Path = DEFAULT_MODEL,
        data_dir: str | Path | None = None,
        k: int = DEFAULT_K,
        threshold: float = DEFAULT_THRESHOLD,
        rebuild: str = "never",
    ):
        if rebuild not in ("never", "stale", "always"):
            raise ValueError(f"rebuild={rebuild!r}: use 'never', 'stale' or 'always'")
        self.paths = [Path(p) for p in paths]
        self.embedder = Embedder(model)
        self.data_dir = data_dir
        self.k = k
        self.threshold = threshold
        self.rebuild = rebuild
        self.documents: list[Document] = []
        self.index: CorpusIndex | None = None
        self.index_dir: Path | None = None
        self.built = False  # whether load() had to build the index
        self._retriever: HybridRetriever | None = None

    def load(self, progress: Callable[[str, int, int], None] | None = None) -> "Assistant":
        """Read, verify and open everything.

        With ``rebuild="never"`` (the default) a missing or stale index raises
        ``MissingIndexError`` / ``StaleIndexError``; with ``"stale"`` it is
        rebuilt; with ``"always"`` it is rebuilt regardless.
        """
        self.documents = load_documents(self.paths)
        self.embedder.load()
        self.index_dir = index_dir_for(self.documents, self.embedder.info, self.data_dir)
        try:
            if self.rebuild == "always":
                raise MissingIndexError("rebuild requested")
            self.index = CorpusIndex.load(self.index_dir, self.documents, self.embedder.info)
            self.built = False
        except (MissingIndexError, StaleIndexError):
            if self.rebuild == "never":
                raise
            self.index = CorpusIndex.build(self.documents, self.embedder, progress)
            self.index.save(self.index_dir)
            self.built = True
        self._retriever = HybridRetriever(self.index, self.embedder)
        return self

    def ask(
        self,
        question: str,
        history: Sequence[str | Answer] = (),
        k: int | None = None,
        threshold: float | None = None,
    ) -> Answer:
        """Answer ``question``; ``history`` holds the earlier questions (or answers) of the conversation."""
        if self._retriever is None:
            raise RuntimeError("call load() before ask()")
        question = question.strip()
        if not question:
            raise ValueError("the question is empty: type a question")
        k = self.k if k is None else k
        if k < 1:
            raise ValueError(f"k={k}: ask for at least one quote")
        started = time.perf_counter()
        context = _context(question, history)
        query = f"{context} {question}" if context else question
        passages = self._retriever.retrieve(question, top_k=max(k, 10) * 2, context=context)
        answer = compose(question, query, passages, self.index.documents, k,
                         self.threshold if threshold is None else threshold)
        return replace(answer, latency_ms=(time.perf_counter() - started) * 1000)


def _context(question: str, history: Sequence[str | Answer]) -> str:
    return conversation.context(question, [h.question if isinstance(h, Answer) else h for h in history])
