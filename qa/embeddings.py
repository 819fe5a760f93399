"""The sentence embedder, verified against its manifest before use.

A model is named in one of three ways:
- a manifest name from ``models/`` (the default, ``all-MiniLM-L6-v2``);
- the path of a manifest ``.json`` file;
- the path of any sentence-transformers model directory (not verified, but
  its weights are hashed so an index records exactly what built it).
Weights are read from disk only; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MODELS_DIR = Path(os.environ.get("QA_MODELS_DIR", Path(__file__).resolve().parent.parent / "models"))
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ModelError(RuntimeError):
    """The model cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    path: Path
    weights_sha256: str
    dimension: int | None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_path(model: str) -> Path | None:
    if model.endswith(".json"):
        return Path(model)
    candidate = MODELS_DIR / f"{model}.json"
    return candidate if candidate.is_file() else None


def _source_dir(manifest: dict, manifest_path: Path) -> Path:
    source = manifest.get("source", {})
    if "path" in source:
        return (manifest_path.parent / source["path"]).resolve()
    module = source.get("module")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model {manifest['name']!r} is not installed: pip install {source.get('pypi', module)}"
        )
    return Path(spec.submodule_search_locations[0]) / source.get("subdir", "")


def resolve_model(model: str | Path = DEFAULT_MODEL) -> ModelInfo:
    """Find the model's files and check them against its manifest."""
    model = str(model)
    manifest_path = _manifest_path(model)
    if manifest_path is not None:
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"model manifest {manifest_path} cannot be read: {exc}") from None
        path = _source_dir(manifest, manifest_path)
        for name, expected in manifest["files"].items():
            file = path / name
            if not file.is_file():
                raise ModelError(f"model {manifest['name']!r}: file {file} is missing; reinstall the model")
            actual = _sha256(file)
            if actual != expected:
                raise ModelError(
                    f"model {manifest['name']!r}: {file} does not match its manifest "
                    f"(sha256 {actual[:12]}…, expected {expected[:12]}…); the file is damaged "
                    f"or not the published weights: reinstall the model"
                )
        return ModelInfo(
            id=manifest["name"],
            path=path,
            weights_sha256=manifest["files"][manifest["weights"]],
            dimension=manifest.get("dimension"),
        )
    path = Path(model)
    if not path.is_dir():
        known = ", ".join(sorted(p.stem for p in MODELS_DIR.glob("*.json"))) or "none"
        raise ModelError(
            f"unknown model {model!r}: name a manifest in {MODELS_DIR} ({known}), "
            f"a manifest .json file, or a sentence-transformers model directory"
        )
    weights = next((path / w for w in _WEIGHT_FILES if (path / w).is_file()), None)
    if weights is None:
        raise ModelError(f"{path}: no {' or '.join(_WEIGHT_FILES)} found; is it a sentence-transformers model?")
    return ModelInfo(id=str(path.resolve()), path=path.resolve(), weights_sha256=_sha256(weights), dimension=None)


class Embedder:
    """Turns texts into unit-length vectors.

    The constructor only records the choice; ``load()`` verifies the weights
    and loads the network (seconds), once.
    """

    def __init__(self, model: str | Path = DEFAULT_MODEL, batch_size: int = 64):
        self.model = model
        self.batch_size = batch_size
        self.info: ModelInfo | None = None
        self._network = None

    def load(self) -> "Embedder":
        if self._network is not None:
            return self
        self.info = resolve_model(self.model)
        # Even a local path can make the hub client try the network first;
        # and its loading bar would mix with the caller's own progress.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self._network = SentenceTransformer(str(self.info.path), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken directory fails in many ways
            raise ModelError(f"model at {self.info.path} cannot be loaded: {exc}") from None
        return self

    @property
    def dimension(self) -> int:
        self.load()
        return self._network.get_sentence_embedding_dimension()

    def embed(self, texts: list[str], progress=None) -> np.ndarray:
        """Unit vectors, one row per text; ``progress(done, total)`` after each batch."""
        self.load()
        rows = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i:i + self.batch_size]
            rows.append(self._network.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            ))
            if progress:
                progress(min(i + len(batch), len(texts)), len(texts))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.ascontiguousarray(np.vstack(rows), dtype=np.float32)
