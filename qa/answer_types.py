"""What kind of thing a question asks for, and where a sentence holds it.

"Where" asks for a place, "when" for a time, "how many" for a number.  A
sentence that holds the kind asked for gets a small retrieval bonus, and the
matching words become the short answer inside the quote.  "Who" questions are
left out: the names in a sentence are too often the question's own, and on
SQuAD v1.1 the bonus hurt them.  `qa eval` reports short-answer exact match
and F1 (docs/results.md).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_NUMBER = (r"(?:\d[\d,.]*(?:\s?(?:%|percent|million|billion|thousand|hundred))?|one|two|three|four|five"
           r"|six|seven|eight|nine|ten|eleven|twelve|dozen|hundreds?|thousands?|millions?)")


@dataclass(frozen=True)
class AnswerType:
    name: str
    asks: re.Pattern  # matches a question of this type
    holds: re.Pattern  # matches a sentence that likely answers it
    span: re.Pattern  # the answer words themselves (group 1 when present)


TYPES = (
    AnswerType(
        "number",
        re.compile(r"\bhow (?:many|much|long|old|far|large|big|tall)\b|\bwhat (?:percentage|number|amount)\b", re.I),
        re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|hundred|thousand"
                   r"|million|billion|dozen|several)\b", re.I),
        re.compile(rf"\b{_NUMBER}(?:[-\s](?:year|month|day|week|hour|minute|mile|kilometer|meter|foot|feet)s?"
                   r"(?:-old)?)?\b", re.I),
    ),
    AnswerType(
        "when",
        re.compile(r"\bwhen\b|\bwhat (?:year|date|time|century|decade|month|day)\b", re.I),
        re.compile(rf"\b(?:1[0-9]{{3}}|20[0-9]{{2}})s?\b|\b(?:{_MONTHS})\b|\b(?:century|decade|years?|days?"
                   r"|weeks?|months?|today|yesterday|since|until|during|before|after)\b"),
        re.compile(rf"\b(?:(?:early |late |mid-)?(?:{_MONTHS})(?:\s+\d{{1,2}})?(?:,?\s+\d{{4}})?"
                   rf"|\d{{1,2}}\s+(?:{_MONTHS})(?:\s+\d{{4}})?|(?:the\s+)?\d{{4}}s?"
                   r"|(?:the\s+)?\d{1,2}(?:st|nd|rd|th)\s+century|last year|next year|yesterday|today)\b"),
    ),
    AnswerType(
        "where",
        re.compile(r"\bwhere\b", re.I),
        re.compile(r"\b(?:in|at|near|from|to|into|across|outside|inside)\s+(?:the\s+)?[A-Z][\w'-]+"
                   r"|\b(?:region|city|country|state|province|capital|village|town|district)\b"),
        re.compile(r"\b(?:in|at|near|from|into|across)\s+((?:the\s+)?[A-Z][\w'-]*(?:\s+(?:of\s+)?[A-Z][\w'-]*)*"
                   r"(?:\s+(?:region|province|state|city|county|district))?)"),
    ),
)


def answer_type(question: str) -> AnswerType | None:
    return next((t for t in TYPES if t.asks.search(question)), None)


def _words(text: str) -> set[str]:
    text = "".join(" " if c in string.punctuation else c for c in text.lower())
    return set(text.split()) - {"a", "an", "the"}


def short_answer_span(question: str, sentence: str) -> tuple[int, int] | None:
    """(start, end) in ``sentence`` of the words that answer ``question``, if found.

    The first match that is not made of the question's own words is taken.
    """
    kind = answer_type(question)
    if kind is None:
        return None
    asked = _words(question)
    for match in kind.span.finditer(sentence):
        group = 1 if match.lastindex else 0
        words = _words(match.group(group))
        if words and not words <= asked:
            return match.start(group), match.end(group)
    return None
