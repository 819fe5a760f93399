"""A cross-encoder ("reader") that reads question and sentence together: trained, measured, not shipped.

    .venv/bin/python benchmarks/cross_encoder.py candidates   # the engine's top 20 per question (CPU, 2 min)
    python3 benchmarks/cross_encoder.py fit --base DIR         # torch; on a GPU (below), not on 2 cores
    .venv/bin/python benchmarks/cross_encoder.py report       # figures from the held-out scores
    .venv/bin/python benchmarks/cross_encoder.py seed         # the model trained on all, on the seed set

The embedder reads question and sentence apart and the coverage counts words;
neither sees whether the sentence says what is asked.  This reader takes
"[CLS] question [SEP] sentence [SEP] sentence before [SEP]" (128 word pieces
at most) through all-MiniLM-L6-v2's six layers (its word-piece table frozen),
mean-pools, and gives one logit: does the sentence answer the question.
Its examples are the engine's own candidates: every question of
../shared/eval's SQuAD v1.1 and v2.0 files asked of its article with the base
embedder (which saw none of them), the 20 sentences ``Assistant.ask`` would
see, positive when covering a gold answer; every candidate of an
unanswerable v2.0 question is a negative.  Loss: pointwise binary
cross-entropy plus a listwise softmax over each answerable question's 20.

``fit`` trains one model on the even articles of v1.1's order (with the v2.0
articles of the same titles), one on the odd, and one on all; each question
is scored by the half model that never saw its article (``held_out_scores``),
and ``report`` judges only those scores.  ``fit`` imports nothing of ``qa``, so
a machine with torch and transformers alone runs it as a file.  On a lent GPU
(one call; the working tree travels whole and may hold 64 MiB, so the
fine-tuned embedder's 45 MB must step aside for the base model's):

    .venv/bin/python benchmarks/cross_encoder.py candidates --build build/device
    .venv/bin/python benchmarks/cross_encoder.py base --build build/device      # fp16 copy, 45 MB
    mv models/all-MiniLM-L6-v2-squad /tmp/    # back afterwards
    device run, carry ["build/device"]:
      python3 benchmarks/cross_encoder.py fit --build build/device --base build/device/base --epochs 3
        --deadline 200 2>&1 | grep -v Warn | tail; cp build/device/held_out_scores.json.gz $OUT/;
      split -b 12000000 -d build/device/reader.safetensors $OUT/reader.part   # 16 MiB a file comes back

Measured (2026-11-30, one epoch, the one H200 lease of that session; ``report``):
- on an H200, one epoch of the even half (382 steps of 16 questions x 20
  candidates) took 31 s, the odd half 23 s, all 685 steps 50 s: ~80 ms a
  step, tokenization included.  The first try, three configurations at once
  (6 layers x 3 epochs, 3 x 3, 6 x 6), finished none in its 560 s; 3 epochs
  of the three models one after the other are ~4,100 steps, ~6 min.
- SQuAD v1.1, 5,397 questions, held out: the engine with the base embedder
  hit@1 0.743 / hit@3 0.886; the reader alone re-ranking its top 10 0.713 /
  0.872; engine score + weight x reader logit over its top n, weight and n
  chosen on the other half of the articles, 0.758 / 0.892.
  The shipped fine-tuned embedder gives 0.758 / 0.903 held out at no cost per
  question; re-ranking the candidates of the two half-trained embedders
  (``candidates --embedders``, ``report --other``) goes 0.756 / 0.900 ->
  0.762 / 0.900; a reader costs ~60 ms for 10 candidates in int8 on these 2 cores
  (issue 7's measurement) and its weights (22 MB in fp16 beside the
  embedder's 45) would break the 50 MB budget.
- SQuAD v2.0, answerable or not: AUC 0.58 for the reader's probability of
  the first sentence, 0.59 for the engine's top score: no help.
- Seed (never trained on): 36 of 38 standalone questions right first with
  or without it; q49-q51 (unanswerable, answered) get its highest
  probabilities (0.98, 0.52, 0.47).
One epoch does not beat the engine's formula (a CPU-trained one, issue 7:
alone 0.662); whether three or more do is the open question for a session
with a GPU.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for candidates and report; fit needs no qa
SHARED = ROOT.parent / "shared" / "eval"
SQUAD = {"v1.1": SHARED / "squad_v1.1_dev_public.jsonl", "v2.0": SHARED / "squad_v2.0_dev_public.jsonl"}
BUILD = ROOT / "build" / "cross_encoder"
CANDIDATES_FILE = "candidates.json.gz"
HELD_OUT_FILE = "held_out_scores.json.gz"
WEIGHTS_FILE = "reader.safetensors"
TOP_K = 20  # what Assistant.ask retrieves for k <= 10
MAX_TOKENS = 128  # question + sentence + the sentence before; SQuAD's pairs are 60 word pieces at the median
LAYERS = 6
EPOCHS = 1
QUESTIONS_PER_BATCH = 16  # x 20 candidates
LEARNING_RATE = 4e-5
SEED = 0
FROZEN = "embeddings.word_embeddings.weight"  # taken from the base model when loading


def candidates(build: Path, embedders: list[Path] | None = None) -> None:
    """Every question's 20 engine candidates, sentences stored once per article.  The engine reads
    with the base embedder, or with ``embedders`` = (EVEN, ODD): each article with the one of two
    fine-tuned embedders that never saw it (``qa.training.embedder --half 0 / 1``)."""
    from qa.assistant import Assistant
    from qa.embeddings import BASE_MODEL
    from qa.evaluation import corpus_key, is_correct, open_corpora, read_squad
    from qa.index import default_data_dir
    from qa.training.answerability import held_out_embedders

    data_dir = default_data_dir()
    fold = {json.loads(line)["title"]: n % 2 for n, line in enumerate(SQUAD["v1.1"].open(encoding="utf-8"))}
    articles, questions = {}, []
    for version, path in SQUAD.items():
        items = read_squad(path, data_dir / "squad" / path.stem)
        titles = [json.loads(line)["title"] for line in path.open(encoding="utf-8")]
        # Articles come in file order, one corpus each.
        model = dict(zip(dict.fromkeys(corpus_key(item, []) for item in items),
                         map(held_out_embedders(*embedders), titles) if embedders else [BASE_MODEL] * len(titles)))
        assistants = open_corpora(items, [], lambda paths: Assistant(
            paths, model=model[tuple(str(p) for p in paths)], data_dir=data_dir, rebuild="stale"))
        keys = list(assistants)
        for key, title in zip(keys, titles):
            segments = assistants[key].segments
            retriever = assistants[key].retriever
            articles[f"{version}/{title}"] = {
                "sentences": [s.text for s in segments],
                "previous": [retriever._previous(i) for i in range(len(segments))]}
        for item in items:
            key = corpus_key(item, [])
            title = titles[keys.index(key)]
            passages = assistants[key].retriever.retrieve(item.question, top_k=TOP_K)
            questions.append({
                "id": item.id, "article": f"{version}/{title}", "fold": fold[title], "question": item.question,
                "answerable": item.answerable, "positions": [p.segment.position for p in passages],
                "scores": [round(p.score, 5) for p in passages],
                "correct": [is_correct(item, p.segment.doc_id, p.segment.start, p.segment.end, p.segment.text)
                            for p in passages]})
        print(f"{version}: {len(items)} questions", file=sys.stderr)
    build.mkdir(parents=True, exist_ok=True)
    with gzip.open(build / CANDIDATES_FILE, "wt", encoding="utf-8") as f:
        json.dump({"articles": articles, "questions": questions}, f)


def base_copy(build: Path) -> None:
    """The base model in fp16 under ``build/base`` (45 MB), to carry to a GPU machine."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from qa.embeddings import BASE_MODEL, resolve_model

    source, target = resolve_model(BASE_MODEL).path, build / "base"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(source / name, target / name)
    weights = load_file(str(source / "model.safetensors"))
    save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in weights.items()},
              str(target / "model.safetensors"))


def pair_text(sentence: str, previous: str | None) -> str:
    """The reader's second segment: the sentence, then the one before it (cut first when too long)."""
    return f"{sentence} [SEP] {previous}" if previous else sentence


def build_scorer(base: Path, layers: int = LAYERS):
    """The reader's network, from the base model's first ``layers`` layers (torch imported here only)."""
    import torch
    from transformers import AutoModel

    class Scorer(torch.nn.Module):
        """The transformer, mean pooling over the pair's tokens (as the base model pools), one logit."""

        def __init__(self):
            super().__init__()
            # fp32 whatever the file holds: the optimizer keeps its state in the weights' type.
            self.bert = AutoModel.from_pretrained(str(base), attn_implementation="eager",
                                                  add_pooling_layer=False).float()
            self.bert.encoder.layer = self.bert.encoder.layer[:layers]
            self.bert.config.num_hidden_layers = layers
            self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).squeeze(-1)

    return Scorer()


def _examples(data: dict, questions: list[dict]) -> list[tuple[str, list[str], list[bool]]]:
    out = []
    for q in questions:
        article = data["articles"][q["article"]]
        texts = [pair_text(article["sentences"][p], article["sentences"][article["previous"][p]]
                           if article["previous"][p] >= 0 else None) for p in q["positions"]]
        out.append((q["question"], texts, q["correct"]))
    return out


def _train(base: Path, examples, layers: int, epochs: int, device: str, log, after_epoch=None, deadline=None):
    """The reader trained on ``examples``; ``after_epoch(epoch, model, tokenizer)`` may look at it
    after each epoch (the learning rate decays over all ``epochs``, so epoch 2 of 3 is not a 2-epoch run)."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = build_scorer(base, layers).to(device)
    model.bert.get_input_embeddings().weight.requires_grad = False
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.01)
    batches = math.ceil(len(examples) / QUESTIONS_PER_BATCH)
    steps = epochs * batches
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, (steps - s) / steps))
    model.train()
    started, step = time.perf_counter(), 0
    for epoch in range(epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for b in range(batches):
            batch = [examples[i] for i in order[b * QUESTIONS_PER_BATCH:(b + 1) * QUESTIONS_PER_BATCH]]
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
                logits = _logits(model, tokenizer, batch, device).float()
            labels = torch.tensor([float(c) for _, _, correct in batch for c in correct], device=device)
            # Pointwise: is this sentence an answer (calibrated, for answerability); listwise: which
            # of the question's candidates is (for ranking), over questions with an answer among them.
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            start, listwise = 0, []
            for _, texts, correct in batch:
                group, wanted = logits[start:start + len(texts)], labels[start:start + len(texts)]
                start += len(texts)
                if wanted.any():
                    listwise.append(torch.logsumexp(group, 0) - torch.logsumexp(group[wanted > 0], 0))
            if listwise:
                loss = loss + torch.stack(listwise).mean()
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if deadline and time.perf_counter() - started > deadline:
                break
            if step % 50 == 0 or step == steps:
                log(f"layers {layers} epoch {epoch + 1} step {step}/{steps} loss {loss.item():.3f} "
                    f"{time.perf_counter() - started:.0f} s")
        stopped = bool(deadline) and time.perf_counter() - started > deadline
        if stopped:
            log(f"stopped at step {step}/{steps}: past the deadline")
        if after_epoch:
            model.eval()
            # A model stopped early is the last one: its scores stand for the final epoch's.
            after_epoch(epochs if stopped else epoch + 1, model, tokenizer)
            model.train()
        if stopped:
            break
    model.eval()
    return model, tokenizer


def _logits(model, tokenizer, batch, device: str):
    """One logit per (question, candidate) pair of ``batch``'s examples, in order."""
    feed = tokenizer([q for q, texts, _ in batch for _ in texts], [t for _, texts, _ in batch for t in texts],
                     truncation="only_second", max_length=MAX_TOKENS, padding=True, return_tensors="pt").to(device)
    return model(feed["input_ids"], feed["attention_mask"], feed["token_type_ids"])


def _score(model, tokenizer, examples, device: str) -> list[list[float]]:
    import torch

    out = []
    with torch.no_grad():
        for b in range(0, len(examples), QUESTIONS_PER_BATCH):
            batch = examples[b:b + QUESTIONS_PER_BATCH]
            logits = _logits(model, tokenizer, batch, device).float().tolist()
            for _, texts, _ in batch:
                out.append([round(x, 4) for x in logits[:len(texts)]])
                logits = logits[len(texts):]
    return out


def fit(candidates_file: Path, base: Path, out: Path, layers: int = LAYERS, epochs: int = EPOCHS,
        limit: int | None = None, deadline: float | None = None) -> None:
    """Held-out scores from the two half models (after each epoch; the last are the figures'), and
    the weights of the model trained on all.  ``deadline``: seconds of training per model, a guard
    for a lease (a model stopped early keeps a learning rate not yet decayed)."""
    import torch
    from safetensors.torch import save_file

    device = "cuda" if torch.cuda.is_available() else "cpu"
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with gzip.open(candidates_file, "rt", encoding="utf-8") as f:
        data = json.load(f)
    questions = data["questions"]
    questions = questions[::max(1, len(questions) // limit)] if limit else questions
    by_epoch = [{} for _ in range(epochs)]
    for half in (0, 1):
        train = [q for q in questions if q["fold"] == half]
        test = [q for q in questions if q["fold"] != half]

        def record(epoch, model, tokenizer, test=test):
            for q, scores in zip(test, _score(model, tokenizer, _examples(data, test), device)):
                by_epoch[epoch - 1][_key(q)] = scores

        _train(base, _examples(data, train), layers, epochs, device, log, record, deadline)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / HELD_OUT_FILE, "wt", encoding="utf-8") as f:
        json.dump({"layers": layers, "epochs": epochs, "scores": by_epoch[-1], "scores_by_epoch": by_epoch}, f)
    model, _ = _train(base, _examples(data, questions), layers, epochs, device, log, deadline=deadline)
    state = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in model.state_dict().items()
             if not k.endswith(FROZEN)}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"layers": str(layers), "max_tokens": str(MAX_TOKENS)})
    log(f"{out / WEIGHTS_FILE}: {(out / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB")


def _key(q: dict) -> str:
    return f"{q['article'].split('/')[0]}/{q['id']}"


def _hits(questions: list[dict], scores: dict, weight: float | None, read: int) -> np.ndarray:
    """hit@1, hit@3 when the engine's first ``read`` candidates are re-ranked by score + weight x logit
    (``weight`` None: by the logit alone)."""
    found = np.zeros(2)
    for q in questions:
        engine, logit = np.array(q["scores"][:read]), np.array(scores[_key(q)][:read])
        head = np.argsort(-(logit if weight is None else engine + weight * logit), kind="stable")
        order = [*head, *range(len(head), len(q["scores"]))]
        correct = np.array(q["correct"])[order]
        found += correct[0], correct[:3].any()
    return found / len(questions)


def report(build: Path, other: Path | None = None) -> None:
    """Ranking on v1.1 (the blend chosen on one half of the articles, tested on the other) and
    answerability on v2.0, from the held-out scores alone.  ``other``: a folder whose candidates
    (another engine's, ``candidates --embedders``) are re-ranked instead, with the logits the
    held-out models gave the same sentences; a sentence they never read gets its question's lowest."""
    from qa.evaluation import auc

    with gzip.open(build / CANDIDATES_FILE, "rt", encoding="utf-8") as f:
        questions = json.load(f)["questions"]
    with gzip.open(build / HELD_OUT_FILE, "rt", encoding="utf-8") as f:
        scores = json.load(f)["scores"]
    if other:
        read = {_key(q): dict(zip(q["positions"], scores[_key(q)])) for q in questions}
        with gzip.open(other / CANDIDATES_FILE, "rt", encoding="utf-8") as f:
            questions = json.load(f)["questions"]
        unread = sum(p not in read[_key(q)] for q in questions for p in q["positions"][:10])
        scores = {_key(q): [read[_key(q)].get(p, min(read[_key(q)].values())) for p in q["positions"]]
                  for q in questions}
        print(f"{other}: {unread} of the first 10 candidates never read by the held-out models")
    v11 = [q for q in questions if q["article"].startswith("v1.1/")]
    grid = [(w, n) for w in (0.01, 0.02, 0.03, 0.05, 0.08, 0.12) for n in (5, 10, 20)]
    tested = {"engine": np.zeros(2), "reader alone, top 10": np.zeros(2), "blend chosen on the other half": np.zeros(2)}
    for half in (0, 1):
        chosen = max(grid, key=lambda g: tuple(_hits([q for q in v11 if q["fold"] == half], scores, *g)))
        test = [q for q in v11 if q["fold"] != half]
        print(f"chosen on half {half}: weight {chosen[0]}, top {chosen[1]}")
        for name, setting in (("engine", (0.0, TOP_K)), ("reader alone, top 10", (None, 10)),
                              ("blend chosen on the other half", chosen)):
            tested[name] += _hits(test, scores, *setting) * len(test)
    for name, found in tested.items():
        print(f"v1.1 {name:32s} hit@1 {found[0] / len(v11):.4f}  hit@3 {found[1] / len(v11):.4f}  ({len(v11)} questions)")
    v20 = [q for q in questions if q["article"].startswith("v2.0/")]
    answerable = np.array([q["answerable"] for q in v20])
    first = np.array([scores[_key(q)][0] for q in v20])
    print(f"v2.0 answerable or not, AUC: reader on the first sentence {auc(first, answerable):.3f}, "
          f"engine top score {auc(np.array([q['scores'][0] for q in v20]), answerable):.3f} ({len(v20)} questions)")


def seed(build: Path, base: Path) -> None:
    """The model trained on all, re-ranking the shipped engine's top 10 on the seed test set."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from qa import Assistant
    from qa.evaluation import is_correct, read_testset

    model = build_scorer(base)
    model.load_state_dict(load_file(str(build / WEIGHTS_FILE)), strict=False)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    assistant = Assistant(["seeds/"], data_dir=build / "seed-index", rebuild="stale").load()
    segments = assistant.segments
    before = {s: assistant.retriever._previous(i) for i, s in enumerate(segments)}
    weights, found = (None, 0.0, 0.03, 0.05), Counter()
    for item in read_testset(ROOT / "seeds" / "questions.jsonl"):
        if item.history:
            continue
        passages = assistant.retriever.retrieve(item.question, top_k=10)
        texts = [pair_text(p.segment.text, segments[before[p.segment]].text if before[p.segment] >= 0 else None)
                 for p in passages]
        with torch.no_grad():
            logit = _logits(model, tokenizer, [(item.question, texts, None)], "cpu").numpy()
        if not item.answerable:
            print(f"{item.id} (unanswerable): reader's highest probability {1 / (1 + np.exp(-logit.max())):.2f}")
            continue
        correct = np.array([is_correct(item, p.segment.doc_id, p.segment.start, p.segment.end, p.segment.text)
                            for p in passages])
        engine = np.array([p.score for p in passages])
        found["questions"] += 1
        for w in weights:
            found[w] += correct[np.argmax(logit if w is None else engine + w * logit)]
    print(f"seed, {found.pop('questions')} standalone answerable questions right first: "
          + ", ".join(f"{'reader alone' if w is None else f'weight {w}'} {found[w]}" for w in weights))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("candidates", "base", "fit", "report", "seed"))
    parser.add_argument("--build", type=Path, default=BUILD, help=f"working folder (default: {BUILD})")
    parser.add_argument("--base", type=Path, help="the base model folder (default: the verified all-MiniLM-L6-v2)")
    parser.add_argument("--layers", type=int, default=LAYERS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--deadline", type=float, help="seconds of training per model at most")
    parser.add_argument("--limit", type=int, help="about N questions, spread over the articles (a quick try)")
    parser.add_argument("--embedders", nargs=2, type=Path, metavar=("EVEN", "ODD"),
                        help="candidates: read each article with the fine-tuned embedder that never saw it")
    parser.add_argument("--other", type=Path, help="report: re-rank this folder's candidates instead")
    args = parser.parse_args(argv)
    if args.step == "candidates":
        candidates(args.build, args.embedders)
    elif args.step == "base":
        base_copy(args.build)
    elif args.step == "report":
        report(args.build, args.other)
    else:
        if args.base is None:
            from qa.embeddings import BASE_MODEL, resolve_model
            args.base = resolve_model(BASE_MODEL).path
        if args.step == "fit":
            fit(args.build / CANDIDATES_FILE, args.base, args.build, args.layers, args.epochs, args.limit,
                args.deadline)
        else:
            seed(args.build, args.base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
