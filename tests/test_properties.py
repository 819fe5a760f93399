"""Properties of reading and splitting that must hold for any text, checked with hypothesis.

Every sentence slices its document's text exactly, sentences come in reading
order without overlapping, and no heading is ever quoted: for plain text,
Markdown and HTML, with any Unicode, CRLF, control characters, blank lines and
very long lines.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.documents import DocumentError, read_document
from qa.segments import segment_document

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Words, sentence ends, headings' shapes, line breaks of every kind, control and
# odd characters: a corpus-like alphabet so that examples hold real structure.
PIECES = st.sampled_from([
    "The lamp was lit at dusk", "Mr. Smith", "e.g.", "No", "3.5", "Chapter One", "# Title", "## Part",
    "date 2025-01-12 A dated title", ". ", "? ", "! ", "\u2026", ": ", "\u201cquoted.\u201d", " ",
    "\n", "\r\n", "\r", "\n\n", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\x00", "\x1b[31m",
    "\u00e9", "\U0001f389", "\u05e9\u05dc\u05d5\u05dd", "\u202e", "\ufeff", "x" * 700, "word " * 150,
])
TEXTS = st.one_of(
    st.lists(PIECES, max_size=40).map("".join),
    st.text(max_size=400),
    st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=30).map("".join),
)


def _check(doc):
    segments = segment_document(doc)
    headings = [(b.start, b.end) for b in doc.blocks if b.kind in ("heading", "title")]
    previous_end = 0
    for n, s in enumerate(segments):
        assert doc.text[s.start:s.end] == s.text
        assert s.text and s.text == s.text.strip()
        assert s.position == n
        assert s.start >= previous_end  # in order, never overlapping
        previous_end = s.end
        assert not any(s.start < h_end and h_start < s.end for h_start, h_end in headings)
    return segments


def _read(text: str, suffix: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"doc{suffix}"
        path.write_bytes(text.encode("utf-8"))
        try:
            return read_document(path)
        except DocumentError as exc:
            assert "no body text" in str(exc) or "only headings" in str(exc)
            return None


@pytest.mark.parametrize("suffix", [".txt", ".md"])
@SETTINGS
@given(text=TEXTS)
def test_text_and_markdown_sentences_slice_the_text_in_order(suffix, text):
    doc = _read(text, suffix)
    if doc is None:
        return
    assert doc.text == text.removeprefix("\ufeff")  # kept exactly as read, less a byte order mark
    _check(doc)


@SETTINGS
@given(paragraphs=st.lists(st.tuples(st.sampled_from(["h2", "p", "li", "div"]), TEXTS), min_size=1, max_size=6))
def test_html_sentences_slice_the_extracted_text_and_skip_headings(paragraphs):
    page = "".join(f"<{tag}>{html.escape(text)}</{tag}>" for tag, text in paragraphs)
    doc = _read(f"<html><body>{page}</body></html>", ".html")
    if doc is not None:
        _check(doc)


@SETTINGS
@given(markup=st.lists(st.sampled_from(list("<>!-/?[]&;#ab \n=\"'") + ["<!--", "-->", "<![", "<p>", "<h1>"]),
                      max_size=40).map("".join))
def test_any_markup_reads_or_is_refused_by_name_and_never_leaks_comments(markup):
    doc = _read(f"<p>Lamps were lit.</p>{markup}", ".html")
    assert doc is not None  # the first paragraph is always there
    _check(doc)
    assert "<!--" not in doc.text
