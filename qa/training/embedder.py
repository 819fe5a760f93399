"""Fine-tune the sentence embedder on SQuAD v1.1's public articles and write it to ``models/``.

    .venv/bin/python -m qa.training.embedder            # or: make train-embedder
    .venv/bin/python -m qa.training.embedder --half 0 --out /tmp/tuned-0 [--epochs 2] [--negatives 3]
        [--unanswerable] [--mine-with DIR]

Starting from the verified all-MiniLM-L6-v2, one epoch of multiple-negatives
ranking: each question is paired with its answer sentence and, as a hard
negative, the sentence of its article the base model finds most similar,
and learns to pick its own sentence among all 64 of its batch of 32.  The
weights are written in fp16 (half the bytes: 45 MB, within the 50 MB the
project allows in git) with a manifest like the base model's: the sha256 of every file, the base
model, the training data and its license (SQuAD: CC BY-SA 4.0; the base
model: Apache-2.0).  ``--half 0`` / ``--half 1`` trains on the even / odd
articles only, for the cross-validated figures of
``research/context_units.py --model``.  ``--unanswerable`` also trains on
the unanswerable questions of SQuAD v2.0's articles of the same titles: a
learned "no answer" level joins every question's choices, an answerable
question's sentence must beat it and an unanswerable question must choose it
over its article's sentences, most similar first.  ``--mine-with DIR`` finds
the hard negatives with another model, e.g. one already fine-tuned, whose
mistakes are harder than the base model's (docs/choices.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from ..models.embedder import BASE_MODEL, DEFAULT_MODEL
from ..models.manifest import MODELS_DIR, resolve_model
from ..segments import split_sentences
from ..store import checksums

ROOT = Path(__file__).resolve().parents[2]
SQUAD = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"
SQUAD_V20 = ROOT.parent / "shared" / "eval" / "squad_v2.0_dev_public.jsonl"
COMMAND = ".venv/bin/python -m qa.training.embedder"
BATCH = 32
LEARNING_RATE = 2e-5
SCALE = 20.0  # cosine -> logit, as sentence-transformers' MultipleNegativesRankingLoss
SEED = 0
NO_ANSWER_LEVEL = 0.5  # the "no answer" cosine's start (--unanswerable)
NO_ANSWER_LEARNING_RATE = 1e-3


def articles(path: Path) -> list[dict]:
    """Per article: its sentences split within paragraphs as the engine splits them, each one's
    paragraph number, and for each question with answers the sentences covering one (maybe none:
    a split can cut an answer in two), and its unanswerable questions."""
    out = []
    for line in path.open(encoding="utf-8"):
        article = json.loads(line)
        sentences = [(p, s, e, text[s:e]) for p, text in enumerate(article["paragraphs"])
                     for s, e in split_sentences(text)]
        questions = [(q["question"], [i for i, (p, s, e, _) in enumerate(sentences)
                                      if any(a["paragraph"] == p and s <= a["answer_start"]
                                             and a["answer_start"] + len(a["text"]) <= e for a in q["answers"])])
                     for q in article["qas"] if q["answers"]]
        out.append({"title": article["title"], "sentences": [t for *_, t in sentences],
                    "paragraphs": [p for p, *_ in sentences], "questions": questions,
                    "unanswerable": [q["question"] for q in article["qas"] if not q["answers"]]})
    return out


def with_unanswerable(data: list[dict], path: Path = SQUAD_V20) -> list[dict]:
    """``data`` with the unanswerable questions of ``path``'s articles of the same titles
    (their answerable ones are v1.1's, already there)."""
    extra = {a["title"]: a["unanswerable"] for a in articles(path)}
    return [{**a, "unanswerable": a["unanswerable"] + extra.get(a["title"], [])} for a in data]


def examples(model, data: list[dict], negatives: int = 1) -> list[tuple[str, str | None, list[str]]]:
    """(question, answer sentence, its ``negatives`` hardest negatives: the sentences of its article
    the model finds most similar) for every answerable question of ``data``; then (question, None,
    hardest sentences) for every unanswerable one."""
    rows, unanswerable = [], []
    for article in data:
        sentences = model.encode(article["sentences"], batch_size=64, normalize_embeddings=True)
        questions = model.encode([q for q, _ in article["questions"]], batch_size=64, normalize_embeddings=True)
        for (question, right), vector in zip(article["questions"], questions):
            if not right:
                continue
            similarity = sentences @ vector
            similarity[right] = -np.inf
            hardest = np.argsort(-similarity, kind="stable")[:negatives]
            rows.append((question, article["sentences"][right[0]], [article["sentences"][i] for i in hardest]))
        if article["unanswerable"]:
            vectors = model.encode(article["unanswerable"], batch_size=64, normalize_embeddings=True)
            for question, vector in zip(article["unanswerable"], vectors):
                hardest = np.argsort(-(sentences @ vector), kind="stable")[:negatives]
                unanswerable.append((question, None, [article["sentences"][i] for i in hardest]))
    return rows + unanswerable


def train(data: list[dict], progress=print, epochs: int = 1, negatives: int = 1, miner: Path | None = None):
    """The base model after ``epochs`` passes over ``data``'s questions, each with ``negatives``
    hard negatives (the shipped one: one and one), found by ``miner`` (default: the base model)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    model = SentenceTransformer(str(resolve_model(BASE_MODEL).path), device="cpu", local_files_only=True)
    mining = SentenceTransformer(str(miner), device="cpu", local_files_only=True) if miner else model
    rows = examples(mining, data, negatives)
    per_epoch = len(rows) // BATCH
    steps = epochs * per_epoch
    # With unanswerable questions, a "no answer" cosine is one more choice for every question.
    level = torch.nn.Parameter(torch.tensor(NO_ANSWER_LEVEL)) if any(r[1] is None for r in rows) else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    if level is not None:
        optimizer.add_param_group({"params": [level], "lr": NO_ANSWER_LEARNING_RATE, "weight_decay": 0.0})
    # Linear warm-up over the first tenth, then linear decay to zero.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * (steps - s) / steps)
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        if step % per_epoch == 0:
            rng.shuffle(rows)
        batch = rows[step % per_epoch * BATCH:(step % per_epoch + 1) * BATCH]
        answers = [s for _, s, _ in batch if s is not None]
        questions = model(model.preprocess([q for q, _, _ in batch]))["sentence_embedding"]
        sentences = model(model.preprocess(answers + [n for *_, hard in batch for n in hard]))["sentence_embedding"]
        logits = SCALE * questions @ sentences.T
        if level is None:
            target = torch.arange(len(batch))
        else:
            logits = torch.cat([logits, SCALE * level.expand(len(batch), 1)], dim=1)
            answer_of = iter(range(len(answers)))
            target = torch.tensor([next(answer_of) if s is not None else logits.shape[1] - 1 for _, s, _ in batch])
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if (step + 1) % 10 == 0 or step + 1 == steps:
            no_answer = f"  no-answer level {level.item():.3f}" if level is not None else ""
            progress(f"step {step + 1}/{steps}  loss {loss.item():.3f}{no_answer}  {time.perf_counter() - started:.0f} s")
    model.eval()
    return model, len(rows)


def save(model, out: Path) -> dict:
    """The model in fp16 under ``out`` (its config still says float32, so loaders compute in fp32)."""
    model.half()
    model.save(str(out))
    (out / "README.md").unlink(missing_ok=True)  # a generated model card with dates: not reproducible
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    for key in ("dtype", "torch_dtype"):
        if key in config:
            config[key] = "float32"
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return {str(p.relative_to(out)): checksums.sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()}


def _count(n: int, thing: str) -> str:
    return f"one {thing}" if n == 1 else f"{n} {thing}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--half", type=int, choices=(0, 1), help="train on the even (0) or odd (1) articles only")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the questions (default: 1, as shipped)")
    parser.add_argument("--negatives", type=int, default=1, help="hard negatives per question (default: 1, as shipped)")
    parser.add_argument("--unanswerable", action="store_true",
                        help="also train on SQuAD v2.0's unanswerable questions of the same articles (not shipped)")
    parser.add_argument("--mine-with", type=Path, metavar="DIR",
                        help="find the hard negatives with this model, e.g. one already fine-tuned (not shipped)")
    parser.add_argument("--out", type=Path, help=f"model folder (default: models/{DEFAULT_MODEL}, with its manifest)")
    args = parser.parse_args(argv)
    if (args.unanswerable or args.mine_with) and args.out is None:
        parser.error("--unanswerable and --mine-with are experiments: give --out DIR (the shipped model trains "
                     "without them)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = articles(args.squad)
    if args.half is not None:
        data = data[args.half::2]
    if args.unanswerable:
        data = with_unanswerable(data)
    out = args.out or MODELS_DIR / DEFAULT_MODEL
    model, n = train(data, progress=lambda line: print(line, file=sys.stderr), epochs=args.epochs,
                     negatives=args.negatives, miner=args.mine_with)
    files = save(model, out)
    if args.out is None:
        base = json.loads((MODELS_DIR / f"{BASE_MODEL}.json").read_text(encoding="utf-8"))
        manifest = {
            "name": DEFAULT_MODEL,
            "description": f"{BASE_MODEL} fine-tuned on SQuAD v1.1 questions and their answer sentences "
                           f"({_count(args.epochs, 'epoch')}, multiple-negatives ranking loss, "
                           f"{_count(args.negatives, 'hard negative')} each); fp16",
            "source": {"path": DEFAULT_MODEL, "command": COMMAND},
            "base_model": {"name": BASE_MODEL, "upstream": base["upstream"], "revision": base["revision"],
                           "license": base["license"]},
            "training_data": f"SQuAD v1.1 dev, the {len(data)} public articles of ../shared/eval/{args.squad.name} "
                             f"({n} questions; Rajpurkar et al. 2016)",
            "license": "CC-BY-SA-4.0 (weights derived from SQuAD) over the base model's Apache-2.0",
            "weights": "model.safetensors",
            "dimension": base["dimension"],
            "max_seq_length": base["max_seq_length"],
            "files": files,
        }
        (MODELS_DIR / f"{DEFAULT_MODEL}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: {sum((out / f).stat().st_size for f in files) / 1e6:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
