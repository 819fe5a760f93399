"""Follow-up questions: reading a question in the light of the turns before it.

A question that points back ("What did he urge?", "Where are they held?") or
has almost no words of its own is searched together with the earlier turns it
continues, so their subject ("Ukraine's foreign minister") joins the search.
A question that stands on its own is searched alone, so changing the subject
works as a reader expects.
"""

from __future__ import annotations

import re
from typing import Sequence

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


def needs_context(question: str) -> bool:
    words = [w.lower().strip("'") for w in _WORD.findall(question)]
    if any(w in _REFERRING for w in words):
        return True
    return len([w for w in words if w not in _QUESTION_WORDS]) < 2


def context(question: str, history: Sequence[str]) -> str:
    """The earlier turns that ``question`` points back to, or "" if it stands alone."""
    earlier = ""
    for turn in history:
        earlier = f"{earlier} {turn}".strip() if earlier and needs_context(turn) else turn
    return earlier if needs_context(question) else ""
