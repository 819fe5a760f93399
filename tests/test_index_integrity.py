"""A damaged index is caught and named, never answered from; a changed corpus re-embeds only what changed."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from qa import Assistant, CorruptIndexError, StaleIndexError

from conftest import ROOT, SEEDS

KURSK = "Ukraine has claimed that it has captured two North Korean soldiers in Russia's Kursk region."
QUESTION = "Where were the North Korean soldiers captured?"


@pytest.fixture()
def seed_copy(tmp_path, seed_assistant):
    """A private copy of the seed index (vectors from the shared cache), to damage at will."""
    data = tmp_path / "data"
    shutil.copytree(seed_assistant.index_dir.parent.parent / "vectors", data / "vectors")
    assistant = Assistant([SEEDS], data_dir=data, rebuild="stale").load()
    assert assistant.embedded == 0  # every vector came from the cache
    return data, assistant.index_dir


def _flip_byte(path, at=-20):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGES = {
    "dense.faiss flipped": ("dense.faiss", lambda p: _flip_byte(p)),
    "dense.faiss truncated": ("dense.faiss", lambda p: p.write_bytes(p.read_bytes()[:100])),
    "dense.faiss empty": ("dense.faiss", lambda p: p.write_bytes(b"")),
    "segments.json start digit": ("segments.json", lambda p: p.write_text(p.read_text().replace('"start": 85', '"start": 86'))),
    "bm25 vocabulary deleted": ("bm25/vocab.index.json", lambda p: p.unlink()),
    "bm25 matrix flipped": ("bm25/indices.csc.index.npy", lambda p: _flip_byte(p)),
    "manifest syntax error": ("manifest.json", lambda p: p.write_text(p.read_text()[:-3])),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_file_is_named_by_the_api_and_rebuilt_by_the_cli(seed_copy, damage):
    data, directory = seed_copy
    name, spoil = DAMAGES[damage]
    spoil(directory / name)
    with pytest.raises(CorruptIndexError, match=name.split("/")[0]):
        Assistant([SEEDS], data_dir=data).load()
    env = {**os.environ, "QA_DATA_DIR": str(data)}
    result = subprocess.run([sys.executable, "-m", "qa", "ask", "--json", QUESTION], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "damaged and has been rebuilt" in result.stderr and name.split("/")[0] in result.stderr
    assert json.loads(result.stdout)["quotes"][0]["text"] == KURSK
    assert Assistant([SEEDS], data_dir=data).load().ask(QUESTION).quotes[0].text == KURSK


def _rewrite_segments(directory, edit):
    """Edit segments.json and re-record its checksum, as a bug (not a disk) would."""
    import hashlib

    path = directory / "segments.json"
    rows = json.loads(path.read_text())
    edit(rows)
    path.write_text(json.dumps(rows))
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["segments.json"] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                          "bytes": path.stat().st_size}
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit", [
    lambda rows: rows[1].update(start=rows[1]["start"] + 1),
    lambda rows: rows[1].update(end=rows[1]["end"] + 400),
    lambda rows: rows[1].update(doc="another.txt"),
    lambda rows: rows[1].pop("crc32"),
], ids=["start moved", "end past the sentence", "unknown document", "no checksum"])
def test_offsets_that_do_not_fit_their_document_are_never_quoted(seed_copy, edit):
    data, directory = seed_copy
    _rewrite_segments(directory, edit)
    with pytest.raises(CorruptIndexError, match="segments.json: sentence 1"):
        Assistant([SEEDS], data_dir=data).load()


def test_changing_one_document_of_several_embeds_only_that_one(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in range(6):
        (corpus / f"doc{n}.txt").write_text(f"Harbour {n} opened in {1900 + n}.\nIts lighthouse has {n + 2} lamps.\n")
    data = tmp_path / "data"
    first = Assistant([corpus], data_dir=data, rebuild="stale").load()
    assert first.embedded == 12
    (corpus / "doc3.txt").write_text("Harbour 3 closed in 1999.\nIts pier was rebuilt twice.\nFerries left daily.\n")
    second = Assistant([corpus], data_dir=data, rebuild="stale").load()
    assert second.built and second.embedded == 3
    assert "Harbour 3 closed in 1999." in second.ask("When did harbour 3 close?").quotes[0].text
    forced = Assistant([corpus], data_dir=data, rebuild="always").load()
    assert forced.built and forced.embedded == 0

    # A document added, another removed: the folder's index is brought up to date in place,
    # so no old index is left behind on disk.
    (corpus / "doc6.txt").write_text("Harbour 6 opened in 1906.\n")
    (corpus / "doc0.txt").unlink()
    third = Assistant([corpus], data_dir=data, rebuild="stale").load()
    assert third.built and third.embedded == 1 and third.index_dir == first.index_dir
    assert [p.name for p in (data / "indexes").iterdir() if not p.name.startswith(".")] == [first.index_dir.name]
    assert "Harbour 6 opened in 1906." in third.ask("When did harbour 6 open?").quotes[0].text


def test_a_large_index_searches_approximately_and_reopens_the_same(tmp_path, monkeypatch):
    """Past ANN_MIN_SENTENCES the vectors go into an IVF index: it finds what exact search finds, after a reopen too."""
    import numpy as np

    import qa.store.index
    from qa.documents import read_document
    from qa.models.embedder import DEFAULT_MODEL
    from qa.models.manifest import resolve_model
    from qa.segments import segment_document
    from qa.store.index import CorpusIndex

    monkeypatch.setattr(qa.store.index, "ANN_MIN_SENTENCES", 2_000)
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"Line {n} of the ledger records item {n * 7919 % 10007}.\n" for n in range(2_400)))
    doc = read_document(path, "lines.txt")
    segments = segment_document(doc)
    assert len(segments) == 2_400
    rng = np.random.default_rng(0)
    topics = rng.normal(size=(60, 384))  # sentences come in topics, as in real text
    vectors = (topics[rng.integers(0, 60, len(segments))] + rng.normal(scale=0.6, size=(len(segments), 384)))
    vectors = vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model = resolve_model(DEFAULT_MODEL)
    built = CorpusIndex.from_vectors([doc], segments, vectors, model)
    assert built.manifest["dense"] == "IndexIVFFlat"
    built.save(tmp_path / "index")
    opened = CorpusIndex.load(tmp_path / "index", [doc], model)
    queries = vectors[:50] + np.random.default_rng(1).normal(scale=0.01, size=(50, 384)).astype(np.float32)
    exact = np.argsort(-(vectors @ queries.T), axis=0)[:10].T
    for index in (built, opened):
        found = index.dense_search(queries, 10)
        recall = np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact)])
        assert recall >= 0.9 and all(f[0] == n for n, f in enumerate(found))
        assert np.allclose(index.vectors(np.array([5, 7])), vectors[[5, 7]], atol=1e-6)


def test_an_index_whose_sentences_an_earlier_splitter_cut_is_rebuilt(tmp_path):
    (tmp_path / "notes.txt").write_text("Recipe changes\n- fed Gerald twice a day\n- dropped water to 340g\n")
    first = Assistant([tmp_path / "notes.txt"], data_dir=tmp_path / "data", rebuild="stale").load()
    manifest_path = first.index_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["splitter"] = 1  # as built before the informal-text splitter
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StaleIndexError, match="split by splitter 1, not 2"):
        Assistant([tmp_path / "notes.txt"], data_dir=tmp_path / "data").load()
    again = Assistant([tmp_path / "notes.txt"], data_dir=tmp_path / "data", rebuild="stale").load()
    assert again.built and again.embedded == 0  # every sentence's vector came from the cache
