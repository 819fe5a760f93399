"""The on-disk index: sentence vectors (FAISS), BM25 (bm25s) and a manifest.

Layout of one index directory::

    manifest.json   format version, model id and weight hash, per-document
                    content hashes, counts
    segments.json   every sentence: document, (start, end), section, paragraph
    dense.faiss     normalized sentence vectors, inner-product flat index
    bm25/           bm25s's own files (.npy matrices, vocabulary, parameters)

An index is written beside its final place and renamed into it, so a crash
never leaves a half-written index where a good one stood.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .documents import Document
from .embeddings import Embedder, ModelInfo
from .segments import Segment, segment_document

FORMAT_VERSION = 1
DEFAULT_DATA_DIR_ENV = "QA_DATA_DIR"

Progress = Callable[[str, int, int], None]


class StaleIndexError(RuntimeError):
    """The index on disk was built from other documents or another model."""


class MissingIndexError(RuntimeError):
    """No complete index exists at the expected place."""


def default_data_dir() -> Path:
    """``$QA_DATA_DIR``, else ``$XDG_DATA_HOME/qa``, else ``~/.local/share/qa``."""
    if os.environ.get(DEFAULT_DATA_DIR_ENV):
        return Path(os.environ[DEFAULT_DATA_DIR_ENV])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "qa"


def index_dir_for(documents: list[Document], model: ModelInfo, data_dir: str | Path | None = None) -> Path:
    """Where the index of this corpus and model lives: one directory per corpus."""
    paths = sorted(str(Path(d.path).resolve()) for d in documents)
    key = hashlib.sha256(json.dumps([paths, model.id]).encode()).hexdigest()[:16]
    first = Path(paths[0])
    name = first.parent.name if len(paths) > 1 else first.stem
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "corpus"
    return Path(data_dir or default_data_dir()) / "indexes" / f"{safe}-{key}"


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed word tokens without English stop words."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stem_words(), return_ids=False, show_progress=False)


@functools.cache
def _stem_words():
    import Stemmer

    return Stemmer.Stemmer("english").stemWords


@dataclass(frozen=True)
class DocumentEntry:
    id: str
    path: str
    title: str
    sha256: str
    chars: int
    sentences: int


def _manifest(documents, segments, model: ModelInfo, dimension: int) -> dict:
    counts = {}
    for s in segments:
        counts[s.doc_id] = counts.get(s.doc_id, 0) + 1
    return {
        "format_version": FORMAT_VERSION,
        "model": {"id": model.id, "weights_sha256": model.weights_sha256, "dimension": dimension},
        "documents": [
            asdict(DocumentEntry(d.id, str(Path(d.path).resolve()), d.title, d.sha256, len(d.text), counts.get(d.id, 0)))
            for d in documents
        ],
        "counts": {"documents": len(documents), "segments": len(segments)},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class CorpusIndex:
    """Documents, their sentences, and both search structures over them."""

    def __init__(self, documents: list[Document], segments: list[Segment], dense, bm25, manifest: dict):
        self.documents = {d.id: d for d in documents}
        self.segments = segments
        self.dense = dense
        self.bm25 = bm25
        self.manifest = manifest

    @classmethod
    def build(cls, documents: list[Document], embedder: Embedder, progress: Progress | None = None) -> "CorpusIndex":
        import bm25s
        import faiss

        embedder.load()
        segments = [s for d in documents for s in segment_document(d)]
        if not segments:
            raise ValueError("the documents hold no sentences to index")
        texts = [s.text for s in segments]
        vectors = embedder.embed(texts, progress=(lambda done, total: progress("embedding", done, total)) if progress else None)
        dense = faiss.IndexFlatIP(vectors.shape[1])
        dense.add(vectors)
        bm25 = bm25s.BM25()
        bm25.index(tokenize(texts), show_progress=False)
        manifest = _manifest(documents, segments, embedder.info, vectors.shape[1])
        return cls(documents, segments, dense, bm25, manifest)

    def save(self, directory: str | Path) -> Path:
        import faiss

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        with _lock(directory):
            tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
            try:
                faiss.write_index(self.dense, str(tmp / "dense.faiss"))
                self.bm25.save(str(tmp / "bm25"), show_progress=False)
                rows = [
                    {"doc": s.doc_id, "start": s.start, "end": s.end, "section": s.section, "paragraph": s.paragraph}
                    for s in self.segments
                ]
                (tmp / "segments.json").write_text(json.dumps(rows), encoding="utf-8")
                # The manifest goes last: a directory without one is never opened.
                (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=2), encoding="utf-8")
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            old = None
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
                os.rename(directory, old)
            os.rename(tmp, directory)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: str | Path, documents: list[Document], model: ModelInfo) -> "CorpusIndex":
        """Open an index, refusing one built from other documents or another model."""
        import bm25s
        import faiss

        directory = Path(directory)
        manifest = read_manifest(directory)
        check_fresh(manifest, documents, model)
        rows = json.loads((directory / "segments.json").read_text(encoding="utf-8"))
        by_id = {d.id: d for d in documents}
        segments, positions = [], {}
        for row in rows:
            doc = by_id[row["doc"]]
            position = positions[doc.id] = positions.get(doc.id, -1) + 1
            segments.append(Segment(doc.id, position, row["start"], row["end"],
                                    doc.text[row["start"]:row["end"]], row["section"], row["paragraph"]))
        dense = faiss.read_index(str(directory / "dense.faiss"))
        bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
        return cls(documents, segments, dense, bm25, manifest)

    def dense_scores(self, vector: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.dense.search(vector.reshape(1, -1).astype(np.float32), min(top, self.dense.ntotal))
        return ids[0], scores[0]

    def lexical_scores(self, tokens: list[str]) -> np.ndarray:
        known = [t for t in tokens if t in self.bm25.vocab_dict]
        if not known:
            return np.zeros(len(self.segments), dtype=np.float32)
        return self.bm25.get_scores(known)


def read_manifest(directory: Path) -> dict:
    try:
        return json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingIndexError(f"no index at {directory}: build it with `qa index`") from None
    except ValueError as exc:
        raise StaleIndexError(f"index manifest at {directory} is unreadable ({exc}); rebuild it") from None


def check_fresh(manifest: dict, documents: list[Document], model: ModelInfo) -> None:
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleIndexError(
            f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}; rebuild it"
        )
    built = manifest["model"]
    if (built["id"], built["weights_sha256"]) != (model.id, model.weights_sha256):
        raise StaleIndexError(f"index was built with model {built['id']!r}, not {model.id!r}; rebuild it")
    indexed = {d["id"]: d["sha256"] for d in manifest["documents"]}
    current = {d.id: d.sha256 for d in documents}
    if indexed != current:
        changed = sorted(
            set(indexed) ^ set(current) | {k for k in indexed.keys() & current.keys() if indexed[k] != current[k]}
        )
        raise StaleIndexError(
            f"index is out of date (changed, added or removed: {', '.join(changed)}); rebuild it"
        )


class _lock:
    """An exclusive lock beside the index, so two builders don't swap at once."""

    def __init__(self, directory: Path):
        self.path = directory.with_name(f".{directory.name}.lock")

    def __enter__(self):
        self.file = self.path.open("w")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
