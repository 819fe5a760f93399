"""Train the short-answer reader on SQuAD v1.1 train and ship it to ``models/``.

    .venv/bin/python -m qa.training.short_answer --minutes 50     # train (resumes), export, judge
    .venv/bin/python -m qa.training.short_answer --export-only    # export the last checkpoint

Each answerable question of ``../shared/train/squad_v1.1_train.jsonl`` whose
answer lies inside one sentence (split as the engine splits) becomes one
example: question, that sentence, the answer's first and last word piece.
``offset_ambiguous`` answers are left out (their sentence may be the wrong
one; ``../shared/train/README.md``).  The model is all-MiniLM-L6-v2's six
layers and a linear start/end head, trained with cross-entropy on both ends;
the word embeddings stay frozen (a third of the weights, and a third of the
optimizer's work on 2 cores).  Training is bounded by time, not steps: the
learning rate warms up over the first 5% of ``--minutes`` and decays
linearly to zero at the end, and a checkpoint every few minutes lets a
killed run resume where it stopped (``--checkpoint``).

Then the model is exported to ONNX, quantized to int8 (kept only if it picks
the same answers as fp32 on the public dev sentences, within
``INT8_TOLERANCE``), judged on ``../shared/eval``'s v1.1 questions with their
gold sentences (SQuAD exact match and F1 of the span alone), and written to
``models/short-answer/`` with ``models/short-answer.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..evaluation.squad_scores import best_over, exact_match_score, f1_score
from ..models.embedder import BASE_MODEL
from ..models.manifest import MODELS_DIR, resolve_model
from ..models.short_answer import (MANIFEST, MAX_ANSWER_TOKENS, ShortAnswerReader, encode_pairs, load_tokenizer,
                                   read_spans)
from ..segments import split_sentences
from ..store import checksums

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT.parent / "shared" / "train" / "squad_v1.1_train.jsonl"
EVAL = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"
CHECKPOINT = Path("/tmp/qa-short-answer")
OUT = MODELS_DIR / "short-answer"
COMMAND = ".venv/bin/python -m qa.training.short_answer"
BATCH = 32
LEARNING_RATE = 1e-4
WARMUP = 0.05
SEED = 0
CHECKPOINT_EVERY = 300  # seconds
INT8_TOLERANCE = 0.005  # exact match lost to int8, at most


def sentence_examples(path: Path, ambiguous: bool = False):
    """(question, sentence, answer start, answer end, all answer texts) for each question whose
    first locatable answer lies inside one sentence; offsets are into the sentence."""
    for line in path.open(encoding="utf-8"):
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


def token_labels(tokenizer, examples) -> list[tuple]:
    """Each example's inputs and its answer's first and last word piece; answers cut off by
    truncation are dropped."""
    rows = []
    for i in range(0, len(examples), 1024):
        chunk = examples[i:i + 1024]
        for (question, sentence, start, end, _), e in zip(chunk, tokenizer.encode_batch([(x[0], x[1]) for x in chunk])):
            inside = [t for t, (sid, (a, b)) in enumerate(zip(e.sequence_ids, e.offsets)) if sid == 1 and b > a]
            first = next((t for t in inside if e.offsets[t][1] > start), None)
            last = next((t for t in reversed(inside) if e.offsets[t][0] < end), None)
            if first is None or last is None or last < first or last - first >= MAX_ANSWER_TOKENS:
                continue
            if e.offsets[inside[-1]][1] < end:  # truncated before the answer's end
                continue
            rows.append((e.ids, e.type_ids, first, last))
    return rows


def _batches(rows, rng: random.Random):
    """Batches of similar length (less padding), in random order."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    pool = BATCH * 64
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i:i + pool], key=lambda j: len(rows[j][0]))
        batches.extend(chunk[k:k + BATCH] for k in range(0, len(chunk), BATCH))
    rng.shuffle(batches)
    return batches


def _tensors(rows, batch, torch):
    width = max(len(rows[j][0]) for j in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for r, j in enumerate(batch):
        n = len(rows[j][0])
        ids[r, :n] = torch.tensor(rows[j][0])
        types[r, :n] = torch.tensor(rows[j][1])
        mask[r, :n] = 1
    firsts = torch.tensor([rows[j][2] for j in batch])
    lasts = torch.tensor([rows[j][3] for j in batch])
    return ids, mask, types, firsts, lasts


def build_model(torch, layers: int = 6):
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(resolve_model(BASE_MODEL).path), local_files_only=True,
                                     attn_implementation="eager")
    base.encoder.layer = base.encoder.layer[:layers]
    base.config.num_hidden_layers = layers

    class Reader(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = base
            self.head = torch.nn.Linear(base.config.hidden_size, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            start, end = self.head(hidden).unbind(-1)
            return start, end

    model = Reader()
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


def train(minutes: float, checkpoint: Path, progress=print):
    import torch

    torch.manual_seed(SEED)
    tokenizer = load_tokenizer(resolve_model(BASE_MODEL).path / "tokenizer.json")
    examples = list(sentence_examples(TRAIN))
    rows = token_labels(tokenizer, examples)
    progress(f"{len(rows)} training sentences from {len(examples)} questions")
    model = build_model(torch)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE,
                                  weight_decay=0.01)
    state_file = checkpoint / "state.pt"
    state = {"elapsed": 0.0, "epoch": 0, "position": 0, "steps": 0}
    if state_file.is_file():
        saved = torch.load(state_file, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        progress(f"resumed at step {state['steps']}, {state['elapsed'] / 60:.1f} of {minutes} minutes")
    budget = minutes * 60
    checkpoint.mkdir(parents=True, exist_ok=True)

    def save():
        tmp = state_file.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, tmp)
        tmp.replace(state_file)

    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    started, saved_at, losses = time.monotonic() - state["elapsed"], state["elapsed"], []
    while state["elapsed"] < budget:
        batches = _batches(rows, random.Random(SEED + state["epoch"]))
        while state["position"] < len(batches) and state["elapsed"] < budget:
            fraction = state["elapsed"] / budget
            rate = LEARNING_RATE * min(fraction / WARMUP, (1 - fraction) / (1 - WARMUP))
            for group in optimizer.param_groups:
                group["lr"] = rate
            ids, mask, types, firsts, lasts = _tensors(rows, batches[state["position"]], torch)
            start, end = model(ids, mask, types)
            outside = (types == 0) | (mask == 0)
            start = start.masked_fill(outside, -1e4)
            end = end.masked_fill(outside, -1e4)
            loss = (loss_fn(start, firsts) + loss_fn(end, lasts)) / 2
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            state["position"] += 1
            state["steps"] += 1
            state["elapsed"] = time.monotonic() - started
            if state["steps"] % 50 == 0:
                progress(f"step {state['steps']} epoch {state['epoch']} {state['position']}/{len(batches)} "
                         f"loss {np.mean(losses[-50:]):.3f} lr {rate:.2e} {state['elapsed'] / 60:.1f} min")
            if state["elapsed"] - saved_at > CHECKPOINT_EVERY:
                save()
                saved_at = state["elapsed"]
        if state["position"] >= len(batches):
            state["epoch"], state["position"] = state["epoch"] + 1, 0
    save()
    progress(f"trained {state['steps']} steps ({state['steps'] * BATCH} sentences, "
             f"{state['steps'] * BATCH / len(rows):.2f} epochs) in {state['elapsed'] / 60:.1f} min")
    return model, state, len(rows)


def export(model, directory: Path, tokenizer_file: Path) -> tuple[Path, Path]:
    """fp32 and int8 ONNX files of ``model`` in ``directory``."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_file, directory / "tokenizer.json")
    feed, _, _ = encode_pairs(load_tokenizer(tokenizer_file), ["Where?", "Who was it?"],
                              ["In the Kursk region.", "Two soldiers were captured in the Kursk region."])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    fp32, int8 = directory / "model.fp32.onnx", directory / "model.onnx"
    model.eval()
    torch.onnx.export(model, tuple(torch.tensor(feed[n]) for n in names), str(fp32), input_names=names,
                      output_names=["start_logits", "end_logits"], opset_version=17, dynamo=False,
                      dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names},
                                    "start_logits": {0: "batch", 1: "tokens"}, "end_logits": {0: "batch", 1: "tokens"}})
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    return fp32, int8


def judge(onnx_file: Path, tokenizer_file: Path, examples) -> dict:
    """Exact match and F1 of the span the model picks inside each example's gold sentence."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    tokenizer = load_tokenizer(tokenizer_file)
    picks = []
    for i in range(0, len(examples), 64):
        chunk = examples[i:i + 64]
        spans = read_spans(session, tokenizer, [x[0] for x in chunk], [x[1] for x in chunk])
        picks.extend("" if span is None else x[1][span.start:span.end] for span, x in zip(spans, chunk))
    em = float(np.mean([best_over(exact_match_score, p, x[4]) for p, x in zip(picks, examples)]))
    f1 = float(np.mean([best_over(f1_score, p, x[4]) for p, x in zip(picks, examples)]))
    return {"questions": len(examples), "exact_match": round(em, 4), "f1": round(f1, 4), "picks": picks}


def ship(directory: Path, onnx_file: Path, figures: dict, state: dict) -> None:
    """Write the model's files to ``models/short-answer/`` and its manifest."""
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    shutil.copyfile(onnx_file, OUT / "model.onnx")
    shutil.copyfile(directory / "tokenizer.json", OUT / "tokenizer.json")
    base = json.loads((MODELS_DIR / f"{BASE_MODEL}.json").read_text(encoding="utf-8"))
    manifest = {
        "name": "short-answer",
        "description": ("all-MiniLM-L6-v2's six layers with a start/end head, trained to find the answer "
                        "inside a sentence; ONNX" + (", int8" if figures["precision"] == "int8" else "")),
        "source": {"path": "short-answer", "command": COMMAND},
        "base_model": {"name": BASE_MODEL, "upstream": base["upstream"], "revision": base["revision"],
                       "license": base["license"]},
        "training_data": (f"SQuAD v1.1 train (../shared/train/squad_v1.1_train.jsonl, 442 articles; Rajpurkar et al. "
                          f"2016): {figures['train_sentences']} questions with their answer sentence, "
                          f"offset-ambiguous answers left out; {state['steps']} steps of {BATCH}"),
        "license": "CC-BY-SA-4.0 (weights derived from SQuAD) over the base model's Apache-2.0",
        "weights": "model.onnx",
        "files": {name: checksums.sha256_file(OUT / name) for name in ("model.onnx", "tokenizer.json")},
        "judged": {k: v for k, v in figures.items() if k != "train_sentences"},
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=50.0, help="training time in all, resumed runs counted")
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT, help="where training resumes from")
    parser.add_argument("--export-only", action="store_true", help="export and judge the last checkpoint")
    args = parser.parse_args(argv)
    progress = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    import torch

    torch.set_num_threads(2)
    tokenizer_file = resolve_model(BASE_MODEL).path / "tokenizer.json"
    if args.export_only:
        model = build_model(torch)
        saved = torch.load(args.checkpoint / "state.pt", weights_only=False)
        model.load_state_dict(saved["model"])
        state = saved["state"]
        sentences = len(token_labels(load_tokenizer(tokenizer_file), list(sentence_examples(TRAIN))))
    else:
        model, state, sentences = train(args.minutes, args.checkpoint, progress)
    fp32, int8 = export(model, args.checkpoint / "onnx", tokenizer_file)
    examples = list(sentence_examples(EVAL, ambiguous=True))
    full, small = judge(fp32, tokenizer_file, examples), judge(int8, tokenizer_file, examples)
    same = float(np.mean([a == b for a, b in zip(full.pop("picks"), small.pop("picks"))]))
    int8_kept = full["exact_match"] - small["exact_match"] <= INT8_TOLERANCE
    figures = {"eval": "../shared/eval/squad_v1.1_dev_public.jsonl, the gold sentence given",
               "fp32": full, "int8": small, "int8_same_answer": round(same, 4),
               "precision": "int8" if int8_kept else "fp32", "train_sentences": sentences}
    progress(json.dumps(figures, indent=1))
    ship(args.checkpoint / "onnx", int8 if int8_kept else fp32, figures, state)
    ShortAnswerReader(MANIFEST).load()  # the shipped files verify
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
