"""The reader's training command on a tiny made-up slice: its data, its mining, its figures, a few steps.

The real run needs an accelerator (``qa.training.reader``'s docstring); these
check that each stage does what the run relies on, in seconds on a CPU.
"""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest

from qa.answerability import FEATURES
from qa.documents import load_documents
from qa.models.embedder import BASE_MODEL
from qa.models.manifest import ModelInfo, resolve_model
from qa.retrieval import HybridRetriever
from qa.segments import segment_document
from qa.store.index import CorpusIndex
from qa.training import reader, reader_data
from qa.training.reader_eval import report

PARAGRAPHS = [
    "The castle was built in 1120 by Count Robert. It stood on a hill above the river. "
    "Its walls were rebuilt after a fire in 1340.",
    "The town grew around the market. Merchants came from Flanders to sell wool. "
    "The market was held every Thursday.",
    "Count Robert died in 1135. He was buried in the abbey. His son inherited the castle.",
]


def _squad(tmp_path):
    """A train folder holding one article in both files' formats: three answerable questions (one with
    a guessed offset) and two unanswerable ones (one linked with confidence)."""
    answer = lambda text, p, **flags: {"text": text, "paragraph": p,  # noqa: E731
                                       "answer_start": PARAGRAPHS[p].index(text), **flags}
    answerable = [
        {"id": "a1", "question": "Who built the castle?", "answers": [answer("Count Robert", 0)]},
        {"id": "a2", "question": "On which day was the market held?", "answers": [answer("Thursday", 1)]},
        {"id": "a3", "question": "When did Count Robert die?", "answers": [answer("1135", 2, offset_ambiguous=True)]},
    ]
    unanswerable = [
        {"id": "u1", "question": "Who burned the market?", "answers": [], "paragraph": 1, "link_confident": True},
        {"id": "u2", "question": "When was the abbey sold?", "answers": [], "paragraph": 2, "link_confident": False},
    ]
    folder = tmp_path / "train"
    folder.mkdir()
    for name, qas in zip(reader_data.TRAIN_FILES, (answerable, answerable + unanswerable)):
        (folder / name).write_text(json.dumps({"title": "Castle", "paragraphs": PARAGRAPHS, "qas": qas}) + "\n",
                                   encoding="utf-8")
    return folder


def _vectors(texts: list[str]) -> np.ndarray:
    """Unit vectors that depend on each text alone (a stand-in for the embedder: no model to load)."""
    rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).standard_normal(384)
            for t in texts]
    return np.array([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


@pytest.fixture()
def train_data(tmp_path):
    return reader_data.prepare_train(_squad(tmp_path), tmp_path / "work")


def test_training_questions_keep_sure_labels_only(train_data):
    sentences = train_data["articles"][0]["sentences"]
    asked = {q["question"]: q for q in train_data["questions"]}
    assert train_data["dropped"] == {"offset_ambiguous": 1, "answer_split": 0}
    assert set(asked) == {"Who built the castle?", "On which day was the market held?", "Who burned the market?"}
    assert [sentences[i] for i in asked["Who built the castle?"]["positives"]] == [
        "The castle was built in 1120 by Count Robert."]
    assert asked["Who burned the market?"]["positives"] == []
    assert asked["Who built the castle?"]["terms"] == "who built castl"  # stemmed as the store counts terms


def test_mining_ranks_as_the_engine_does(train_data, tmp_path, monkeypatch):
    monkeypatch.setattr(reader_data, "embed", lambda model, texts, device: _vectors(texts))
    mined = reader_data.mine(train_data, None, "cpu")
    # The engine's own index (FAISS, bm25s) over the same document and vectors.
    document = load_documents([tmp_path / "work" / "articles" / "Castle.txt"])[0]
    segments = segment_document(document)
    assert [s.text for s in segments] == train_data["articles"][0]["sentences"]
    index = CorpusIndex.from_vectors([document], segments, _vectors([s.text for s in segments]),
                                     ModelInfo("fake", tmp_path, "0" * 64, 384))
    retriever = HybridRetriever(index, segments, embedder=None)
    for question, found in zip(train_data["questions"], mined):
        text = question["question"]
        expected = retriever.rank(text, [text], _vectors([text]), reader_data.TOP_K)
        assert found == [p.segment.position for p in expected]


def test_pairs_read_the_sentence_after_its_question_and_before_the_one_before(train_data):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(BASE_MODEL).path))
    pairs = reader.Pairs(tokenizer, train_data["articles"], ["Who built it?"])
    feed = pairs.encode([(0, 1), (0, 3)], "cpu")
    first = tokenizer.decode(feed["input_ids"][0][feed["attention_mask"][0] > 0])
    assert first == "[CLS] who built it? [SEP] it stood on a hill above the river. [SEP] " \
                    "the castle was built in 1120 by count robert. [SEP]"
    second = tokenizer.decode(feed["input_ids"][1][feed["attention_mask"][1] > 0])
    assert second == "[CLS] who built it? [SEP] the town grew around the market. [SEP]"  # a new paragraph
    assert feed["token_type_ids"][1].tolist().index(1) == len(tokenizer("Who built it?")["input_ids"])


def test_groups_put_the_answer_first_among_the_engines_candidates(train_data):
    candidates = [[4, 0, 1, 2, 3], [5, 6, 7, 0, 1], [0, 1, 2, 3, 4]]
    made = reader.groups(train_data, candidates, [0], negatives=2)
    right = [q["positives"][0] if q["positives"] else None for q in train_data["questions"]]
    assert made[0] == (0, [right[0], 4, 1], True)
    assert made[2] == (2, [0, 1, 2], False)  # unanswerable: the engine's best three, all wrong


def test_a_few_steps_train_checkpoint_and_resume(train_data, tmp_path, monkeypatch):
    monkeypatch.setattr(reader_data, "embed", lambda model, texts, device: _vectors(texts))
    data, work = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    work.mkdir()
    (data / reader_data.BASE).symlink_to(resolve_model(BASE_MODEL).path)
    reader_data.write_xz(data / reader_data.TRAIN, train_data)
    with gzip.open(work / reader.CANDIDATES, "wt", encoding="utf-8") as f:
        json.dump(reader_data.mine(train_data, None, "cpu"), f)
    lines = []
    settings = dict(layers=1, negatives=2, per_batch=2)
    _, trained = reader.train(data, work, 5, "cpu", lines.append, epochs=1, **settings)
    assert trained["steps"] == 2 and (work / reader.CHECKPOINT).exists()
    with pytest.raises(SystemExit, match="remove it"):
        reader.train(data, work, 5, "cpu", lines.append, epochs=3, **settings)
    model, trained = reader.train(data, work, 0.0, "cpu", lines.append, epochs=1, **settings)
    assert trained["steps"] == 2 and lines[-2].startswith("resumed at step 2/2")
    shards = reader.save_weights(model, tmp_path, 1)
    assert [p.name for p in shards] == ["reader-1.safetensors"]


def test_figures_judge_the_reader_against_the_engine():
    rng = np.random.default_rng(0)
    questions = []
    for n in range(120):
        version = "v1.1" if n < 60 else "v2.0"
        answerable = version == "v1.1" or n % 2 == 0
        correct = [answerable and i == n % 4 for i in range(6)]
        # Six v1.1 articles; five v2.0 ones, each with answerable and unanswerable questions.
        questions.append({"version": version, "article": n % 6 if version == "v1.1" else 6 + n % 5,
                          "answerable": answerable, "positions": list(range(6)),
                          "scores": [1 - i / 10 for i in range(6)], "correct": correct,
                          "features": rng.random(len(FEATURES)).tolist()})
    knowing = [[5.0 if c else -5.0 for c in q["correct"]] for q in questions]
    figures = report({"questions": questions}, knowing, samples=50)
    settings = figures["v1.1 ranking"]["settings"]
    assert settings["engine"]["hit@1"] == 0.25
    assert settings["reader alone, top 5"]["hit@1"] == 1.0
    assert settings["reader alone, top 3"]["hit@1"] == 0.75
    low, high = settings["reader alone, top 3"]["hit@1 minus engine, 95% by article"]
    assert 0 < low <= 0.5 <= high
    answerability = figures["v2.0 answerability (re-ranked with the setting chosen on all v1.1)"]
    assert answerability["engine + reader"]["auc_answerable"] > answerability["engine"]["auc_answerable"]
    blind = report({"questions": questions}, [[0.0] * 6 for _ in questions], samples=50)
    assert blind["v1.1 ranking"]["settings"]["engine + w x reader, (w, n) chosen on the other half"]["hit@1"] == 0.25
