"""The Milvus store against the real engine, embedded (milvus-lite 2.5: Milvus's C++ engine) in a .db file.

HNSW, which milvus-lite 2.5 does not build, is tested on a server (tests/test_milvus_server.py).

Every number it returns is checked against a brute-force computation over the
same vectors and terms, and a SQuAD article is answered through it exactly as
through the default FAISS store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from pymilvus import MilvusClient

from qa.documents import load_documents
from qa.models.embedder import Embedder
from qa.retrieval import HybridRetriever
from qa.segments import segment_document
from qa.store import StaleIndexError, StoreUnavailableError
from qa.store.index import CorpusIndex
from qa.store.milvus import MilvusStore, term_id
from qa.terms import tokenize

from conftest import ROOT, SEED_ARTICLE, SEEDS

pytestmark = pytest.mark.milvus

SQUAD = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"


@pytest.fixture(scope="module")
def embedder():
    return Embedder().load()


class Counting:
    """``embed`` that remembers the texts it was given and the vectors it returned."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.texts: list[str] = []
        self.vectors: list[np.ndarray] = []

    def __call__(self, texts):
        self.texts += texts
        self.vectors.append(self.embedder.embed(texts))
        return self.vectors[-1]


def corpus(paths):
    documents = load_documents(paths)
    return documents, [s for d in documents for s in segment_document(d)]


def weights(store, question):
    """The term weights the retriever searches with for ``question``."""
    return HybridRetriever(store, [], None)._term_weights(tokenize([question])[0])


@pytest.fixture(scope="module")
def seed(embedder, tmp_path_factory):
    documents, segments = corpus([SEED_ARTICLE])
    store = MilvusStore(str(tmp_path_factory.mktemp("milvus") / "seed.db"), embedder.info.id, embedder.dimension)
    embed = Counting(embedder)
    store.sync(documents, segments, embed)
    yield store, segments, np.vstack(embed.vectors)
    store.close()


def seed_questions():
    lines = (SEEDS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines]


def test_seed_dense_search_and_vectors_match_brute_force(seed, embedder):
    store, segments, vectors = seed
    questions = embedder.embed(seed_questions())
    for question, found in zip(questions, store.dense_search(questions, 10)):
        cosines = vectors @ question
        assert found.tolist() == np.argsort(-cosines, kind="stable")[:10].tolist()
    ids = np.arange(len(segments))[::-1].copy()
    assert np.abs(store.vectors(ids) - vectors[ids]).max() < 1e-6


def test_seed_terms_match_brute_force(seed):
    store, segments, _ = seed
    held = [set(terms) for terms in tokenize([s.text for s in segments])]
    vocabulary = set().union(*held)
    # The comparison below is exact only without hash collisions; the seed has none.
    assert len({term_id(t) for t in vocabulary}) == len(vocabulary)
    df = Counter(t for terms in held for t in terms)
    for question in seed_questions():
        w = weights(store, question)
        assert store.term_counts(list(w)) == [df[t] for t in w]
        brute = np.array([sum(w.get(t, 0.0) for t in terms) for terms in held], dtype=np.float32)
        ids = np.arange(len(segments))
        terms = list(w)
        assert store.term_presence(terms, ids).tolist() == [[t in held_terms for t in terms] for held_terms in held]
        top, sums = store.term_search(w, 5)
        assert np.abs(sums - brute[top]).max(initial=0) < 1e-5
        assert list(sums) == sorted(sums, reverse=True) and (sums > 0).all()
        # Same top sentences; among equal sums any of the tied ones may fill the last places.
        expected = np.sort(brute[brute > 0])[::-1][:5]
        assert np.abs(np.sort(sums)[::-1] - expected).max(initial=0) < 1e-5


def test_incremental_sync_embeds_only_changed_documents(embedder, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED_ARTICLE, folder / "seed.txt")
    (folder / "b.txt").write_text("Bees make honey in the spring.\n\nThey sleep in winter.\n", encoding="utf-8")
    (folder / "c.txt").write_text("Comets have icy tails.\n", encoding="utf-8")
    uri = str(tmp_path / "store.db")

    def sync(store, documents, segments):
        embed = Counting(embedder)
        return store.sync(documents, segments, embed), embed.texts

    store = MilvusStore(uri, embedder.info.id, embedder.dimension)
    documents, segments = corpus([folder])
    changed, embedded = sync(store, documents, segments)
    assert changed and len(embedded) == len(segments)

    (folder / "b.txt").write_text("Bees make honey in the spring.\n\nWasps do not.\n", encoding="utf-8")
    (folder / "c.txt").unlink()
    documents, segments = corpus([folder])
    changed, embedded = sync(store, documents, segments)
    assert changed and embedded == [s.text for s in segments if s.doc_id == "b.txt"]
    assert store.size == len(segments)
    rows = MilvusClient(uri).query(store.collection, filter='doc == "c.txt"', output_fields=["count(*)"])
    assert rows[0]["count(*)"] == 0
    assert store.term_counts(["comet", "wasp", "bee"]) == [0, 1, 1]
    wasp = next(i for i, s in enumerate(segments) if s.text == "Wasps do not.")
    assert store.term_search(weights(store, "wasps"), 3)[0].tolist() == [wasp]
    store.close()

    # A new process finds everything in place: nothing to embed.
    reopened = MilvusStore(uri, embedder.info.id, embedder.dimension)
    assert sync(reopened, documents, segments) == (False, [])
    assert reopened.dense_search(embedder.embed(["Wasps do not."]), 1)[0].tolist() == [wasp]
    reopened.close()


def test_corpora_of_one_folder_keep_their_own_collections(embedder, tmp_path):
    (tmp_path / "a.txt").write_text("Apples grow on trees.\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Bananas grow on plants.\n", encoding="utf-8")
    uri = str(tmp_path / "store.db")

    def open_store(name, key):
        store = MilvusStore(uri, embedder.info.id, embedder.dimension, corpus=key)
        store.sync(*corpus([tmp_path / name]), embedder.embed)
        return store

    apples, bananas = open_store("a.txt", "a.txt"), open_store("b.txt", "b.txt")
    assert apples.term_search(weights(apples, "grow"), 5)[0].tolist() == [0]
    assert bananas.term_search(weights(bananas, "grow"), 5)[0].tolist() == [0]
    # Keyed by their common folder alone, the second sync takes the first one's place: the first
    # store finds nothing of its own, never the other corpus's sentences.
    apples, bananas = open_store("a.txt", None), open_store("b.txt", None)
    assert apples.term_search(weights(apples, "grow"), 5)[0].tolist() == []
    with pytest.raises(StaleIndexError, match="another process synced"):
        apples.vectors(np.array([0]))
    for store in (apples, bananas):
        store.close()


def test_a_reader_goes_on_while_another_process_syncs_a_new_version(embedder, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED_ARTICLE, folder / "seed.txt")
    (folder / "b.txt").write_text("Soldiers march in the spring.\n", encoding="utf-8")
    uri = str(tmp_path / "store.db")
    reader = MilvusStore(uri, embedder.info.id, embedder.dimension)
    documents, segments = corpus([folder])
    reader.sync(documents, segments, embedder.embed)
    before = reader.term_search(weights(reader, "soldiers"), 50)

    (folder / "b.txt").write_text("Soldiers march in the autumn.\n", encoding="utf-8")
    (folder / "c.txt").write_text("Soldiers rest in the winter.\n", encoding="utf-8")
    writer = MilvusStore(uri, embedder.info.id, embedder.dimension)
    writer.sync(*corpus([folder]), embedder.embed)
    # The reader still sees the seed's sentences under its own ids, and neither the new version
    # of b.txt nor c.txt, which are not in its corpus; the old b.txt is gone.
    b_old = next(i for i, s in enumerate(segments) if s.doc_id == "b.txt")
    ids = reader.term_search(weights(reader, "soldiers"), 50)[0]
    assert ids.tolist() == [i for i in before[0].tolist() if i != b_old]
    assert all(segments[i].doc_id == "seed.txt" for i in ids)
    for store in (reader, writer):
        store.close()


def test_interrupted_sync_is_repaired(embedder, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED_ARTICLE, folder / "seed.txt")
    uri = str(tmp_path / "store.db")
    store = MilvusStore(uri, embedder.info.id, embedder.dimension)
    store.sync(*corpus([folder]), embedder.embed)

    (folder / "seed.txt").write_text(SEED_ARTICLE.read_text(encoding="utf-8") + "\nA new zeppelin line.\n",
                                     encoding="utf-8")
    documents, segments = corpus([folder])

    def failing(texts):
        raise OSError("killed while embedding")

    with pytest.raises(OSError):
        store.sync(documents, segments, failing)
    embed = Counting(embedder)
    assert store.sync(documents, segments, embed) is True
    assert len(embed.texts) == len(segments) == store.size
    assert store.term_counts(["zeppelin"]) == [1]
    store.close()


def test_another_dimension_is_refused(seed, embedder):
    store, _, _ = seed
    documents, segments = corpus([SEED_ARTICLE])
    other = MilvusStore(store.uri, embedder.info.id, 8)
    with pytest.raises(StaleIndexError, match="drop_collection"):
        other.sync(documents, segments, embedder.embed)
    other.close()


def test_a_file_another_process_holds_is_named_with_the_fix(tmp_path):
    uri = str(tmp_path / "held.db")
    holder = subprocess.Popen([sys.executable, "-c", f"from pymilvus import MilvusClient; MilvusClient({uri!r}); "
                               "print('open', flush=True); import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        documents, segments = corpus([SEED_ARTICLE])
        with pytest.raises(StoreUnavailableError, match="only one process at a time"):
            MilvusStore(uri, "m", 4).sync(documents, segments, lambda texts: None)
    finally:
        holder.kill()
        holder.wait()


def test_a_store_milvus_lite_3_wrote_is_named_with_the_fix(tmp_path):
    (tmp_path / "old.db" / "collections").mkdir(parents=True)  # milvus-lite 3 keeps a directory
    documents, segments = corpus([SEED_ARTICLE])
    with pytest.raises(StoreUnavailableError, match="milvus-lite 3 .*move it aside and index again"):
        MilvusStore(str(tmp_path / "old.db"), "m", 4).sync(documents, segments, lambda texts: None)


def test_bad_uri_names_the_fix():
    with pytest.raises(ValueError, match=r"\.db .*http://host:19530"):
        MilvusStore("milvus.sqlite", "m", 4)


@pytest.mark.skipif(not SQUAD.is_file(), reason=f"{SQUAD} is not on this machine")
def test_squad_article_answers_as_the_default_store(embedder, tmp_path):
    article = json.loads(SQUAD.read_text(encoding="utf-8").splitlines()[0])
    path = tmp_path / f"{article['title']}.txt"
    path.write_text("\n\n".join(article["paragraphs"]), encoding="utf-8")
    documents, segments = corpus([path])
    embed = Counting(embedder)
    store = MilvusStore(str(tmp_path / "squad.db"), embedder.info.id, embedder.dimension)
    store.sync(documents, segments, embed)
    default = CorpusIndex.from_vectors(documents, segments, np.vstack(embed.vectors), embedder.info)

    questions = [qa["question"] for qa in article["qas"]][:15]
    text = documents[0].text
    for question in questions:
        through_milvus = HybridRetriever(store, segments, embedder).retrieve(question, top_k=5)
        through_default = HybridRetriever(default, segments, embedder).retrieve(question, top_k=5)
        assert [p.segment for p in through_milvus] == [p.segment for p in through_default]
        assert np.allclose([p.score for p in through_milvus], [p.score for p in through_default], atol=1e-5)
        assert all(text[p.segment.start:p.segment.end] == p.segment.text for p in through_milvus)
    store.close()


def test_seed_test_set_gets_the_same_answers_as_the_default_store(seed_assistant, data_dir, tmp_path):
    from qa import Assistant

    milvus = Assistant([SEEDS], data_dir=data_dir, store=f"milvus:{tmp_path / 'seed.db'}").load()
    assert milvus.built and milvus.segments == seed_assistant.segments
    for line in (SEEDS / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        ours, default = (a.ask(case["question"], history=case.get("history", [])) for a in (milvus, seed_assistant))
        assert (ours.answered, ours.kind) == (default.answered, default.kind), case["id"]
        assert [(q.doc, q.start, q.end, q.text) for q in ours.quotes] == \
               [(q.doc, q.start, q.end, q.text) for q in default.quotes], case["id"]
        assert np.allclose([q.score for q in ours.quotes], [q.score for q in default.quotes], atol=1e-5), case["id"]
    milvus.index.close()


def test_the_command_line_takes_a_milvus_store(tmp_path, data_dir):
    """`--store milvus:PATH.db` indexes and answers as a user types it; a bad scheme is one clear line."""
    env = {**os.environ, "QA_DATA_DIR": str(data_dir)}
    uri = f"milvus:{tmp_path / 'cli.db'}"
    run = lambda *args: subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True,
                                       env=env, cwd=ROOT, timeout=600)
    built = run("index", "--store", uri, "--json")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["counts"]["segments"] == 17 and "embedded 17 sentence(s)" in built.stderr
    asked = run("ask", "--store", uri, "--json", "Where were the North Korean soldiers captured?")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["quotes"][0]["start"] == 85 and "Indexed" not in asked.stderr
    bad = run("ask", "--store", "postgres://x", "Anything?")
    assert bad.returncode == 1 and "milvus:PATH.db" in bad.stderr
