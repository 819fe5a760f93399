"""The measurements behind the engine's design choices (docs/choices.md).

    .venv/bin/python research/compare_choices.py segmenters
    .venv/bin/python research/compare_choices.py fusion      [--squad FILE]
    .venv/bin/python research/compare_choices.py abstention  [--squad FILE]

Each SQuAD article is one document, split into sentences by the engine; a
sentence is correct when it covers a gold answer's span.  Sentence and
question vectors are computed once and cached in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "eval"
V11 = SHARED / "squad_v1.1_dev_public.jsonl"
V20 = SHARED / "squad_v2.0_dev_public.jsonl"


def articles(path: Path):
    for line in path.open(encoding="utf-8"):
        article = json.loads(line)
        offsets, pos = [], 0
        for paragraph in article["paragraphs"]:
            offsets.append(pos)
            pos += len(paragraph) + 2
        gold = [[(offsets[a["paragraph"]] + a["answer_start"], offsets[a["paragraph"]] + a["answer_start"] + len(a["text"]))
                 for a in q["answers"]] for q in article["qas"]]
        yield article, "\n\n".join(article["paragraphs"]), gold


def segmenters():
    import nupunkt
    import pysbd

    paragraphs = [(a, i, p) for a, _, _ in articles(V11) for i, p in enumerate(a["paragraphs"])]
    seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
    runs = {
        "pysbd": lambda text: [(s.start, s.end) for s in seg.segment(text)],
        "nupunkt": lambda text: list(nupunkt.sent_spans(text)),
    }
    for name, split in runs.items():
        started = time.perf_counter()
        spans = {(a["title"], i): split(p) for a, i, p in paragraphs}
        seconds = time.perf_counter() - started
        cut = total = 0
        for a, _, _ in articles(V11):
            for q in a["qas"]:
                answer = q["answers"][0]
                start, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
                total += 1
                cut += not any(s <= start and end <= e + 1 for s, e in spans[(a["title"], answer["paragraph"])])
        print(f"{name:8s} {len(paragraphs)} paragraphs in {seconds:.2f} s, "
              f"{sum(map(len, spans.values()))} sentences, gold answers cut in two: {cut} of {total}")


def cached(path: Path) -> list[dict]:
    """Per article: sentence spans, texts, tokens and vectors; questions, tokens, vectors, gold spans."""
    from qa.models.embedder import BASE_MODEL, Embedder
    from qa.terms import tokenize
    from qa.segments import split_sentences

    # The base model, as these figures were measured: the shipped one was fine-tuned on these articles.
    cache = Path(tempfile.gettempdir()) / f"qa-choices-{path.stem}-{BASE_MODEL}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    embedder = Embedder(BASE_MODEL).load()
    data = []
    for article, text, gold in articles(path):
        spans = split_sentences(text)
        sentences = [text[s:e] for s, e in spans]
        questions = [q["question"] for q in article["qas"]]
        data.append(dict(spans=spans, sentences=sentences, sentence_tokens=tokenize(sentences),
                         sentence_vectors=embedder.embed(sentences), questions=questions,
                         question_tokens=tokenize(questions), question_vectors=embedder.embed(questions), gold=gold))
        print(f"embedded {article['title']}", file=sys.stderr)
    cache.write_bytes(pickle.dumps(data))
    return data


def per_question(data):
    """Yield the signals every variant is built from, one question at a time."""
    import bm25s

    from qa.answer_types import answer_type

    for d in data:
        n = len(d["sentences"])
        df = Counter(t for tokens in d["sentence_tokens"] for t in set(tokens))
        token_sets = [set(tokens) for tokens in d["sentence_tokens"]]
        bm25 = bm25s.BM25()
        bm25.index(d["sentence_tokens"], show_progress=False)
        for qi, question in enumerate(d["questions"]):
            dense = d["sentence_vectors"] @ d["question_vectors"][qi]
            terms = list(dict.fromkeys(d["question_tokens"][qi]))
            idf = {t: np.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in terms}
            total = sum(idf.values()) or 1.0
            coverage = np.array([sum(idf[t] for t in terms if t in s) / total for s in token_sets])
            known = [t for t in terms if t in bm25.vocab_dict]
            lexical = bm25.get_scores(known) if known else np.zeros(n)
            kind = answer_type(question)
            holds = np.array([bool(kind and kind.holds.search(s)) for s in d["sentences"]], dtype=float)
            correct = np.array([any(s <= gs and ge <= e for gs, ge in d["gold"][qi]) for s, e in d["spans"]])
            yield dict(dense=dense, coverage=coverage, lexical=lexical, holds=holds, correct=correct,
                       answerable=bool(d["gold"][qi]))


def ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(-values))


VARIANTS = {
    "dense alone": lambda q: q["dense"],
    "BM25 alone": lambda q: q["lexical"],
    "RRF(dense, BM25)": lambda q: 1 / (60 + ranks(q["dense"])) + 1 / (60 + ranks(q["lexical"])),
    "dense + 0.5 * BM25/max": lambda q: q["dense"] + 0.5 * q["lexical"] / (q["lexical"].max() + 1e-9),
    "(dense + coverage) / 2": lambda q: (q["dense"] + q["coverage"]) / 2,
    "(dense + coverage) / 2 + 0.1 * BM25/max": lambda q: (q["dense"] + q["coverage"]) / 2
    + 0.1 * q["lexical"] / (q["lexical"].max() + 1e-9),
    "(dense + coverage) / 2 + 0.04 * type": lambda q: (q["dense"] + q["coverage"]) / 2 + 0.04 * q["holds"],
}


def fusion(path: Path):
    hits = {name: [0, 0] for name in VARIANTS}
    n = 0
    for q in per_question(cached(path)):
        if not q["answerable"]:
            continue
        n += 1
        for name, score in VARIANTS.items():
            order = np.argsort(-score(q))
            hits[name][0] += q["correct"][order[0]]
            hits[name][1] += q["correct"][order[:3]].any()
    print(f"{path.name}: {n} answerable questions, sentence-level")
    for name, (h1, h3) in hits.items():
        print(f"  {name:45s} hit@1 {h1 / n:.3f}  hit@3 {h3 / n:.3f}")


def abstention(path: Path):
    from sklearn.metrics import roc_auc_score

    rows = []
    for q in per_question(cached(path)):
        score = (q["dense"] + q["coverage"]) / 2 + 0.04 * q["holds"]
        order = np.argsort(-score)
        rows.append((q["answerable"], score[order[0]], score[order[0]] - score[order[1]], q["dense"][order[0]]))
    answerable = np.array([r[0] for r in rows])
    print(f"{path.name}: {len(rows)} questions, {int((~answerable).sum())} unanswerable")
    for i, name in enumerate(["top score", "margin over the second", "top sentence's cosine"], 1):
        print(f"  AUC of {name:24s} for 'answerable': {roc_auc_score(answerable, [r[i] for r in rows]):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["segmenters", "fusion", "abstention"])
    parser.add_argument("--squad", type=Path, help="SQuAD file (default: v1.1 for fusion, v2.0 for abstention)")
    args = parser.parse_args()
    if args.what == "segmenters":
        segmenters()
    elif args.what == "fusion":
        fusion(args.squad or V11)
    else:
        abstention(args.squad or V20)


if __name__ == "__main__":
    main()
