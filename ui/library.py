"""The app's files in the data directory: uploads, removed documents, feedback.

    <data_dir>/uploads/          uploaded documents, under safe generated names
    <data_dir>/excluded.json     documents of --docs/seeds removed in the app (never deleted)
    <data_dir>/feedback.jsonl    thumbs up/down, one test case per line
    <data_dir>/indexes/          the engine's indexes (one per corpus)

No Gradio and no retrieval here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

from qa import DocumentError, collect_files, read_document
from qa.documents import SUPPORTED_SUFFIXES

# The app takes every format the engine reads, within its own size limit.
ALLOWED_SUFFIXES = SUPPORTED_SUFFIXES
MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # per file
MAX_UPLOAD_LABEL = "5 MB"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRefused(ValueError):
    """An upload that is not stored; the message says why, in the user's terms."""


def safe_name(original: str) -> str:
    """A file name made only of ``[A-Za-z0-9._-]``, from the last part of ``original``.

    Directory parts, drive letters, leading dots and odd characters are dropped,
    so the name can never point outside the uploads folder.
    """
    base = re.split(r"[\\/]", original or "")[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[:60] or "document"
    suffix = suffix.lower()
    return f"{stem}.{suffix}" if suffix else stem


class Library:
    def __init__(self, data_dir: Path, base_paths: list[Path]):
        self.data_dir = Path(data_dir)
        self.base_paths = [Path(p) for p in base_paths]
        self.uploads = self.data_dir / "uploads"
        self.excluded_file = self.data_dir / "excluded.json"
        self.feedback_file = self.data_dir / "feedback.jsonl"
        self._lock = threading.Lock()

    # -- the corpus -------------------------------------------------------
    def excluded(self) -> set[str]:
        try:
            return set(json.loads(self.excluded_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return set()

    def _write_excluded(self, paths: set[str]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.excluded_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(paths), indent=1), encoding="utf-8")
        os.replace(tmp, self.excluded_file)

    def uploaded_files(self) -> list[Path]:
        if not self.uploads.is_dir():
            return []
        # Not the hidden ".incoming-*" copies of uploads being checked (or left by a kill while checked).
        return sorted(p for p in self.uploads.iterdir()
                      if p.is_file() and p.suffix.lower() in ALLOWED_SUFFIXES and not p.name.startswith("."))

    def files(self) -> list[Path]:
        """The corpus: the base documents less the removed ones, plus the uploads."""
        excluded = self.excluded()
        base = [p for p in collect_files(self.base_paths) if str(p.resolve()) not in excluded]
        return base + [p.resolve() for p in self.uploaded_files()]

    @property
    def corpus(self) -> str:
        """The app's corpus as one name however its files change (``Assistant(corpus=...)``): each
        upload or removal then brings the same index, or Milvus collection, up to date."""
        return json.dumps({"app library": str(self.data_dir.resolve()),
                           "base": sorted(str(p.resolve()) for p in self.base_paths)})

    def is_upload(self, path: str | Path) -> bool:
        return Path(path).resolve().parent == self.uploads.resolve()

    def remove(self, path: str | Path) -> str:
        """Take a document out of the corpus: delete an upload, exclude anything else."""
        path = Path(path).resolve()
        with self._lock:
            if len(self.files()) <= 1:
                raise UploadRefused("the last document cannot be removed: upload another one first")
            if self.is_upload(path):
                path.unlink(missing_ok=True)
                return f"Deleted the upload {path.name}."
            excluded = self.excluded()
            excluded.add(str(path))
            self._write_excluded(excluded)
            return f"Removed {path.name} from the corpus (the file itself is kept)."

    def restore(self) -> int:
        with self._lock:
            n = len(self.excluded())
            self._write_excluded(set())
            return n

    # -- uploads ----------------------------------------------------------
    def add_upload(self, temp_path: str | Path, original_name: str) -> Path:
        """Check an uploaded file on the server side and store it under a safe name."""
        temp_path = Path(temp_path)
        shown = safe_name(original_name)
        suffix = Path(shown).suffix.lower()
        if suffix not in ALLOWED_SUFFIXES:
            raise UploadRefused(f"{shown}: file type {suffix or '(none)'} is not accepted; "
                                f"upload {', '.join(ALLOWED_SUFFIXES)}")
        size = temp_path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise UploadRefused(f"{shown}: {size / 1048576:.1f} MB is over the {MAX_UPLOAD_LABEL} limit")
        if size == 0:
            raise UploadRefused(f"{shown}: the file is empty")
        # Read it the way the engine will, from a private copy with the checked suffix.
        self.uploads.mkdir(parents=True, exist_ok=True)
        staging = self.uploads / f".incoming-{uuid.uuid4().hex}{suffix}"
        try:
            shutil.copyfile(temp_path, staging)
            try:
                read_document(staging)
            except DocumentError as exc:
                reason = str(exc).split(": ", 1)[-1]
                raise UploadRefused(f"{shown}: {reason}") from None
            with self._lock:
                dest = self._free_name(shown, staging)
                if dest.resolve().parent != self.uploads.resolve():  # belt and braces
                    raise UploadRefused(f"{shown}: unsafe file name")
                os.replace(staging, dest)
            return dest
        finally:
            staging.unlink(missing_ok=True)

    def _free_name(self, name: str, staging: Path) -> Path:
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, n = self.uploads / name, 2
        while candidate.exists():
            if candidate.read_bytes() == staging.read_bytes():
                raise UploadRefused(f"{name}: already uploaded")
            candidate = self.uploads / f"{stem}-{n}{suffix}"
            n += 1
        return candidate

    # -- feedback ---------------------------------------------------------
    def add_feedback(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with open(self.feedback_file, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def feedback_record(turn: dict, verdict: str) -> dict:
    """A thumbs up/down as a test case (the format of seeds/questions.jsonl).

    ``turn``: {"question", "history", "answer" (Answer.to_dict()), "docs"}.
    Up on an answer or a possible answer: ``answers`` = [its first quote]; up on "the documents don't
    say": ``answers`` = [] (a test case for abstaining).  Down: no ``answers``
    (the right one is unknown) and ``rejected`` = [the quote shown], or [] when
    the assistant abstained and the user thinks the documents do answer.
    """
    answer = turn["answer"]
    # An answer or a possible answer offers its first quote; "the documents don't say" offers none.
    offered = answer["kind"] != "none"
    quote = answer["quotes"][0] if answer["quotes"] and offered else None
    record = {
        "id": "fb-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6],
        "question": turn["question"],
    }
    if verdict == "up":
        record["answers"] = [quote["text"]] if quote else []
    else:
        record["rejected"] = [quote["text"]] if quote else []
    record.update({
        "history": list(turn["history"]),
        "docs": list(turn["docs"]),
        "verdict": verdict,
        "answered": answer["answered"],
        "kind": answer["kind"],
        "quote": quote,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return record
