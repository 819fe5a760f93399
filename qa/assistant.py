"""The assistant: documents, model and index put together behind ``ask``."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from . import conversation, questions
from .answers import Answer, compose
from .documents import Document, Skipped, read_corpus
from .models.embedder import DEFAULT_MODEL, Embedder
from .models.reader import Reader
from .retrieval import HybridRetriever
from .segments import Segment, segment_document
from .store import CorruptIndexError, MissingIndexError, StaleIndexError, Store
from .store.index import CorpusIndex, index_dir_for, vector_cache_for
from .store.locking import hold_open
from .store.pruning import prune

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "seeds"
DEFAULT_K = 3
# Under this retrieval score a question is off-topic before any model reads it: the score that the
# lowest 5% of off-topic questions score under on SQuAD train (``score_cut`` in
# models/answerability.json, fitted by ``python -m qa.training.answerability``).
DEFAULT_THRESHOLD = 0.117


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
        store: str | None = None,
        corpus: str | None = None,
    ):
        if rebuild not in ("never", "stale", "always"):
            raise ValueError(f"rebuild={rebuild!r}: use 'never', 'stale' or 'always'")
        self.paths = [Path(p) for p in paths]
        self.embedder = Embedder(model)
        self.reader = Reader()
        self.data_dir = data_dir
        self.k = k
        self.threshold = threshold
        self.rebuild = rebuild
        self.store_uri = store
        self.corpus = corpus  # a name that keeps one index however the files change (``corpus_name``)
        self.documents: list[Document] = []
        self.skipped: list[Skipped] = []  # files that could not be read, each with the reason
        self.documents_by_id: dict[str, Document] = {}
        self.index: Store | None = None
        self.segments: list[Segment] = []  # the corpus's sentences; sentence id i is segments[i]
        self.index_dir: Path | None = None
        self._in_use = None  # the open lock file that keeps the index from being pruned (locking.hold_open)
        self.built = False  # whether load() had to build (or, for Milvus, update) the index
        self.rebuilt_because: str | None = None  # why an existing index could not be used
        self.embedded = 0  # sentences embedded by load(); the rest came from the vector cache
        self.retriever: HybridRetriever | None = None

    def load(self, progress: Callable[[str, int, int], None] | None = None) -> "Assistant":
        """Read, verify and open everything.

        Files that cannot be read are set aside in ``skipped``, with the reason;
        ``DocumentError`` is raised only when no document can be read.

        With ``rebuild="never"`` (the default) a missing, stale or damaged
        index raises ``MissingIndexError`` / ``StaleIndexError`` /
        ``CorruptIndexError``; with ``"stale"`` it is rebuilt (re-embedding only
        documents whose vectors are not cached); with ``"always"`` it is
        rebuilt regardless.  A Milvus store (``store="milvus:URI"``) is
        brought up to date document by document whatever ``rebuild`` says.
        """
        corpus = read_corpus(self.paths)
        self.documents, self.skipped = list(corpus.documents), list(corpus.skipped)
        self.documents_by_id = {d.id: d for d in self.documents}
        self.embedder.load(progress)  # the first use exports the model to ONNX, once
        self.reader.load()
        if self.store_uri:
            self._sync_remote(progress)
        else:
            self._open_local(progress)
        self.retriever = HybridRetriever(self.index, self.segments, self.embedder)
        return self

    @property
    def manifest(self) -> dict:
        """What the index holds: model, documents, counts (the embedded store adds its files and build time)."""
        return self.index.manifest

    @property
    def corpus_name(self) -> str:
        """The corpus as its user names it: ``corpus`` when given, else the paths given, so that adding
        a file to a folder updates that folder's index and two articles of one folder keep their own."""
        return self.corpus or json.dumps(sorted(str(p.resolve()) for p in self.paths))

    @property
    def _label(self) -> str:
        """A name to read in the index directory's or collection's name; a named corpus's paths change."""
        return "corpus" if self.corpus else self.paths[0].stem if len(self.paths) == 1 else self.paths[0].parent.name

    def _open_local(self, progress) -> None:
        self.index_dir = index_dir_for(self.corpus_name, self._label, self.embedder.info, self.data_dir)
        # Held while this assistant lives, so that pruning never removes the index it answers from.
        self._in_use = hold_open(self.index_dir)
        try:
            if self.rebuild == "always":
                raise MissingIndexError("rebuild requested")
            self.index = CorpusIndex.load(self.index_dir, self.documents, self.embedder.info)
            self.built = False
        except (MissingIndexError, StaleIndexError, CorruptIndexError) as exc:
            if self.rebuild == "never":
                raise
            if isinstance(exc, CorruptIndexError):
                self.rebuilt_because = str(exc)
            self.index = CorpusIndex.build(self.documents, self.embedder, progress,
                                           cache=vector_cache_for(self.embedder.info, self.data_dir))
            self.index.save(self.index_dir)
            self.built = True
            self.embedded = self.index.embedded
            prune(self.data_dir)  # the vectors of what changed, indexes of corpora whose files are gone
        self.segments = self.index.segments

    def _sync_remote(self, progress) -> None:
        scheme, _, uri = self.store_uri.partition(":")
        if scheme != "milvus" or not uri:
            raise ValueError(f"store {self.store_uri!r}: use milvus:PATH.db (embedded) or milvus:http://HOST:19530")
        from .store.milvus import MilvusStore

        store = MilvusStore(uri, self.embedder.info.id, self.embedder.dimension, corpus=self.corpus_name,
                            label=self._label)
        segments = [s for d in self.documents for s in segment_document(d)]
        self.built = store.sync(self.documents, segments, self.embedder.embed, progress)
        self.embedded = store.embedded
        self.index, self.segments = store, segments

    def ask(
        self,
        question: str,
        history: Sequence[str | Answer | dict] = (),
        k: int | None = None,
        threshold: float | None = None,
    ) -> Answer:
        """Answer ``question``; ``history`` holds the earlier turns of the conversation, oldest first.

        A turn is its question, or better its ``Answer`` (or that answer's
        ``to_dict()``, as the JSON API hands it back): a follow-up then favours
        the neighbourhood of the previous answer's quote (``conversation.follow_on``).
        """
        if self.retriever is None:
            raise RuntimeError("call load() before ask()")
        turns = [_turn(h) for h in history]
        question = questions.check(question, follow_up=any(t.question for t in turns))
        k = self.k if k is None else k
        if k < 1:
            raise ValueError(f"k={k}: ask for at least one quote")
        started = time.perf_counter()
        context = conversation.context(question, turns)
        query = f"{context} {question}" if context else question
        passages = self.retriever.retrieve(question, top_k=max(k, 10) * 2, context=context)
        passages = conversation.follow_on(question, turns, passages)
        answer = compose(question, query, passages, self.documents_by_id, k,
                         self.threshold if threshold is None else threshold, self.reader)
        return replace(answer, latency_ms=(time.perf_counter() - started) * 1000)


def _turn(entry: str | Answer | dict) -> conversation.Turn:
    """An earlier turn as the conversation reads it; a reply of "none" quoted only the closest passages."""
    if isinstance(entry, Answer):
        entry = {"question": entry.question, "kind": entry.kind,
                 "quotes": [{"doc": q.doc, "position": q.position} for q in entry.quotes[:1]]}
    if not isinstance(entry, dict):
        return conversation.Turn(questions.clean(str(entry)))
    question = questions.clean(str(entry.get("question", "")))
    quotes = entry.get("quotes") or [None]
    first = quotes[0] if entry.get("kind") in ("answer", "possible") else None
    if not (isinstance(first, dict) and isinstance(first.get("doc"), str) and isinstance(first.get("position"), int)):
        return conversation.Turn(question)
    return conversation.Turn(question, first["doc"], first["position"])
