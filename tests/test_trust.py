"""Trust: three kinds of reply, the answerability model and its weights, and the seed figures guarded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from qa.answerability import (
    FEATURES,
    MANIFEST,
    AnswerabilityModel,
    AnswerabilityModelError,
    Logistic,
    features,
    kind,
    load_model,
    missing_asked,
)
from qa.answers import Answer, Quote
from qa.documents import Block, Document
from qa.evaluation import compute_metrics, corpus_key, read_testset, run_eval
from qa.retrieval import Passage
from qa.segments import Segment
from ui.render import render_answer

from conftest import SEEDS

TEXT = "The tower is 48 metres tall. It was built by Alan Stevenson.\n\nThe lamp was first lit in 1844."
DOC = Document("t.txt", "t.txt", "Tower", TEXT, (Block("paragraph", 0, 60), Block("paragraph", 62, len(TEXT))))


def _passage(sentence: str, paragraph: int, score: float) -> Passage:
    start = TEXT.index(sentence)
    segment = Segment("t.txt", 0, start, start + len(sentence), sentence, None, paragraph)
    return Passage(segment, score, score, score)


def _quote(score=0.5):
    return Quote("The lamp was first lit in 1844.", "t.txt", "Tower", None, 2, 62, 93, score)


def test_answered_is_true_for_an_answer_alone():
    assert Answer("q", True, (), "").kind == "answer"
    assert Answer("q", False, (), "").kind == "none"
    possible = Answer("q", False, (_quote(),), "m", kind="possible", confidence=0.41234)
    assert possible.answer is None
    assert possible.to_dict()["kind"] == "possible" and possible.to_dict()["confidence"] == 0.4123
    for answered, kind in ((True, "possible"), (False, "answer"), (True, "maybe")):
        with pytest.raises(ValueError):
            Answer("q", answered, (), "", kind=kind)


def test_the_three_kinds_look_different():
    quotes = (_quote(0.6), _quote(0.4))
    answer = render_answer(Answer("q", True, quotes, "2 quote(s)", kind="answer", confidence=0.9), turn=1)
    possible = render_answer(Answer("q", False, quotes, "check them", kind="possible", confidence=0.5), turn=1)
    none = render_answer(Answer("q", False, quotes, "The documents don't say.", kind="none"), turn=1)
    assert "qa-kind-answer" in answer and "qa-best" in answer and "confidence 90%" in answer
    assert "qa-kind-possible" in possible and "Possible answer" in possible and "qa-best" not in possible
    assert "may hold the answer" in possible
    assert "qa-kind-none" in none and "Not in the documents" in none and "qa-best" not in none
    assert "Closest passages (not an answer)" in none
    assert len({answer.split(">")[0], possible.split(">")[0], none.split(">")[0]}) == 3


def test_features_see_a_missing_number_and_a_missing_name():
    wanted = features("How many metres tall is the tower?",
                      [_passage("The tower is 48 metres tall.", 0, 0.6),
                       _passage("The lamp was first lit in 1844.", 1, 0.3)], {"t.txt": DOC})
    missing = features("How many lamps did Robert Stevenson light?",
                       [_passage("It was built by Alan Stevenson.", 0, 0.5)], {"t.txt": DOC})
    row = dict(zip(FEATURES, wanted))
    assert row["type_asked"] == 1 and row["type_missing"] == 0 and row["margin"] == pytest.approx(0.3)
    assert row["names_asked"] == 0 and row["terms_sentence"] > 0.5 and row["same_paragraph_top5"] == 0
    row = dict(zip(FEATURES, missing))
    assert row["type_missing"] == 1 and row["number_time_missing"] == 1 and row["names_asked"] == 2
    assert row["names_document"] == 0.5  # "Stevenson" is in the document, "Robert" nowhere
    assert features("Anything?", [], {"t.txt": DOC}).shape == (len(FEATURES),)


def test_model_thresholds_sort_the_kinds():
    n = len(FEATURES)
    model = AnswerabilityModel(Logistic(np.zeros(n), np.ones(n), np.zeros(n), 0.0), answer=0.6, possible=0.3)
    assert model.probability(np.ones(len(FEATURES))) == 0.5
    assert [kind(p, False, 0.6, 0.3) for p in (0.7, 0.6, 0.5, 0.3, 0.2)] == [
        "answer", "answer", "possible", "possible", "none"]
    # The asked-for thing missing from the best sentence: at most a possible answer.
    assert kind(0.9, True, 0.6, 0.3) == "possible" and kind(0.1, True, 0.6, 0.3) == "none"
    x = np.zeros(len(FEATURES))
    assert model.reply(x) == ("possible", 0.5)
    assert type(model.reply(x)[1]) is float
    x[FEATURES.index("number_time_missing")] = 1
    assert missing_asked(x) and model.reply(x)[0] == "possible"
    assert list(kind(np.array([0.7, 0.7]), np.array([False, True]), 0.6, 0.3)) == ["answer", "possible"]
    assert AnswerabilityModel.from_json(model.to_json()).to_json() == model.to_json()
    # A question the off-topic regression places outside the documents: they don't say, whatever else.
    elsewhere = AnswerabilityModel(model.answers, 0.6, 0.3, Logistic(np.zeros(n), np.ones(n), np.zeros(n), 5.0), 0.9)
    assert elsewhere.reply(np.zeros(n)) == ("none", 0.5)
    assert AnswerabilityModel.from_json(elsewhere.to_json()).to_json() == elsewhere.to_json()


def test_weights_are_verified_against_their_manifest(tmp_path):
    meta = json.loads(MANIFEST.read_text())
    assert meta["source"]["command"] and "CC-BY-SA-4.0" in meta["license"]
    assert load_model().answer >= load_model().possible and load_model().off_topic is not None
    shutil.copy(MANIFEST, tmp_path / MANIFEST.name)
    weights = tmp_path / meta["weights"]
    weights.write_bytes((MANIFEST.parent / meta["weights"]).read_bytes().replace(b'"bias": ', b'"bias": 1'))
    with pytest.raises(AnswerabilityModelError, match="does not match its manifest"):
        load_model(tmp_path / MANIFEST.name)
    weights.unlink()
    with pytest.raises(AnswerabilityModelError, match="rebuild it"):
        load_model(tmp_path / MANIFEST.name)


# Seed figures with the shipped weights (`qa eval seeds/questions.jsonl --json`): hit@1 0.875 (42 of 48),
# 7 of 10 unanswerable questions not answered; guarded at the figures before the answerability model
# was fitted on SQuAD train (41 of 48, 7 of 10).
SEED_HIT_AT_1 = 41 / 48
SEED_NOT_ANSWERED_UNANSWERABLE = 7
OFF_TOPIC = ("q56", "q57", "q58")


def test_seed_figures_do_not_regress(seed_assistant):
    items = read_testset(SEEDS / "questions.jsonl")
    records = run_eval(items, {corpus_key(items[0], [SEEDS]): seed_assistant}, [SEEDS])
    metrics = compute_metrics(records)
    assert metrics["hit@1"] >= SEED_HIT_AT_1 - 1e-9
    assert metrics["quotes_verified"] == 1.0
    quiet = [r["id"] for r in records if not r["answerable"] and not r["answered"]]
    assert len(quiet) >= SEED_NOT_ANSWERED_UNANSWERABLE, quiet
    assert [r["kind"] for r in records if r["id"] in OFF_TOPIC] == ["none"] * len(OFF_TOPIC)
    # Follow-ups are judged by the score threshold alone, without a confidence.
    assert all(r["confidence"] is None for r in records if r["history"] and r["answered"])
