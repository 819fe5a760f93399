"""What retrieval needs from an index of sentences, and nothing more.

Two engines stand behind this interface: the embedded default, a directory of
FAISS + bm25s files (``qa.store.index``), and Milvus (``qa.store.milvus``), selected by
``--store URI``.  Retrieval sees only this protocol, so neither engine's types
leak into scoring.

Sentences are numbered 0..n-1 in the order of the corpus's segments (document
by document, in reading order); a store answers in those numbers.  Terms are
the stemmed tokens of ``qa.terms.tokenize``; a sentence "holds" a term when the
term occurs in it at least once.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class StaleIndexError(RuntimeError):
    """The index was built from other documents or another model."""


class MissingIndexError(RuntimeError):
    """No complete index exists at the expected place."""


class CorruptIndexError(RuntimeError):
    """A file of the index is missing, damaged or does not match its manifest.

    The message names the file; the CLI and the app rebuild, the API raises.
    """


class StoreUnavailableError(RuntimeError):
    """The store's engine cannot be reached or opened; the message names the URI and the fix."""


class Store(Protocol):
    size: int  # number of sentences

    def dense_search(self, vectors: np.ndarray, top: int) -> list[np.ndarray]:
        """For each row of ``vectors`` (unit length), the ids of the ``top`` nearest sentences by cosine."""

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The unit vectors of sentences ``ids``, one row each."""

    def term_counts(self, terms: list[str]) -> list[int]:
        """For each term, how many sentences hold it."""

    def term_search(self, weights: dict[str, float], top: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``top`` sentences by the summed weight of the terms they hold (ids, sums), best first; sums > 0."""

    def term_presence(self, terms: list[str], ids: np.ndarray) -> np.ndarray:
        """Which of ``terms`` each sentence of ``ids`` holds: booleans, one row per id, one column per term."""
