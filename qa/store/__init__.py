"""Where a corpus's sentences are indexed: the store protocol and its two engines.

- ``base``: the ``Store`` protocol retrieval reads through, and the errors an index raises;
- ``index``: the embedded default, a directory of FAISS + bm25s files (``CorpusIndex``);
- ``milvus``: the same protocol on Milvus, embedded or a server (``--store URI``);
- ``vector_cache``: sentence vectors kept per document, so re-indexing embeds only what changed;
- ``locking``, ``checksums``: how a write is kept exclusive, an open index kept, and a file or span list verified;
- ``pruning``: removing the indexes and cached vectors that no corpus uses any more.

Only the protocol and the errors are imported here, so importing ``qa.store``
costs neither FAISS nor pymilvus.
"""

from .base import CorruptIndexError, MissingIndexError, StaleIndexError, Store, StoreUnavailableError

__all__ = ["CorruptIndexError", "MissingIndexError", "StaleIndexError", "Store", "StoreUnavailableError"]
