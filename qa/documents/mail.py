"""E-mail: a saved message (.eml) is a document; a mailbox (.mbox) is a document with a section per message.

Read with the standard library's ``email`` and ``mailbox``.  A message shows its
subject (the title, or its section's heading in a mailbox), a line with its
sender and date (shown, never quoted) and its text part (the HTML part's
visible text when it has no plain one).  Lines quoted from an earlier message
(">") stand apart from the new text: without their ">" marks, under a heading
that is their "On ..., X wrote:" line when the message has one, so a quote
never mixes the reply with what it answers.  Offsets index this extracted text.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from .base import Content, DocumentError
from .lines import TextBuilder
from .markup import html_text

_QUOTE_MARKS = re.compile(r"^(?:[ \t]*>)+[ \t]?")
_ATTRIBUTION = re.compile(r"\bwrote:?\s*$|^-+\s*original message\s*-+$", re.IGNORECASE)
QUOTED_HEADING = "Quoted from an earlier message"
NO_SUBJECT = "(no subject)"


def read_eml(path: Path, data: bytes) -> Content:
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not _looks_like_mail(message):
        raise DocumentError(f"{path}: not an e-mail message (no From, To, Subject or Date header); "
                            "save the message from your mail program as .eml")
    builder = TextBuilder()
    subject = _header(message, "subject")
    builder.add("title", subject or NO_SUBJECT)
    _add_message(message, builder)
    return Content(builder.text, builder.blocks, subject or None, date=_iso_date(message))


def read_mbox(path: Path, data: bytes) -> Content:
    """Every message of the mailbox at ``path``; ``mailbox`` reads the file itself, so ``data``
    (read already, within the size limit) is not used."""
    try:
        box = mailbox.mbox(path, factory=_parse, create=False)
        messages = list(box)
    except (OSError, mailbox.Error) as exc:
        raise DocumentError(f"{path}: not a readable mailbox ({exc})") from None
    messages = [m for m in messages if m is not None and _looks_like_mail(m)]
    if not messages:
        raise DocumentError(f"{path}: holds no e-mail messages; export the mailbox as mbox (messages start "
                            "with a 'From ' line)")
    builder = TextBuilder()
    for message in messages:
        builder.add("heading", _header(message, "subject") or NO_SUBJECT)
        _add_message(message, builder)
    return Content(builder.text, builder.blocks)


def _parse(file) -> EmailMessage | None:
    try:
        return email.message_from_binary_file(file, policy=email.policy.default)
    except Exception:  # one damaged message must not lose the rest of the mailbox
        return None


def _looks_like_mail(message) -> bool:
    return any(message.get(name) for name in ("from", "to", "subject", "date"))


def _header(message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a malformed header is read as missing
        return ""
    return re.sub(r"\s+", " ", str(value or "")).strip()


def _iso_date(message) -> str | None:
    try:
        return parsedate_to_datetime(_header(message, "date")).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def _add_message(message, builder: TextBuilder) -> None:
    sender, date = _header(message, "from"), _header(message, "date")
    meta = " · ".join(part for part in (sender and f"From: {sender}", date and f"Date: {date}") if part)
    builder.add("meta", meta)
    body, html = _body(message)
    if html:
        html_text(body, builder)
    else:
        _add_body(body, builder, sender)


def _body(message) -> tuple[str, bool]:
    """The message's text part, or its HTML part's markup (flagged) when it has none."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
        return (part.get_content(), part.get_content_subtype() == "html") if part is not None else ("", False)
    except (KeyError, LookupError, ValueError, AttributeError):
        # An unknown charset or a broken part: what Python can decode of it, as text.
        payload = message.get_payload(decode=True) if not message.is_multipart() else b""
        return (payload or b"").decode("utf-8", "replace"), False


def _add_body(body: str, builder: TextBuilder, sender: str) -> None:
    """Runs of new and quoted lines, each its own piece; quoted runs under their attribution line."""
    runs: list[tuple[bool, list[str]]] = []
    for line in body.splitlines():
        quoted = bool(_QUOTE_MARKS.match(line))
        text = _QUOTE_MARKS.sub("", line) if quoted else line
        if runs and (runs[-1][0] == quoted or not line.strip()):
            runs[-1][1].append(text)
        else:
            runs.append((quoted, [text]))
    for n, (quoted, lines) in enumerate(runs):
        if quoted:
            if not _ATTRIBUTION.search(_last(runs[n - 1][1]) if n else ""):
                builder.add("heading", QUOTED_HEADING)
        elif n:  # new text after a quotation: the reply goes on, its section says whose it is
            builder.add("heading", f"Reply from {sender}" if sender else "Reply")
        if not quoted and n + 1 < len(runs) and lines and _ATTRIBUTION.search(_last(lines)):
            # The "On ..., X wrote:" line heads the quotation that follows it.
            cut = max(i for i, line in enumerate(lines) if line.strip())
            builder.add_lines("\n".join(lines[:cut]))
            builder.add("heading", lines[cut])
        else:
            builder.add_lines("\n".join(lines))


def _last(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if line.strip()), "")
