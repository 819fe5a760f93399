"""Evaluation: score the assistant against a test set, see every failure, compare runs.

A test set is JSONL, one question per line::

    {"id": "q1", "question": "Where were the soldiers captured?", "answers": ["Kursk region"]}
    {"id": "q2", "question": "What village did Russia take?", "answers": []}
    {"id": "q3", "history": ["Who is Ukraine's foreign minister?"], "question": "What did he urge?",
     "answers": ["more pressure on Moscow and Pyongyang"], "docs": ["../seeds"]}

``answers: []`` means the documents do not answer: the right reply is to abstain.
SQuAD files in the per-article format of ``../shared/eval/README.md`` are read by
``read_squad``: each article becomes one document and a quote is correct when
it covers a gold answer's character span.

Every question is asked once, for the top 10 quotes (``Assistant.ask`` with
``k=10``; it decides abstention, and its first quotes are the ones a user would
see).  ``rank`` is the first position (1-based) among the 10 holding a correct
sentence, else None; hit@k = answered and rank <= k.  The metrics are
computed from plain per-question records (the rows of ``results.jsonl``), so
they can be recomputed and tested without the engine.

Modules: ``testsets`` (reading), ``squad_scores`` (SQuAD's normalization),
``running`` (asking, per-question records), ``metrics``, ``comparing``.
"""

from .comparing import COMPARED, compare, load_previous, question_verdicts
from .metrics import auc, compute_metrics, coverage_curve, percentile
from .running import (
    GOOD_VERDICTS,
    K_MAX,
    VERDICTS,
    Progress,
    corpus_key,
    is_correct,
    open_corpora,
    run_eval,
    score_answer,
    verdict,
)
from .squad_scores import best_over, contains_answer, exact_match_score, f1_score, normalize_answer
from .testsets import TestItem, TestSetError, read_squad, read_testset

__all__ = [
    "COMPARED", "GOOD_VERDICTS", "K_MAX", "VERDICTS", "Progress", "TestItem", "TestSetError", "auc", "best_over",
    "compare", "compute_metrics", "contains_answer", "corpus_key", "coverage_curve", "exact_match_score",
    "f1_score", "is_correct", "load_previous", "normalize_answer", "open_corpora", "percentile",
    "question_verdicts", "read_squad", "read_testset", "run_eval", "score_answer", "verdict",
]
