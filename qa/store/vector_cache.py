"""Sentence vectors kept per document, so re-indexing embeds only what changed.

A document's vectors are keyed by what determines them: the model's weights,
the document's content hash and its sentence spans.  Swapping one document of
24 then embeds that one document; the other 23 come from here.  Each entry is
a ``.npy`` file with its sha256 beside it; an entry that does not match is
dropped and re-embedded, never trusted.

Layout: ``<data dir>/vectors/<model sha256[:16]>/<doc sha256>-<spans hash>.npy``
(+ ``.sha256``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..documents import Document
from ..segments import Segment
from .checksums import spans_sha256


class VectorCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def _path(self, document: Document, segments: list[Segment]) -> Path:
        return self.directory / f"{document.sha256}-{spans_sha256(segments)[:16]}.npy"

    def get(self, document: Document, segments: list[Segment], dimension: int) -> np.ndarray | None:
        path = self._path(document, segments)
        try:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != path.with_suffix(".sha256").read_text().strip():
                raise ValueError("checksum mismatch")
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if vectors.shape != (len(segments), dimension) or vectors.dtype != np.float32:
            return None
        return vectors

    def put(self, document: Document, segments: list[Segment], vectors: np.ndarray) -> None:
        path = self._path(document, segments)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
            digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
            # The checksum goes first: a vector file without its checksum is ignored.
            path.with_suffix(".sha256").write_text(digest)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
