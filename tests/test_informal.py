"""Informal text: reviews, forum threads, support tickets and emails answer as often as an article.

The set (tests/informal/README.md) is for measuring only: nothing is fitted on it.
"""

from __future__ import annotations

import pytest

from qa import Assistant
from qa.evaluation import compute_metrics, corpus_key, read_testset, run_eval

from conftest import ROOT

INFORMAL = ROOT / "tests" / "informal"
# `qa eval tests/informal/questions.jsonl --docs tests/informal/docs --json` (docs/results.md).
# The policy (docs/results.md) gives up some informal answers to "possible" or "none" for fewer
# wrong answers to questions the documents do not answer.
MOST_UNANSWERED = 0.30  # answerable questions left without an answer (0.271 today, 19 of 70)
HIT_AT_1 = 36 / 70  # 0.529 today (37 of 70): the right sentence first, and answered
RANKING_HIT_AT_1 = 44 / 70  # 0.643 today (45 of 70): the right sentence first, whatever the reply
ON_TOPIC_NOT_ANSWERED = 8  # of the 12 on-topic questions the documents do not answer (8 today)


@pytest.fixture(scope="module")
def records(data_dir):
    docs = [INFORMAL / "docs"]
    items = read_testset(INFORMAL / "questions.jsonl")
    assistant = Assistant(docs, data_dir=data_dir, rebuild="stale").load()
    return run_eval(items, {corpus_key(items[0], docs): assistant}, docs)


def test_informal_questions_get_answers(records):
    metrics = compute_metrics(records)
    assert metrics["answerable_unanswered"] <= MOST_UNANSWERED
    assert metrics["hit@1"] >= HIT_AT_1 - 1e-9
    assert metrics["ranking_hit@1"] >= RANKING_HIT_AT_1 - 1e-9
    assert metrics["quotes_verified"] == 1.0


def test_on_topic_questions_the_documents_do_not_answer_are_mostly_not_answered(records):
    on_topic = [r for r in records if not r["answerable"] and not r["id"].startswith("o")]
    assert len(on_topic) == 12
    assert sum(r["kind"] != "answer" for r in on_topic) >= ON_TOPIC_NOT_ANSWERED


def test_off_topic_questions_are_still_not_in_the_documents(records):
    off_topic = [r for r in records if r["id"].startswith("o")]
    assert off_topic and [r["kind"] for r in off_topic] == ["none"] * len(off_topic)
