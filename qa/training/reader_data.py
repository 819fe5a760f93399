"""The reader's training examples: SQuAD train's answer sentences, and the engine's own wrong candidates.

Three kinds of (question, sentence) pair, from the articles the answerability
model does *not* fit on (``qa.training.answerability`` keeps every
``EVERY``-th article; the reader learns on the rest, so the answerability fit
sees the reader's judgement of questions it never trained on):

- answer: an answerable question of SQuAD v1.1 train and the sentence holding
  its answer (split as the engine splits), with the answer's character offsets
  in it; answers whose offset was guessed among several occurrences
  (``offset_ambiguous``) are left out, their sentence may be the wrong one;
- wrong: the same question and the best sentence the engine ranks among its
  first ``READ`` that holds no answer to it;
- unanswerable: a question of v2.0 train that its article does not answer,
  and the engine's first ``UNANSWERABLE_NEGATIVES`` sentences for it.

The last two are mined by the engine itself (``Assistant``'s retriever, the
shipped embedder) over each article as ``qa eval --squad`` indexes it, so the
reader learns to say "no answer" to exactly the sentences it will be shown.
"""

from __future__ import annotations

import json
import time
from itertools import groupby
from pathlib import Path

from ..answers import READ
from ..evaluation import corpus_key, is_correct, open_corpora, read_squad
from ..evaluation import contains_answer
from ..segments import split_sentences
from .answerability import EVERY

ROOT = Path(__file__).resolve().parents[2]
TRAIN_DIR = ROOT.parent / "shared" / "train"
V11 = TRAIN_DIR / "squad_v1.1_train.jsonl"
V20 = TRAIN_DIR / "squad_v2.0_train_approx.jsonl"
UNANSWERABLE_NEGATIVES = 2


def reader_article(n: int) -> bool:
    """Whether the ``n``-th train article (from 0) is the reader's (the others fit answerability)."""
    return n % EVERY != 0


def answer_examples(path: Path = V11, articles=reader_article, ambiguous: bool = False):
    """(question, sentence, answer start, answer end, all answer texts) for each question whose
    first locatable answer lies inside one sentence; offsets are into the sentence."""
    for n, line in enumerate(path.open(encoding="utf-8")):
        if not articles(n):
            continue
        article = json.loads(line)
        paragraphs = article["paragraphs"]
        spans = {}
        for q in article["qas"]:
            for a in q["answers"]:
                if a.get("offset_ambiguous") and not ambiguous:
                    continue
                p, start = a["paragraph"], a["answer_start"]
                end = start + len(a["text"])
                if p not in spans:
                    spans[p] = split_sentences(paragraphs[p])
                inside = [(s, e) for s, e in spans[p] if s <= start and end <= e]
                if inside:
                    s, e = inside[0]
                    yield q["question"], paragraphs[p][s:e], start - s, end - s, [x["text"] for x in q["answers"]]
                    break


def mine(data_dir: Path, out: Path, path: Path = V20, minutes: float | None = None, progress=print) -> int:
    """Write to ``out`` (JSON lines) each question's sentences that do not answer it, as the engine
    ranks them: ``{"question", "answerable", "negatives": [sentence, ...]}``, article by article until
    ``minutes`` have passed (all articles when None); returns how many questions."""
    from ..assistant import Assistant

    started = time.monotonic()
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    chosen = [line for n, line in enumerate(lines) if reader_article(n)]
    subset = out.with_name("articles.jsonl")
    subset.parent.mkdir(parents=True, exist_ok=True)
    subset.write_text("".join(chosen), encoding="utf-8")
    items = read_squad(subset, data_dir / "squad" / "reader-train")
    written = 0
    with out.open("w", encoding="utf-8") as f:
        for n, (key, group) in enumerate(groupby(items, lambda i: corpus_key(i, []))):
            group = list(group)
            assistant = open_corpora(group, [], lambda p: Assistant(p, data_dir=data_dir, rebuild="stale"))[key]
            vectors = assistant.embedder.embed([i.question for i in group])
            for item, vector in zip(group, vectors):
                passages = assistant.retriever.rank(item.question, [item.question], vector[None, :], top_k=READ)
                if item.answerable:
                    wrong = [p.segment.text for p in passages
                             if not is_correct(item, p.segment.doc_id, p.segment.start, p.segment.end, p.segment.text)
                             and not contains_answer(p.segment.text, item.answers)][:1]
                else:
                    wrong = [p.segment.text for p in passages[:UNANSWERABLE_NEGATIVES]]
                if wrong:
                    f.write(json.dumps({"question": item.question, "answerable": item.answerable,
                                        "negatives": wrong}) + "\n")
                    written += 1
            f.flush()
            progress(f"mined article {n + 1}/{len(chosen)}: {written} questions")
            if minutes is not None and time.monotonic() - started > minutes * 60:
                break
    return written


def read_negatives(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]
