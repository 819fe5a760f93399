"""The Milvus store: the corpus's sentence vectors and terms in Milvus collections.

``MilvusStore("path/file.db", ...)`` runs Milvus embedded (milvus-lite 2.5:
Milvus's own engine, in a process of its own that pymilvus starts and talks
to over a local socket); ``MilvusStore("http://host:19530", ...)`` talks to a
Milvus server or cluster with the same schema and calls.  A server older than
2.4 has no sparse vectors: there the terms below stay in this process
(``qa.milvus_servers``), and ``_docs`` holds an ``unused`` vector instead.
pymilvus is imported only here, so the default store never pays for it
(importing it takes about 0.8 s).

Two collections per corpus and model (``collection_name``), ``qa_<name>_<hash>``
and the same name with ``_docs``:

sentences, one row per sentence
    pk        ``<doc key>:<position>``; the doc key is a hash of the document id
              and version (text and offsets), so a process reading while
              another syncs skips rows of versions it does not know
    doc       the document id, to delete a document's rows by filter
    position, start, end
    dense     its unit vector: FLOAT_VECTOR, metric IP (= cosine)
    terms     SPARSE_FLOAT_VECTOR, term id -> 1.0 for each term it holds,
              metric IP: a search with the question's IDF weights returns
              the retriever's coverage numerator
documents, one row per document
    pk        the document id
    sha256    its text's hash; "" while its sentences are being written
    spans     a hash of its sentences' offsets, so a new segmenter re-indexes
    terms     SPARSE_FLOAT_VECTOR, term id -> how many of its sentences hold
              the term.  Milvus returns no document frequencies, so ``sync``
              sums these in memory; as a sparse vector the counts have no size
              limit (a JSON field stops at 64 KB) and they are the vector field
              Milvus requires of every collection.

The sentences collection's description records the format, model, dimension
and where the terms live, so another model's vectors are never mixed in.
Documents' text stays on disk: the caller cuts quotes from its own
``Document.text``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from ..documents import Document
from ..segments import Segment
from ..terms import tokenize
from .base import CorruptIndexError, StaleIndexError, StoreUnavailableError
from .checksums import spans_sha256
from .milvus_servers import terms_on_server
from .term_postings import LocalTerms

FORMAT_VERSION = 1

# Term ids: 8 bytes of blake2b of the stemmed term, folded into [0, 2^31).
# Two terms may share an id; in a vocabulary of V terms about V²/2^32 pairs do
# (a million terms: ~230 pairs), and the engine then counts them as one term.
TERM_SPACE = 2**31
# Milvus refuses an empty sparse vector; a sentence holding no terms (only
# stop words) holds this id instead, which no term hashes to.
NO_TERMS = TERM_SPACE

# Sentences embedded and inserted per round trip: about 3.5 MB of rows at 384
# dimensions, far under gRPC's 64 MB message limit.
INSERT_BATCH = 2048
# Ids per get() and per "in [...]" filter, to keep each request small.
FETCH_BATCH = 1024

# A local file holds what one machine holds: exact search, ranking as the
# default FAISS store does.  A server holds tens of millions of sentences,
# where reading every vector per question is too slow: HNSW there
# (docs/milvus.md).  milvus-lite 2.5 builds FLAT, IVF_FLAT and AUTOINDEX only.
FLAT = {"index_type": "FLAT", "metric_type": "IP", "params": {}}
HNSW = {"index_type": "HNSW", "metric_type": "IP", "params": {"M": 16, "efConstruction": 200}}
HNSW_EF = 320  # the search's candidate list: at least the retriever's 256

Progress = Callable[[str, int, int], None]


def term_id(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest(), "big") % TERM_SPACE


def collection_name(documents: list[Document], model_id: str, corpus: str | None = None,
                    label: str | None = None) -> str:
    """The collection of a corpus and model.

    ``corpus`` names the corpus as its user does (the folders and files given,
    or the app's library), so that adding a file syncs the same collection, and
    two corpora of one folder (single articles, as ``qa eval --squad`` asks
    them) do not sync each other's documents away.  Without it, the documents'
    common folder.  ``label`` (default: that folder's name) only makes the name
    readable.  Milvus names allow letters, digits and underscores.
    """
    folder = os.path.commonpath([str(Path(d.path).resolve().parent) for d in documents])
    key = hashlib.sha256(json.dumps([corpus or folder, model_id]).encode()).hexdigest()[:16]
    safe = "".join(c if c.isascii() and c.isalnum() else "_" for c in label or Path(folder).name)[:40]
    return f"qa_{safe}_{key}"


def _doc_key(doc_id: str, version: tuple[str, str]) -> str:
    """The key of one version of a document: a reader that synced another version, or none,
    never takes these rows for its own sentences.

    Hex, because pymilvus does not escape a backslash in a primary key it
    filters on, and document ids are file paths.
    """
    return hashlib.blake2b(json.dumps([doc_id, *version]).encode("utf-8"), digest_size=8).hexdigest()


def _sparse(weights: dict[int, float]) -> dict[int, float]:
    return weights or {NO_TERMS: 1.0}


def _in(field: str, values: list[str]) -> str:
    # JSON's string escapes (\" and \\) are Milvus's; ensure_ascii=False keeps
    # other characters as they are, which Milvus reads as UTF-8.
    return f"{field} in {json.dumps(values, ensure_ascii=False)}"


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class MilvusStore:
    """A ``qa.store.Store`` on Milvus: ``sync`` fills it, the read methods answer in corpus sentence ids."""

    def __init__(self, uri: str, model_id: str, dimension: int, corpus: str | None = None,
                 label: str | None = None):
        self.local = uri.endswith(".db")
        if not (self.local or uri.startswith(("http://", "https://", "tcp://", "unix:"))):
            raise ValueError(
                f"Milvus URI {uri!r}: name a local file ending in .db (embedded Milvus) "
                f"or a server, http://host:19530"
            )
        self.uri = uri
        self.model_id = model_id
        self.dimension = dimension
        self.corpus, self.label = corpus, label  # see collection_name
        self.dense_index = FLAT if self.local else HNSW
        # Whether Milvus holds the terms (sparse vectors, Milvus 2.4+); else self._terms does.
        self.terms_on_server = self.local
        self._terms: LocalTerms | None = None
        self.size = 0
        self.collection: str | None = None  # the sentences' collection; the documents' adds "_docs"
        self._client = None
        self._segments: list[Segment] = []
        self._keys: dict[str, str] = {}  # document id -> key of its version in this corpus
        self._first: dict[str, int] = {}  # key -> corpus id of the document's first sentence
        self._df: Counter[int] = Counter()
        self._read: dict = {}  # the consistency of reads: see the end of sync()
        self.embedded = 0  # sentences the last sync embedded; unchanged documents keep their rows
        self.manifest: dict = {}  # what the last sync left: model, documents, counts

    # -- writing -----------------------------------------------------------

    def sync(self, documents: list[Document], segments: list[Segment],
             embed: Callable[[list[str]], np.ndarray], progress: Progress | None = None) -> bool:
        """Make Milvus hold exactly these documents' sentences; whether anything changed.

        A document whose text and sentence offsets are unchanged keeps its rows
        and is not embedded again.  Every step leaves a state the next sync
        repairs, since Milvus has no transactions: a document's row is marked
        unfinished (sha256 "") before its sentences are written, and a removed
        document's sentences are deleted before its row.
        """
        if not segments:
            raise ValueError("the documents hold no sentences to index")
        by_doc, starts = self._number(documents, segments)
        wanted = {d.id: (d.sha256, spans_sha256(by_doc[d.id])) for d in documents}
        self._keys = {doc: _doc_key(doc, version) for doc, version in wanted.items()}
        if len(set(self._keys.values())) != len(documents):
            raise ValueError("two document ids hash to the same key; rename one of the files")
        self._first = {self._keys[doc]: start for doc, start in starts.items()}
        self._connect(collection_name(documents, self.model_id, self.corpus, self.label))
        stored = self._stored_documents()
        removed = [doc for doc in stored if doc not in wanted]
        fresh = [d.id for d in documents if stored.get(d.id, ("", "", None))[:2] != wanted[d.id]]

        texts = [s for doc in fresh for s in by_doc[doc]]
        held: list[dict[int, float]] = []
        counts = {doc: terms for doc, (_, _, terms) in stored.items() if doc in wanted}
        if self.terms_on_server:
            held = [{term_id(t): 1.0 for t in terms} for terms in tokenize([s.text for s in texts])] if texts else []
            at = 0
            for doc in fresh:
                counts[doc] = Counter(t for h in held[at:at + len(by_doc[doc])] for t in h)
                at += len(by_doc[doc])
        else:
            self._terms = LocalTerms(tokenize([s.text for s in segments]))

        self._write_documents(fresh, wanted, counts, finished=False)
        for batch in _batches(fresh + removed, FETCH_BATCH):
            self._client.delete(self.collection, filter=_in("doc", batch))
        for batch in _batches(removed, FETCH_BATCH):
            self._client.delete(self._documents, filter=_in("pk", batch))
        self._insert_sentences(texts, held, embed, progress)
        self._write_documents(fresh, wanted, counts, finished=True)
        if fresh or removed:
            # Sealing the new rows gets them their indexes; until then Milvus searches them
            # by brute force, or by a temporary index rebuilt as rows arrive.
            self._client.flush(self.collection)
            self._client.flush(self._documents)

        self._df = Counter()
        for terms in counts.values():
            self._df.update(terms)
        from pymilvus import mkts_from_unixtime

        # Reads until the next sync must see what this sync left and need not wait for anything
        # newer: a Strong read waits for the server's next time tick, ~0.4 s a call on a Milvus
        # 2.3 server (docs/milvus.md).  So they carry this moment as their guarantee timestamp, by
        # this machine's clock: one ahead of the server's delays them by the difference, once.
        self._read = {"consistency_level": "Customized", "guarantee_timestamp": mkts_from_unixtime(time.time())}
        rows = self._count(self.collection)
        if rows != len(segments):
            raise CorruptIndexError(
                f"Milvus collection {self.collection!r} at {self.uri} holds {rows} sentences, not the "
                f"corpus's {len(segments)}: did another process sync it at the same time? Sync again."
            )
        self.embedded = len(texts)
        self.manifest = {
            "store": f"milvus:{self.uri}", "collection": self.collection,
            "model": {"id": self.model_id, "dimension": self.dimension},
            "documents": [{"id": d.id, "path": str(Path(d.path).resolve()), "title": d.title, "sha256": d.sha256,
                           "chars": len(d.text), "sentences": len(by_doc[d.id])} for d in documents],
            "counts": {"documents": len(documents), "segments": len(segments)},
        }
        return bool(fresh or removed)

    def close(self) -> None:
        """Close the connection.  An embedded Milvus keeps serving its file until this process exits."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _number(self, documents: list[Document], segments: list[Segment]):
        """Each document's sentences, and the corpus id of its first one."""
        by_doc: dict[str, list[Segment]] = {d.id: [] for d in documents}
        starts: dict[str, int] = {}
        for i, s in enumerate(segments):
            if s.doc_id not in by_doc:
                raise ValueError(f"sentence {i} belongs to {s.doc_id!r}, which is not among the documents")
            starts.setdefault(s.doc_id, i)
            if s.position != i - starts[s.doc_id]:
                raise ValueError(
                    f"sentence {i} ({s.doc_id!r}, position {s.position}) is out of order: "
                    f"give segments document by document, in reading order"
                )
            by_doc[s.doc_id].append(s)
        self._segments, self.size = segments, len(segments)
        return by_doc, starts

    def _connect(self, name: str) -> None:
        from pymilvus import DataType, MilvusClient
        from pymilvus.client.types import LoadState

        if self._client is None:
            if self.local:
                if Path(self.uri).is_dir():
                    raise StoreUnavailableError(
                        f"{self.uri} is a directory, as milvus-lite 3 wrote them; its engine now is "
                        f"milvus-lite 2.5, which keeps one file: move it aside and index again")
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
                # milvus-lite 2.5.1 imports pkg_resources, whose deprecation would print on every run.
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            # milvus-lite and Milvus 2.3 return no MVCC timestamp for an iterator; pymilvus then warns
            # on every sync and pages by its own clock, which (in step with the server's) reads every
            # row written before the sync.
            logging.getLogger("pymilvus.orm.iterator").setLevel(logging.ERROR)
            try:
                self._client = MilvusClient(self.uri)
            except Exception as exc:  # pymilvus raises several kinds, all meaning "not reachable"
                fix = ("only one process at a time can open an embedded Milvus file: close the other "
                       "or run a Milvus server" if self.local else "start the server or correct the URI")
                raise StoreUnavailableError(f"cannot open Milvus at {self.uri} ({exc}); {fix}") from None
            if not self.local:
                self.terms_on_server = terms_on_server(self._client.get_server_version(), self.uri)
        client = self._client
        self.collection, self._documents = name, f"{name}_docs"
        identity = {"format": FORMAT_VERSION, "model": self.model_id, "dimension": self.dimension,
                    "terms": "milvus" if self.terms_on_server else "beside"}
        if client.has_collection(name):
            # The description, because milvus-lite 2.5 keeps no collection properties.
            try:
                recorded = json.loads(client.describe_collection(name)["description"])
            except (KeyError, ValueError):
                recorded = None
            if recorded != identity:
                raise StaleIndexError(
                    f"Milvus collection {name!r} at {self.uri} holds {recorded}, not {identity}: drop it "
                    f"(MilvusClient({self.uri!r}).drop_collection({name!r})) and index again"
                )
        else:
            schema = client.create_schema(auto_id=False, description=json.dumps(identity))
            schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("doc", DataType.VARCHAR, max_length=4096)
            for field in ("position", "start", "end"):
                schema.add_field(field, DataType.INT64)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dimension)
            index = client.prepare_index_params()
            index.add_index("dense", **self.dense_index)
            if self.terms_on_server:  # sparse vectors and INVERTED scalar indexes both came in Milvus 2.4
                schema.add_field("terms", DataType.SPARSE_FLOAT_VECTOR)
                index.add_index("terms", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
                index.add_index("doc", index_type="INVERTED")
            # Strong: a search sees every write made before it, by any process.
            client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        if not client.has_collection(self._documents):
            schema = client.create_schema(auto_id=False)
            schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=4096)
            schema.add_field("sha256", DataType.VARCHAR, max_length=64)
            schema.add_field("spans", DataType.VARCHAR, max_length=64)
            index = client.prepare_index_params()
            if self.terms_on_server:
                schema.add_field("terms", DataType.SPARSE_FLOAT_VECTOR)
                index.add_index("terms", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
            else:  # Milvus wants a vector field in every collection; this one holds [0, 0]
                schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
                index.add_index("unused", index_type="FLAT", metric_type="IP")
            client.create_collection(self._documents, schema=schema, index_params=index, consistency_level="Strong")
        # A reopened collection starts released.  A loaded one is left alone: an operator may
        # have loaded it with several replicas, which a plain load would contradict.
        for collection in (self.collection, self._documents):
            if client.get_load_state(collection)["state"] != LoadState.Loaded:
                client.load_collection(collection)

    def _stored_documents(self) -> dict[str, tuple[str, str, Counter]]:
        """Every stored document: sha256, spans hash, and its sentences' term counts."""
        stored = {}
        if not self._count(self._documents):
            # Reading a sparse field of a collection never written to fails in milvus-lite 2.5.1
            # ("Growing segment loss raw data").
            return stored
        rows = self._client.query_iterator(self._documents, batch_size=FETCH_BATCH, output_fields=[
            "pk", "sha256", "spans", *(["terms"] if self.terms_on_server else [])])
        try:
            while batch := rows.next():
                for row in batch:
                    terms = Counter({int(t): round(c) for t, c in row.get("terms", {}).items() if int(t) != NO_TERMS})
                    stored[row["pk"]] = (row["sha256"], row["spans"], terms)
        finally:
            rows.close()
        return stored

    def _write_documents(self, docs: list[str], wanted: dict[str, tuple[str, str]],
                         counts: dict[str, Counter], finished: bool) -> None:
        rows = [{"pk": doc, "sha256": wanted[doc][0] if finished else "", "spans": wanted[doc][1]} for doc in docs]
        for row in rows:
            if self.terms_on_server:
                row["terms"] = _sparse({t: float(c) for t, c in counts[row["pk"]].items()})
            else:
                row["unused"] = [0.0, 0.0]
        for batch in _batches(rows, FETCH_BATCH):
            self._client.upsert(self._documents, batch)

    def _insert_sentences(self, segments: list[Segment], held: list[dict[int, float]],
                          embed: Callable[[list[str]], np.ndarray], progress: Progress | None) -> None:
        for at in range(0, len(segments), INSERT_BATCH):
            batch = segments[at:at + INSERT_BATCH]
            vectors = np.asarray(embed([s.text for s in batch]), dtype=np.float32)
            if vectors.shape != (len(batch), self.dimension):
                raise ValueError(
                    f"embed() returned shape {vectors.shape} for {len(batch)} sentences; the store was "
                    f"opened for {self.dimension} dimensions: pass the model's dimension"
                )
            rows = [{"pk": f"{self._keys[s.doc_id]}:{s.position}", "doc": s.doc_id, "position": s.position,
                     "start": s.start, "end": s.end, "dense": v.tolist()} for s, v in zip(batch, vectors)]
            for row, h in zip(rows, held[at:at + INSERT_BATCH]):
                row["terms"] = _sparse(h)
            self._client.insert(self.collection, rows)
            if progress:
                progress("embedding", at + len(batch), len(segments))

    def _count(self, collection: str) -> int:
        return self._client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"]

    # -- reading (qa.store.Store) ----------------------------------------------

    def _ids(self, hits: list) -> list[tuple[int, float]]:
        """(corpus id, score) of the hits that are this corpus's sentences.

        Others are rows another process wrote since this one synced (a document
        added, or another version of one): until this process syncs again they
        are not in its corpus.
        """
        found = []
        for hit in hits:
            key, position = hit["pk"].rsplit(":", 1)
            if key in self._first:
                found.append((self._first[key] + int(position), hit["distance"]))
        return found

    def _pk(self, i: int) -> str:
        s = self._segments[i]
        return f"{self._keys[s.doc_id]}:{s.position}"

    def _search(self, field: str, data: list, top: int) -> list:
        if self._client is None:
            raise RuntimeError("MilvusStore: call sync() before reading")
        params = {"metric_type": "IP"}
        if field == "dense" and self.dense_index["index_type"] == "HNSW":
            params["params"] = {"ef": max(HNSW_EF, top)}
        # Naming the output: milvus-lite otherwise returns every field, vectors included.
        return self._client.search(self.collection, data=data, anns_field=field, limit=min(top, self.size),
                                   output_fields=["pk"], search_params=params, **self._read)

    def dense_search(self, vectors: np.ndarray, top: int) -> list[np.ndarray]:
        hits = self._search("dense", [np.asarray(v, dtype=np.float32).tolist() for v in vectors], top)
        return [np.array([i for i, _ in self._ids(row)], dtype=np.int64) for row in hits]

    def _rows(self, ids: np.ndarray, field: str) -> tuple[list[str], dict]:
        """The primary keys of sentences ``ids``, and field ``field`` of those Milvus holds, by key."""
        if self._client is None:
            raise RuntimeError("MilvusStore: call sync() before reading")
        pks = [self._pk(i) for i in np.asarray(ids, dtype=np.int64).tolist()]
        found = {}
        for batch in _batches(pks, FETCH_BATCH):
            found.update((row["pk"], row[field]) for row in self._client.get(
                self.collection, ids=batch, output_fields=[field], **self._read))
        return pks, found

    def _present(self, ids: np.ndarray) -> list[bool]:
        pks, found = self._rows(ids, "pk")
        return [pk in found for pk in pks]

    def _fetch(self, ids: np.ndarray, field: str) -> list:
        """Field ``field`` of sentences ``ids``, in the order of ``ids``: a lookup by primary key."""
        pks, found = self._rows(ids, field)
        missing = sum(pk not in found for pk in pks)
        if missing:
            raise StaleIndexError(
                f"{missing} of these sentences are no longer in Milvus collection {self.collection!r} at "
                f"{self.uri}: another process synced a changed corpus into it; load again"
            )
        return [found[pk] for pk in pks]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return np.array(self._fetch(ids, "dense"), dtype=np.float32).reshape(len(ids), self.dimension)

    def term_counts(self, terms: list[str]) -> list[int]:
        if self._terms:
            return self._terms.term_counts(terms)
        return [self._df.get(term_id(t), 0) for t in terms]

    def _query(self, weights: dict[str, float]) -> dict[int, float]:
        query: dict[int, float] = {}
        for term, weight in weights.items():
            if weight > 0:
                query[term_id(term)] = query.get(term_id(term), 0.0) + weight
        return query

    def term_search(self, weights: dict[str, float], top: int) -> tuple[np.ndarray, np.ndarray]:
        if self._terms:
            ids, sums = self._terms.term_search(weights, top)
            # As a search on the server would, leave out the rows another process has since deleted.
            kept = np.array(self._present(ids), dtype=bool).reshape(len(ids))
            return ids[kept], sums[kept]
        query = self._query(weights)
        found = [(i, d) for i, d in self._ids(self._search("terms", [query], top)[0]) if d > 0] if query else []
        return (np.array([i for i, _ in found], dtype=np.int64),
                np.array([d for _, d in found], dtype=np.float32))

    def term_presence(self, terms: list[str], ids: np.ndarray) -> np.ndarray:
        if self._terms:
            return self._terms.term_presence(terms, ids)
        # The candidates' fetched term vectors: a search filtered to "pk in [...]" costs
        # Milvus a scan of every row per listed id.
        keys = [term_id(t) for t in terms]
        rows = self._fetch(ids, "terms") if len(keys) else [{} for _ in range(len(ids))]
        return np.array([[held.get(k, 0.0) > 0 for k in keys] for held in rows], dtype=bool).reshape(len(ids), len(keys))
