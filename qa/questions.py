"""Checking a question before it is searched: cleaned of what cannot be text, refused when unsearchable.

Questions come from a terminal, a pipe, a browser or the API, so they can hold
bytes that are not UTF-8 (Python hands them over as lone surrogates, which the
embedder's tokenizer rejects), NUL and other control characters, or escape
sequences from arrow keys typed where no line editor runs.  None of these can
be part of what someone asks, so they are dropped (the question is *cleaned*,
not refused): ``"Where were the \\udcff soldiers?"`` is searched as "Where were
the soldiers?".

What is left is refused (``QuestionError``, a ``ValueError`` whose message says
what to do) when it is empty, longer than ``MAX_QUESTION_CHARS``, or has no
word to search for: only punctuation, emoji, or words such as "what" and "the"
that every sentence could match.  A follow-up may consist of such words ("What
did he say?"), as it is searched with the turns before it; but not of
punctuation or emoji alone.
"""

from __future__ import annotations

import functools
import re

from .conversation import _QUESTION_WORDS, _REFERRING

# About 200 words: far more than a question needs, while the embedder reads only
# its first 256 word pieces anyway.
MAX_QUESTION_CHARS = 1000

# An escape sequence (CSI "ESC [ ... final", or ESC and one character) is one
# keystroke's worth of terminal control, so it goes whole.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
# Lone surrogates (bytes that were not UTF-8), U+FFFD (bytes already replaced).
_INVALID = re.compile(r"[\ud800-\udfff\ufffd]")
# C0 and C1 control characters, NUL, tab and line breaks included: a space each.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WORD = re.compile(r"[^\W_]+")


class QuestionError(ValueError):
    """A question that cannot be searched; the message says why and what to type instead."""


def clean(text: str) -> str:
    """``text`` without invalid bytes, escape sequences and control characters, spaces collapsed."""
    text = _INVALID.sub("", _ESCAPE_SEQUENCE.sub("", text))
    return " ".join(_CONTROL.sub(" ", text).split())


def check(question: str, follow_up: bool = False) -> str:
    """The cleaned question, or ``QuestionError`` when there is nothing to search for.

    ``follow_up``: there are earlier turns, so a question of question words
    only ("Why?", "What did he say?") is searched with them rather than refused.
    """
    question = clean(question)
    if not question:
        raise QuestionError("the question is empty (or held only control characters): type a question")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is {len(question):,} characters long: "
                            f"ask in at most {MAX_QUESTION_CHARS:,}")
    words = _WORD.findall(question.lower())
    if not words:
        raise QuestionError(f"the question {_shorten(question)!r} has no words to search for: "
                            "ask about something in the documents, in words")
    if not follow_up and all(w in _not_searchable() for w in words):
        raise QuestionError(f"the question {_shorten(question)!r} has no words to search for, only "
                            "question words like \"what\" and \"the\": say what you are asking about")
    return question


@functools.cache
def _not_searchable() -> frozenset[str]:
    """The index's stop words and the words of asking and pointing back."""
    from bm25s.stopwords import STOPWORDS_EN  # imported when first needed: it takes a third of a second

    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS | _REFERRING


def refusal(question: str | None, reason: Exception | str) -> dict:
    """The JSON reply to a question that is not answered: ``{"question", "error"}``.

    ``qa chat --json`` prints one for every refused line and the HTTP API returns
    one with its error status, so a client pairs every question with one reply.
    ``question`` is shown cleaned (lone surrogates cannot be written as UTF-8);
    None when there was no question to show (a line too long to be read whole).
    """
    return {"question": None if question is None else clean(question), "error": str(reason)}


def _shorten(question: str, limit: int = 60) -> str:
    return question if len(question) <= limit else question[:limit] + "\u2026"
