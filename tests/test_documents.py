"""Reading documents and splitting sentences: offsets must slice the text exactly."""

import pytest

from qa import DocumentError, load_documents, segment_document
from qa.documents import read_document

from conftest import SEED_ARTICLE, SEEDS, make_pdf


def test_seed_article_title_date_and_sections():
    doc = read_document(SEED_ARTICLE)
    assert doc.title == "Ukraine captures 2 North Korean soldiers in Russia"
    assert doc.date == "2025-01-12"
    sections = [s.section for s in segment_document(doc)]
    assert list(dict.fromkeys(sections)) == [
        "What's the story", "Interrogation process", "Identity disclosure",
        "Presidential address", "Conflict update",
    ]


def test_seed_text_is_kept_exactly_as_read():
    doc = read_document(SEED_ARTICLE)
    assert doc.text == SEED_ARTICLE.read_bytes().decode("utf-8")
    segments = segment_document(doc)
    assert len(segments) == 17  # every body line is one sentence; headings are not quotes
    for s in segments:
        assert doc.text[s.start:s.end] == s.text
    assert not any("Interrogation process" == s.text for s in segments)


def test_unicode_quotes_dashes_and_emoji_keep_offsets(tmp_path):
    text = ("Café “Zoë” opened in 2024 — to great acclaim 🎉.\n"
            "Its chef, Ana‐María, serves crêpes… and ramen 🍜!\r\n"
            "Prices: €5–€9 per dish.\n")
    path = tmp_path / "cafe.txt"
    path.write_bytes(text.encode("utf-8"))
    doc = read_document(path)
    assert doc.text == text
    segments = segment_document(doc)
    assert len(segments) == 3
    for s in segments:
        assert doc.text[s.start:s.end] == s.text
    assert segments[0].text == "Café “Zoë” opened in 2024 — to great acclaim 🎉."


def test_markdown_headings_and_html_text(tmp_path):
    (tmp_path / "notes.md").write_text("# Garden notes\n\n## Tomatoes\nWater them daily. Stake them early.\n")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Bees</title><script>alert(1)</script></head>"
        "<body><h2>Hives</h2><p>Bees live in hives &amp; make honey.</p></body></html>"
    )
    md, page = load_documents([tmp_path])
    assert md.title == "Garden notes"
    assert [s.section for s in segment_document(md)] == ["Tomatoes", "Tomatoes"]
    assert page.title == "Bees" and "alert" not in page.text
    [sentence] = segment_document(page)
    assert sentence.text == "Bees live in hives & make honey." and sentence.section == "Hives"
    assert page.text[sentence.start:sentence.end] == sentence.text


def test_hard_wrapped_prose_is_not_mistaken_for_headings(tmp_path):
    path = tmp_path / "wrapped.txt"
    path.write_text("Rivers carry water from the hills\nto the sea over many years.\n")
    [sentence] = segment_document(read_document(path))
    assert sentence.text == "Rivers carry water from the hills\nto the sea over many years."
    assert sentence.section is None


@pytest.mark.parametrize("name, content, message", [
    ("missing.txt", None, "no such file"),
    ("image.png", b"\x89PNG", "unsupported file type"),
    ("bad.txt", bytes(range(256)) * 8, "not text in any encoding"),
    ("empty.txt", b"   \n", "no body text"),
])
def test_bad_documents_get_a_clear_message(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DocumentError, match=message) as err:
        load_documents([path])
    assert name in str(err.value)


def test_folder_reads_every_supported_file_and_ids_are_unique(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.txt").write_text(f"Folder {sub} says hello to everyone.\n")
    docs = load_documents([tmp_path])
    assert sorted(d.id for d in docs) == ["a/same.txt", "b/same.txt"]
    assert [d.id for d in load_documents([SEEDS])] == [SEED_ARTICLE.name]


def test_pdf_text_is_read_and_split(tmp_path):
    path = tmp_path / "tides.pdf"
    path.write_bytes(make_pdf([["Tide tables list high water times.", "The harbour closes at dusk."]]))
    doc = read_document(path)
    assert [s.text for s in segment_document(doc)] == ["Tide tables list high water times.", "The harbour closes at dusk."]
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(DocumentError, match="broken.pdf: not a readable PDF"):
        read_document(tmp_path / "broken.pdf")


@pytest.mark.parametrize("text, sentences", [
    # A full stop with no space after it, as typed fast.
    ("We were mixing and matching a few sets.So far my wife and I have purchased six.",
     ["We were mixing and matching a few sets.", "So far my wife and I have purchased six."]),
    # ... but not inside an abbreviation, an address or a file name.
    ("Ask at St.Louis or see example.com/Page, e.g.The one on the left.",
     ["Ask at St.Louis or see example.com/Page, e.g.The one on the left."]),
    # Chat lines behind a stamp stay with their neighbours: a reply is found through the line that asks.
    ("[08:34] Ollie: how much was it\n[08:35] Nadia: 89 plus fuel, I'm paying obviously",
     ["[08:34] Ollie: how much was it\n[08:35] Nadia: 89 plus fuel, I'm paying obviously"]),
    # List items, and lines that end without punctuation though the next word would have fitted.
    ("Recipe changes\n- fed Gerald twice a day\n- dropped water to 340g",
     ["Recipe changes", "- fed Gerald twice a day", "- dropped water to 340g"]),
    ("From: Renata Vasquez-Holm\nDate: 2026-10-06 07:52", ["From: Renata Vasquez-Holm", "Date: 2026-10-06 07:52"]),
    ("--------------------\nFrom: Skylane Support", ["--------------------", "From: Skylane Support"]),
    # E-mail quotes stand apart from the reply.
    ("Sounds good to me\n> Shall we meet on Friday\n> at the office?", ["Sounds good to me", "> Shall we meet on Friday\n> at the office?"]),
    # Hard-wrapped prose stays whole, capitals and numbers at a wrap included.
    ("The committee met in the town hall with the mayor and\nAlan Stevenson, who had designed the tower in\n1844 for the northern lighthouse board.",
     ["The committee met in the town hall with the mayor and\nAlan Stevenson, who had designed the tower in\n1844 for the northern lighthouse board."]),
    # A chemical formula's subscript on its own line is not a numbered list (SQuAD's Oxygen).
    ("Water holds dissolved O\n2. The ratio is about 1:4.", ["Water holds dissolved O\n2. The ratio is about 1:4."]),
])
def test_informal_text_splits_where_a_reader_would(text, sentences):
    from qa.segments import split_sentences

    assert [text[start:end] for start, end in split_sentences(text)] == sentences
