"""Reading documents: plain text and Markdown (any common encoding), HTML, PDF, Word and e-mail.

A `Document` keeps its text exactly as read (for formats whose text is
extracted, as extracted), so every offset the engine reports can be checked
with ``document.text[start:end]``.  Reading also finds the document's
structure: its title, its section headings and its paragraphs, as character
spans into that text, and a PDF's pages.  One module per format; ``files``
finds the files and hands each to its reader.
"""

from .base import Block, Document, DocumentError
from .files import (
    DEFAULT_MAX_FILE_MB,
    MAX_FILE_MB_ENV,
    SUPPORTED_SUFFIXES,
    Corpus,
    Skipped,
    collect_files,
    file_limit_mb,
    load_documents,
    read_corpus,
    read_document,
)

__all__ = [
    "Block", "Corpus", "DEFAULT_MAX_FILE_MB", "Document", "DocumentError", "MAX_FILE_MB_ENV",
    "SUPPORTED_SUFFIXES", "Skipped", "collect_files", "file_limit_mb", "load_documents",
    "read_corpus", "read_document",
]
