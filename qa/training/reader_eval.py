"""The reader's figures (``qa.training.reader evaluate``): against the engine without it, on unseen articles.

The reader never saw ../shared/eval, so every dev question is held out.  What
is still chosen on dev is how to use it: how many of the engine's candidates it
re-ranks and how much its logit weighs against the engine's score.  That
choice is made on one half of the v1.1 articles and judged on the other (and
the other way round), so the blended figures are held out too; v2.0 re-ranks
with the choice made on all v1.1 articles (other questions).  Answerability is
the engine's logistic regression over its evidence, with and without the
reader's, fitted out of fold over whole articles and thresholded as
``qa.training.answerability`` does.  Every difference carries a 95% interval from resampling whole articles.
"""

from __future__ import annotations

import numpy as np

from ..answerability import missing_asked
from ..evaluation import auc
from .answerability import choose_thresholds, kind_table, lowest_scoring, out_of_fold

READ = (3, 5, 10, 20)  # how many of the engine's candidates the reader re-ranks
WEIGHTS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.5)  # the logit's weight against the engine's score
SAMPLES = 1000
SEED = 0


def _order(scores: np.ndarray, logits: np.ndarray, weight: float | None, read: int) -> np.ndarray:
    """Per question, the candidates' order when the first ``read`` are re-ranked by score + weight x logit
    (by the logit alone when ``weight`` is None); the rest keep the engine's order."""
    read = min(read, scores.shape[1])  # a tiny article may have fewer candidates
    key = logits if weight is None else scores + weight * logits
    head = np.argsort(-key[:, :read], axis=1, kind="stable")
    tail = np.broadcast_to(np.arange(read, scores.shape[1]), (len(scores), scores.shape[1] - read))
    return np.concatenate([head, tail], axis=1)


def _hits(correct: np.ndarray, order: np.ndarray) -> np.ndarray:
    """hit@1 and hit@3 per question (rows of 0/1)."""
    ranked = np.take_along_axis(correct, order, axis=1)
    return np.stack([ranked[:, 0], ranked[:, :3].any(axis=1)], axis=1).astype(float)


def interval(groups: np.ndarray, statistic, samples: int = SAMPLES) -> list[float]:
    """95% percentile interval of ``statistic(index)`` over resamplings of whole articles (``groups``)."""
    rng = np.random.default_rng(SEED)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    drawn = [statistic(np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))]))
             for _ in range(samples)]
    drawn = [d for d in drawn if d is not None]
    return [round(float(np.percentile(drawn, 2.5)), 4), round(float(np.percentile(drawn, 97.5)), 4)]


def _padded(questions: list[dict], key: str, fill) -> np.ndarray:
    width = max(len(q["positions"]) for q in questions)
    return np.array([q[key] + [fill] * (width - len(q[key])) for q in questions], dtype=float)


def _ranking(questions: list[dict], logits: np.ndarray, samples: int) -> tuple[dict, tuple[float, int]]:
    scores = _padded(questions, "scores", -np.inf)
    correct = _padded(questions, "correct", False)
    articles = np.array([q["article"] for q in questions])
    halves = np.unique(articles)
    half = np.isin(articles, halves[::2])
    grid = [(w, n) for w in WEIGHTS for n in READ]

    def best(mask):
        return max(grid, key=lambda g: tuple(_hits(correct[mask], _order(scores[mask], logits[mask], *g)).mean(0)))

    engine = _hits(correct, _order(scores, logits, 0.0, 1))
    rows = {"engine": engine}
    for n in READ:
        rows[f"reader alone, top {n}"] = _hits(correct, _order(scores, logits, None, n))
    blended, chosen = np.zeros_like(engine), {}
    for name, train in (("even", half), ("odd", ~half)):
        chosen[name] = best(train)
        blended[~train] = _hits(correct[~train], _order(scores[~train], logits[~train], *chosen[name]))
    rows["engine + w x reader, (w, n) chosen on the other half"] = blended
    out = {"questions": len(questions), "articles": len(halves),
           "chosen (weight, top n) on the even / odd half": chosen, "settings": {}}
    for name, hits in rows.items():
        out["settings"][name] = {"hit@1": round(hits[:, 0].mean(), 4), "hit@3": round(hits[:, 1].mean(), 4)}
        if name != "engine":
            out["settings"][name]["hit@1 minus engine, 95% by article"] = interval(
                articles, lambda i, h=hits: (h[i, 0] - engine[i, 0]).mean(), samples)
    return out, best(np.ones(len(questions), dtype=bool))


def _answerability(questions: list[dict], logits: np.ndarray, setting: tuple[float, int], samples: int) -> dict:
    scores, correct = _padded(questions, "scores", -np.inf), _padded(questions, "correct", False)
    order = _order(scores, logits, *setting)
    x = np.array([q["features"] for q in questions])
    answerable = np.array([q["answerable"] for q in questions])
    articles = np.array([q["article"] for q in questions])
    missing = missing_asked(x)
    # Thresholds by the shipped rule (qa.training.answerability); no off-topic questions here.
    off = np.zeros(len(questions), dtype=bool)
    low = lowest_scoring(answerable, scores[:, 0])
    first = np.take_along_axis(logits, order[:, :1], axis=1)[:, 0]
    # The reader's evidence: its logit for the first quote, and its best over the sentences it read.
    read = np.concatenate([first[:, None], logits[:, :setting[1]].max(axis=1, keepdims=True)], axis=1)
    out = {"questions": len(questions), "articles": len(np.unique(articles)),
           "reader's first logit alone, AUC answerable": auc(first.tolist(), answerable.tolist())}
    figures = {}
    for name, evidence, right in (("engine", x, correct[:, 0].astype(bool)),
                                  ("engine + reader", np.concatenate([x, read], axis=1),
                                   np.take_along_axis(correct, order[:, :1], axis=1)[:, 0].astype(bool))):
        p = out_of_fold(evidence, right, articles)
        thresholds = choose_thresholds(p, missing, answerable, low, off)
        figures[name] = (p, right, thresholds)
        table = kind_table(p, missing, right, answerable, off, *thresholds)
        out[name] = {"auc_answerable": auc(p.tolist(), answerable.tolist()),
                     "auc_right": auc(p.tolist(), right.tolist()),
                     "reply_accuracy": table["reply_accuracy"], "thresholds": thresholds,
                     "answer_right": table["answer_right"],
                     "answer_coverage_of_answerable": table["answer_coverage_of_answerable"]}

    def difference(metric):
        def statistic(i):
            values = [metric(p[i], right[i], answerable[i], missing[i], t) for p, right, t in figures.values()]
            return None if None in values else values[1] - values[0]
        return statistic

    def reply(p, right, answerable, missing, t):
        return kind_table(p, missing, right, answerable, np.zeros(len(p), dtype=bool), *t)["reply_accuracy"]

    out["engine + reader"]["auc_answerable minus engine, 95% by article"] = interval(
        articles, difference(lambda p, right, a, m, t: auc(p.tolist(), a.tolist())), samples)
    out["engine + reader"]["reply_accuracy minus engine, 95% by article"] = interval(
        articles, difference(reply), samples)
    return out


def report(data: dict, logits: list[list[float]], samples: int = SAMPLES) -> dict:
    """The figures of the reader's ``logits`` (one list per eval question, over its candidates)."""
    width = max(len(q["positions"]) for q in data["questions"])
    padded = np.array([row + [-np.inf] * (width - len(row)) for row in logits])
    v11 = [i for i, q in enumerate(data["questions"]) if q["version"] == "v1.1"]
    v20 = [i for i, q in enumerate(data["questions"]) if q["version"] == "v2.0"]
    ranking, setting = _ranking([data["questions"][i] for i in v11], padded[v11], samples)
    return {"v1.1 ranking": ranking,
            "v2.0 answerability (re-ranked with the setting chosen on all v1.1)": {
                "setting (weight, top n)": setting,
                **_answerability([data["questions"][i] for i in v20], padded[v20], setting, samples)}}
