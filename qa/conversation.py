"""Follow-up questions: reading a question in the light of the turns before it.

A question that points back ("What did he urge?", "Where are they held?"), has
almost no words of its own, or is a fragment ("And in 2015?", "Near which
town?") is searched together with the earlier turns it continues, so their
subject ("Ukraine's foreign minister") joins the search.  A question that
stands on its own is searched alone, so changing the subject works as a reader
expects.

The previous answer resolves what the previous question cannot: after "Who is
Ukraine's foreign minister?", "he" is the man the quoted sentence names, and
what he did is most likely said there or just after.  So a follow-up favours
the previous answer's sentence and the ones after it (``follow_on``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Sequence

from .retrieval import Passage

_REFERRING = {
    "he", "him", "his", "she", "her", "hers", "it", "its", "they", "them", "their", "theirs",
    "this", "that", "these", "those", "there", "then", "other", "others", "former", "latter",
    "one", "ones", "same", "such",
}
_WORD = re.compile(r"[A-Za-z']+")
_QUESTION_WORDS = {
    "what", "who", "whom", "whose", "where", "when", "why", "how", "which", "did", "does", "do",
    "is", "are", "was", "were", "a", "an", "the", "of", "to", "in", "on", "for", "and", "or",
    "about", "else", "more", "tell", "me", "say", "said",
}
# A whole question opens with a question word, a verb of asking, or an imperative.
_WH = {"what", "who", "whom", "whose", "where", "when", "why", "how", "which"}
_AUXILIARIES = {
    "is", "are", "was", "were", "be", "been", "do", "does", "did", "has", "have", "had",
    "can", "could", "will", "would", "shall", "should", "may", "might", "must",
}
_IMPERATIVES = {"name", "list", "give", "tell", "describe", "explain", "define", "show", "find"}
# A question opening with these continues the one before: "And the other one?", "But why?"
_CONTINUING = {"and", "but", "also", "so", "or"}

# What the previous answer's sentence (0) and the next two (1, 2) gain for a
# follow-up; the next sentence most often carries on about the same subject.
# Chosen when the score was (cosine + coverage) / 2: on seeds/followups.jsonl it
# turned f02 ("What did he call for?"), s03 and the seed set's q44 right, and s17
# and s21 wrong, 44 of 50 right first with it or without.  With today's score
# (qa.retrieval.DENSE_WEIGHT) it is 45 of 50 with it or without (f04 right, f23
# wrong), the seed set's follow-ups 7 of 10 either way; values within
# 0.02-0.04 / 0.04-0.08 / 0-0.04 give 45 and 7-8, 0.06 for the sentence itself
# 44 (it is favoured when the follow-up asks about something else).
NEAR_BONUS = (0.04, 0.06, 0.04)


@dataclass(frozen=True)
class Turn:
    """An earlier turn: its question, and where its answer's first quote is (None when it had none)."""

    question: str
    doc: str | None = None
    position: int | None = None  # the quote's sentence number in ``doc``


def needs_context(question: str) -> bool:
    words = [w.lower().strip("'") for w in _WORD.findall(question)]
    if any(w in _REFERRING for w in words):
        return True
    if words and (words[0] in _CONTINUING or _is_fragment(words)):
        return True
    return len([w for w in words if w not in _QUESTION_WORDS]) < 2


def _is_fragment(words: list[str]) -> bool:
    """No question word, verb of asking or imperative to open it, and no verb of asking anywhere:
    "Near which town?", "Divided into how many species?" ("In what year was it built?" is whole)."""
    first = words[0]
    return (first not in _WH and first not in _AUXILIARIES and first not in _IMPERATIVES
            and not any(w in _AUXILIARIES for w in words))


def context(question: str, history: Sequence[str | Turn]) -> str:
    """The earlier questions that ``question`` points back to, or "" if it stands alone."""
    earlier = ""
    for turn in history:
        turn = turn.question if isinstance(turn, Turn) else turn
        earlier = f"{earlier} {turn}".strip() if earlier and needs_context(turn) else turn
    return earlier if needs_context(question) else ""


def follow_on(question: str, history: Sequence[str | Turn], passages: list[Passage]) -> list[Passage]:
    """``passages`` re-ranked for a follow-up: the previous answer's sentence and the next two gain ``NEAR_BONUS``.

    Unchanged when the question stands alone or the previous turn quoted nothing.
    """
    previous = history[-1] if history else None
    if not isinstance(previous, Turn) or previous.doc is None or not needs_context(question):
        return passages

    def bonus(p: Passage) -> float:
        after = p.segment.position - previous.position
        return NEAR_BONUS[after] if p.segment.doc_id == previous.doc and 0 <= after < len(NEAR_BONUS) else 0.0

    near = [replace(p, score=p.score + bonus(p)) for p in passages]
    return sorted(near, key=lambda p: (-p.score, p.segment.doc_id, p.segment.start))
