"""Train the reader (span or no answer) on SQuAD train and ship it to ``models/``.

    .venv/bin/python -m qa.training.reader --minutes 60            # mine, train (resumes), export, judge
    .venv/bin/python -m qa.training.reader --export-only           # export the last checkpoint

The examples (``qa.training.reader_data``) are SQuAD train's answer sentences,
each with its answer's first and last word piece, and the sentences the
engine itself ranks high for a question that they do not answer (a wrong
candidate of an answerable question; the first candidates of an unanswerable
one), whose target is the [CLS] position: "no answer".  The engine's
candidates are mined first, for ``--mine-minutes`` (article by article, kept
in ``--work``; a rerun reuses them).

The model is all-MiniLM-L6-v2's six layers and a linear start/end head,
trained with cross-entropy on both ends over the sentence's word pieces and
[CLS]; the word embeddings stay frozen (a third of the weights, and a third of
the optimizer's work on 2 cores).  ``--init`` starts from an earlier reader's
ONNX file (its int8 weights dequantized) instead of the base model: the
shipped reader started from the span-only reader that shipped before it
(docs/reader.md).  Training is bounded by time, not steps: the learning rate
warms up over the first 5% of ``--minutes`` and decays linearly to zero at the
end, and a checkpoint every few minutes lets a killed run resume where it
stopped.  On a machine with CUDA it trains there, the same way.

Then the model is exported to ONNX, quantized to int8 (kept only if it picks
the same answers as fp32 on the public dev sentences, within
``INT8_TOLERANCE``), judged on ``../shared/eval``'s v1.1 questions with their
gold sentences (SQuAD exact match and F1 of the span), and written to
``models/reader/`` with ``models/reader.json``.  What the reader does for the
engine's replies is measured by ``python -m qa.training.answerability`` (fitted
on the train articles the reader never saw) and ``qa eval``.
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
from ..models.reader import MANIFEST, MAX_ANSWER_TOKENS, Reader, encode_pairs, load_tokenizer, read_pairs
from ..store import checksums
from ..store.index import default_data_dir
from .reader_data import answer_examples, mine, read_negatives

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"
WORK = ROOT / "build" / "reader"
OUT = MODELS_DIR / "reader"
COMMAND = ".venv/bin/python -m qa.training.reader"
BATCH = 32
LEARNING_RATE = 6e-5
WARMUP = 0.05
SEED = 0
CHECKPOINT_EVERY = 300  # seconds
INT8_TOLERANCE = 0.005  # exact match lost to int8, at most


def token_labels(tokenizer, examples) -> list[tuple]:
    """Each example's inputs and its answer's first and last word piece (0, 0: [CLS], no answer);
    answers cut off by truncation are dropped."""
    rows = []
    for i in range(0, len(examples), 1024):
        chunk = examples[i:i + 1024]
        for (question, sentence, start, end), e in zip(chunk, tokenizer.encode_batch([(x[0], x[1]) for x in chunk])):
            if start is None:
                rows.append((e.ids, e.type_ids, 0, 0))
                continue
            inside = [t for t, (sid, (a, b)) in enumerate(zip(e.sequence_ids, e.offsets)) if sid == 1 and b > a]
            first = next((t for t in inside if e.offsets[t][1] > start), None)
            last = next((t for t in reversed(inside) if e.offsets[t][0] < end), None)
            if first is None or last is None or last < first or last - first >= MAX_ANSWER_TOKENS:
                continue
            if e.offsets[inside[-1]][1] < end:  # truncated before the answer's end
                continue
            rows.append((e.ids, e.type_ids, first, last))
    return rows


def training_rows(tokenizer, negatives_file: Path) -> tuple[list[tuple], dict]:
    """The rows to train on and how many of each kind."""
    answers = [(q, s, a, b) for q, s, a, b, _ in answer_examples()]
    mined = read_negatives(negatives_file)
    wrong = [(m["question"], s, None, None) for m in mined if m["answerable"] for s in m["negatives"]]
    unanswerable = [(m["question"], s, None, None) for m in mined if not m["answerable"] for s in m["negatives"]]
    rows = token_labels(tokenizer, answers + wrong + unanswerable)
    counts = {"answer_sentences": len(rows) - len(wrong) - len(unanswerable), "wrong_candidates": len(wrong),
              "unanswerable_candidates": len(unanswerable)}
    return rows, counts


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


def _tensors(rows, batch, torch, device):
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
    return tuple(t.to(device) for t in (ids, mask, types, firsts, lasts))


def build_model(torch, layers: int = 6):
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(resolve_model(BASE_MODEL).path), local_files_only=True,
                                     attn_implementation="eager")
    base.encoder.layer = base.encoder.layer[:layers]
    base.config.num_hidden_layers = layers

    class ReaderNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = base
            self.head = torch.nn.Linear(base.config.hidden_size, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            start, end = self.head(hidden).unbind(-1)
            return start, end

    model = ReaderNet()
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


def onnx_weights(path: Path) -> dict[str, np.ndarray]:
    """The torch state of a reader exported by ``export`` (int8 weights dequantized): a dynamically
    quantized MatMul keeps no module name, so each is named by the bias added after it."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def value(name):
        if not name.endswith("_quantized"):
            return inits[name]
        base = name[: -len("_quantized")]
        return (inits[name].astype(np.float32) - inits[base + "_zero_point"].astype(np.float32)) * inits[base + "_scale"]

    def module_after(node) -> str:
        todo = list(node.output)
        while todo:
            for c in consumers.get(todo.pop(0), []):
                bias = [i for i in c.input if i.endswith(".bias") and i in inits] if c.op_type == "Add" else []
                if bias:
                    return bias[0][: -len(".bias")]
                todo.extend(c.output)
        raise ValueError(f"{path}: no bias follows {node.name}")

    state = {}
    for name in inits:
        base = name[: -len("_quantized")] if name.endswith("_quantized") else name
        if not name.endswith(("_scale", "_zero_point")) and not base.startswith("onnx::"):
            state[base] = value(name)
    for node in graph.node:
        weights = [i for i in node.input if i in inits and not i.endswith(("_scale", "_zero_point"))]
        if node.op_type in ("MatMulInteger", "MatMul") and weights:
            state[module_after(node) + ".weight"] = value(weights[0]).T
    return state


def train(rows: list[tuple], minutes: float, work: Path, init: Path | None, progress=print):
    import torch

    torch.manual_seed(SEED)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(torch)
    if init is not None:
        missing = model.load_state_dict({k: torch.tensor(v) for k, v in onnx_weights(init).items()}, strict=False)
        if [k for k in missing.missing_keys if "pooler" not in k] or missing.unexpected_keys:
            raise SystemExit(f"--init {init}: not a reader of this shape ({missing})")
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE,
                                  weight_decay=0.01)
    state_file = work / "state.pt"
    state = {"elapsed": 0.0, "epoch": 0, "position": 0, "steps": 0, "rows": len(rows)}
    if state_file.is_file():
        saved = torch.load(state_file, weights_only=False, map_location=device)
        if saved["state"].get("rows") != len(rows):
            raise SystemExit(f"{state_file}: a checkpoint of other data ({saved['state'].get('rows')} rows, "
                             f"not {len(rows)}); remove it to start again")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        progress(f"resumed at step {state['steps']}, {state['elapsed'] / 60:.1f} of {minutes} minutes")
    budget = minutes * 60

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
            ids, mask, types, firsts, lasts = _tensors(rows, batches[state["position"]], torch, device)
            start, end = model(ids, mask, types)
            # The sentence's word pieces and [CLS] ("no answer") may be chosen; the question may not.
            outside = ((types == 0) | (mask == 0))
            outside[:, 0] = False
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
    progress(f"trained {state['steps']} steps ({state['steps'] * BATCH} pairs, "
             f"{state['steps'] * BATCH / len(rows):.2f} epochs) in {state['elapsed'] / 60:.1f} min")
    return model.cpu(), state


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
    """Exact match and F1 of the span the model picks inside each example's gold sentence, read one by one
    as the engine reads a question's candidates, and the share of gold sentences it takes to answer."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    tokenizer = load_tokenizer(tokenizer_file)
    readings = [read_pairs(session, tokenizer, [x[0]], [x[1]])[0] for x in examples]
    picks = ["" if r is None else x[1][r.start:r.end] for r, x in zip(readings, examples)]
    em = float(np.mean([best_over(exact_match_score, p, x[4]) for p, x in zip(picks, examples)]))
    f1 = float(np.mean([best_over(f1_score, p, x[4]) for p, x in zip(picks, examples)]))
    answered = float(np.mean([r is not None and r.margin > 0 for r in readings]))
    return {"questions": len(examples), "exact_match": round(em, 4), "f1": round(f1, 4),
            "margin_above_0": round(answered, 4), "picks": picks}


def ship(directory: Path, onnx_file: Path, figures: dict, state: dict, init: Path | None) -> None:
    """Write the model's files to ``models/reader/`` and its manifest."""
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    shutil.copyfile(onnx_file, OUT / "model.onnx")
    shutil.copyfile(directory / "tokenizer.json", OUT / "tokenizer.json")
    base = json.loads((MODELS_DIR / f"{BASE_MODEL}.json").read_text(encoding="utf-8"))
    counts = figures["train_rows"]
    manifest = {
        "name": "reader",
        "description": ("all-MiniLM-L6-v2's six layers with a start/end head: the answer inside a sentence, "
                        "or [CLS] for none; ONNX" + (", int8" if figures["precision"] == "int8" else "")),
        "source": {"path": "reader", "command": COMMAND + (f" --init {init.name}" if init else "")},
        "base_model": {"name": BASE_MODEL, "upstream": base["upstream"], "revision": base["revision"],
                       "license": base["license"]},
        "training_data": (f"SQuAD v1.1 and v2.0 train (../shared/train, the articles qa.training.answerability "
                          f"does not fit on; Rajpurkar et al. 2016, 2018): {counts['answer_sentences']} answer "
                          f"sentences, {counts['wrong_candidates']} wrong candidates of answerable questions and "
                          f"{counts['unanswerable_candidates']} candidates of unanswerable ones, as the engine "
                          f"ranks them; {state['steps']} steps of {BATCH}"
                          + (f", from the reader in {init.name}" if init else "")),
        "license": "CC-BY-SA-4.0 (weights derived from SQuAD) over the base model's Apache-2.0",
        "weights": "model.onnx",
        "files": {name: checksums.sha256_file(OUT / name) for name in ("model.onnx", "tokenizer.json")},
        "judged": {k: v for k, v in figures.items() if k != "train_rows"},
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="training time in all, resumed runs counted")
    parser.add_argument("--mine-minutes", type=float, default=16.0,
                        help="time to mine the engine's candidates for (skipped when --work holds them)")
    parser.add_argument("--work", type=Path, default=WORK, help="mined candidates and the checkpoint")
    parser.add_argument("--init", type=Path, help="an earlier reader's model.onnx to start from")
    parser.add_argument("--export-only", action="store_true", help="export and judge the last checkpoint")
    args = parser.parse_args(argv)
    progress = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    import torch

    torch.set_num_threads(2)
    args.work.mkdir(parents=True, exist_ok=True)
    negatives = args.work / "negatives.jsonl"
    if not negatives.is_file():
        mine(default_data_dir(), negatives, minutes=args.mine_minutes, progress=progress)
    tokenizer_file = resolve_model(BASE_MODEL).path / "tokenizer.json"
    rows, counts = training_rows(load_tokenizer(tokenizer_file), negatives)
    progress(f"training rows: {counts}")
    if args.export_only:
        model = build_model(torch)
        saved = torch.load(args.work / "state.pt", weights_only=False)
        model.load_state_dict(saved["model"])
        state = saved["state"]
    else:
        model, state = train(rows, args.minutes, args.work, args.init, progress)
    fp32, int8 = export(model, args.work / "onnx", tokenizer_file)
    examples = list(answer_examples(EVAL, articles=lambda n: True, ambiguous=True))
    full, small = judge(fp32, tokenizer_file, examples), judge(int8, tokenizer_file, examples)
    same = float(np.mean([a == b for a, b in zip(full.pop("picks"), small.pop("picks"))]))
    int8_kept = full["exact_match"] - small["exact_match"] <= INT8_TOLERANCE
    figures = {"eval": "../shared/eval/squad_v1.1_dev_public.jsonl, the gold sentence given, read alone",
               "fp32": full, "int8": small, "int8_same_answer": round(same, 4),
               "precision": "int8" if int8_kept else "fp32", "train_rows": counts}
    progress(json.dumps(figures, indent=1))
    ship(args.work / "onnx", int8 if int8_kept else fp32, figures, state, args.init)
    Reader(MANIFEST).load()  # the shipped files verify
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
