"""An exclusive lock beside a directory, so two processes never write or swap it at once."""

from __future__ import annotations

import fcntl
from pathlib import Path


class DirectoryLock:
    """``with DirectoryLock(path):`` holds ``.<name>.lock`` beside ``path``; released when the process dies."""

    def __init__(self, directory: Path):
        self.path = Path(directory).with_name(f".{Path(directory).name}.lock")

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("w")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
