"""Training the answerability model: out-of-fold by article, the threshold rules, the shipped manifest."""

from __future__ import annotations

import json

import numpy as np

from qa.answerability import FEATURES, MANIFEST, AnswerabilityModel, Logistic, kind, load_model
from qa.assistant import DEFAULT_THRESHOLD
from qa.training.answerability import (
    COVERAGE_FLOOR,
    OFF_TOPIC_LOSS,
    SCORE_WEIGHTS,
    Candidates,
    Evidence,
    best_threshold,
    choose_off_topic_cut,
    choose_thresholds,
    lowest_scoring,
    off_topic_items,
    out_of_fold,
    train,
    write,
)
from qa.evaluation import TestItem


def _evidence(n=600, seed=0) -> Evidence:
    """Synthetic questions in 6 articles: the first feature separates right answers from the rest,
    the second off-topic questions from on-topic ones; right answers score higher."""
    rng = np.random.default_rng(seed)
    answerable = rng.random(n) < 0.5
    right = answerable & (rng.random(n) < 0.75)
    off_topic = ~answerable & (rng.random(n) < 0.3)
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, 0] += 1.5 * right
    x[:, 1] += 3.0 * off_topic
    x[:, FEATURES.index("number_time_missing")] = 0
    x[:, FEATURES.index("who_missing")] = 0
    top = rng.random(n) * 0.5 + 0.3 * right
    return Evidence(x, right, answerable, off_topic, np.repeat(np.arange(6), n // 6).astype(str), top)


def test_out_of_fold_never_sees_the_held_out_article():
    e = _evidence()
    p = out_of_fold(e.x, e.right, e.groups)
    flipped = e.right.copy()
    flipped[e.groups == "0"] = ~flipped[e.groups == "0"]
    q = out_of_fold(e.x, flipped, e.groups)
    # Article 0's labels changed: its own probabilities do not, every other article's do.
    assert np.array_equal(p[e.groups == "0"], q[e.groups == "0"])
    assert not np.allclose(p[e.groups != "0"], q[e.groups != "0"])


def test_thresholds_hold_for_the_lowest_scoring_quarter():
    e = _evidence()
    p = out_of_fold(e.x, e.right, e.groups)
    p_off = out_of_fold(e.x, e.off_topic, e.groups)
    low = lowest_scoring(e.answerable, e.top)
    assert abs(low.sum() - e.answerable.sum() / 4) <= 1 and e.top[low].max() <= np.median(e.top[e.answerable])
    cut = choose_off_topic_cut(p_off, e.right, low)
    assert (p_off[e.right & low] >= cut).mean() <= OFF_TOPIC_LOSS + 1 / (e.right & low).sum()
    off = p_off >= cut
    missing = np.zeros(len(p), dtype=bool)
    answer, possible = choose_thresholds(p, missing, e.answerable, low, off)
    kinds = kind(p[low], missing[low], answer, possible, off[low])
    assert (kinds == "answer").mean() >= COVERAGE_FLOOR
    candidates = np.unique(np.round(p, 3))
    higher = candidates[candidates > answer].min()  # the next threshold up no longer covers the floor
    assert (kind(p[low], missing[low], higher, higher, off[low]) == "answer").mean() < COVERAGE_FLOOR
    assert possible <= answer
    if possible > 0:
        assert (~e.answerable[(p < possible) | off]).mean() >= 0.8


def test_equal_accuracies_keep_the_lowest_threshold():
    rows = [{"reply_accuracy": a, "answer_coverage_of_answerable": c}
            for a, c in ((0.5, 1.0), (0.6, 0.9), (0.6, 0.8), (0.7, 0.4))]
    assert best_threshold(np.array([0.1, 0.2, 0.3, 0.4]), rows, 0.5) == 0.2
    assert best_threshold(np.array([0.1, 0.2, 0.3, 0.4]), rows, 0.95) == 0.1


def test_off_topic_questions_are_another_articles_asked_of_this_one():
    items = [TestItem(f"{d}{n}", f"question {n} of {d}", ("x",), docs=(d,)) for d in "ab" for n in range(3)]
    extra = off_topic_items(items, 2)
    assert [(i.question, i.docs, i.unanswerable) for i in extra] == [
        ("question 0 of b", ("a",), True), ("question 1 of b", ("a",), True),
        ("question 0 of a", ("b",), True), ("question 1 of a", ("b",), True)]


def _candidates(best: float = 20.0) -> Candidates:
    """``_evidence`` as the reranking weights see it: with weight ``best`` the first quote is right more often."""
    e = _evidence()
    right = np.stack([e.right & (np.arange(len(e.right)) % 7 != 0) for _ in SCORE_WEIGHTS])
    right[SCORE_WEIGHTS.index(best)] = e.right
    return Candidates(np.stack([e.x] * len(SCORE_WEIGHTS)), right, e.answerable, e.off_topic, e.groups, e.top)


def test_the_reranking_weight_is_the_one_whose_first_quotes_are_right_most_often():
    candidates = _candidates(best=20.0)
    assert candidates.best_weight() == 20.0
    assert np.array_equal(candidates.at(20.0).right, _evidence().right)


def test_training_gives_a_model_that_tells_off_topic_questions(tmp_path):
    model, cut, cv = train(_candidates())
    assert model.score_weight == 20.0 == cv["score_weight"]
    assert cv["auc_off_topic"] > 0.9 and cv["off_topic_caught"] > 0.5
    assert model.off_topic_cut == cv["thresholds"]["off_topic"]
    write(model, cut, {"cv": cv}, tmp_path / "answerability.json")
    meta = json.loads((tmp_path / "answerability.json").read_text())
    assert "CC-BY-SA-4.0" in meta["license"] and meta["source"]["command"] and meta["score_cut"] == cut
    assert load_model(tmp_path / "answerability.json").to_json() == model.to_json()


def test_written_weights_load_verified_and_whole(tmp_path):
    n = len(FEATURES)
    model = AnswerabilityModel(Logistic(np.zeros(n), np.ones(n), np.linspace(-1, 1, n), 0.25), answer=0.3,
                               possible=0.1, off_topic=Logistic(np.zeros(n), np.ones(n), np.ones(n), -2.0),
                               off_topic_cut=0.5)
    write(model, 0.1, {"cv": {"auc_right": 0.7}}, tmp_path / "answerability.json")
    meta = json.loads((tmp_path / "answerability.json").read_text())
    assert meta["cv"] == {"auc_right": 0.7}
    assert load_model(tmp_path / "answerability.json").to_json() == model.to_json()


def test_the_shipped_thresholds_are_the_manifests():
    meta = json.loads(MANIFEST.read_text())
    model = load_model()
    cv = meta["cv"]
    thresholds = cv["thresholds"]
    assert (model.answer, model.possible, model.off_topic_cut) == (
        thresholds["answer"], thresholds["possible"], thresholds["off_topic"])
    assert cv["coverage_floor"] == COVERAGE_FLOOR
    # The engine's default score cut is the one fitted with these weights.
    assert meta["score_cut"] == DEFAULT_THRESHOLD
