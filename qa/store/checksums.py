"""The checksums the engine records and checks: of files, and of a document's sentence spans."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..segments import Segment


def sha256_file(path: Path) -> str:
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def spans_sha256(segments: list[Segment]) -> str:
    """What a document's sentence splitting gave: vectors stored for other spans belong to other sentences."""
    return hashlib.sha256(json.dumps([(s.start, s.end) for s in segments]).encode()).hexdigest()
