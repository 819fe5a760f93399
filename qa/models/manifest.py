"""A trained model on disk: its manifest, the verification of its files, the model cache.

A model is named in one of three ways:
- a manifest name from ``models/`` (``models/<name>.json``);
- the path of a manifest ``.json`` file;
- the path of any sentence-transformers model directory (not verified, but
  its weights are hashed so an index records exactly what built it).
A manifest names the model's files and their sha256; ``resolve_model`` finds
them (beside the manifest, or in an installed Python package) and refuses any
that do not match.  Weights are read from disk only; nothing is ever downloaded.

Every model of ``qa.models`` is found and verified here, then loaded by its
own runtime (the embedder: ``qa.models.embedder``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..store import checksums

# The repository's models/ (manifests, and the weights of the models trained here).
MODELS_DIR = Path(os.environ.get("QA_MODELS_DIR", Path(__file__).resolve().parents[2] / "models"))
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MODEL_CACHE_ENV = "QA_MODEL_CACHE"

# progress(stage, done, total), for a slow first use (an ONNX export).
Progress = Callable[[str, int, int], None]


class ModelError(RuntimeError):
    """The model cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    path: Path
    weights_sha256: str
    dimension: int | None
    # The manifest's name for its weight file; None for an unverified model directory.
    weights: str | None = None


def model_cache_dir() -> Path:
    """Exported ONNX files and the record of verified hashes.

    ``$QA_MODEL_CACHE``, else ``$XDG_CACHE_HOME/qa/models``, else
    ``~/.cache/qa/models``: per user, not per data directory, because an
    export depends on the model alone; a fresh ``--data-dir`` (every test
    makes some) must not cost another export.
    """
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa" / "models"


class _HashCache:
    """sha256 of files, remembered by what a rewrite of the file changes.

    Hashing the 90 MB weights (and their 90 MB ONNX export) costs ~0.2 s per
    process start, a good part of a one-question ``qa ask``.  A file whose
    size, mtime, ctime and inode are those recorded when it was hashed is not
    hashed again: any write, copy, reinstall or ``touch`` changes one of them
    (ctime cannot be set back), so a damaged or replaced file is still hashed
    and refused.  What it cannot see is the disk itself flipping bits.  The
    record lives in ``<model cache>/verified.json``; losing it only costs
    the hashing.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, dict] | None = None

    def _file(self) -> Path:
        return model_cache_dir() / "verified.json"

    def sha256(self, path: Path) -> str:
        path = path.resolve()
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        with self._lock:
            if self._entries is None:
                try:
                    self._entries = json.loads(self._file().read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    self._entries = {}
            known = self._entries.get(str(path))
            if known and known["stamp"] == stamp:
                return known["sha256"]
        digest = checksums.sha256_file(path)
        with self._lock:
            self._entries[str(path)] = {"stamp": stamp, "sha256": digest}
            self._save()
        return digest

    def _save(self):
        target = self._file()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".verified-", dir=target.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._entries, f)
            os.replace(tmp, target)
        except OSError:
            pass  # a read-only cache: hash again next time


_hashes = _HashCache()


def file_sha256(path: Path) -> str:
    """The file's sha256, hashed only when the file changed since last time (see ``_HashCache``)."""
    return _hashes.sha256(path)


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


def resolve_model(model: str | Path) -> ModelInfo:
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
            actual = file_sha256(file)
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
            weights=manifest["weights"],
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
    return ModelInfo(id=str(path.resolve()), path=path.resolve(), weights_sha256=file_sha256(weights), dimension=None)
