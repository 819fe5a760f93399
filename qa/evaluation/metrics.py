"""The metrics of ``qa eval``, computed from per-question records alone."""

from __future__ import annotations

import math
from typing import Sequence

from .running import K_MAX
from .squad_scores import best_over, exact_match_score, f1_score


def _rate(num: float, den: int) -> float | None:
    return num / den if den else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), ``q`` in 0..100."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve: the chance a positive outranks a negative (ties count half)."""
    pairs = sorted(zip(scores, positive))
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if not n_pos or not n_neg:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        # Tied scores share the mean of their 1-based ranks i+1..j.
        rank_sum += (i + 1 + j) / 2 * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def compute_metrics(records: Sequence[dict], threshold: float | None = None) -> dict:
    """The metrics object of ``qa eval --json`` from per-question records."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    abstained = [r for r in records if not r["answered"]]
    hits = [
        _rate(sum(1 for r in answerable if r["answered"] and r["rank"] is not None and r["rank"] <= k), len(answerable))
        for k in range(1, K_MAX + 1)
    ]
    # The ranking alone: where the right sentence stands among the quotes, whatever the reply's kind.
    ranked = [_rate(sum(1 for r in answerable if r["rank"] is not None and r["rank"] <= k), len(answerable))
              for k in (1, 3)]
    mrr = _rate(sum(1 / r["rank"] for r in answerable if r["answered"] and r["rank"]), len(answerable))
    # Short answers over every answerable question, as SQuAD scores them: none given scores 0.
    shorts = [r for r in answerable if r.get("short_answer") is not None]
    em = _rate(sum(best_over(exact_match_score, r["short_answer"], r["expected"]) for r in shorts), len(answerable))
    f1 = _rate(sum(best_over(f1_score, r["short_answer"], r["expected"]) for r in shorts), len(answerable))
    right_abstains = sum(1 for r in abstained if not r["answerable"])
    precision = _rate(right_abstains, len(abstained))
    recall = _rate(right_abstains, len(unanswerable))
    if precision is None and recall is None:
        abstain_f1 = None
    else:
        p, r_ = precision or 0.0, recall or 0.0
        abstain_f1 = 2 * p * r_ / (p + r_) if p + r_ else 0.0
    # A reply is right when it answers an answerable question with a correct first quote, or
    # does not answer (a possible answer or "the documents don't say") an unanswerable one.
    right_replies = sum(1 for r in records if (r["answered"] and r["first_correct"])
                        or (not r["answered"] and not r["answerable"]))
    confident = [r for r in records if r.get("confidence") is not None]
    n_quotes = sum(len(r["quotes"]) for r in records)
    latencies = [r["latency_ms"] for r in records]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "hit@1": hits[0],
        "hit@3": hits[2],
        "ranking_hit@1": ranked[0],
        "ranking_hit@3": ranked[1],
        "mrr": mrr,
        "exact_match": em,
        "f1": f1,
        "abstain_precision": precision,
        "abstain_recall": recall,
        "abstain_f1": abstain_f1,
        "reply_accuracy": _rate(right_replies, len(records)),
        # Answerable questions left without an answer (a possible answer or "the documents don't say").
        "answerable_unanswered": _rate(sum(1 for r in answerable if not r["answered"]), len(answerable)),
        # How well the answerability probability ranks answerable above unanswerable questions.
        "answerability_auc": auc([r["confidence"] for r in confident], [r["answerable"] for r in confident]),
        "quotes_verified": _rate(sum(r["quotes_verified"] for r in records), n_quotes),
        "latency_ms_p50": None if p50 is None else round(p50, 1),
        "latency_ms_p95": None if p95 is None else round(p95, 1),
        "n": len(records),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "n_abstained": len(abstained),
        "n_possible": sum(1 for r in records if r.get("kind") == "possible"),
        "n_short_answers": len(shorts),
        "threshold": threshold,
        "hit@k": hits,
    }


def coverage_curve(records: Sequence[dict], thresholds: Sequence[float] | None = None) -> list[dict]:
    """Coverage and accuracy if the abstention threshold were each of ``thresholds``.

    At threshold t a question is answered when its top quote scores >= t;
    coverage is the share of all questions answered, accuracy the share of the
    answered ones whose first quote is correct (answerable and hit@1).
    """
    scored = [(r["top_score"], bool(r["answerable"] and r["first_correct"]))
              for r in records if r["top_score"] is not None]
    if thresholds is None:
        scores = sorted({s for s, _ in scored})
        lo, hi = (min(scores + [0.0]), max(scores + [1.0]))
        thresholds = sorted({round(lo + (hi - lo) * i / 100, 4) for i in range(101)} | set(scores))
    curve = []
    for t in thresholds:
        answered = [ok for s, ok in scored if s >= t]
        curve.append({"threshold": t, "coverage": _rate(len(answered), len(records)) or 0.0,
                      "accuracy": _rate(sum(answered), len(answered))})
    return curve
