"""Short answers: the words inside the first quote that answer any kind of question, from the trained reader."""

from __future__ import annotations

import json
import shutil

import pytest

from qa.models.short_answer import MANIFEST, ShortAnswerModelError, ShortAnswerReader


@pytest.mark.parametrize("question, short", [
    ("Where were the North Korean soldiers captured?", "Kursk region"),
    ("Which agency is interrogating the prisoners?", "SBU"),
    ("Who confirmed the capture on social media?", "Volodymyr Zelenskyy"),
    ("What did one of the soldiers say he was sent to Russia for?", "training"),
])
def test_every_kind_of_question_gets_its_short_answer_inside_the_quote(seed_assistant, question, short):
    answer = seed_assistant.ask(question)
    best = answer.quotes[0]
    assert answer.kind != "none" and short in best.short_answer.text
    text = seed_assistant.documents_by_id[best.doc].text
    assert text[best.short_answer.start:best.short_answer.end] == best.short_answer.text
    assert best.start <= best.short_answer.start < best.short_answer.end <= best.end
    assert answer.to_dict()["quotes"][0]["short_answer"]["text"] == best.short_answer.text


def test_a_reply_of_none_marks_no_short_answer(seed_assistant):
    answer = seed_assistant.ask("What is the boiling point of mercury?")
    assert answer.kind == "none" and all(q.short_answer is None for q in answer.quotes)


def test_the_reader_is_verified_against_its_manifest(tmp_path):
    meta = json.loads(MANIFEST.read_text())
    assert meta["source"]["command"] and "CC-BY-SA-4.0" in meta["license"] and "SQuAD" in meta["training_data"]
    folder = tmp_path / meta["source"]["path"]
    shutil.copytree(MANIFEST.parent / meta["source"]["path"], folder)
    shutil.copy(MANIFEST, tmp_path / MANIFEST.name)
    assert ShortAnswerReader(tmp_path / MANIFEST.name).load().spans("Who?", ["Ana wrote it."])[0] is not None
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(ShortAnswerModelError, match="does not match its manifest"):
        ShortAnswerReader(tmp_path / MANIFEST.name).load()
