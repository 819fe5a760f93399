"""Offline question answering over your documents, in verbatim cited quotes.

    from qa import Assistant
    assistant = Assistant(["seeds/"], rebuild="stale").load()
    answer = assistant.ask("Where were the soldiers captured?")
    for quote in answer.quotes:
        print(quote.text, quote.doc, quote.start, quote.end)
"""

from .answers import NO_ANSWER, Answer, Quote, ShortAnswer
from .assistant import DEFAULT_CORPUS, DEFAULT_K, DEFAULT_THRESHOLD, Assistant
from .documents import Document, DocumentError, Skipped, collect_files, load_documents, read_corpus, read_document
from .evaluation import TestSetError, compute_metrics, read_squad, read_testset, run_eval
from .models.embedder import DEFAULT_MODEL, Embedder
from .models.manifest import ModelError
from .models.reader import Reader, Reading
from .retrieval import HybridRetriever, Passage
from .segments import Segment, segment_document
from .store import CorruptIndexError, MissingIndexError, StaleIndexError, Store, StoreUnavailableError
from .store.index import CorpusIndex, default_data_dir

__all__ = [
    "Answer",
    "Assistant",
    "CorpusIndex",
    "CorruptIndexError",
    "DEFAULT_CORPUS",
    "DEFAULT_K",
    "DEFAULT_MODEL",
    "DEFAULT_THRESHOLD",
    "Document",
    "DocumentError",
    "Embedder",
    "HybridRetriever",
    "MissingIndexError",
    "ModelError",
    "NO_ANSWER",
    "Passage",
    "Quote",
    "Reader",
    "Reading",
    "Segment",
    "ShortAnswer",
    "Skipped",
    "StaleIndexError",
    "Store",
    "StoreUnavailableError",
    "TestSetError",
    "compute_metrics",
    "collect_files",
    "default_data_dir",
    "load_documents",
    "read_corpus",
    "read_document",
    "read_squad",
    "read_testset",
    "run_eval",
    "segment_document",
]
