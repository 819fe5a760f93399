"""Comparing a run with an earlier one: every metric old -> new, and the questions that flipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .running import GOOD_VERDICTS, K_MAX
from .testsets import TestSetError


def question_verdicts(records: Sequence[dict]) -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in records}


def load_previous(path: str | Path) -> tuple[dict, dict[str, str] | None]:
    """An earlier metrics.json and its per-question verdicts.

    Verdicts come from its ``"questions"`` entry, else from a results.jsonl
    beside it; None when neither exists (e.g. a saved ``--json`` print).
    """
    path = Path(path)
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TestSetError(f"{path}: no such metrics file") from None
    except (OSError, ValueError) as exc:
        raise TestSetError(f"{path}: not a metrics.json ({exc})") from None
    if not isinstance(old, dict):
        raise TestSetError(f"{path}: not a metrics.json (expected a JSON object)")
    verdicts = old.get("questions")
    results = path.with_name("results.jsonl")
    if verdicts is None and results.is_file():
        rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
        verdicts = question_verdicts(rows)
    return old, verdicts


COMPARED = ("hit@1", "hit@3", "ranking_hit@1", "ranking_hit@3", "mrr", "exact_match", "f1", "abstain_precision", "abstain_recall", "abstain_f1",
            "reply_accuracy", "answerable_unanswered", "answerability_auc", "quotes_verified", "latency_ms_p50", "latency_ms_p95", "n", "n_answerable", "n_unanswerable",
            "n_abstained", "n_possible", "threshold")


def _flat(metrics: dict) -> dict:
    flat = {name: metrics.get(name) for name in COMPARED}
    hits = metrics.get("hit@k") or []
    for k in range(1, K_MAX + 1):
        if f"hit@{k}" not in flat:
            flat[f"hit@{k}"] = hits[k - 1] if len(hits) >= k else None
    return flat


def compare(old: dict, new: dict, old_verdicts: dict | None, new_verdicts: dict) -> dict:
    """Every metric old -> new with its change, and the questions whose verdict changed.

    ``flipped`` is None when the old run kept no per-question verdicts.
    """
    before, after = _flat(old), _flat(new)
    metrics = {}
    for name, b in after.items():
        a = before.get(name)
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        metrics[name] = {"old": a, "new": b, "delta": round(b - a, 6) if numeric else None}
    flipped = None
    if old_verdicts is not None:
        flipped = []
        for qid, v in new_verdicts.items():
            was = old_verdicts.get(qid)
            if was is not None and was != v:
                change = ("fixed" if v in GOOD_VERDICTS and was not in GOOD_VERDICTS else
                          "broke" if was in GOOD_VERDICTS and v not in GOOD_VERDICTS else "changed")
                flipped.append({"id": qid, "old": was, "new": v, "change": change})
    return {"metrics": metrics, "flipped": flipped}
