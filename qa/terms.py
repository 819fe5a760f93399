"""Terms: the words a question and a sentence share, as both stores count them.

Lower-cased, stemmed (Snowball English), English stop words removed: bm25s's
tokenizer with PyStemmer, the same for indexing and for questions.
"""

from __future__ import annotations

import functools


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed word tokens without English stop words, one list per text."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stem_words(), return_ids=False, show_progress=False)


@functools.cache
def _stem_words():
    import Stemmer

    return Stemmer.Stemmer("english").stemWords
