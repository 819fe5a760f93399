"""A verified sentence-transformers model as ONNX, run by onnxruntime.

Why: importing torch and sentence-transformers takes seconds, most of a
one-question ``qa ask``; onnxruntime and HF ``tokenizers`` take a fraction.

``export`` traces sentence-transformers' own modules (the transformer, its
pooling and its normalization) with ``torch.onnx.export``, so the graph
computes what ``SentenceTransformer.encode`` computes, and keeps the file only
if its vectors match sentence-transformers' on a short and an over-long text.
``OnnxNetwork`` tokenizes with the model's own ``tokenizer.json``, truncated
at the model's ``max_seq_length`` as sentence-transformers does.

Layout, in the model cache (``qa.models.manifest.model_cache_dir``)::

    <model cache>/<name>-<weights sha256[:16]>/
        model.onnx
        manifest.json   source_weights_sha256, onnx_sha256, max_seq_length,
                        pad_token_id, dimension, inputs, exported_with

Before each load the manifest must name the verified source weights and the
ONNX file must match its recorded sha256.  Otherwise the export is made again
from the verified weights (it is derived data), and ``progress`` says so.

``python -m qa.models [MODEL]`` exports ahead of time (``make setup``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..store.locking import DirectoryLock
from .manifest import MODEL_CACHE_ENV, ModelError, ModelInfo, Progress, file_sha256

OPSET = 17
ONNX_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
# Traced with two texts of different lengths, so padding and the mask are
# part of the graph; checked also on a text past the truncation length.
SAMPLE = ["Where were the soldiers captured?", "Two soldiers were captured in the Kursk region."]
CHECK = SAMPLE + [" ".join(["The long sentence goes on."] * 80)]
MIN_COSINE = 0.9999


def export_dir(info: ModelInfo, root: Path) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in info.id)[:60]
    return root / f"{safe}-{info.weights_sha256[:16]}"


def _check(directory: Path, info: ModelInfo) -> tuple[dict | None, str]:
    """The export's manifest when the export is sound, else None and why not."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "first use"
    except (OSError, ValueError):
        return None, f"{directory / MANIFEST_FILE} is unreadable"
    if manifest.get("source_weights_sha256") != info.weights_sha256:
        return None, f"{directory} was exported from other weights"
    onnx_file = directory / ONNX_FILE
    if not onnx_file.is_file():
        return None, f"{onnx_file} is missing"
    if file_sha256(onnx_file) != manifest.get("onnx_sha256"):
        return None, f"{onnx_file} does not match its manifest (damaged)"
    return manifest, ""


def prepare(info: ModelInfo, root: Path, progress: Progress | None = None) -> tuple[Path, dict]:
    """The sound export of ``info`` under ``root`` (exporting it if needed): its directory and manifest."""
    directory = export_dir(info, root)
    manifest, why = _check(directory, info)
    if manifest is not None:
        return directory, manifest
    try:
        root.mkdir(parents=True, exist_ok=True)
        writable = os.access(root, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise ModelError(f"cannot write the ONNX export of {info.id} into {root}: "
                         f"set {MODEL_CACHE_ENV} to a writable directory")
    # One exporter at a time (the app and a CLI may start together), with the index's own lock.
    with DirectoryLock(directory):
        manifest, why = _check(directory, info)  # another process may have just exported it
        if manifest is None:
            for partial in directory.glob(".*.tmp"):  # left by an export that was killed
                partial.unlink()
            stage = f"exporting {info.id} to ONNX ({why}; once)"
            if progress:
                progress(stage, 0, 1)
            manifest = export(info, directory)
            if progress:
                progress(stage, 1, 1)
    return directory, manifest


def export(info: ModelInfo, directory: Path) -> dict:
    """Export the verified model ``info`` into ``directory``; returns the manifest written there."""
    # Local files only: the hub client must not try the network, nor draw its loading bar.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import sentence_transformers
        import torch
    except ImportError as exc:
        raise ModelError(f"exporting {info.id} to ONNX needs torch and sentence-transformers ({exc}): "
                         f"pip install torch==2.13.0 sentence-transformers") from None

    # Eager attention traces to plain MatMul and Softmax; the default (SDPA)
    # adds NaN guards around the mask and ran ~10% slower per core in
    # onnxruntime, for the same vectors.
    model = sentence_transformers.SentenceTransformer(
        str(info.path), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"})
    model.eval()
    sample = dict(model.tokenizer(SAMPLE, padding=True, return_tensors="pt"))
    names = list(sample)

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(dict(zip(names, tensors)))["sentence_embedding"]

    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{ONNX_FILE}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # The tracer warns that it freezes Python-level shape checks (the
            # pooling's "mask as long as the tokens"), which hold for every input.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Graph().eval(), tuple(sample.values()), tmp, input_names=names,
                output_names=["sentence_embedding"], opset_version=OPSET, dynamo=False,
                dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "sentence_embedding": {0: "batch"}})
        expected = model.encode(CHECK, normalize_embeddings=True, convert_to_numpy=True)
        manifest = {
            "model": info.id,
            "source_weights_sha256": info.weights_sha256,
            "max_seq_length": model.max_seq_length,
            "pad_token_id": model.tokenizer.pad_token_id,
            "dimension": int(expected.shape[1]),
            "inputs": names,
            "exported_with": {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
                              "opset": OPSET, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        }
        cosine = (OnnxNetwork(info, Path(tmp), manifest).encode(CHECK, len(CHECK)) * expected).sum(axis=1).min()
        if cosine < MIN_COSINE:
            raise ModelError(f"the ONNX export of {info.id} does not reproduce sentence-transformers "
                             f"(cosine {cosine:.6f}); run it with sentence-transformers: --model {info.path}")
        onnx_file = directory / ONNX_FILE
        os.replace(tmp, onnx_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Hashed where it now lies, and the manifest written last: a half-done
    # export is never taken for a sound one.
    manifest["onnx_sha256"] = file_sha256(onnx_file)
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_FILE}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, directory / MANIFEST_FILE)
    return manifest


class OnnxNetwork:
    """The exported graph and the model's tokenizer: texts in, unit vectors out."""

    def __init__(self, info: ModelInfo, onnx_file: Path, manifest: dict):
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer_file = info.path / "tokenizer.json"
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # missing or not a tokenizers file
            raise ModelError(f"model {info.id!r}: {tokenizer_file} cannot be read ({exc}); reinstall the model") from None
        # tokenizer.json may carry a fixed padding and another length (this
        # model's: 128); sentence-transformers truncates at max_seq_length and
        # pads each batch to its longest text, as ``encode`` does below.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(manifest["max_seq_length"])
        self._pad_id = manifest["pad_token_id"]
        self._inputs = manifest["inputs"]
        self.dimension = manifest["dimension"]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings would mix with the caller's stderr
        # Idle worker threads sleep instead of spinning: on 2 shared cores, and
        # beside the app's concurrent questions, spinning burnt the CPU the
        # other thread needed (indexing 44 against 26 sentences/s, docs/choices.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    @classmethod
    def open(cls, info: ModelInfo, root: Path, progress: Progress | None = None) -> "OnnxNetwork":
        directory, manifest = prepare(info, root, progress)
        return cls(info, directory / ONNX_FILE, manifest)

    def encode(self, texts: list[str], batch_size: int, progress=None) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        # Batches of similar length: each is padded only to its own longest text.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = len(encodings[rows[-1]].ids)
            feed = {name: np.zeros((len(rows), width), dtype=np.int64) for name in self._inputs}
            feed["input_ids"].fill(self._pad_id)
            for r, i in enumerate(rows):
                e = encodings[i]
                n = len(e.ids)
                feed["input_ids"][r, :n] = e.ids
                feed["attention_mask"][r, :n] = 1
                if "token_type_ids" in feed:
                    feed["token_type_ids"][r, :n] = e.type_ids
            vectors[rows] = self._session.run(None, feed)[0]
            if progress:
                progress(start + len(rows), len(texts))
        return vectors
