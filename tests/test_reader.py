"""The reader: it picks the sentence that says what is asked, says so when none does, and marks the short answer."""

from __future__ import annotations

import json
import shutil

import pytest

from qa import Assistant
from qa.models.reader import MANIFEST, Reader, ReaderModelError

REVIEWS = {
    "peppermill.txt": (
        "Walnut Peppermill, 8 inch\n\n"
        "I bought this peppermill to replace a cheap acrylic one. The ceramic burr grinds evenly from fine to "
        "coarse, and the knob on top is easy to turn. It holds about half a cup of peppercorns. The company "
        "offers a lifetime warranty on the grinding mechanism, which sold me on it. After a year of daily use "
        "it still grinds like new.\n"),
    "tongs.txt": (
        "Stainless Steel Kitchen Tongs, 12 inch\n\n"
        "These tongs are sturdy and the silicone tips do not scratch my nonstick pans. The pull ring locks them "
        "closed for storage in a drawer. They are long enough to reach the back of the grill without burning "
        "my hand. The spring is a bit stiff at first but loosens after a week. I use them for salad, pasta "
        "and steaks.\n"),
    "kettle.txt": (
        "Gooseneck Electric Kettle\n\n"
        "The kettle heats a liter of water in about four minutes. You can set the temperature in one degree "
        "steps, which is great for green tea. The handle stays cool and the spout pours slowly for pour-over "
        "coffee. It shuts off by itself after an hour on hold.\n"),
    "skillet.txt": (
        "Cast Iron Skillet, 10 inch\n\n"
        "The skillet came pre-seasoned but I added a few coats of oil before cooking. It is heavy, about five "
        "pounds, so lifting it with one hand takes effort. It sears steak beautifully and goes straight into "
        "the oven. Wash it by hand and dry it on the stove so it does not rust.\n"),
}


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kitchen")
    for name, text in REVIEWS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return Assistant([folder], data_dir=tmp_path_factory.mktemp("data"), rebuild="stale").load()


@pytest.mark.xfail(strict=True, reason="not yet: the reader reads 'lifetime warranty' as an answer for any product "
                   "(margin -2.6 for the tongs, -2.0 for the peppermill) and the decision answers at 0.27; "
                   "docs/results.md, goals missed")
def test_a_product_the_reviews_say_nothing_about_gets_no_green_answer(kitchen):
    answer = kitchen.ask("What is the warranty on the tongs?")
    assert answer.kind != "answer" and not answer.answered
    assert kitchen.ask("What is the warranty on the peppermill?").quotes[0].doc == "peppermill.txt"


@pytest.mark.xfail(strict=True, reason="not yet: the reader prefers Kursk (margin 2.9 against 1.0 for Kyiv) but the "
                   "score's weight chosen on SQuAD train (40) keeps the engine's order; docs/results.md, goals missed")
def test_the_sentence_that_says_where_comes_first_not_the_one_with_the_words(seed_assistant):
    answer = seed_assistant.ask("Where were the soldiers captured?")
    assert "Kursk region" in answer.quotes[0].text
    assert "Kursk region" in answer.quotes[0].short_answer.text


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


def test_the_reader_tells_a_sentence_that_answers_from_one_that_holds_the_words():
    sentences = ["The company offers a lifetime warranty on the peppermill's grinding mechanism.",
                 "I bought this peppermill to replace a cheap acrylic one."]
    says, only_words = Reader().load().read("What warranty does the peppermill have?", sentences)
    assert says.margin > only_words.margin + 2
    assert "lifetime" in sentences[0][says.start:says.end]


def test_a_question_longer_than_the_reader_reads_is_read_in_part():
    long = "Where were the soldiers captured, " + "and by whom and why, " * 60 + "?"
    reading, = Reader().load().read(long, ["Ukraine captured two soldiers in Russia's Kursk region."])
    assert reading is not None and reading.start < reading.end


def test_the_reader_is_verified_against_its_manifest(tmp_path):
    meta = json.loads(MANIFEST.read_text())
    assert meta["source"]["command"] and "CC-BY-SA-4.0" in meta["license"] and "SQuAD" in meta["training_data"]
    folder = tmp_path / meta["source"]["path"]
    shutil.copytree(MANIFEST.parent / meta["source"]["path"], folder)
    shutil.copy(MANIFEST, tmp_path / MANIFEST.name)
    assert Reader(tmp_path / MANIFEST.name).load().read("Who?", ["Ana wrote it."])[0] is not None
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(ReaderModelError, match="does not match its manifest"):
        Reader(tmp_path / MANIFEST.name).load()
