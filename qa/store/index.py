"""The embedded store: sentence vectors (FAISS), terms (bm25s) and a manifest in one directory.

Layout of one index directory::

    manifest.json   format and splitter versions, model id and weight hash, per-document
                    content hashes, counts, and the sha256 and size of every
                    other file below
    segments.json   every sentence: document, (start, end), section, paragraph,
                    crc32 of its text
    dense.faiss     normalized sentence vectors: exact inner product, or IVF-Flat
                    past ``ANN_MIN_SENTENCES``
    bm25/           bm25s's own files (.npy matrices, vocabulary, parameters)

Like a database's checksummed pages, nothing is trusted unread: opening an
index checks every file against the manifest and every sentence's offsets
against its document, and raises ``CorruptIndexError`` naming the file.

An index is written beside its final place and renamed into it under a lock,
so a crash never leaves a half-written index where a good one stood; the next
writer or reader that takes the lock puts back an index a crash left moved
aside and removes the dead build's temporary directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..documents import Document
from ..models.embedder import Embedder
from ..models.manifest import ModelInfo
from ..segments import SPLITTER_VERSION, Segment, segment_document
from ..terms import tokenize
from .base import CorruptIndexError, MissingIndexError, StaleIndexError
from .checksums import sha256_file
from .locking import DirectoryLock
from .term_postings import TermPostings
from .vector_cache import VectorCache

FORMAT_VERSION = 2
DEFAULT_DATA_DIR_ENV = "QA_DATA_DIR"

# Exact search reads every vector for every question; past this many sentences
# an inverted file of clusters (IVF) reads only the clusters nearest the
# question.  On the million synthetic sentences of `make bench`, IVF-Flat with
# 2,048 lists and 32 probed found the exact top 10 at recall 0.997 in 1.7 ms a
# search (256 results); HNSW (M 32) reached 0.946 at efSearch 320 and 0.983 at
# 640 (1.9 ms), and took 166 s to build against IVF's 133 s (docs/choices.md).
ANN_MIN_SENTENCES = 20_000
IVF_PROBES = 32
IVF_TRAINING_PER_LIST = 50  # k-means on 50 vectors per list: enough for stable centroids, seconds to train


def _ivf_lists(sentences: int) -> int:
    """About 2 * sqrt(n) lists, a power of two: 2,048 at a million sentences."""
    return 1 << max(6, round(np.log2(2 * np.sqrt(sentences))))

Progress = Callable[[str, int, int], None]

__all__ = ["CorpusIndex", "CorruptIndexError", "MissingIndexError", "StaleIndexError",
           "default_data_dir", "index_dir_for"]


def default_data_dir() -> Path:
    """``$QA_DATA_DIR``, else ``$XDG_DATA_HOME/qa``, else ``~/.local/share/qa``."""
    if os.environ.get(DEFAULT_DATA_DIR_ENV):
        return Path(os.environ[DEFAULT_DATA_DIR_ENV])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "qa"


def index_dir_for(corpus: str, label: str, model: ModelInfo, data_dir: str | Path | None = None) -> Path:
    """Where the index of this corpus and model lives: one directory per corpus (``Assistant.corpus_name``),
    rebuilt in place as its documents change, so an edit or an upload leaves no old index behind;
    ``label`` makes the directory's name readable."""
    key = hashlib.sha256(json.dumps([corpus, model.id]).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40] or "corpus"
    return Path(data_dir or default_data_dir()) / "indexes" / f"{safe}-{key}"


def vector_cache_for(model: ModelInfo, data_dir: str | Path | None = None) -> VectorCache:
    return VectorCache(Path(data_dir or default_data_dir()) / "vectors" / model.weights_sha256[:16])


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


class CorpusIndex(TermPostings):
    """Documents, their sentences, and both search structures over them (the ``Store`` protocol)."""

    def __init__(self, documents: list[Document], segments: list[Segment], dense, bm25, manifest: dict):
        self.documents = {d.id: d for d in documents}
        self.segments = segments
        self.dense = dense
        self.bm25 = bm25
        self.manifest = manifest
        self.embedded = 0  # sentences embedded by build(); the rest came from the vector cache

    @property
    def size(self) -> int:
        return len(self.segments)

    # --- building ---

    @classmethod
    def build(cls, documents: list[Document], embedder: Embedder, progress: Progress | None = None,
              cache: VectorCache | None = None) -> "CorpusIndex":
        """Segment and embed ``documents``; vectors of unchanged documents come from ``cache``."""
        embedder.load()
        per_doc = [(d, segment_document(d)) for d in documents]
        if not any(segs for _, segs in per_doc):
            raise ValueError("the documents hold no sentences to index")
        dimension = embedder.dimension
        found = {d.id: cache.get(d, segs, dimension) if cache else None for d, segs in per_doc}
        missing = [(d, segs) for d, segs in per_doc if found[d.id] is None and segs]
        texts = [s.text for _, segs in missing for s in segs]
        fresh = embedder.embed(texts, progress=(lambda done, total: progress("embedding", done, total))
                               if progress else None)
        at = 0
        for d, segs in missing:
            found[d.id] = fresh[at:at + len(segs)]
            at += len(segs)
            if cache:
                cache.put(d, segs, found[d.id])
        segments = [s for _, segs in per_doc for s in segs]
        vectors = np.vstack([found[d.id] for d, segs in per_doc if segs])
        index = cls.from_vectors(documents, segments, vectors, embedder.info)
        index.embedded = len(texts)
        return index

    @classmethod
    def from_vectors(cls, documents: list[Document], segments: list[Segment], vectors: np.ndarray,
                     model: ModelInfo, tokens: list[list[str]] | None = None) -> "CorpusIndex":
        """An index over given sentence vectors (unit rows, in ``segments`` order)."""
        import bm25s
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dimension = vectors.shape[1]
        if len(segments) >= ANN_MIN_SENTENCES:
            lists = _ivf_lists(len(segments))
            dense = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(len(vectors), min(len(vectors), lists * IVF_TRAINING_PER_LIST),
                                                     replace=False)
            dense.train(vectors[np.sort(sample)])
            dense.add(vectors)
            _ready_ivf(dense)
        else:
            dense = faiss.IndexFlatIP(dimension)
            dense.add(vectors)
        bm25 = bm25s.BM25()
        bm25.index(tokens if tokens is not None else tokenize([s.text for s in segments]), show_progress=False)
        counts: dict[str, int] = {}
        for s in segments:
            counts[s.doc_id] = counts.get(s.doc_id, 0) + 1
        manifest = {
            "format_version": FORMAT_VERSION,
            "splitter": SPLITTER_VERSION,
            "model": {"id": model.id, "weights_sha256": model.weights_sha256, "dimension": dimension},
            "dense": type(dense).__name__,
            "documents": [
                {"id": d.id, "path": str(Path(d.path).resolve()), "title": d.title, "sha256": d.sha256,
                 "chars": len(d.text), "sentences": counts.get(d.id, 0)}
                for d in documents
            ],
            "counts": {"documents": len(documents), "segments": len(segments)},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return cls(documents, segments, dense, bm25, manifest)

    def save(self, directory: str | Path) -> Path:
        import faiss

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        with DirectoryLock(directory):
            _recover(directory)
            tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
            try:
                faiss.write_index(self.dense, str(tmp / "dense.faiss"))
                self.bm25.save(str(tmp / "bm25"), show_progress=False)
                rows = [{"doc": s.doc_id, "start": s.start, "end": s.end, "section": s.section,
                         "paragraph": s.paragraph, "crc32": _crc(s.text)} for s in self.segments]
                (tmp / "segments.json").write_text(json.dumps(rows), encoding="utf-8")
                files = sorted(p for p in tmp.rglob("*") if p.is_file())
                for path in files:
                    _fsync(path)
                self.manifest["files"] = {
                    str(p.relative_to(tmp)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files
                }
                # The manifest goes last: a directory without one is never opened.
                (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=2), encoding="utf-8")
                _fsync(tmp / "manifest.json")
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            old = directory.with_name(f".{directory.name}.old")
            if directory.exists():
                os.rename(directory, old)
            os.rename(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        return directory

    # --- opening ---

    @classmethod
    def load(cls, directory: str | Path, documents: list[Document], model: ModelInfo) -> "CorpusIndex":
        """Open an index, refusing one that is missing, stale or damaged."""
        import bm25s
        import faiss

        directory = Path(directory)
        if not directory.exists() or _leftovers(directory):
            with DirectoryLock(directory):
                _recover(directory)
        manifest = read_manifest(directory)
        check_fresh(manifest, documents, model)
        verify_files(directory, manifest)
        segments = _read_segments(directory / "segments.json", {d.id: d for d in documents})
        try:
            dense = faiss.read_index(str(directory / "dense.faiss"))
        except RuntimeError as exc:
            raise CorruptIndexError(f"{directory / 'dense.faiss'} cannot be read ({exc}); rebuild the index") from None
        try:
            bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptIndexError(f"{directory / 'bm25'} cannot be read ({exc}); rebuild the index") from None
        if hasattr(dense, "nprobe"):
            _ready_ivf(dense)
        for name, count in (("dense.faiss", dense.ntotal), ("bm25", bm25.scores["num_docs"])):
            if count != len(segments):
                raise CorruptIndexError(f"{directory / name} holds {count} sentences, segments.json "
                                        f"{len(segments)}; rebuild the index")
        return cls(documents, segments, dense, bm25, manifest)

    # --- the Store protocol ---

    def dense_search(self, vectors: np.ndarray, top: int) -> list[np.ndarray]:
        _, ids = self.dense.search(np.ascontiguousarray(vectors, dtype=np.float32), min(top, self.dense.ntotal))
        return [row[row >= 0] for row in ids]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self.dense.reconstruct_batch(np.asarray(ids, dtype=np.int64))


def _ready_ivf(dense) -> None:
    """Search settings are not saved with an IVF index, and reading vectors back by id needs its id map."""
    dense.nprobe = IVF_PROBES
    dense.make_direct_map()


def read_manifest(directory: Path) -> dict:
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingIndexError(f"no index at {directory}: build it with `qa index`") from None
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"{path} cannot be read ({exc}); rebuild the index") from None
    # An older format has no file list: check_fresh then calls it stale.
    if not isinstance(manifest, dict) or (manifest.get("format_version") == FORMAT_VERSION
                                          and not isinstance(manifest.get("files"), dict)):
        raise CorruptIndexError(f"{path} is damaged (no list of files); rebuild the index")
    return manifest


def check_fresh(manifest: dict, documents: list[Document], model: ModelInfo) -> None:
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleIndexError(
            f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}; rebuild it"
        )
    if manifest.get("splitter", 1) != SPLITTER_VERSION:
        raise StaleIndexError(f"index sentences were split by splitter {manifest.get('splitter', 1)}, "
                              f"not {SPLITTER_VERSION}; rebuild it")
    try:
        built = manifest["model"]
        indexed = {d["id"]: d["sha256"] for d in manifest["documents"]}
        built_with = (built["id"], built["weights_sha256"])
    except (KeyError, TypeError):
        raise CorruptIndexError("the index manifest is missing its model or documents; rebuild the index") from None
    if built_with != (model.id, model.weights_sha256):
        raise StaleIndexError(f"index was built with model {built['id']!r}, not {model.id!r}; rebuild it")
    current = {d.id: d.sha256 for d in documents}
    if indexed != current:
        changed = sorted(
            set(indexed) ^ set(current) | {k for k in indexed.keys() & current.keys() if indexed[k] != current[k]}
        )
        raise StaleIndexError(
            f"index is out of date (changed, added or removed: {', '.join(changed)}); rebuild it"
        )


def verify_files(directory: Path, manifest: dict) -> None:
    """Every file the manifest lists is there, whole, and unchanged."""
    for name, expected in manifest["files"].items():
        path = directory / name
        try:
            size = path.stat().st_size
            if size != expected["bytes"]:
                raise CorruptIndexError(f"{path} has {size} bytes, its manifest says {expected['bytes']}; "
                                        f"rebuild the index")
            if sha256_file(path) != expected["sha256"]:
                raise CorruptIndexError(f"{path} does not match its manifest (sha256); rebuild the index")
        except OSError as exc:
            raise CorruptIndexError(f"{path} cannot be read ({exc.strerror}); rebuild the index") from None
        except (KeyError, TypeError):
            raise CorruptIndexError(f"the manifest's entry for {path} is damaged; rebuild the index") from None


def _read_segments(path: Path, documents: dict[str, Document]) -> list[Segment]:
    """The sentences, each checked against its document so no quote is cut from wrong offsets."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"{path} cannot be read ({exc}); rebuild the index") from None
    segments: list[Segment] = []
    positions: dict[str, int] = {}
    try:
        for n, row in enumerate(rows):
            doc = documents.get(row["doc"])
            start, end = row["start"], row["end"]
            if doc is None or not (0 <= start < end <= len(doc.text)) or \
                    _crc(doc.text[start:end]) != row["crc32"]:
                raise CorruptIndexError(f"{path}: sentence {n} does not match its document "
                                        f"{row['doc']!r}; rebuild the index")
            position = positions[doc.id] = positions.get(doc.id, -1) + 1
            segments.append(Segment(doc.id, position, start, end, doc.text[start:end],
                                    row["section"], row["paragraph"]))
    except (KeyError, TypeError):
        raise CorruptIndexError(f"{path}: sentence {len(segments)} is malformed; rebuild the index") from None
    return segments


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.parent.glob(f".{directory.name}.*") if not p.name.endswith(".lock")]


def _recover(directory: Path) -> None:
    """Undo what a killed build left (call under the lock): put back an index moved aside, drop temporaries.

    Every temporary or moved-aside directory is made and removed only by a
    writer holding the lock, so whoever holds it now knows their writer is dead.
    """
    old = directory.with_name(f".{directory.name}.old")
    if not directory.exists() and (old / "manifest.json").exists():
        os.rename(old, directory)
    for path in _leftovers(directory):
        shutil.rmtree(path, ignore_errors=True)
