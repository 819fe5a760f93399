"""Reading each sentence after the one before it: chosen on half the articles, tested on the other.

    .venv/bin/python research/context_units.py [--squad FILE]
    .venv/bin/python research/context_units.py --model DIR --half 1
    .venv/bin/python research/context_units.py --models DIR0 DIR1

SQuAD v1.1's public articles are split by position (even / odd).  On each
half, a grid of settings is scored; the best is tested on the other half, so
every question is judged by settings chosen without its article.  A setting:
the share of the cosine taken with the sum of the sentence's and its
predecessor's vectors ("sum"; "text" embeds the two sentences as one text,
which costs a second embedding per sentence); the weight of a question term
found only in the sentence before, only in the sentence after, only in the
article's title, or only elsewhere in the paragraph; and the share of the
cosine taken with the paragraph's mean vector.  The score is then
``w * cosine + (1 - w) * coverage + bonus * type`` (qa/retrieval.py), with
w = 0.5 and bonus = 0.04 in this grid.  Neighbours
are taken within a paragraph; ``--across-paragraphs`` lifts that.

``--model DIR --half H`` scores the engine before and the shipped setting on
half ``H`` alone with another embedder: a model fine-tuned on the other half
(``python -m qa.training.embedder --half 1-H --out DIR``) is so judged only
on articles it was not trained on.

``--models DIR0 DIR1`` (``DIRh`` fine-tuned on half h) tunes the settings
together with the fine-tuned vectors: each half is read by the embedder that
never saw it, a grid that also moves the cosine's share of the score (against
term coverage) and the answer-type bonus is scored on one half, and the best
is tested on the other, both ways.  Only settings the engine can compute from
its store are in that grid (the sentence before and after, summed vectors).
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
V11 = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"

from qa.retrieval import CONTEXT_COSINE, DENSE_WEIGHT, PREVIOUS_TERM_WEIGHT, TYPE_BONUS  # noqa: E402

# (pair cosine share, pair, previous, next, title, paragraph term weights, paragraph cosine share,
#  cosine's share of the score, answer-type bonus)
BASE = (0.0, "sum", 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.04)
SHIPPED_BEFORE = (0.5, "sum", 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.04)  # chosen with the base embedder
SHIPPED = (CONTEXT_COSINE, "sum", PREVIOUS_TERM_WEIGHT, 0.0, 0.0, 0.0, 0.0, DENSE_WEIGHT, TYPE_BONUS)
GRID = [p + (0.5, 0.04) for p in itertools.product([0, .25, .5], ["sum", "text"], [0, .25, .5], [0, .25], [0, .25],
                                                   [0, .15], [0, .15]) if not (p[0] == 0 and p[1] == "text")]
TUNED_GRID = [(share, "sum", prev, nxt, 0.0, 0.0, 0.0, dense, bonus)
              for share, prev, nxt, dense, bonus in itertools.product(
                  [0, .25, .5, .75], [0, .25, .5, .75], [0, .25], [.4, .5, .6, .7], [.02, .04, .06])]


def embedded(path: Path, model: str | None = None) -> list[dict]:
    """Per article: sentences split within paragraphs as the engine does, their vectors, questions."""
    from qa.models.embedder import BASE_MODEL, Embedder
    from qa.terms import tokenize
    from qa.training.embedder import articles

    # The shipped embedder was fine-tuned on these articles: the base model saw none of them.
    model = model or BASE_MODEL
    tag = "".join(c if c.isalnum() else "_" for c in (str(Path(model).resolve()) if Path(model).exists() else model))
    cache = Path(tempfile.gettempdir()) / f"qa-context-{path.stem}-{tag}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    embedder = Embedder(model).load()
    data = []
    for article in articles(path):
        sentences, paragraph = article["sentences"], article["paragraphs"]
        pairs = [(sentences[i - 1] + " " if i and paragraph[i - 1] == paragraph[i] else "") + sentences[i]
                 for i in range(len(sentences))]
        questions = [q for q, _ in article["questions"]]
        data.append(dict(paragraph=np.array(paragraph), sentences=sentences,
                         tokens=tokenize(sentences), vectors=embedder.embed(sentences),
                         pair_vectors=embedder.embed(pairs), questions=questions,
                         question_tokens=tokenize(questions), question_vectors=embedder.embed(questions),
                         title_tokens=tokenize([article["title"].replace("_", " ")])[0],
                         right=[right for _, right in article["questions"]]))
        print(f"embedded {article['title']}", file=sys.stderr)
    cache.write_bytes(pickle.dumps(data))
    return data


def signals(data: list[dict], across_paragraphs: bool, half: int | None = None) -> list[dict]:
    """Per answerable question (of the articles of ``half`` alone, when given): every sentence's cosines
    and which question terms it and its neighbours hold."""
    from qa.answer_types import answer_type

    out = []
    for a, d in enumerate(data):
        if half is not None and a % 2 != half:
            continue
        n, para = len(d["sentences"]), d["paragraph"]
        linked = np.ones(n, dtype=bool) if across_paragraphs else np.r_[False, para[1:] == para[:-1]]
        prev = np.where(linked & (np.arange(n) > 0), np.arange(n) - 1, -1)
        nxt = np.r_[np.where(linked[1:], np.arange(1, n), -1), -1]
        df = Counter(t for tokens in d["tokens"] for t in set(tokens))
        held_sets = [set(t) for t in d["tokens"]]
        summed = d["vectors"] + np.where(prev[:, None] >= 0, d["vectors"][prev], 0)
        summed /= np.linalg.norm(summed, axis=1, keepdims=True)
        mean = np.zeros((para.max() + 1, d["vectors"].shape[1]))
        np.add.at(mean, para, d["vectors"])
        mean /= np.linalg.norm(mean, axis=1, keepdims=True)
        for qi, question in enumerate(d["questions"]):
            terms = list(dict.fromkeys(d["question_tokens"][qi]))
            idf = np.array([np.log(1 + (n - df.get(t, 0) + .5) / (df.get(t, 0) + .5)) for t in terms])
            held = np.array([[t in s for s in held_sets] for t in terms], dtype=float).reshape(len(terms), n)
            in_paragraph = np.zeros((len(terms), para.max() + 1))
            for j in range(len(terms)):
                np.maximum.at(in_paragraph[j], para, held[j])
            q = d["question_vectors"][qi]
            wanted = answer_type(question)
            out.append(dict(
                article=a, weights=idf / idf.sum() if idf.sum() else idf, held=held,
                prev=np.where(prev >= 0, held[:, prev], 0), next=np.where(nxt >= 0, held[:, nxt], 0),
                title=np.array([[t in d["title_tokens"]] for t in terms], dtype=float) * np.ones((1, n)),
                paragraph=in_paragraph[:, para], cosine=d["vectors"] @ q, sum=summed @ q,
                text=d["pair_vectors"] @ q, paragraph_cosine=(mean @ q)[para],
                type=np.array([bool(wanted and wanted.holds.search(s)) for s in d["sentences"]], dtype=float),
                correct=np.isin(np.arange(n), d["right"][qi])))
    return out


def score(q: dict, setting: tuple) -> np.ndarray:
    share, pair, w_prev, w_next, w_title, w_paragraph, share_paragraph, dense, bonus = setting
    cosine = (1 - share - share_paragraph) * q["cosine"] + share * q[pair] + share_paragraph * q["paragraph_cosine"]
    held = q["held"]
    for weight, name in ((w_prev, "prev"), (w_next, "next"), (w_title, "title"), (w_paragraph, "paragraph")):
        held = np.maximum(held, weight * q[name])
    coverage = q["weights"] @ held if len(q["weights"]) else 0.0
    return dense * cosine + (1 - dense) * coverage + bonus * q["type"]


def hits(questions: list[dict], setting: tuple) -> np.ndarray:
    """hit@1 and hit@3 over ``questions``."""
    found = np.zeros(2)
    for q in questions:
        order = np.argsort(-score(q, setting), kind="stable")
        found += q["correct"][order[0]], q["correct"][order[:3]].any()
    return found / len(questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=V11)
    parser.add_argument("--across-paragraphs", action="store_true")
    parser.add_argument("--model", help="another embedder: a model folder or a manifest name (default: the base model)")
    parser.add_argument("--half", type=int, choices=(0, 1), help="with --model: score this half only")
    parser.add_argument("--models", nargs=2, metavar=("DIR0", "DIR1"),
                        help="embedders fine-tuned on half 0 and half 1: tune the settings with them")
    args = parser.parse_args()
    if args.models:
        # Half h is read by the embedder fine-tuned on the other half.
        halves = [signals(embedded(args.squad, args.models[1 - h]), args.across_paragraphs, half=h) for h in (0, 1)]
        cross_validate(halves, TUNED_GRID)
        return
    questions = signals(embedded(args.squad, args.model), args.across_paragraphs)
    halves = [[q for q in questions if q["article"] % 2 == h] for h in (0, 1)]
    if args.half is not None:
        for name, setting in (("engine before", BASE), ("shipped before", SHIPPED_BEFORE), ("shipped", SHIPPED)):
            print(f"half {args.half}, {args.model or 'the base model'}: {name:14s} hit@1/hit@3 "
                  f"{hits(halves[args.half], setting).round(4)} ({len(halves[args.half])} questions)")
        return
    cross_validate(halves, GRID)


def cross_validate(halves: list[list[dict]], grid: list[tuple]) -> None:
    """The best of ``grid`` on each half, tested on the other; totals over both."""
    tested = {name: np.zeros(2) for name in ("chosen on the other half", "engine before", "shipped before", "shipped")}
    for h in (0, 1):
        chosen = max(grid, key=lambda s: tuple(hits(halves[h], s)))
        test = halves[1 - h]
        print(f"chosen on half {h}: {chosen}; on half {1 - h}: hit@1/hit@3 {hits(test, chosen).round(4)} "
              f"(engine before {hits(test, BASE).round(4)})")
        for name, setting in (("chosen on the other half", chosen), ("engine before", BASE),
                              ("shipped before", SHIPPED_BEFORE), ("shipped", SHIPPED)):
            tested[name] += hits(test, setting) * len(test)
    n = len(halves[0]) + len(halves[1])
    for name, found in tested.items():
        print(f"{name:26s} hit@1 {found[0] / n:.4f}  hit@3 {found[1] / n:.4f}  ({n} questions)")


if __name__ == "__main__":
    main()
