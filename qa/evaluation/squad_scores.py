"""SQuAD v1.1 answer normalization and scores (the official evaluate-v1.1.py)."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def best_over(metric, prediction: str, ground_truths: Iterable[str]) -> float:
    return max((metric(prediction, g) for g in ground_truths), default=0.0)


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """Whether normalized ``text`` contains one of the normalized ``answers``."""
    hay = normalize_answer(text)
    return any(n and n in hay for n in (normalize_answer(a) for a in answers))
