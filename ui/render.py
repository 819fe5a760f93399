"""Pure rendering: engine objects in, escaped HTML out.  No Gradio, no retrieval.

Every string that comes from a document, a file name or a user goes through
``esc`` before it is put into markup.  ``esc`` escapes HTML and also the
characters that Markdown, LaTeX or a JS template would read as syntax, so a
quote shows its own characters and nothing else: ``<script>`` is text, ``*``
stays a star, ``$`` stays a dollar.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

# HTML's special characters, and those that the chat's Markdown renderer, its
# LaTeX pass or gr.HTML's `${value}` template could take for syntax, all as
# numeric character references, in one pass.
_ENTITIES = {c: f"&#{ord(c)};" for c in "&<>\"'*_`[]\\#|~$!{}"}
_SPECIAL = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")


def esc(text: object) -> str:
    """HTML-escape ``text`` and neutralise Markdown/LaTeX/template syntax."""
    return _SPECIAL.sub(lambda m: _ENTITIES[m.group(0)], str(text))


def esc_inline(text: object) -> str:
    """``esc`` on one line: line breaks become spaces (a blank line would end an HTML block)."""
    return esc(re.sub(r"\s*[\r\n]+\s*", " ", str(text)))


def span_id(start: int, end: int) -> str:
    """The element id of a quoted span in the source view."""
    return f"q-{int(start)}-{int(end)}"


def where(quote) -> str:
    """"Title, p. N — Section, sentence N" (plain text, not escaped); the page only for a PDF."""
    parts = [(quote.title or quote.doc) + (f", p. {quote.page}" if quote.page is not None else "")]
    if quote.section:
        parts.append(quote.section)
    return " \u2014 ".join(parts) + f", sentence {quote.position + 1}"


def _short_span(quote) -> tuple[int, int] | None:
    """Offsets inside ``quote.text`` of the short answer, when the engine gives one."""
    short = quote.short_answer
    if short is None:
        return None
    return short.start - quote.start, short.end - quote.start


def render_quote(quote, n: int, turn: int, best: bool) -> str:
    text = quote.text
    short = _short_span(quote) if best else None
    if short:
        a, b = short
        body = (esc_inline(text[:a]) + f'<strong class="qa-short">{esc_inline(text[a:b])}</strong>'
                + esc_inline(text[b:]))
    elif best:
        body = f'<strong class="qa-short">{esc_inline(text)}</strong>'
    else:
        body = esc_inline(text)
    cls = "qa-quote qa-best" if best else "qa-quote"
    # The raw retrieval score, not a confidence: the reply's kind and confidence say how far to trust it.
    cite = (f'<a class="qa-cite" href="#cite-{int(turn)}-{int(n)}" '
            f'title="Show in the source">[{int(n)}]</a>')
    return (
        f'<blockquote class="{cls}"><p>\u201c{body}\u201d</p>'
        f'<p class="qa-where">{cite} {esc_inline(where(quote))} '
        f'<span class="qa-score">\u00b7 score {quote.score:.2f}</span></p>'
        f"</blockquote>"
    )


# Each kind of reply opens with its own mark and label, so it reads at a glance
# (and without colour): an answer, passages that may hold one, or none.
KIND_LABELS = {
    "answer": ("\u2714", "Answer"),
    "possible": ("?", "Possible answer"),
    "none": ("\u2716", "Not in the documents."),
}


def render_answer(answer, turn: int) -> str:
    """The assistant's chat message for ``answer``: one HTML block, no blank lines.

    ``turn`` numbers the answer in its conversation; citation links are
    ``#cite-<turn>-<n>`` (n from 1), which the page turns into a source-view jump.
    Only an answer's first quote is marked best; the passages of a possible
    answer or of "not in the documents" are listed as evidence, not as an answer.
    """
    mark, label = KIND_LABELS[answer.kind]
    confidence_note = ("" if answer.confidence is None else
                       f' <span class="qa-confidence">(confidence {answer.confidence:.0%})</span>')
    parts = [f'<div class="qa-answer qa-kind-{answer.kind}">',
             f'<p class="qa-verdict qa-{answer.kind}"><span class="qa-mark">{mark}</span> <strong>{label}</strong> '
             f"{esc_inline(answer.message)}{confidence_note}</p>"]
    if answer.kind == "possible" and answer.quotes:
        parts.append('<p class="qa-closest">Passages that may hold the answer (check them):</p>')
    elif answer.kind == "none" and answer.quotes:
        parts.append('<p class="qa-closest">Closest passages (not an answer):</p>')
    for n, quote in enumerate(answer.quotes, 1):
        parts.append(render_quote(quote, n, turn, best=answer.answered and n == 1))
    parts.append("</div>")
    return "".join(parts)


def render_question(question: str) -> str:
    return f'<span class="qa-question">{esc_inline(question)}</span>'


def render_source(document, spans: Sequence[tuple[int, int]] = (), active: tuple[int, int] | None = None,
                  note: str = "", page: int | None = None) -> str:
    """``document``'s own text with each quoted span in a ``<mark id="q-start-end">``.

    The title and date stand in the header, so the title line (the seed's
    ``date YYYY-MM-DD Title``) is not repeated; headings are shown as headings.
    With ``page`` (a PDF quote's), only that page's text is shown, as a reader
    finds it in the PDF.  Overlapping or out-of-range spans are skipped; the
    ``active`` one also gets class ``active``.  Everything else between marks is
    the document text, escaped.
    """
    text = document.text
    low, high = document.page_span(page) if page is not None else (0, len(text))
    chosen: list[tuple[int, int]] = []
    last = low
    for start, end in sorted(set((int(s), int(e)) for s, e in spans)):
        if low <= start < end <= high and start >= last:
            chosen.append((start, end))
            last = end
    # The whole title line: in the seed format "date YYYY-MM-DD " stands before the title.
    hidden = [(text.rfind("\n", 0, b.start) + 1, b.end) for b in document.blocks if b.kind == "title"]
    headings = {(b.start, b.end) for b in document.blocks if b.kind == "heading"}
    cuts = sorted({low, high} | {p for span in [*chosen, *hidden, *headings] for p in span if low < p < high})
    out = []
    for start, end in zip(cuts, cuts[1:]):
        if any(a <= start and end <= b for a, b in hidden):
            continue
        piece = esc(text[start:end])
        if (start, end) in headings:
            piece = f'<span class="qa-heading">{piece}</span>'
        elif (start, end) in chosen:
            cls = "qa-span active" if active is not None and (start, end) == tuple(active) else "qa-span"
            piece = f'<mark id="{span_id(start, end)}" class="{cls}">{piece}</mark>'
        out.append(piece)
    if hidden:  # the line break after the title line would open the text with a blank line
        out[0] = out[0].lstrip("\r\n") if out else ""
    head = f'<div class="qa-source-head"><strong>{esc(document.title)}</strong>'
    if document.date:
        head += f' <span class="qa-date">{esc(document.date)}</span>'
    head += f' <code>{esc(document.id)}</code>'
    if page is not None and document.pages:
        head += f' <span class="qa-page">p. {int(page)} of {len(document.pages)}</span>'
    if note:
        head += f' <span class="qa-note">{esc(note)}</span>'
    head += "</div>"
    return f'<div class="qa-source">{head}<div class="qa-source-text">{"".join(out)}</div></div>'


def render_source_empty() -> str:
    return ('<div class="qa-source"><p class="qa-note">Ask a question: the cited document appears here '
            "with every quoted sentence highlighted. Click a citation [n] to jump to it.</p></div>")


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# How a document without a text encoding was read, by its suffix.
_FORMATS = {".pdf": "PDF", ".docx": "Word", ".eml": "e-mail", ".mbox": "mailbox"}


def read_as(document) -> str:
    """How ``document`` was read, for the Documents tab: its text encoding, or its format (and pages)."""
    if document.encoding:
        return document.encoding
    label = _FORMATS.get(Path(document.path).suffix.lower(), "")
    return f"{label}, {len(document.pages)} pages" if document.pages else label


def render_documents(rows: Iterable[dict], built_at: str, skipped: Iterable[str] = ()) -> str:
    """The documents table, then the files that could not be read, each with its reason.

    Each row: title, id, origin, bytes, chars, sentences, and ``read as`` (a
    text file's encoding, or its format).
    """
    body = []
    for r in rows:
        body.append(
            "<tr>"
            f"<td>{esc(r['title'])}</td><td><code>{esc(r['id'])}</code></td><td>{esc(r['origin'])}</td>"
            f"<td>{esc(r.get('read_as', ''))}</td>"
            f"<td>{esc(human_size(r['bytes']))}</td><td>{int(r['chars'])}</td><td>{int(r['sentences'])}</td>"
            f"<td>{esc(built_at)}</td>"
            "</tr>"
        )
    table = ('<table class="qa-docs"><thead><tr><th>Title</th><th>Document</th><th>From</th><th>Read as</th>'
             "<th>Size</th><th>Characters</th><th>Sentences</th><th>Indexed</th></tr></thead>"
             f"<tbody>{''.join(body)}</tbody></table>")
    reasons = "".join(f"<li>{esc(reason)}</li>" for reason in skipped)
    if reasons:
        table += f'<div class="qa-skipped"><p>Not indexed (could not be read):</p><ul>{reasons}</ul></div>'
    return table
