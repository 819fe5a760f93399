"""Evaluation: score the assistant against a test set, see every failure, compare runs.

A test set is JSONL, one question per line::

    {"id": "q1", "question": "Where were the soldiers captured?", "answers": ["Kursk region"]}
    {"id": "q2", "question": "What village did Russia take?", "answers": []}
    {"id": "q3", "history": ["Who is Ukraine's foreign minister?"], "question": "What did he urge?",
     "answers": ["more pressure on Moscow and Pyongyang"], "docs": ["../seeds"]}

``answers: []`` means the documents do not answer: the right reply is to abstain.
SQuAD files in the per-article format of ``../shared/eval/README.md`` are read by
``read_squad``: each article becomes one document and a quote is correct when
it covers a gold answer's character span.

Every question is asked once, for the top 10 quotes (``Assistant.ask`` with
``k=10``; it decides abstention, and its first quotes are the ones a user would
see).  ``rank`` is the first position (1-based) among the 10 holding a correct
sentence, else None; hit@k = answered and rank <= k.  The metrics are
computed from plain per-question records (the rows of ``results.jsonl``), so
they can be recomputed and tested without the engine.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

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


class TestSetError(ValueError):
    """A test-set file cannot be used; the message names the file and line."""

    __test__ = False  # not a pytest class


# --- SQuAD v1.1 answer normalization and scores (the official evaluate-v1.1.py) ---

def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def best_over(metric, prediction: str, ground_truths: Iterable[str]) -> float:
    return max((metric(prediction, g) for g in ground_truths), default=0.0)


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """Whether normalized ``text`` contains one of the normalized ``answers``."""
    hay = normalize_answer(text)
    return any(n and n in hay for n in (normalize_answer(a) for a in answers))


# --- test sets ---

@dataclass(frozen=True)
class TestItem:
    """One question of a test set."""

    __test__ = False

    id: str
    question: str
    answers: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    docs: tuple[Path, ...] | None = None  # None: the corpus given to the command
    # SQuAD: gold character spans (doc id, start, end); a quote is correct when it covers one.
    spans: tuple[tuple[str, int, int], ...] = ()
    unanswerable: bool = field(default=False)

    @property
    def answerable(self) -> bool:
        return not self.unanswerable


def _read_lines(path: Path, kind: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TestSetError(f"{path}: no such {kind} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TestSetError(f"{path}: cannot be read ({exc})") from None


def read_testset(path: str | Path, limit: int | None = None) -> list[TestItem]:
    """Questions of a JSONL test set, in file order (the first ``limit`` of them)."""
    path = Path(path)
    lines = _read_lines(path, "test-set")
    items: list[TestItem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if limit is not None and len(items) >= limit:
            break
        if not line.strip():
            continue
        item = _parse_line(path, n, line)
        if item.id in seen:
            raise TestSetError(f"{path}:{n}: id {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = n
        items.append(item)
    if not items:
        raise TestSetError(f"{path}: holds no questions")
    return items


def _parse_line(path: Path, n: int, line: str) -> TestItem:
    where = f"{path}:{n}"
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise TestSetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise TestSetError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise TestSetError(f'{where}: missing "question" (a non-empty string)')
    answers = row.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise TestSetError(f'{where}: "answers" must be a list of strings ([] when the documents do not answer)')
    if any(not normalize_answer(a) for a in answers):
        raise TestSetError(f'{where}: an answer in "answers" is empty once punctuation and articles are removed')
    history = row.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
        raise TestSetError(f'{where}: "history" must be a list of earlier questions (strings)')
    docs = row.get("docs")
    if docs is not None:
        if isinstance(docs, str):
            docs = [docs]
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
            raise TestSetError(f'{where}: "docs" must be a list of file or folder paths')
        docs = tuple((path.parent / d).resolve() for d in docs)
    qid = row.get("id", f"line{n}")
    return TestItem(id=str(qid), question=question.strip(), answers=tuple(answers), history=tuple(history),
                    docs=docs, unanswerable=not answers)


def read_squad(path: str | Path, folder: str | Path, limit: int | None = None) -> list[TestItem]:
    """Questions of a per-article SQuAD JSONL file; each article is written to ``folder/<title>.txt``.

    The article's paragraphs are joined by blank lines, so a gold answer at
    ``answer_start`` of paragraph ``p`` sits at ``offset(p) + answer_start``.
    Files are rewritten only when their text changes, so indexes stay cached.
    """
    path, folder = Path(path), Path(folder)
    lines = _read_lines(path, "SQuAD")
    items: list[TestItem] = []
    for n, line in enumerate(lines, 1):
        if limit is not None and len(items) >= limit:
            break
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            article = json.loads(line)
            title, paragraphs, qas = article["title"], article["paragraphs"], article["qas"]
        except ValueError as exc:
            raise TestSetError(f"{where}: not valid JSON ({exc})") from None
        except (KeyError, TypeError):
            raise TestSetError(f'{where}: expected an article {{"title", "paragraphs", "qas"}}') from None
        offsets, pos = [], 0
        for p in paragraphs:
            offsets.append(pos)
            pos += len(p) + 2
        text = "\n\n".join(paragraphs) + "\n"
        doc_path = folder / f"{_safe_name(title) or f'article{n}'}.txt"
        _write_if_changed(doc_path, text)
        for qa in qas:
            if limit is not None and len(items) >= limit:
                break
            items.append(_squad_item(where, qa, doc_path, paragraphs, offsets))
    if not items:
        raise TestSetError(f"{path}: holds no questions")
    return items


def _squad_item(where: str, qa, doc_path: Path, paragraphs: list[str], offsets: list[int]) -> TestItem:
    try:
        spans = []
        for a in qa["answers"]:
            p, s = a["paragraph"], a["answer_start"]
            if paragraphs[p][s:s + len(a["text"])] != a["text"]:
                raise TestSetError(f"{where}: question {qa['id']}: answer {a['text']!r} is not at "
                                   f"paragraph {p}, offset {s}")
            spans.append((doc_path.name, offsets[p] + s, offsets[p] + s + len(a["text"])))
        return TestItem(id=str(qa["id"]), question=qa["question"].strip(),
                        answers=tuple(a["text"] for a in qa["answers"]), docs=(doc_path.resolve(),),
                        spans=tuple(spans), unanswerable=bool(qa.get("is_impossible")) or not qa["answers"])
    except (KeyError, TypeError, IndexError, AttributeError):
        qid = qa.get("id", "?") if isinstance(qa, dict) else "?"
        raise TestSetError(f"{where}: question {qid} is malformed (needs id, question, and answers "
                           f"with text, paragraph and answer_start)") from None


def _safe_name(title: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in title).strip("._")[:80]


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --- running ---

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
    short = _short_text(quotes[0]) if quotes and answer.answered else None
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
    assistant (the first call pays for lazy initialisation).
    """
    for assistant in assistants.values():
        assistant.ask(items[0].question)
    records = []
    for n, item in enumerate(items, 1):
        assistant = assistants[corpus_key(item, default_docs)]
        answer = assistant.ask(item.question, history=list(item.history), k=K_MAX)
        records.append(score_answer(item, answer, assistant.documents_by_id, shown=assistant.k))
        if progress:
            progress("questions", n, len(items))
    return records


# --- metrics ---

def _rate(num: float, den: int) -> float | None:
    return num / den if den else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), ``q`` in 0..100."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve: the chance a positive outranks a negative (ties count half)."""
    pairs = sorted(zip(scores, positive))
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if not n_pos or not n_neg:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        # Tied scores share the mean of their 1-based ranks i+1..j.
        rank_sum += (i + 1 + j) / 2 * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def compute_metrics(records: Sequence[dict], threshold: float | None = None) -> dict:
    """The metrics object of ``qa eval --json`` from per-question records."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    abstained = [r for r in records if not r["answered"]]
    hits = [
        _rate(sum(1 for r in answerable if r["answered"] and r["rank"] is not None and r["rank"] <= k), len(answerable))
        for k in range(1, K_MAX + 1)
    ]
    mrr = _rate(sum(1 / r["rank"] for r in answerable if r["answered"] and r["rank"]), len(answerable))
    shorts = [r for r in answerable if r["answered"] and r.get("short_answer") is not None]
    em = _rate(sum(best_over(exact_match_score, r["short_answer"], r["expected"]) for r in shorts), len(shorts))
    f1 = _rate(sum(best_over(f1_score, r["short_answer"], r["expected"]) for r in shorts), len(shorts))
    right_abstains = sum(1 for r in abstained if not r["answerable"])
    precision = _rate(right_abstains, len(abstained))
    recall = _rate(right_abstains, len(unanswerable))
    if precision is None and recall is None:
        abstain_f1 = None
    else:
        p, r_ = precision or 0.0, recall or 0.0
        abstain_f1 = 2 * p * r_ / (p + r_) if p + r_ else 0.0
    # A reply is right when it answers an answerable question with a correct first quote, or
    # does not answer (a possible answer or "the documents don't say") an unanswerable one.
    right_replies = sum(1 for r in records if (r["answered"] and r["first_correct"])
                        or (not r["answered"] and not r["answerable"]))
    confident = [r for r in records if r.get("confidence") is not None]
    n_quotes = sum(len(r["quotes"]) for r in records)
    latencies = [r["latency_ms"] for r in records]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "hit@1": hits[0],
        "hit@3": hits[2],
        "mrr": mrr,
        "exact_match": em,
        "f1": f1,
        "abstain_precision": precision,
        "abstain_recall": recall,
        "abstain_f1": abstain_f1,
        "reply_accuracy": _rate(right_replies, len(records)),
        # How well the answerability probability ranks answerable above unanswerable questions.
        "answerability_auc": auc([r["confidence"] for r in confident], [r["answerable"] for r in confident]),
        "quotes_verified": _rate(sum(r["quotes_verified"] for r in records), n_quotes),
        "latency_ms_p50": None if p50 is None else round(p50, 1),
        "latency_ms_p95": None if p95 is None else round(p95, 1),
        "n": len(records),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "n_abstained": len(abstained),
        "n_possible": sum(1 for r in records if r.get("kind") == "possible"),
        "n_short_answers": len(shorts),
        "threshold": threshold,
        "hit@k": hits,
    }


def coverage_curve(records: Sequence[dict], thresholds: Sequence[float] | None = None) -> list[dict]:
    """Coverage and accuracy if the abstention threshold were each of ``thresholds``.

    At threshold t a question is answered when its top quote scores >= t;
    coverage is the share of all questions answered, accuracy the share of the
    answered ones whose first quote is correct (answerable and hit@1).
    """
    scored = [(r["top_score"], bool(r["answerable"] and r["first_correct"]))
              for r in records if r["top_score"] is not None]
    if thresholds is None:
        scores = sorted({s for s, _ in scored})
        lo, hi = (min(scores + [0.0]), max(scores + [1.0]))
        thresholds = sorted({round(lo + (hi - lo) * i / 100, 4) for i in range(101)} | set(scores))
    curve = []
    for t in thresholds:
        answered = [ok for s, ok in scored if s >= t]
        curve.append({"threshold": t, "coverage": _rate(len(answered), len(records)) or 0.0,
                      "accuracy": _rate(sum(answered), len(answered))})
    return curve


def question_verdicts(records: Sequence[dict]) -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in records}


def load_previous(path: str | Path) -> tuple[dict, dict[str, str] | None]:
    """An earlier metrics.json and its per-question verdicts.

    Verdicts come from its ``"questions"`` entry, else from a results.jsonl
    beside it; None when neither exists (e.g. a saved ``--json`` print).
    """
    path = Path(path)
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TestSetError(f"{path}: no such metrics file") from None
    except (OSError, ValueError) as exc:
        raise TestSetError(f"{path}: not a metrics.json ({exc})") from None
    if not isinstance(old, dict):
        raise TestSetError(f"{path}: not a metrics.json (expected a JSON object)")
    verdicts = old.get("questions")
    results = path.with_name("results.jsonl")
    if verdicts is None and results.is_file():
        rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
        verdicts = question_verdicts(rows)
    return old, verdicts


COMPARED = ("hit@1", "hit@3", "mrr", "exact_match", "f1", "abstain_precision", "abstain_recall", "abstain_f1",
            "reply_accuracy", "answerability_auc", "quotes_verified", "latency_ms_p50", "latency_ms_p95", "n", "n_answerable", "n_unanswerable",
            "n_abstained", "n_possible", "threshold")


def _flat(metrics: dict) -> dict:
    flat = {name: metrics.get(name) for name in COMPARED}
    hits = metrics.get("hit@k") or []
    for k in range(1, K_MAX + 1):
        if f"hit@{k}" not in flat:
            flat[f"hit@{k}"] = hits[k - 1] if len(hits) >= k else None
    return flat


def compare(old: dict, new: dict, old_verdicts: dict | None, new_verdicts: dict) -> dict:
    """Every metric old -> new with its change, and the questions whose verdict changed.

    ``flipped`` is None when the old run kept no per-question verdicts.
    """
    before, after = _flat(old), _flat(new)
    metrics = {}
    for name, b in after.items():
        a = before.get(name)
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        metrics[name] = {"old": a, "new": b, "delta": round(b - a, 6) if numeric else None}
    flipped = None
    if old_verdicts is not None:
        flipped = []
        for qid, v in new_verdicts.items():
            was = old_verdicts.get(qid)
            if was is not None and was != v:
                change = ("fixed" if v in GOOD_VERDICTS and was not in GOOD_VERDICTS else
                          "broke" if was in GOOD_VERDICTS and v not in GOOD_VERDICTS else "changed")
                flipped.append({"id": qid, "old": was, "new": v, "change": change})
    return {"metrics": metrics, "flipped": flipped}
