"""Documents as users have them: a folder with a bad file, any text encoding, PDF pages, Word and e-mail.

Every file is made here, the way the program that writes it would; every
sentence read must slice its document's text exactly.
"""

from __future__ import annotations

import mailbox
import random
from email.message import EmailMessage

import pytest

from qa import DocumentError, load_documents, segment_document
from qa.documents import read_corpus, read_document

from conftest import make_pdf

REVIEW = "Rating: 5/5\nThe grinder is quiet and the burrs are steel. It holds 250 grams of beans.\n"
RANDOM_BYTES = random.Random(25).randbytes(4000)  # what a damaged or binary file holds


def sentences(doc):
    segments = segment_document(doc)
    for s in segments:
        assert doc.text[s.start:s.end] == s.text
    return segments


def test_a_folder_with_a_bad_file_is_read_and_the_bad_file_named_once(tmp_path):
    (tmp_path / "review.txt").write_text(REVIEW, encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(RANDOM_BYTES)
    (tmp_path / "empty.md").write_text("\n\n", encoding="utf-8")
    corpus = read_corpus([tmp_path])
    assert [d.id for d in corpus.documents] == ["review.txt"]
    assert [(s.path.rsplit("/", 1)[-1], s.reason.split(": ", 1)[1].split(" (")[0]) for s in corpus.skipped] == [
        ("bad.txt", "not text in any encoding recognised"), ("empty.md", "has no body text to answer from")]
    # Strict reading, as before, for callers that want every file or an error.
    with pytest.raises(DocumentError, match="bad.txt: not text"):
        load_documents([tmp_path])


def test_nothing_readable_is_one_error_naming_each_file(tmp_path):
    (tmp_path / "bad.txt").write_bytes(RANDOM_BYTES)
    (tmp_path / "worse.txt").write_bytes(RANDOM_BYTES[::-1])
    with pytest.raises(DocumentError, match=r"no document could be read \(2 refused\): .*bad.txt.*worse.txt"):
        read_corpus([tmp_path])
    with pytest.raises(DocumentError, match="missing.txt: no such file"):
        read_corpus([tmp_path / "missing.txt"])


@pytest.mark.parametrize("name, data, encoding", [
    ("utf8.txt", "Café crème costs €4. It's “strong”.\n".encode("utf-8"), "utf-8"),
    ("bom.txt", "\ufeffCafé crème costs €4. It's “strong”.\n".encode("utf-8"), "UTF-8 with BOM"),
    ("utf16.txt", "Café crème costs €4. It's “strong”.\r\n".encode("utf-16"), "UTF-16"),
    ("windows.txt", "Café crème costs €4. It’s “strong” – really.\r\nThe bar opens at 8.\r\n".encode("cp1252"),
     "cp1252"),
    ("latin1.md", "# Menu\n\nCafé crème, thé glacé and crêpes.\n".encode("latin-1"), "cp1252"),
])
def test_text_in_any_common_encoding_is_decoded_and_quotes_slice_it(tmp_path, name, data, encoding):
    path = tmp_path / name
    path.write_bytes(data)
    doc = read_document(path)
    assert doc.encoding.startswith(encoding)
    assert "\ufeff" not in doc.text and "Caf" in doc.text
    assert "Café crème" in sentences(doc)[0].text or "Café crème" in sentences(doc)[-1].text


def test_pdf_quotes_know_their_page(tmp_path):
    path = tmp_path / "manual.pdf"
    path.write_bytes(make_pdf([["Unpack the kettle and remove the tape."], [],
                               ["Descale the kettle every month.", "Use white vinegar for descaling."]]))
    doc = read_document(path)
    assert [(s.text, doc.page_at(s.start)) for s in sentences(doc)] == [
        ("Unpack the kettle and remove the tape.", 1),
        ("Descale the kettle every month.", 3), ("Use white vinegar for descaling.", 3)]
    start, end = doc.page_span(3)
    assert doc.text[start:end].strip() == "Descale the kettle every month.\nUse white vinegar for descaling."
    assert len(doc.pages) == 3 and doc.encoding is None


def test_word_paragraphs_headings_and_tables(tmp_path):
    docx = pytest.importorskip("docx")
    word = docx.Document()
    word.add_heading("Service agreement", level=0)
    word.add_paragraph("This agreement starts on 1 March 2026. It runs for two years.")
    word.add_heading("Prices", level=1)
    table = word.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Plan", "Monthly fee"), ("Basic", "12 euros")]):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    word.add_paragraph("Prices rise with inflation each January.")
    path = tmp_path / "contract.docx"
    word.save(path)
    doc = read_document(path)
    assert doc.title == "Service agreement" and doc.encoding is None and doc.page_at(0) is None
    assert [(s.text, s.section) for s in sentences(doc)] == [
        ("This agreement starts on 1 March 2026.", None), ("It runs for two years.", None),
        ("Plan | Monthly fee", "Prices"), ("Basic | 12 euros", "Prices"),
        ("Prices rise with inflation each January.", "Prices")]
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DocumentError, match="broken.docx: not a readable Word"):
        read_document(tmp_path / "broken.docx")


def _message(subject, sender, date, body) -> EmailMessage:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"], message["Date"] = subject, sender, "team@example.org", date
    message.set_content(body)
    return message


REPLY = ("Yes, Thursday works for the offsite. I booked the room at the lake hotel.\n\n"
         "On Mon, 2 Feb 2026, Ida Strand <ida@example.org> wrote:\n"
         "> Can we move the offsite to Thursday?\n> The venue on Tuesday is closed\n> for repairs.\n")


def test_an_email_is_a_document_with_its_subject_sender_and_quoted_reply_apart(tmp_path):
    path = tmp_path / "offsite.eml"
    path.write_bytes(bytes(_message("Re: Offsite date", "Jonah <jonah@example.org>",
                                    "Tue, 3 Feb 2026 09:15:00 +0100", REPLY)))
    doc = read_document(path)
    assert doc.title == "Re: Offsite date" and doc.date == "2026-02-03"
    assert "From: Jonah <jonah@example.org> · Date: Tue, 03 Feb 2026 09:15:00 +0100" in doc.text
    found = [(s.text, s.section) for s in sentences(doc)]
    quoted = "On Mon, 2 Feb 2026, Ida Strand <ida@example.org> wrote:"
    assert found == [
        ("Yes, Thursday works for the offsite.", None),
        ("I booked the room at the lake hotel.", None),
        ("Can we move the offsite to Thursday?", quoted),
        ("The venue on Tuesday is closed\nfor repairs.", quoted),
    ]
    bottom = tmp_path / "bottom.eml"
    bottom.write_bytes(bytes(_message("Re: Keys", "Ida <ida@example.org>", "Wed, 4 Feb 2026 08:00:00 +0000",
                                      "> Who has the spare keys?\nNadia has them since Monday.\n")))
    assert [(s.text, s.section) for s in sentences(read_document(bottom))] == [
        ("Who has the spare keys?", "Quoted from an earlier message"),
        ("Nadia has them since Monday.", "Reply from Ida <ida@example.org>")]
    html = EmailMessage()
    html["Subject"], html["From"] = "Newsletter", "news@example.org"
    html.set_content("<html><body><h2>Opening hours</h2><p>We open at nine on Saturdays.</p></body></html>",
                     subtype="html")
    (tmp_path / "news.eml").write_bytes(bytes(html))
    assert [(s.text, s.section) for s in sentences(read_document(tmp_path / "news.eml"))] == [
        ("We open at nine on Saturdays.", "Opening hours")]
    (tmp_path / "notmail.eml").write_text("just some words\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="notmail.eml: not an e-mail message"):
        read_document(tmp_path / "notmail.eml")


def test_a_mailbox_is_a_document_with_a_section_per_message(tmp_path):
    path = tmp_path / "decisions.mbox"
    box = mailbox.mbox(path)
    box.add(_message("Laptop budget", "Ana <ana@example.org>", "Wed, 4 Feb 2026 10:00:00 +0000",
                     "We agreed on a budget of 1,500 euros per laptop.\n"))
    box.add(_message("Release date", "Ben <ben@example.org>", "Thu, 5 Feb 2026 11:00:00 +0000",
                     "The release moves to 20 March.\n"))
    box.flush()
    box.close()
    doc = read_document(path)
    assert doc.title == "decisions"
    assert [(s.text, s.section) for s in sentences(doc)] == [
        ("We agreed on a budget of 1,500 euros per laptop.", "Laptop budget"),
        ("The release moves to 20 March.", "Release date")]
    assert "From: Ben <ben@example.org>" in doc.text
    (tmp_path / "empty.mbox").write_text("no messages here\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="empty.mbox: holds no e-mail messages"):
        read_document(tmp_path / "empty.mbox")
