"""Training the answerability model: out-of-fold by article, the threshold rule, the shipped manifest."""

from __future__ import annotations

import json

import numpy as np

from qa.answerability import FEATURES, MANIFEST, AnswerabilityModel, load_model
from qa.training.answerability import (
    COVERAGE_FLOOR,
    best_threshold,
    choose_thresholds,
    kind_table,
    out_of_fold,
    sweep,
    train,
    write,
)


def _questions(n=600, seed=0):
    """Synthetic questions whose first feature separates right answers from the rest, in 6 articles."""
    rng = np.random.default_rng(seed)
    answerable = rng.random(n) < 0.5
    right = answerable & (rng.random(n) < 0.75)
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, 0] += 1.5 * right
    x[:, FEATURES.index("number_time_missing")] = 0
    x[:, FEATURES.index("who_missing")] = 0
    return x, right, answerable, np.repeat(np.arange(6), n // 6).astype(str)


def test_out_of_fold_never_sees_the_held_out_article():
    x, right, answerable, groups = _questions()
    p = out_of_fold(x, right, groups)
    flipped = right.copy()
    flipped[groups == "0"] = ~flipped[groups == "0"]
    q = out_of_fold(x, flipped, groups)
    # Article 0's labels changed: its own probabilities do not, every other article's do.
    assert np.array_equal(p[groups == "0"], q[groups == "0"])
    assert not np.allclose(p[groups != "0"], q[groups != "0"])


def test_the_answer_threshold_is_the_best_reply_accuracy_above_the_coverage_floor():
    x, right, answerable, groups = _questions()
    p = out_of_fold(x, right, groups)
    missing = np.zeros(len(p), dtype=bool)
    answer, possible = choose_thresholds(p, missing, right, answerable)
    chosen = kind_table(p, missing, right, answerable, answer, answer)
    assert chosen["answer_coverage_of_answerable"] >= COVERAGE_FLOOR
    for t, row in zip(*sweep(p, missing, right, answerable)):
        if row["answer_coverage_of_answerable"] >= COVERAGE_FLOOR:
            assert row["reply_accuracy"] <= chosen["reply_accuracy"] + 1e-12, t
    assert possible <= answer
    if possible > 0:
        assert (~answerable[p < possible]).mean() >= 0.8


def test_equal_accuracies_keep_the_lowest_threshold():
    rows = [{"reply_accuracy": a, "answer_coverage_of_answerable": c}
            for a, c in ((0.5, 1.0), (0.6, 0.9), (0.6, 0.8), (0.7, 0.4))]
    assert best_threshold(np.array([0.1, 0.2, 0.3, 0.4]), rows, 0.5) == 0.2
    assert best_threshold(np.array([0.1, 0.2, 0.3, 0.4]), rows, 0.95) == 0.1


def test_the_accuracy_coverage_curve_is_drawn_from_the_same_out_of_fold_figures(tmp_path):
    x, right, answerable, groups = _questions()
    _, cv = train(x, right, answerable, groups)
    _, drawn = train(x, right, answerable, groups, plot=tmp_path / "curve.png")
    assert drawn == cv
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_written_weights_load_verified_and_whole(tmp_path):
    n = len(FEATURES)
    model = AnswerabilityModel(np.zeros(n), np.ones(n), np.linspace(-1, 1, n), 0.25, answer=0.3, possible=0.1)
    write(model, {"auc_right": 0.7}, tmp_path / "answerability.json")
    meta = json.loads((tmp_path / "answerability.json").read_text())
    assert "CC-BY-SA-4.0" in meta["license"] and meta["source"]["command"] and meta["cv"] == {"auc_right": 0.7}
    assert load_model(tmp_path / "answerability.json").to_json() == model.to_json()


def test_the_shipped_thresholds_are_the_manifests():
    meta = json.loads(MANIFEST.read_text())
    model = load_model()
    cv = meta["cv"]
    assert (model.answer, model.possible) == (cv["thresholds"]["answer"], cv["thresholds"]["possible"])
    assert cv["answer_coverage_of_answerable"] >= cv["coverage_floor"]
    assert cv["best_at_half_coverage"]["answer_coverage_of_answerable"] >= 0.5
