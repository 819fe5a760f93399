"""Train a reader (a cross-encoder) on SQuAD train, on an accelerator, and judge it on unseen dev articles.

    .venv/bin/python -m qa.training.reader prepare --out build/reader     # here, CPU, minutes
    python3 -m qa.training.reader run --data build/reader --out $OUT --minutes 5   # on the accelerator
    .venv/bin/python -m qa.training.reader report --data build/reader --scores DIR/scores.json.gz

The embedder reads question and sentence apart and the coverage counts words;
neither sees whether a sentence says what is asked.  The reader reads
"[CLS] question [SEP] sentence [SEP] sentence before [SEP]" (the sentence as the
engine reads it, in context; 128 word pieces at most, the sentence before cut
first) through all-MiniLM-L6-v2's six layers (its word-piece table frozen, so
the weights to keep are 21 MB in fp16), mean-pools, and gives one logit: does
the sentence answer the question.

Examples (``prepare``, ``qa.training.reader_data``): ../shared/train only, the
answerable questions of SQuAD v1.1 train (less the 10.8% whose answer offset was
guessed, ``offset_ambiguous``: their sentence label may be wrong) and the
unanswerable ones of v2.0 train whose paragraph link is confident, about 116k
question groups on 442 articles.  Each group is the answer sentence and
``--negatives`` of the engine's own top candidates for the question (``run``
mines them first: the engine's retriever over the article, with the base
embedder, in seconds on a GPU), or for an unanswerable question its top
candidates alone.  Loss: pointwise binary cross-entropy (a calibrated
probability, for answerability) plus a listwise softmax over each answerable
group (for ranking).  Training stops after ``--minutes`` or ``--epochs``,
whichever comes first; the learning rate decays with whichever is nearer, so a
run stopped by the clock ends decayed.  A checkpoint is written every two
minutes and at the end under ``--work``: ``run`` again resumes it (the minutes
count across runs), and reuses the mined candidates.

Figures (``qa.training.reader_eval``): every question of ../shared/eval as the
engine of the day answers it (its top 20, scores and answerability evidence,
computed by ``prepare``); v1.1 ranking hit@1 re-ranking its top n, v2.0
answerability AUC and reply accuracy, each against the engine without the
reader, with 95% intervals over resampled articles: ``report.json``.

One accelerator call, estimated at 2.5 minutes more than ``--minutes`` on an H100
(docs/reader.md).  The working tree travels whole and may hold 64 MiB:
``prepare``'s folder is about 59 MB (base/ 46.2, train.json.xz 9.6), so the
shipped models (the embedder's 45 MB and the short-answer reader, not needed
there: mining uses the base model) step aside for the call::

    mkdir -p build/aside && mv models/all-MiniLM-L6-v2-squad models/short-answer build/aside/
    device run, carry ["build/reader"], timeout_s 600, the command:
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1; python3 -m qa.training.reader run --data build/reader --out $OUT --minutes 5 --processes 16 2>&1 | grep -v Warn | tee $OUT/log.txt
    mv build/aside/all-MiniLM-L6-v2-squad build/aside/short-answer models/    # afterwards, whatever it returned

It returns report.json, scores.json.gz (the reader's logits for every dev
candidate) and the weights as reader-1/2.safetensors (fp16, under 16 MiB each).
Measured: not yet (no accelerator was lent to the session that wrote it);
docs/reader.md holds the earlier experiment's figures and what a win needs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..retrieval import HybridRetriever
from .reader_data import BASE, EVAL, TRAIN, mine, prepare, read_xz, segments_of

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
LAYERS = 6
MAX_TOKENS = 128  # question + sentence + the sentence before; SQuAD's pairs are 60 word pieces at the median
QUESTION_TOKENS = 64
NEGATIVES = 9  # a group of ten pairs: about 1.2M pairs an epoch
GROUPS_PER_BATCH = 64
EPOCHS = 3
LEARNING_RATE = 5e-5
WARMUP_STEPS = 100
CHECKPOINT_SECONDS = 120
SEED = 0
FROZEN = "embeddings.word_embeddings.weight"  # taken from the base model when loading
SHARD_BYTES = 15_000_000  # a file the accelerator call returns holds 16 MiB at most
CANDIDATES, CHECKPOINT, SCORES, REPORT = "candidates.json.gz", "checkpoint.pt", "scores.json.gz", "report.json"


def build_scorer(base: Path, layers: int = LAYERS):
    """The reader's network, from the base model's first ``layers`` layers (torch imported here only)."""
    import torch
    from transformers import AutoModel

    class Scorer(torch.nn.Module):
        """The transformer, mean pooling over the pair's tokens (as the base model pools), one logit."""

        def __init__(self):
            super().__init__()
            # fp32 whatever the file holds: the optimizer keeps its state in the weights' type.
            self.bert = AutoModel.from_pretrained(str(base), add_pooling_layer=False).float()
            self.bert.encoder.layer = self.bert.encoder.layer[:layers]
            self.bert.config.num_hidden_layers = layers
            self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).squeeze(-1)

    model = Scorer()
    model.bert.get_input_embeddings().weight.requires_grad = False
    return model


class Pairs:
    """Every question and sentence cut into word pieces once; a batch's pairs are put together from them."""

    def __init__(self, tokenizer, articles: list[dict], questions: list[str]):
        self.cls, self.sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.first = np.cumsum([0] + [len(a["sentences"]) for a in articles]).tolist()
        pieces = lambda texts, n: tokenizer(texts, add_special_tokens=False, truncation=True,  # noqa: E731
                                            max_length=n)["input_ids"] if texts else []
        self.sentences = pieces([s for a in articles for s in a["sentences"]], MAX_TOKENS)
        self.questions = pieces(questions, QUESTION_TOKENS)
        self.previous = []
        for a, first in zip(articles, self.first):
            retriever = HybridRetriever(None, segments_of(a), None)
            before = map(retriever._previous, range(len(a["sentences"])))
            self.previous += [first + p if p >= 0 else -1 for p in before]

    def encode(self, pairs: list[tuple[int, int]], device: str) -> dict:
        """Model inputs for (question, sentence) pairs, sentences numbered across all articles."""
        import torch

        rows = []
        for q, s in pairs:
            first = [self.cls, *self.questions[q], self.sep]
            second = self.sentences[s] + ([self.sep, *self.sentences[self.previous[s]]] if self.previous[s] >= 0 else [])
            rows.append((first, [*second[:MAX_TOKENS - len(first) - 1], self.sep]))
        width = max(len(a) + len(b) for a, b in rows)
        ids, types, mask = (np.zeros((len(rows), width), dtype=np.int64) for _ in range(3))
        for i, (a, b) in enumerate(rows):
            ids[i, :len(a) + len(b)] = a + b
            types[i, len(a):len(a) + len(b)] = 1
            mask[i, :len(a) + len(b)] = 1
        return {"input_ids": torch.from_numpy(ids).to(device), "token_type_ids": torch.from_numpy(types).to(device),
                "attention_mask": torch.from_numpy(mask).to(device)}


def groups(data: dict, candidates: list[list[int]], first: list[int], negatives: int) -> list[tuple]:
    """(question, sentences, has an answer) per training question: its answer sentence first, then the
    engine's best candidates that are not answers, ``negatives + 1`` pairs in all."""
    out = []
    for q, (question, found) in enumerate(zip(data["questions"], candidates)):
        right = question["positives"]
        wrong = [c for c in found if c not in right][:negatives + (0 if right else 1)]
        offset = first[question["article"]]
        out.append((q, [offset + s for s in right[:1] + wrong], bool(right)))
    return out


def _loss(logits, batch):
    import torch

    labels = torch.zeros_like(logits)
    width = max(len(s) for _, s, _ in batch)
    grid = torch.full((len(batch), width), -torch.inf, device=logits.device)
    at = 0
    for g, (_, sentences, answered) in enumerate(batch):
        labels[at] = float(answered)
        grid[g, :len(sentences)] = logits[at:at + len(sentences)]
        at += len(sentences)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    answered = torch.tensor([a for *_, a in batch], device=logits.device)
    if answered.any():  # the answer sentence, first of its group, against the rest of the group
        loss = loss + (torch.logsumexp(grid[answered], 1) - grid[answered, 0]).mean()
    return loss


def train(data_dir: Path, work: Path, minutes: float, device: str, log, layers: int = LAYERS,
          negatives: int = NEGATIVES, per_batch: int = GROUPS_PER_BATCH, epochs: int = EPOCHS):
    """The reader after ``minutes`` of training in all (or ``epochs``), resuming ``work``'s checkpoint."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(SEED)
    torch.backends.cuda.matmul.allow_tf32 = True
    data = read_xz(data_dir / TRAIN)
    with gzip.open(work / CANDIDATES, "rt", encoding="utf-8") as f:
        candidates = json.load(f)
    pairs = Pairs(AutoTokenizer.from_pretrained(str(data_dir / BASE)), data["articles"],
                  [q["question"] for q in data["questions"]])
    examples = groups(data, candidates, pairs.first, negatives)
    model = build_scorer(data_dir / BASE, layers).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE, weight_decay=0.01)
    per_epoch = math.ceil(len(examples) / per_batch)
    steps, budget, settings = epochs * per_epoch, minutes * 60, [layers, negatives, per_batch, epochs]
    step, spent = 0, 0.0
    if (work / CHECKPOINT).exists():
        state = torch.load(work / CHECKPOINT, map_location=device, weights_only=False)
        if state["settings"] != settings:
            raise SystemExit(f"{work / CHECKPOINT} was trained with (layers, negatives, batch, epochs) "
                             f"{state['settings']}, not {settings}: remove it or run with those")
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        step, spent = state["step"], state["spent"]
        log(f"resumed at step {step}/{steps}, {spent:.0f} s trained")
    started = saved = time.perf_counter()

    def checkpoint():
        state = {"model": {k: v for k, v in model.state_dict().items() if not k.endswith(FROZEN)},
                 "optimizer": optimizer.state_dict(), "step": step, "settings": settings,
                 "spent": spent + time.perf_counter() - started}
        torch.save(state, work / f"{CHECKPOINT}.tmp")
        os.replace(work / f"{CHECKPOINT}.tmp", work / CHECKPOINT)

    model.train()
    order = None
    while step < steps and (elapsed := spent + time.perf_counter() - started) < budget:
        epoch, at = divmod(step, per_epoch)
        if order is None or at == 0:
            order = np.random.default_rng(SEED + epoch).permutation(len(examples))
        batch = [examples[i] for i in order[at * per_batch:(at + 1) * per_batch]]
        # Linear warm-up, then linear decay to zero at the deadline or the last step, whichever is nearer.
        progress = max(elapsed / budget, step / steps)
        for group in optimizer.param_groups:
            group["lr"] = LEARNING_RATE * min(1.0, (step + 1) / WARMUP_STEPS) * (1 - progress)
        feed = pairs.encode([(q, s) for q, sentences, _ in batch for s in sentences], device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(**feed).float()
        loss = _loss(logits, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % 100 == 0 or step == 1:
            log(f"step {step}/{steps} (epoch {epoch + 1}) loss {loss.item():.3f} {elapsed:.0f} s")
        if time.perf_counter() - saved > CHECKPOINT_SECONDS:
            checkpoint()
            saved = time.perf_counter()
    checkpoint()
    log(f"stopped at step {step}/{steps} ({step / per_epoch:.2f} epochs of {len(examples)} question groups), "
        f"{spent + time.perf_counter() - started:.0f} s trained")
    model.eval()
    return model, {"steps": step, "epochs": round(step / per_epoch, 3), "question_groups": len(examples),
                   "pairs_per_epoch": sum(len(s) for _, s, _ in examples), "dropped": data["dropped"],
                   "layers": layers, "negatives": negatives, "groups_per_batch": per_batch}


def score(model, data_dir: Path, device: str, questions_per_batch: int = 128) -> list[list[float]]:
    """The reader's logit for every candidate of every eval question."""
    import torch
    from transformers import AutoTokenizer

    data = read_xz(data_dir / EVAL)
    pairs = Pairs(AutoTokenizer.from_pretrained(str(data_dir / BASE)), data["articles"],
                  [q["question"] for q in data["questions"]])
    out = []
    with torch.no_grad():
        for b in range(0, len(data["questions"]), questions_per_batch):
            batch = list(enumerate(data["questions"][b:b + questions_per_batch], b))
            feed = pairs.encode([(q, pairs.first[x["article"]] + p) for q, x in batch for p in x["positions"]], device)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
                logits = model(**feed).float().tolist()
            for _, x in batch:
                out.append([round(v, 4) for v in logits[:len(x["positions"])]])
                logits = logits[len(x["positions"]):]
    return out


def save_weights(model, out: Path, layers: int) -> list[Path]:
    """The trained weights in fp16, less the frozen word-piece table, in files of ``SHARD_BYTES`` at most."""
    import torch
    from safetensors.torch import save_file

    shards, size = [{}], 0
    for name, tensor in model.state_dict().items():
        if name.endswith(FROZEN):
            continue
        tensor = tensor.detach().to(torch.float16).contiguous().cpu()
        if size + tensor.nbytes > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += tensor.nbytes
    paths = [out / f"reader-{n}.safetensors" for n in range(1, len(shards) + 1)]
    for shard, path in zip(shards, paths):
        save_file(shard, str(path), metadata={"layers": str(layers), "max_tokens": str(MAX_TOKENS)})
    return paths


def run(args) -> None:
    """Mine (once), train (resuming), then score the eval candidates and write the figures."""
    import torch

    from .reader_eval import report

    device = "cuda" if torch.cuda.is_available() else "cpu"
    log = lambda line: print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)  # noqa: E731
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    timings = {}
    if not (args.work / CANDIDATES).exists():
        started = time.perf_counter()
        mined = mine(read_xz(args.data / TRAIN), args.data / BASE, device, args.processes)
        with gzip.open(args.work / CANDIDATES, "wt", encoding="utf-8") as f:  # gzip: xz takes seconds more
            json.dump(mined, f)
        timings["mining_s"] = round(time.perf_counter() - started, 1)
        log(f"mined in {timings['mining_s']} s")
    model, trained = train(args.data, args.work, args.minutes, device, log, args.layers, args.negatives,
                           args.batch, args.epochs)
    weights = save_weights(model, args.out, args.layers)
    started = time.perf_counter()
    logits = score(model, args.data, device)
    timings["scoring_s"] = round(time.perf_counter() - started, 1)
    with gzip.open(args.out / SCORES, "wt", encoding="utf-8") as f:
        json.dump(logits, f)
    figures = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "training": trained,
               "timings": timings, "weights": [p.name for p in weights],
               **report(read_xz(args.data / EVAL), logits, args.samples)}
    (args.out / REPORT).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    log(f"{args.out / REPORT}:\n{json.dumps(figures, indent=2)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare", help="here: the data and the base model an accelerator call carries")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train", type=Path, default=SHARED / "train", help="folder of the SQuAD train files")
    p.add_argument("--eval", type=Path, default=SHARED / "eval", help="folder of the public dev files")
    p.add_argument("--data-dir", type=Path, help="the engine's data directory (default: qa's)")
    p.add_argument("--articles", type=int, help="only the first N articles of each file (a tiny try)")
    p.add_argument("--questions", type=int, help="only the first N questions of each kind of each article")
    r = steps.add_parser("run", help="on the accelerator: mine, train, score, report")
    r.add_argument("--data", type=Path, required=True, help="prepare's folder")
    r.add_argument("--work", type=Path, help="candidates and checkpoint (default: DATA/work)")
    r.add_argument("--out", type=Path, required=True, help="weights, scores and report.json")
    r.add_argument("--minutes", type=float, required=True, help="of training, in all runs together")
    r.add_argument("--epochs", type=int, default=EPOCHS)
    r.add_argument("--layers", type=int, default=LAYERS)
    r.add_argument("--negatives", type=int, default=NEGATIVES)
    r.add_argument("--batch", type=int, default=GROUPS_PER_BATCH, help="question groups a step")
    r.add_argument("--processes", type=int, default=1, help="for mining (one per core)")
    r.add_argument("--samples", type=int, default=1000, help="bootstrap resamplings of the articles")
    s = steps.add_parser("report", help="the figures again, from a run's scores.json.gz (no torch)")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--scores", type=Path, required=True)
    s.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.step == "prepare":
        from ..store.index import default_data_dir

        prepare(args.out, args.train, args.eval, args.data_dir or default_data_dir(), args.articles,
                args.questions)
    elif args.step == "run":
        args.work = args.work or args.data / "work"
        run(args)
    else:
        from .reader_eval import report

        with gzip.open(args.scores, "rt", encoding="utf-8") as f:
            print(json.dumps(report(read_xz(args.data / EVAL), json.load(f), args.samples), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
