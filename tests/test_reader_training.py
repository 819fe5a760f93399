"""The reader's training command on a tiny slice: its labels, a few steps, a resume, the export and its round trip."""

from __future__ import annotations

import numpy as np
import pytest

from qa.models.embedder import BASE_MODEL
from qa.models.manifest import resolve_model
from qa.models.reader import load_tokenizer, read_pairs
from qa.training import reader
from qa.training.reader_data import answer_examples, reader_article

SENTENCE = "The castle was built in 1120 by Count Robert."
ROWS = [("When was the castle built?", SENTENCE, SENTENCE.index("1120"), SENTENCE.index("1120") + 4),
        ("Who built the castle?", SENTENCE, SENTENCE.index("Count"), SENTENCE.index("Count") + 12),
        ("When did the castle burn?", SENTENCE, None, None),
        ("Who sold wool at the market?", "Merchants came from Flanders to sell wool.", None, None)]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model(BASE_MODEL).path / "tokenizer.json")


def test_an_answer_is_labelled_by_its_word_pieces_and_no_answer_by_cls(tokenizer):
    rows = reader.token_labels(tokenizer, ROWS)
    ids, _, first, last = rows[0]
    assert tokenizer.decode(ids[first:last + 1]) == "1120"
    ids, _, first, last = rows[1]
    assert tokenizer.decode(ids[first:last + 1]) == "count robert"
    assert [(r[2], r[3]) for r in rows[2:]] == [(0, 0), (0, 0)]


def test_the_reader_learns_only_on_articles_the_answerability_fit_never_sees():
    assert [reader_article(n) for n in range(6)] == [False, True, True, False, True, True]
    question, sentence, start, end, answers = next(answer_examples())
    assert sentence[start:end] in answers


def test_training_resumes_and_its_export_loads_back(tmp_path, tokenizer):
    torch = pytest.importorskip("torch")
    rows = reader.token_labels(tokenizer, ROWS * 8)
    model, state = reader.train(rows, 0.02, tmp_path, None, progress=lambda m: None)
    assert state["steps"] >= 1 and (tmp_path / "state.pt").is_file()
    # A longer budget than the first run spent: the resumed run takes at least one more step.
    again, resumed = reader.train(rows, state["elapsed"] / 60 + 0.01, tmp_path, None, progress=lambda m: None)
    assert resumed["steps"] > state["steps"]
    fp32, int8 = reader.export(again, tmp_path / "onnx", resolve_model(BASE_MODEL).path / "tokenizer.json")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    reading, = read_pairs(session, tokenizer, [ROWS[0][0]], [SENTENCE])
    assert reading is not None and np.isfinite(reading.margin)
    # An exported reader is a starting point for the next (``--init``): every weight comes back.
    fresh = reader.build_model(torch)
    loaded = fresh.load_state_dict({k: torch.tensor(v) for k, v in reader.onnx_weights(int8).items()}, strict=False)
    assert [k for k in loaded.missing_keys if "pooler" not in k] == [] and loaded.unexpected_keys == []
