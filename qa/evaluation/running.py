"""Asking every question of a test set and scoring each reply into a plain record."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from .squad_scores import contains_answer
from .testsets import TestItem

K_MAX = 10  # hit@k is reported for k = 1..K_MAX; the retrieval depth per question

VERDICTS = (
    "correct",
    "missed_not_retrieved",
    "retrieved_not_first",
    "wrongly_abstained",
    "should_have_abstained",
    "correctly_abstained",
)
GOOD_VERDICTS = ("correct", "correctly_abstained")

Progress = Callable[[str, int, int], None]


def is_correct(item: TestItem, doc: str, start: int, end: int, text: str) -> bool:
    """A sentence is correct when it covers a gold span (SQuAD) or contains an answer."""
    if item.unanswerable:
        return False
    if item.spans:
        return any(d == doc and start <= s and e <= end for d, s, e in item.spans)
    return contains_answer(text, item.answers)


def verdict(answerable: bool, answered: bool, rank: int | None) -> str:
    if not answerable:
        return "should_have_abstained" if answered else "correctly_abstained"
    if not answered:
        return "wrongly_abstained"
    if rank is None:
        return "missed_not_retrieved"
    return "correct" if rank == 1 else "retrieved_not_first"


def score_answer(item: TestItem, answer, documents: dict, shown: int) -> dict:
    """The per-question record (a row of results.jsonl) from an Answer of up to 10 quotes.

    ``shown`` is how many quotes the assistant gives a user; those are the
    record's ``quotes``, and all of them count for the rank.
    """
    quotes = list(answer.quotes[:K_MAX])
    retrieved, rank, correct_text = [], None, None
    for i, q in enumerate(quotes, 1):
        ok = is_correct(item, q.doc, q.start, q.end, q.text)
        if ok and rank is None:
            rank, correct_text = i, q.text
        retrieved.append({"doc": q.doc, "start": q.start, "end": q.end, "score": q.score, "correct": ok})
    verified = sum(
        1 for q in quotes[:shown] if q.doc in documents and documents[q.doc].text[q.start:q.end] == q.text
    )
    # A reply of "none" carries no short answer; an answer or a possible answer shows its first quote's.
    short = _short_text(quotes[0]) if quotes else None
    return {
        "id": item.id,
        "question": item.question,
        "history": list(item.history),
        "expected": list(item.answers),
        "spans": [list(s) for s in item.spans],
        "answerable": item.answerable,
        "answered": bool(answer.answered),
        "kind": answer.kind,
        "confidence": answer.confidence,
        "quotes": [{"text": q.text, "doc": q.doc, "start": q.start, "end": q.end, "score": q.score,
                    "short_answer": _short_text(q)} for q in quotes[:shown]],
        "first_correct": rank == 1,
        "rank": rank,
        "correct_text": correct_text,
        "verdict": verdict(item.answerable, answer.answered, rank),
        "top_score": quotes[0].score if quotes else None,
        "short_answer": short,
        "latency_ms": round(answer.latency_ms, 2),
        "quotes_verified": verified,
        "retrieved": retrieved,
    }


def _short_text(quote) -> str | None:
    return quote.short_answer.text if quote.short_answer else None


def corpus_key(item: TestItem, default: Sequence[Path]) -> tuple[str, ...]:
    paths = item.docs if item.docs is not None else default
    return tuple(sorted(str(Path(p).resolve()) for p in paths))


def open_corpora(items: Sequence[TestItem], default_docs: Sequence[Path], make_assistant,
                 progress: Progress | None = None) -> dict[tuple[str, ...], object]:
    """One loaded Assistant per distinct corpus; ``make_assistant(paths)`` returns an unloaded one.

    The model loads once: every Embedder of a process shares its network.
    """
    keys = list(dict.fromkeys(corpus_key(i, default_docs) for i in items))
    assistants = {}
    for n, key in enumerate(keys, 1):
        assistant = make_assistant([Path(p) for p in key])
        name = Path(key[0]).name if len(key) == 1 else f"{len(key)} paths"
        label = f"indexing {n}/{len(keys)} {name}" if len(keys) > 1 else "indexing"
        assistant.load((lambda stage, done, total, label=label: progress(label, done, total)) if progress else None)
        assistants[key] = assistant
    return assistants


def run_eval(items: Sequence[TestItem], assistants: dict, default_docs: Sequence[Path],
             progress: Progress | None = None) -> list[dict]:
    """Ask every question once; records in the items' order.

    One untimed question per corpus first, so latencies are those of a warm
    assistant (the first call pays for lazy initialisation).  A follow-up's
    ``history`` is asked first, turn by turn, and its Answers handed on as a
    chat hands them.
    """
    for assistant in assistants.values():
        assistant.ask(items[0].question)
    records = []
    for n, item in enumerate(items, 1):
        assistant = assistants[corpus_key(item, default_docs)]
        history = []
        for turn in item.history:
            history.append(assistant.ask(turn, history=list(history)))
        answer = assistant.ask(item.question, history=history, k=K_MAX)
        records.append(score_answer(item, answer, assistant.documents_by_id, shown=assistant.k))
        if progress:
            progress("questions", n, len(items))
    return records
