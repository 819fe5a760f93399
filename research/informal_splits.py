"""What the informal-text splitter changes: paragraphs split differently and gold answers cut in two.

Compares nupunkt alone (the splitter before the informal-text rules) with ``qa.segments.split_sentences`` on
the SQuAD v1.1 public articles (each question's first gold answer, by its offset) and on the
informal test set (every place an answer's text stands in its documents).  Run from the
repository root:

    .venv/bin/python research/informal_splits.py [--squad ../shared/eval/squad_v1.1_dev_public.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qa import load_documents
from qa.segments import nupunkt_spans, split_sentences

INFORMAL = Path("tests/informal")


SPLITTERS = {"nupunkt alone": nupunkt_spans, "split_sentences": split_sentences}


def inside(spans, start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def squad(path: Path) -> None:
    articles = [json.loads(line) for line in path.open(encoding="utf-8")]
    paragraphs = [p for a in articles for p in a["paragraphs"]]
    splits = {name: [split(p) for p in paragraphs] for name, split in SPLITTERS.items()}
    old, new = splits.values()
    print(f"SQuAD: {sum(o != n for o, n in zip(old, new))} of {len(paragraphs)} paragraphs split differently")
    offsets = [sum(len(a["paragraphs"]) for a in articles[:i]) for i in range(len(articles))]
    for name, spans in splits.items():
        cut = total = 0
        for first, article in zip(offsets, articles):
            for qa in article["qas"]:
                answer = qa["answers"][0]
                start = answer["answer_start"]
                total += 1
                cut += not inside(spans[first + answer["paragraph"]], start, start + len(answer["text"]))
        print(f"  {name}: {cut} of {total} gold answers cut in two")


def informal() -> None:
    documents = load_documents([INFORMAL / "docs"])
    answers = [a for line in (INFORMAL / "questions.jsonl").open(encoding="utf-8")
               for a in json.loads(line).get("answers", [])]
    for name, split in SPLITTERS.items():
        spans, sentences, chars = [], 0, 0
        for doc in documents:
            for block in doc.blocks:
                if block.kind == "paragraph":
                    found = split(doc.text[block.start:block.end])
                    sentences += len(found)
                    chars += sum(b - a for a, b in found)
                    spans += [(doc.id, block.start + a, block.start + b) for a, b in found]
        whole = total = 0
        for answer in answers:
            for doc in documents:
                at = doc.text.find(answer)
                while at >= 0:
                    total += 1
                    whole += any(d == doc.id and a <= at and at + len(answer) <= b for d, a, b in spans)
                    at = doc.text.find(answer, at + 1)
        print(f"informal, {name}: {sentences} sentences of {chars / sentences:.0f} characters on average; "
              f"{whole} of {total} answer occurrences inside one sentence")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--squad", type=Path, default=Path("../shared/eval/squad_v1.1_dev_public.jsonl"))
    args = parser.parse_args()
    squad(args.squad)
    informal()
