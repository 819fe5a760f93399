"""Reading documents: plain text, Markdown, HTML and (optionally) PDF.

A `Document` keeps its text exactly as read, so every offset the engine reports
can be checked with ``document.text[start:end]``.  Reading also finds the
document's structure: its title, its section headings and its paragraphs, as
character spans into that text.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf")

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

# A heading is a short line that does not end like a sentence.
HEADING_MAX_CHARS = 100
_SENTENCE_END = re.compile(r"[.!?…:;,][\"'”’)\]]*\s*$")
_DATED_TITLE = re.compile(r"^\s*date\s+(\d{4}-\d{2}-\d{2})\s+(.+?)\s*$")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


class DocumentError(ValueError):
    """A document cannot be read; the message names the file and the fix."""


@dataclass(frozen=True)
class Block:
    """A span of a document's text: its title, a heading or a paragraph."""

    kind: str  # "title" | "heading" | "paragraph"
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    id: str
    path: str
    title: str
    text: str
    blocks: tuple[Block, ...] = field(repr=False)
    date: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_documents(paths: list[str | Path] | tuple[str | Path, ...],
                   max_file_mb: float | None = None) -> list[Document]:
    """Read every supported file named in ``paths`` (files or folders).

    A file named twice, directly or through a link, is read once.
    ``max_file_mb``: see ``read_document``.
    """
    files = collect_files(paths)
    ids = _document_ids(files)
    return [read_document(path, doc_id, max_file_mb) for path, doc_id in zip(files, ids)]


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
    if not paths:
        raise DocumentError("no documents given: name at least one file or folder")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        mode = _stat(path).st_mode
        if stat.S_ISDIR(mode):
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not _hidden(p, path)
            )
            if not found:
                raise DocumentError(
                    f"{path}: folder holds no {', '.join(SUPPORTED_SUFFIXES)} files"
                )
            files.extend(found)
        else:
            _check_regular(path, mode)
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise DocumentError(
                    f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
                    f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
                )
            files.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def read_document(path: str | Path, doc_id: str | None = None, max_file_mb: float | None = None) -> Document:
    """Read one file; ``max_file_mb`` (default ``file_limit_mb()``) refuses larger ones."""
    path = Path(path)
    suffix = path.suffix.lower()
    data = _read_bytes(path, file_limit_mb() if max_file_mb is None else max_file_mb)
    if suffix == ".pdf":
        text = _read_pdf(path, data)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(
                f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 and try again"
            ) from None
    if suffix in (".html", ".htm"):
        text, blocks, title = _parse_html(text)
        date = None
    else:
        # PDF lines are wrapped by layout, so short lines say nothing of headings.
        blocks, title, date = _parse_lines(
            text, markdown=suffix == ".md", headings=suffix != ".pdf"
        )
    if not any(b.kind == "paragraph" for b in blocks):
        if any(b.kind == "heading" for b in blocks):
            raise DocumentError(f"{path}: has only headings, no sentences to quote; add the text under them")
        raise DocumentError(f"{path}: has no body text to answer from")
    return Document(
        id=doc_id or path.name,
        path=str(path),
        title=title or path.stem,
        text=text,
        blocks=tuple(blocks),
        date=date,
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


def _line_spans(text: str):
    """Yield (start, end) of each line, without its line break."""
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        yield pos, pos + len(body)
        pos += len(line)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def is_heading_line(line: str) -> bool:
    line = line.strip()
    return 0 < len(line) <= HEADING_MAX_CHARS and not _SENTENCE_END.search(line)


def _parse_lines(text: str, markdown: bool, headings: bool = True):
    """Blocks of a text or Markdown file.

    Paragraphs are runs of non-blank lines; a line that ends like a sentence
    closes its paragraph, so one-paragraph-per-line text (as in news feeds)
    keeps its paragraphs while hard-wrapped prose stays whole.  In plain text a
    heading is a short line that does not end like a sentence, stands after a
    closed paragraph and is not continued in lower case on the next line.
    """
    lines = [_trimmed(text, s, e) for s, e in _line_spans(text)]
    blocks: list[Block] = []
    title = date = None
    para: list[int] | None = None

    def close():
        nonlocal para
        if para:
            blocks.append(Block("paragraph", para[0], para[1]))
        para = None

    for i, (start, end) in enumerate(lines):
        line = text[start:end]
        if not line:
            close()
            continue
        if not blocks and para is None and (dated := _DATED_TITLE.match(line)):
            date, title = dated.group(1), dated.group(2)
            blocks.append(Block("title", start + dated.start(2), start + dated.end(2)))
            continue
        md = _MD_HEADING.match(line) if markdown else None
        if md:
            close()
            start, end = start + md.start(1), start + md.end(1)
            kind = "title" if not blocks and title is None else "heading"
            title = title or text[start:end]
            blocks.append(Block(kind, start, end))
            continue
        if headings and not markdown and para is None and _plain_heading(text, lines, i):
            blocks.append(Block("heading", start, end))
            continue
        para = [para[0] if para else start, end]
        if _SENTENCE_END.search(line):
            close()
    close()
    return blocks, title, date


def _plain_heading(text: str, lines, i: int) -> bool:
    start, end = lines[i]
    line = text[start:end]
    if not is_heading_line(line) or not (line[0].isupper() or line[0].isdigit()):
        return False
    following = next((text[s:e] for s, e in lines[i + 1:] if e > s), "")
    return not following[:1].islower()


_HTML_BLOCK_TAGS = {
    "p", "div", "li", "td", "th", "blockquote", "pre", "section", "article",
    "br", "tr", "dd", "dt", "figcaption", "main", "header", "footer",
}
_HTML_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HTML_SKIP = {"script", "style", "head", "noscript", "template", "svg"}


class _HTMLText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self.current: list[str] = []
        self.kind = "paragraph"
        self.skip = 0
        self.in_title = False
        self.title = ""

    def flush(self):
        text = re.sub(r"\s+", " ", "".join(self.current)).strip()
        if text:
            self.blocks.append((self.kind, text))
        self.current = []
        self.kind = "paragraph"

    def handle_starttag(self, tag, attrs):
        if tag in _HTML_SKIP:
            self.skip += 1
        if tag == "title":
            self.in_title = True
        if tag in _HTML_BLOCK_TAGS or tag in _HTML_HEADINGS:
            self.flush()
        if tag in _HTML_HEADINGS:
            self.kind = "heading"

    def handle_endtag(self, tag):
        if tag in _HTML_SKIP and self.skip:
            self.skip -= 1
        if tag == "title":
            self.in_title = False
        if tag in _HTML_BLOCK_TAGS or tag in _HTML_HEADINGS:
            self.flush()

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        elif not self.skip:
            self.current.append(data)

    def parse_marked_section(self, i, report=1):
        # "<![name ...>" other than CDATA makes Python's parser raise
        # AssertionError; browsers skip it as a bogus comment, up to ">".
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return -1 if end < 0 else end + 1


def _parse_html(raw: str):
    """The visible text of an HTML page, one block per line.

    Offsets of an HTML document index this extracted text (``Document.text``),
    not the markup.
    """
    parser = _HTMLText()
    parser.feed(raw)
    # What feed() left unparsed is markup the page never finished: an unclosed
    # "<!--", "<!DOCTYPE", "<?..." or "<tag".  Browsers show none of it, but
    # close() would hand it over as text, so it is dropped here.
    if parser.rawdata.startswith("<"):
        parser.rawdata = ""
    parser.close()
    parser.flush()
    parts, blocks, pos = [], [], 0
    for kind, block_text in parser.blocks:
        blocks.append(Block(kind, pos, pos + len(block_text)))
        parts.append(block_text)
        pos += len(block_text) + 2
    title = parser.title.strip() or next(
        ("\n\n".join(parts)[b.start:b.end] for b in blocks if b.kind == "heading"), None
    )
    return "\n\n".join(parts), blocks, title


def _read_pdf(path: Path, data: bytes) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise DocumentError(
            f"{path}: reading PDF needs the optional extra: pip install 'qa[pdf]'"
        ) from None
    try:
        pages = [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]
    except Exception as exc:  # pypdf raises many kinds for damaged files
        raise DocumentError(f"{path}: not a readable PDF ({exc})") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())
