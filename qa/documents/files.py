"""Finding and reading documents: files and folders in, ``Document``s out, each bad file named.

A folder is read whatever it holds: a file that cannot be read is set aside
as ``Skipped``, with the reason, and the rest are read.  Each format has its
reader module; this one opens files (refusing special files and files over
the size limit) and hands their bytes to the reader their suffix names.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .base import Content, Document, DocumentError
from .mail import read_eml, read_mbox
from .markup import read_html
from .pdf import read_pdf
from .text import read_markdown, read_text
from .word import read_docx

READERS = {
    ".txt": read_text,
    ".md": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".eml": read_eml,
    ".mbox": read_mbox,
}
SUPPORTED_SUFFIXES = tuple(READERS)

# The largest document read, in MB (2**20 bytes): a bigger file is more likely
# a mistake (a log, a dump) than something to quote, and slow to embed.  The
# CLI's --max-file-mb sets the variable.
MAX_FILE_MB_ENV = "QA_MAX_FILE_MB"
DEFAULT_MAX_FILE_MB = 20.0
_MB = 1024 * 1024

# What a path is when it is not a regular file, in the words of an error message.
_SPECIAL_FILES = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


@dataclass(frozen=True)
class Skipped:
    """A file or folder that was not read: ``reason`` is the one-line message naming it and the fix."""

    path: str
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Corpus:
    """What a set of paths yields: the documents read, and what could not be read, in path order."""

    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]


def read_corpus(paths: list[str | Path] | tuple[str | Path, ...], max_file_mb: float | None = None) -> Corpus:
    """Read every supported file named in ``paths`` (files or folders); set aside those that cannot be.

    A file named twice, directly or through a link, is read once.  Raises
    ``DocumentError`` only when no document at all could be read.
    ``max_file_mb``: see ``read_document``.
    """
    skipped: list[Skipped] = []
    files = _collect(paths, skipped)
    # Read once: a bad $QA_MAX_FILE_MB is one error, not a reason for skipping every file.
    limit = file_limit_mb() if max_file_mb is None else max_file_mb
    documents = []
    for path, doc_id in zip(files, _document_ids(files)):
        try:
            documents.append(read_document(path, doc_id, limit))
        except DocumentError as exc:
            skipped.append(Skipped(str(path), str(exc)))
    if not documents:
        raise DocumentError(_nothing_read(skipped))
    return Corpus(tuple(documents), tuple(skipped))


def _nothing_read(skipped: list[Skipped]) -> str:
    if len(skipped) == 1:
        return skipped[0].reason
    shown = "; ".join(s.reason for s in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f"no document could be read ({len(skipped)} refused): {shown}{more}"


def load_documents(paths: list[str | Path] | tuple[str | Path, ...],
                   max_file_mb: float | None = None) -> list[Document]:
    """Every document named in ``paths``; the first one that cannot be read raises ``DocumentError``.

    ``read_corpus`` reads what it can instead.
    """
    corpus = read_corpus(paths, max_file_mb)
    if corpus.skipped:
        raise DocumentError(corpus.skipped[0].reason)
    return list(corpus.documents)


def file_limit_mb() -> float:
    """The size limit for one document: ``$QA_MAX_FILE_MB``, else 20 MB."""
    raw = os.environ.get(MAX_FILE_MB_ENV)
    if raw is None:
        return DEFAULT_MAX_FILE_MB
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise DocumentError(f"{MAX_FILE_MB_ENV}={raw!r}: give the size limit as a number of MB, such as 20")
    return value


def collect_files(paths) -> list[Path]:
    """The document files named in ``paths`` (files or folders); the first path that names none raises."""
    skipped: list[Skipped] = []
    files = _collect(paths, skipped)
    if skipped:
        raise DocumentError(skipped[0].reason)
    return files


def _collect(paths, skipped: list[Skipped]) -> list[Path]:
    """The document files in ``paths``; each path that names none is added to ``skipped``.

    A folder contributes its supported files (other files in it are not
    documents, so they are passed over in silence); a file named on its own
    must be of a supported type.
    """
    if not paths:
        raise DocumentError("no documents given: name at least one file or folder")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            files.extend(_files_in(path))
        except DocumentError as exc:
            skipped.append(Skipped(str(path), str(exc)))
    return list(dict.fromkeys(p.resolve() for p in files))


def _files_in(path: Path) -> list[Path]:
    mode = _stat(path).st_mode
    if stat.S_ISDIR(mode):
        found = sorted(
            p for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not _hidden(p, path)
        )
        if not found:
            raise DocumentError(f"{path}: folder holds no {', '.join(SUPPORTED_SUFFIXES)} files")
        return found
    _check_regular(path, mode)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return [path]


def read_document(path: str | Path, doc_id: str | None = None, max_file_mb: float | None = None) -> Document:
    """Read one file; ``max_file_mb`` (default ``file_limit_mb()``) refuses larger ones."""
    path = Path(path)
    # A file named here with another suffix is read as text: its caller knows what it holds.
    reader = READERS.get(path.suffix.lower(), read_text)
    data = _read_bytes(path, file_limit_mb() if max_file_mb is None else max_file_mb)
    content: Content = reader(path, data)
    if not any(b.kind == "paragraph" for b in content.blocks):
        if any(b.kind == "heading" for b in content.blocks):
            raise DocumentError(f"{path}: has only headings, no sentences to quote; add the text under them")
        raise DocumentError(f"{path}: has no body text to answer from")
    return Document(
        id=doc_id or path.name,
        path=str(path),
        title=content.title or path.stem,
        text=content.text,
        blocks=tuple(content.blocks),
        date=content.date,
        encoding=content.encoding,
        pages=content.pages,
    )


def _stat(path: Path) -> os.stat_result:
    """``path.stat()``, with what is wrong with the path named when it fails."""
    try:
        return path.stat()
    except OSError as exc:
        raise _path_error(path, exc) from None


def _path_error(path: Path, exc: OSError) -> DocumentError:
    if exc.errno == errno.ENOENT and path.is_symlink():
        return DocumentError(f"{path}: broken symbolic link to {os.readlink(path)}; fix or remove the link")
    if exc.errno == errno.ENOENT:
        return DocumentError(f"{path}: no such file or folder")
    if exc.errno == errno.ELOOP:
        return DocumentError(f"{path}: symbolic link loop (the link leads back to itself); fix the link")
    if exc.errno == errno.EACCES:
        return DocumentError(f"{path}: permission denied; make it readable for this user (chmod +r)")
    return DocumentError(f"{path}: cannot be read ({exc.strerror})")


def _check_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _SPECIAL_FILES.get(stat.S_IFMT(mode), "not a regular file")
        raise DocumentError(f"{path}: is {kind}, not a document file; name a {'/'.join(SUPPORTED_SUFFIXES)} file")


def _read_bytes(path: Path, limit_mb: float) -> bytes:
    """The bytes of a regular file of at most ``limit_mb`` MB."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _path_error(path, exc) from None
    try:
        info = os.fstat(fd)
        _check_regular(path, info.st_mode)
        if info.st_size > limit_mb * _MB:
            raise DocumentError(
                f"{path}: {info.st_size / _MB:.1f} MB is over the {limit_mb:g} MB limit for one document; "
                f"raise it with --max-file-mb or {MAX_FILE_MB_ENV}"
            )
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as exc:
        raise _path_error(path, exc) from None
    finally:
        os.close(fd)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _document_ids(files: list[Path]) -> list[str]:
    """File names, or paths relative to the common folder when names repeat."""
    names = [f.name for f in files]
    if len(set(names)) == len(names):
        return names
    root = Path(*_common_parts(files))
    return [str(f.relative_to(root)) for f in files]


def _common_parts(files: list[Path]) -> tuple[str, ...]:
    parts = files[0].parent.parts
    for f in files[1:]:
        other = f.parent.parts
        n = 0
        while n < min(len(parts), len(other)) and parts[n] == other[n]:
            n += 1
        parts = parts[:n]
    return parts
