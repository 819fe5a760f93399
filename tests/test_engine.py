"""The engine end to end, with the real model and real index files."""

import json

import pytest

from qa import Assistant, MissingIndexError, ModelError, StaleIndexError
from qa.models.embedder import DEFAULT_MODEL
from qa.models.manifest import MODELS_DIR, resolve_model

from conftest import SEED_ARTICLE, SEEDS

SECTION_QUESTIONS = [
    ("Where were the North Korean soldiers captured?", "What's the story", "in Russia's Kursk region."),
    ("What did the other soldier say he was?", "Interrogation process", "identified himself as a scout sniper."),
    ("Which region was the ID card holder from?", "Identity disclosure", "from Russia's Tyva region."),
    ("What did the foreign minister urge?", "Presidential address", "urged more pressure on Moscow and Pyongyang"),
    ("What did Russia claim to have taken?", "Conflict update", "taken control of a village near Pokrovsk"),
]


@pytest.mark.parametrize("question, section, expected", SECTION_QUESTIONS)
def test_a_question_about_each_section_gets_its_sentence_first(seed_assistant, question, section, expected):
    answer = seed_assistant.ask(question)
    assert answer.answered
    best = answer.quotes[0]
    assert expected in best.text
    assert best.section == section


def test_every_quote_is_the_exact_slice_of_its_document(seed_assistant):
    questions = [json.loads(line)["question"] for line in (SEEDS / "questions.jsonl").open()]
    assert len(questions) >= 40
    text = SEED_ARTICLE.read_bytes().decode("utf-8")
    for question in questions:
        for quote in seed_assistant.ask(question, k=5).quotes:
            assert text[quote.start:quote.end] == quote.text
            assert seed_assistant.documents_by_id[quote.doc].text[quote.start:quote.end] == quote.text


@pytest.mark.parametrize("question", [
    "How long should sourdough bread be baked?",
    "Who won the 2022 FIFA World Cup?",
    "What is the best way to store fresh basil?",
])
def test_off_topic_questions_are_abstained_on(seed_assistant, question):
    answer = seed_assistant.ask(question)
    assert not answer.answered
    assert answer.answer is None
    assert "don't say" in answer.message
    assert answer.quotes, "the closest passages are still offered"


def test_follow_up_is_read_with_the_earlier_question(seed_assistant):
    first = seed_assistant.ask("Who is Ukraine's foreign minister?")
    follow_up = seed_assistant.ask("What did he urge?", history=[first])
    assert "more pressure on Moscow and Pyongyang" in follow_up.quotes[0].text
    # Questions as plain strings work as history too (the Answer also favours its quote's neighbourhood).
    by_question = seed_assistant.ask("What did he urge?", history=["Who is Ukraine's foreign minister?"])
    assert by_question.quotes[0].text == follow_up.quotes[0].text


def test_a_new_subject_is_not_mixed_with_the_old_one(seed_assistant):
    first = seed_assistant.ask("Who is Ukraine's foreign minister?")
    answer = seed_assistant.ask("Which region was the ID card holder from?", history=[first])
    assert "Tyva" in answer.quotes[0].text


def test_repeated_sentences_are_collapsed(tmp_path, data_dir):
    (tmp_path / "a.txt").write_text("Otters hold hands while they sleep.\nSea otters eat urchins.\n")
    (tmp_path / "b.txt").write_text("Otters hold hands while they sleep.\nRiver otters live in burrows.\n")
    assistant = Assistant([tmp_path], data_dir=data_dir, rebuild="stale").load()
    texts = [q.text for q in assistant.ask("Do otters hold hands when sleeping?", k=3).quotes]
    assert texts.count("Otters hold hands while they sleep.") == 1


def test_edited_document_makes_the_index_stale_and_it_is_rebuilt(tmp_path, data_dir):
    doc = tmp_path / "notes.txt"
    doc.write_text("The meeting is on Tuesday in room 4.\n")
    Assistant([doc], data_dir=data_dir, rebuild="stale").load()
    doc.write_text("The meeting moved to Friday in the main hall.\n")
    with pytest.raises(StaleIndexError, match="notes.txt"):
        Assistant([doc], data_dir=data_dir).load()
    rebuilt = Assistant([doc], data_dir=data_dir, rebuild="stale").load()
    assert rebuilt.built
    assert "Friday" in rebuilt.ask("When is the meeting?").quotes[0].text


def test_missing_index_is_refused_by_the_api(tmp_path, data_dir):
    doc = tmp_path / "fresh.txt"
    doc.write_text("Nothing has indexed this sentence yet.\n")
    with pytest.raises(MissingIndexError, match="qa index"):
        Assistant([doc], data_dir=data_dir).load()


def test_index_directory_is_readable_and_complete(seed_assistant):
    directory = seed_assistant.index_dir
    assert sorted(p.name for p in directory.iterdir()) == ["bm25", "dense.faiss", "manifest.json", "segments.json"]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert sorted(manifest["files"]) == ["bm25/data.csc.index.npy", "bm25/indices.csc.index.npy",
                                         "bm25/indptr.csc.index.npy", "bm25/params.index.json",
                                         "bm25/vocab.index.json", "dense.faiss", "segments.json"]
    shipped = json.loads((MODELS_DIR / f"{DEFAULT_MODEL}.json").read_text())
    assert manifest["model"]["id"] == DEFAULT_MODEL == "all-MiniLM-L6-v2-squad"
    assert manifest["model"]["weights_sha256"] == shipped["files"][shipped["weights"]]
    assert manifest["documents"][0]["sentences"] == manifest["counts"]["segments"] == 17
    # No temporary or old copies are left beside it after a save.
    beside = [p.name for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}.")]
    assert set(beside) <= {f".{directory.name}.lock", f".{directory.name}.inuse.lock"}  # the locks alone


def test_a_corrupted_weight_file_is_refused(tmp_path, model_copy):
    copy, manifest_path = model_copy
    assert resolve_model(str(manifest_path)).path == copy  # an intact copy passes
    with (copy / "model.safetensors").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match="does not match its manifest"):
        Assistant([SEEDS], model=str(manifest_path), data_dir=tmp_path).load()


def test_unknown_model_name_is_explained():
    with pytest.raises(ModelError, match="all-MiniLM-L6-v2"):
        resolve_model("no-such-model")


def test_short_answer_stands_inside_the_best_quote(seed_assistant):
    answer = seed_assistant.ask("Where were the North Korean soldiers captured?")
    best = answer.quotes[0]
    assert best.short_answer.text == "Russia's Kursk region"
    text = seed_assistant.documents_by_id[best.doc].text
    assert text[best.short_answer.start:best.short_answer.end] == best.short_answer.text
    assert best.start <= best.short_answer.start < best.short_answer.end <= best.end
    age = seed_assistant.ask("How old was the man the ID card was issued to?").quotes[0]
    assert age.short_answer.text == "26"


def test_quotes_from_unicode_documents_are_exact_slices(tmp_path, data_dir):
    text = ("Le café “Zoë” a ouvert en 2024 — un succès immédiat 🎉.\n"
            "Its chef, Ana‐María, serves crêpes… and ramen 🍜 every night!\r\n"
            "Prices run from €5–€9 per dish, tips included.\n")
    path = tmp_path / "café.md"
    path.write_bytes(text.encode("utf-8"))
    assistant = Assistant([path], data_dir=data_dir, rebuild="stale").load()
    for question in ("Who is the chef?", "How much does a dish cost?", "When did café Zoë open?", "Ramen?"):
        answer = assistant.ask(question, k=3)
        assert answer.quotes
        for quote in answer.quotes:
            assert text[quote.start:quote.end] == quote.text
            if quote.short_answer:
                assert text[quote.short_answer.start:quote.short_answer.end] == quote.short_answer.text
    assert "€5–€9" in assistant.ask("How much does a dish cost?").quotes[0].text
