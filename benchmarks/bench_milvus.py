"""The Milvus store's speed: opening, syncing, and the calls a question makes, beside the default store.

    .venv/bin/python benchmarks/bench_milvus.py [--store /tmp/qa-bench.db | http://host:19530] [--copies 50 500]
    .venv/bin/python benchmarks/bench_milvus.py --hit1 [--store ...]

``--hit1``: over every public SQuAD v1.1 article (one corpus each), the share of
questions whose first retrieved sentence covers a gold answer, through Milvus
and through the default store over the same vectors.


Corpora: the seed article; the first public SQuAD v1.1 article; and that
article copied ``--copies`` times as separate documents (each copy's vectors
the real ones plus Gaussian noise, sigma 0.02, renormalized), once per number
given.  Sentences are
embedded once and the vectors handed to both stores, so sync times are the
engine's alone.  Per question (the seed test set's, the article's SQuAD
questions), with its vector given: each store call at the retriever's sizes,
and the whole retrieval through Milvus and through FAISS, alternating, so
that both see the same load; their ratio is the figure to compare across
machines.  The engine's memory is the resident size of the milvus-lite process
serving the file, after syncing and after the questions.
Prints one line per measurement and asserts nothing: on a shared machine
timings are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SQUAD = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"


class GivenVectors:
    """An embedder whose vectors were computed beforehand, so a retrieval's time is the store's."""

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def embed(self, texts):
        return np.vstack([self.vectors[t] for t in texts])


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    return f"p50 {statistics.median(samples) * 1000:.1f} ms, p95 {samples[int(0.95 * (len(samples) - 1))] * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="Milvus URI (default: a .db file in a temporary folder)")
    parser.add_argument("--copies", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--hit1", action="store_true", help="compare hit@1 on SQuAD instead of timing")
    args = parser.parse_args()
    if args.hit1:
        hit1(args.store)
        return

    started = time.perf_counter()
    import pymilvus  # noqa: F401
    print(f"import pymilvus: {time.perf_counter() - started:.2f} s")

    from qa.documents import load_documents
    from qa.models.embedder import Embedder
    from qa.store.index import CorpusIndex
    from qa.store.milvus import MilvusStore
    from qa.retrieval import CANDIDATES, HybridRetriever
    from qa.segments import segment_document
    from qa.terms import tokenize

    work = Path(tempfile.mkdtemp(prefix="qa-bench-milvus-"))
    embedder = Embedder().load()
    article = json.loads(SQUAD.read_text(encoding="utf-8").splitlines()[0])
    (work / "article").mkdir()
    (work / "article" / "article.txt").write_text("\n\n".join(article["paragraphs"]), encoding="utf-8")
    seed_questions = [json.loads(line)["question"] for line in (ROOT / "seeds" / "questions.jsonl").open()]
    squad_questions = [qa["question"] for qa in article["qas"]][:200]
    cases = [("seed", [ROOT / "seeds" / "000_70eb0d637448346e.txt"], seed_questions, 1),
             ("article", [work / "article"], squad_questions, 1),
             *[(f"article x{n}", [work / "article"], squad_questions, n) for n in args.copies]]
    rng = np.random.default_rng(0)
    for name, paths, questions, copies in cases:
        documents = load_documents(paths)
        segments = [s for d in documents for s in segment_document(d)]
        vectors = embedder.embed([s.text for s in segments])
        if copies > 1:
            folder = work / f"copies{copies}"
            folder.mkdir()
            text = documents[0].text
            for i in range(copies):
                (folder / f"copy{i:04d}.txt").write_text(text, encoding="utf-8")
            documents = load_documents([folder])
            segments = [s for d in documents for s in segment_document(d)]
            noisy = np.tile(vectors, (copies, 1)) + rng.normal(0, 0.02, (len(segments), vectors.shape[1]))
            vectors = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
        given = GivenVectors(dict(zip(questions, embedder.embed(questions))))
        uri = args.store or str(work / f"{name.replace(' ', '_')}.db")
        store = MilvusStore(uri, embedder.info.id, embedder.dimension)
        at = [0]

        def embed(texts):
            at[0] += len(texts)
            return vectors[at[0] - len(texts):at[0]]

        started = time.perf_counter()
        store.sync(documents, segments, embed)
        took = time.perf_counter() - started
        print(f"{name}: {len(segments)} sentences in {len(documents)} documents; first sync {took:.2f} s "
              f"({len(segments) / took:.0f} sentences/s, vectors given)")
        started = time.perf_counter()
        store.sync(documents, segments, embed)
        print(f"{name}: sync with nothing changed {time.perf_counter() - started:.2f} s; "
              f"engine RSS {engine_rss_mb(uri):.0f} MB, this process {own_rss_mb():.0f} MB")

        started = time.perf_counter()
        default = CorpusIndex.from_vectors(documents, segments, vectors, embedder.info)
        print(f"{name}: the default store built from the same vectors in {time.perf_counter() - started:.2f} s")
        timings: dict[str, list[float]] = {}
        for question in questions:
            vector = given.embed([question])
            terms = list(dict.fromkeys(tokenize([question])[0]))
            idf = {t: float(np.log(1 + (store.size - df + 0.5) / (df + 0.5)))
                   for t, df in zip(terms, store.term_counts(terms))}
            weights = {t: w / sum(idf.values()) for t, w in idf.items()} if idf else {}
            ids = np.unique(np.concatenate([store.dense_search(vector, CANDIDATES)[0],
                                            store.term_search(weights, CANDIDATES)[0]]))
            for call, run in [("dense_search", lambda: store.dense_search(vector, CANDIDATES)),
                              ("term_search", lambda: store.term_search(weights, CANDIDATES)),
                              ("vectors", lambda: store.vectors(ids)),
                              ("term_presence", lambda: store.term_presence(list(weights), ids))]:
                started = time.perf_counter()
                run()
                timings.setdefault(call, []).append(time.perf_counter() - started)
        retrievers = {"retrieve via Milvus": HybridRetriever(store, segments, given),
                      "retrieve via FAISS": HybridRetriever(default, segments, given)}
        for question in questions:
            for label, retriever in retrievers.items():
                started = time.perf_counter()
                retriever.retrieve(question)
                timings.setdefault(label, []).append(time.perf_counter() - started)
        for call, samples in timings.items():
            print(f"{name}: {call}: {ms(samples)} over {len(samples)} questions")
        ratio = [np.percentile(timings["retrieve via Milvus"], q) / np.percentile(timings["retrieve via FAISS"], q)
                 for q in (50, 95)]
        print(f"{name}: Milvus / FAISS retrieval: p50 x{ratio[0]:.1f}, p95 x{ratio[1]:.1f}; "
              f"engine RSS {engine_rss_mb(uri):.0f} MB after the questions")
        if len(documents) > 1:
            kept = [s for s in segments if s.doc_id != documents[0].id]
            started = time.perf_counter()
            store.sync(documents[1:], kept, embed)
            print(f"{name}: sync with one document removed {time.perf_counter() - started:.2f} s")
        store.close()
    shutil.rmtree(work, ignore_errors=True)


def _rss_mb(pid: int | str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_rss_mb() -> float:
    return _rss_mb("self")


def engine_rss_mb(uri: str) -> float:
    """The resident memory of the milvus-lite engine serving file ``uri`` (0 for a server elsewhere).

    milvus-lite runs one engine process per file, a child of this one, which
    stays up until this process exits.
    """
    me, path = str(os.getpid()), str(Path(uri).resolve())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me and \
                    path in (stat.parent / "cmdline").read_text().split("\0"):
                return _rss_mb(stat.parent.name)
        except (OSError, IndexError):  # a process that ended meanwhile
            continue
    return 0.0


def hit1(uri: str | None) -> None:
    from qa.documents import load_documents
    from qa.models.embedder import Embedder
    from qa.evaluation import read_squad
    from qa.store.index import CorpusIndex
    from qa.store.milvus import MilvusStore
    from qa.retrieval import HybridRetriever
    from qa.segments import segment_document

    work = Path(tempfile.mkdtemp(prefix="qa-bench-milvus-"))
    embedder = Embedder().load()
    items = read_squad(SQUAD, work / "articles")
    by_article: dict[Path, list] = {}
    for item in items:
        by_article.setdefault(item.docs[0], []).append(item)
    hits = {"Milvus": 0, "FAISS": 0}
    for path, questions in by_article.items():
        documents = load_documents([path])
        segments = [s for d in documents for s in segment_document(d)]
        vectors = embedder.embed([s.text for s in segments])
        store = MilvusStore(uri or str(work / "hit1.db"), embedder.info.id, embedder.dimension, corpus=str(path))
        store.sync(documents, segments, lambda texts: vectors)
        default = CorpusIndex.from_vectors(documents, segments, vectors, embedder.info)
        for name, target in [("Milvus", store), ("FAISS", default)]:
            retriever = HybridRetriever(target, segments, embedder)
            for item in questions:
                top = retriever.retrieve(item.question, top_k=1)[0].segment
                hits[name] += any(top.start <= start and end <= top.end for _, start, end in item.spans)
        store.close()
    for name, n in hits.items():
        print(f"hit@1 through {name}: {n / len(items):.4f} ({n} of {len(items)} questions, {len(by_article)} articles)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
