"""Follow-up questions: the test set's figure, the previous answer reaching the engine, SQuAD articles as corpora."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from qa import Assistant
from qa.evaluation import TestSetError, compute_metrics, open_corpora, read_squad, read_testset, run_eval

from conftest import ROOT, SEEDS

FOLLOWUPS = SEEDS / "followups.jsonl"
SQUAD_V1 = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"
# `qa eval seeds/followups.jsonl --json`: hit@1 0.90, 45 of 50 conversations right first (0.76 before the
# previous answer was read and fragments such as "Near which town?" counted as follow-ups).
RIGHT_FIRST = 45

needs_squad = pytest.mark.skipif(not SQUAD_V1.is_file(), reason="../shared/eval is not beside the repository")


@pytest.fixture(scope="module")
def followup_records(data_dir):
    items = read_testset(FOLLOWUPS, squad_dir=data_dir / "squad")
    assistants = open_corpora(items, [SEEDS], lambda paths: Assistant(paths, data_dir=data_dir, rebuild="stale"))
    return items, run_eval(items, assistants, [SEEDS])


@needs_squad
def test_followups_are_right_first(followup_records):
    items, records = followup_records
    assert len(items) >= 40
    assert all(1 <= len(i.history) <= 2 for i in items)  # two- and three-turn conversations, the last graded
    assert len({i.docs for i in items if i.docs}) >= 10  # the seed article and many SQuAD articles
    missed = [f'{r["id"]} {r["question"]!r}: {r["verdict"]}' for r in records if r["verdict"] != "correct"]
    assert len(records) - len(missed) >= RIGHT_FIRST, missed
    assert compute_metrics(records)["quotes_verified"] == 1.0


def test_the_previous_answer_resolves_he(data_dir, seed_assistant, tmp_path):
    """'he' is the man the previous answer names: the follow-up quotes what he called for, from a chat,
    the app and the JSON API alike (the previous question alone does not say who he is)."""
    from ui.app import App
    from ui.library import Library

    first = seed_assistant.ask("Who is Ukraine's foreign minister?")
    called_for = "more pressure on Moscow and Pyongyang"
    assert called_for in seed_assistant.ask("What did he call for?", history=[first]).quotes[0].text

    app = App(seed_assistant, Library(tmp_path / "data", [SEEDS]))
    _, _, turns, _ = app.respond("Who is Ukraine's foreign minister?", [], [])
    _, _, turns, _ = app.respond("What did he call for?", [], turns)
    assert called_for in turns[-1]["answer"]["quotes"][0]["text"]
    assert turns[-1]["history"] == ["Who is Ukraine's foreign minister?"]  # the turn's record keeps the questions

    reply = app.ask_json("What did he call for?", [json.loads(json.dumps(first.to_dict()))])
    assert called_for in reply["quotes"][0]["text"]


def test_fragments_are_read_as_follow_ups_and_whole_questions_alone(seed_assistant):
    earlier = seed_assistant.ask("What did Russia claim to have taken?")
    near = seed_assistant.ask("Near which town?", history=[earlier])
    assert near.answered and "Pokrovsk" in near.quotes[0].text
    assert near.query == "What did Russia claim to have taken? Near which town?"
    whole = seed_assistant.ask("In what language is the interrogation being conducted?", history=[earlier])
    assert whole.query == whole.question  # a whole question changes the subject
    alone = seed_assistant.ask(whole.question)
    assert replace(whole, latency_ms=0) == replace(alone, latency_ms=0)


def _testset(tmp_path, row: dict):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


@needs_squad
def test_a_line_can_name_a_squad_article_as_its_corpus(tmp_path):
    squad = {"file": str(SQUAD_V1), "title": "Normans"}
    row = {"id": "n1", "squad": squad, "history": ["Who founded the Kingdom of Sicily?"],
           "question": "After conquering which region?", "answers": ["southern Italy"]}
    [item] = read_testset(_testset(tmp_path, row), squad_dir=tmp_path / "squad")
    [doc] = item.docs
    # The same document `qa eval --squad` writes for the article.
    same = read_squad(SQUAD_V1, tmp_path / "again", limit=811)  # Normans follows Super Bowl 50 (810 questions)
    normans = next(i.docs[0] for i in same if i.docs[0].name == "Normans.txt")
    assert doc.read_text(encoding="utf-8") == normans.read_text(encoding="utf-8")
    assert doc == (tmp_path / "squad" / SQUAD_V1.stem / "Normans.txt").resolve()


@needs_squad
@pytest.mark.parametrize("squad, answers, message", [
    ({"file": "SQUAD", "title": "Norman"}, ["France"],
     r"set\.jsonl:1: no article titled 'Norman' .*did you mean 'Normans'\?"),
    ({"file": "missing/squad.jsonl", "title": "Normans"}, ["France"],
     r"set\.jsonl:1: \"squad\" file missing/squad\.jsonl not found .*relative to the test set"),
    ({"file": "SQUAD"}, ["France"], r"set\.jsonl:1: \"squad\" must be \{\"file\""),
    ({"file": "SQUAD", "title": "Normans"}, ["Paris, Texas"],
     r"set\.jsonl:1: answer 'Paris, Texas' is not in article 'Normans' word for word"),
])
def test_a_wrong_squad_article_names_the_line_and_the_fix(tmp_path, squad, answers, message):
    squad = {k: str(SQUAD_V1) if v == "SQUAD" else v for k, v in squad.items()}
    row = {"squad": squad, "question": "In what country is Normandy located?", "answers": answers}
    with pytest.raises(TestSetError, match=message):
        read_testset(_testset(tmp_path, row), squad_dir=tmp_path / "squad")


def test_docs_and_squad_together_are_refused(tmp_path):
    row = {"docs": ["../seeds"], "squad": {"file": "x.jsonl", "title": "Normans"}, "question": "Where?", "answers": []}
    with pytest.raises(TestSetError, match=r'set\.jsonl:1: give either "docs" or "squad", not both'):
        read_testset(_testset(tmp_path, row), squad_dir=tmp_path / "squad")
