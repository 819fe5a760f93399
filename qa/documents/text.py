"""Text files (.txt, .md) in any common encoding.

UTF-8 is tried first: it is what most files are, and a strict decode never
mistakes other bytes for it.  A byte order mark says UTF-8, UTF-16 or UTF-32
outright.  Anything else (Windows' cp1252, latin-1, UTF-16 without a mark, ...)
is detected by charset-normalizer; bytes it cannot read as text in any encoding
(a binary file renamed .txt) are refused.
"""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

from .base import Content, DocumentError
from .lines import parse_lines

# Longest first: UTF-32-LE's mark begins with UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
# Decoded text with more than this share of control characters (other than
# line breaks and tabs) is a binary file that some 8-bit code page happens to map.
_MAX_CONTROL_SHARE = 0.01
_PREFERRED = "cp1252"


def decode(path: Path, data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of a text file's bytes; the text holds no byte order mark."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), name
            except UnicodeDecodeError as exc:
                raise DocumentError(f"{path}: starts with a {name} byte order mark but is not {name} "
                                    f"(byte {exc.start}); save it again as UTF-8") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    text = str(best) if best is not None else ""
    if best is None or _control_share(text) > _MAX_CONTROL_SHARE:
        raise DocumentError(f"{path}: not text in any encoding recognised (a binary file?); "
                            "save it as text (UTF-8) or remove it")
    # A short text often reads equally well in several code pages (è in cp1252 is č in cp1250):
    # Windows' Western one, by far the most common, wins a tie.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    if any(_PREFERRED in m.could_be_from_charset for m in tied):
        return data.decode(_PREFERRED), _PREFERRED
    return text, codecs.lookup(best.encoding).name


def _control_share(text: str) -> float:
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r\f")
    return controls / max(len(text), 1)


def read_text(path: Path, data: bytes, markdown: bool = False) -> Content:
    text, encoding = decode(path, data)
    blocks, title, date = parse_lines(text, markdown=markdown)
    return Content(text, blocks, title, date, encoding)


def read_markdown(path: Path, data: bytes) -> Content:
    return read_text(path, data, markdown=True)
