"""Removing from the data directory what no corpus uses any more, so that it stays bounded.

An index is rebuilt in place as its documents change, but two things
accumulate without this: the index of a corpus whose documents are all gone
(each set of files given to ``--docs`` has its own), and the cached vectors of
every version of every document ever embedded.  ``prune`` removes:

- an index whose documents are all gone, or of an older format, unless a process has it open (``locking.hold_open``:
  a running ``qa serve`` keeps its index) or is writing it;
- what a killed build left beside an index (``index._recover``);
- cached vectors of a document that no remaining index holds (a removed
  document, or an edited one's earlier versions), and of a model no index uses.

An index's current version is never touched: it is the directory itself,
kept or removed whole.  ``Assistant`` prunes after every build; ``qa prune``
prunes on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .index import FORMAT_VERSION, _recover, default_data_dir
from .locking import DirectoryLock, in_use_path, lock_file

# A vector file being written is renamed into place within seconds; one older than this was left by a kill.
STALE_TEMPORARY_SECONDS = 3600


@dataclass(frozen=True)
class PruneReport:
    """What ``prune`` removed (paths relative to the data directory) and what it kept."""

    removed: tuple[str, ...]
    freed_bytes: int
    kept_indexes: int
    in_use: tuple[str, ...]  # indexes kept because a process has them open or is writing them

    def to_dict(self) -> dict:
        return {**asdict(self), "removed": list(self.removed), "in_use": list(self.in_use)}


def prune(data_dir: str | Path | None = None) -> PruneReport:
    """Remove what no corpus uses any more from ``data_dir``; never waits for a lock (a busy index is kept)."""
    data = Path(data_dir or default_data_dir())
    removed: list[Path] = []
    in_use: list[str] = []
    used: dict[str, set[str]] = {}  # model weights sha256[:16] -> document sha256s that remaining indexes hold
    kept = 0
    freed = 0
    indexes = data / "indexes"
    for directory in sorted(indexes.iterdir()) if indexes.is_dir() else []:
        if directory.name.startswith(".") or not directory.is_dir():
            continue
        with DirectoryLock(directory, blocking=False) as writable:
            manifest = _manifest(directory)
            if writable:
                _recover(directory)
            if writable and _unused(manifest):
                held = lock_file(in_use_path(directory), blocking=False)
                if held is not None:
                    with held:
                        freed += _size(directory)
                        shutil.rmtree(directory)
                        _unlink_locks(directory)
                    removed.append(directory)
                    continue
            if _unused(manifest):
                in_use.append(str(directory.relative_to(data)))
        kept += 1
        try:
            model = str(manifest["model"]["weights_sha256"])[:16]
            used.setdefault(model, set()).update(str(d["sha256"]) for d in manifest["documents"])
        except (KeyError, TypeError):  # no manifest, or a damaged one: what it holds is re-embedded when rebuilt
            pass
    for lock in sorted(indexes.glob(".*.inuse.lock")) if indexes.is_dir() else []:
        directory = indexes / lock.name[1:-len(".inuse.lock")]
        if not directory.exists():  # its index was never built (the build failed) or was removed by hand
            _remove_locks(directory)
    vectors = data / "vectors"
    for model_dir in sorted(vectors.iterdir()) if vectors.is_dir() else []:
        for path in sorted(model_dir.iterdir()) if model_dir.is_dir() else []:
            if _orphan(path, used.get(model_dir.name, set())):
                freed += path.stat().st_size
                path.unlink(missing_ok=True)
                removed.append(path)
    return PruneReport(tuple(str(p.relative_to(data)) for p in removed), freed, kept, tuple(in_use))


def _remove_locks(directory: Path) -> None:
    """The lock files of an index that is not there, unless a process is building it now."""
    held = lock_file(in_use_path(directory), blocking=False)  # both without waiting: any order is safe
    if held is not None:
        with held, DirectoryLock(directory, blocking=False) as writable:
            if writable:
                _unlink_locks(directory)


def _unlink_locks(directory: Path) -> None:
    """Call holding both: a process waiting on either finds it gone and locks a new one (``lock_file``)."""
    in_use_path(directory).unlink(missing_ok=True)
    directory.with_name(f".{directory.name}.lock").unlink(missing_ok=True)


def _manifest(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _unused(manifest: dict | None) -> bool:
    """Nothing will open this index again: of another format, or every document gone.

    A damaged index is kept: its corpus may be alive, and the next ``qa`` command over it rebuilds it in place.
    """
    if manifest is None:
        return False
    if manifest.get("format_version") != FORMAT_VERSION:
        return True
    documents = manifest.get("documents")
    return isinstance(documents, list) and not any(
        isinstance(d, dict) and os.path.exists(str(d.get("path"))) for d in documents)


def _orphan(path: Path, documents: set[str]) -> bool:
    """A cached vector file (or its checksum) of a document no index holds, or a dead write's temporary."""
    if path.suffix == ".tmp":
        return time.time() - path.stat().st_mtime > STALE_TEMPORARY_SECONDS
    return path.suffix in (".npy", ".sha256") and path.name.split("-", 1)[0] not in documents


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
