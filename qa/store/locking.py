"""Locks beside an index directory: one to write or swap it, one held by every process that has it open.

    .<name>.lock        exclusive: a writer (build, swap, recovery, pruning) of <name>
    .<name>.inuse.lock  shared by every process that has <name> open; pruning removes
                        <name> only when it can take this one exclusively

flock locks are released when their process dies, so a crash never leaves one
held.  A lock file can be removed by whoever holds it (pruning an index
removes its locks); whoever was waiting on the removed file then finds it gone
and locks the new one, so two holders never hold different files of one name.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


def lock_file(path: Path, exclusive: bool = True, blocking: bool = True) -> IO | None:
    """The open, locked ``path`` (created if missing); None when ``blocking`` is False and it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
    while True:
        file = path.open("a")
        try:
            fcntl.flock(file, mode)
        except BlockingIOError:
            file.close()
            return None
        try:
            if os.stat(path).st_ino == os.fstat(file.fileno()).st_ino:
                return file
        except FileNotFoundError:
            pass
        file.close()  # removed while we waited: lock the file that stands there now


def in_use_path(directory: Path) -> Path:
    return Path(directory).with_name(f".{Path(directory).name}.inuse.lock")


def hold_open(directory: Path) -> IO:
    """Mark ``directory`` as open by this process until the returned file is closed (or collected)."""
    return lock_file(in_use_path(directory), exclusive=False)


class DirectoryLock:
    """``with DirectoryLock(path):`` holds ``.<name>.lock`` beside ``path``; released when the process dies.

    With ``blocking=False``, ``with DirectoryLock(path, blocking=False) as held:``
    gives False at once when another writer holds it.
    """

    def __init__(self, directory: Path, blocking: bool = True):
        self.path = Path(directory).with_name(f".{Path(directory).name}.lock")
        self.blocking = blocking

    def __enter__(self) -> bool:
        self.file = lock_file(self.path, blocking=self.blocking)
        return self.file is not None

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()  # closing releases the lock
