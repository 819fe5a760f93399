"""Which Milvus servers the store runs on, and where each keeps the sentences' terms.

Milvus 2.4 brought sparse vectors: from it on a server holds each sentence's
terms beside its vector, and answers term searches itself (``qa.milvus``).
Milvus 2.3 (the last server published on PyPI, ``milvus==2.3.5``, which the
tests start) accepts a sparse field in a schema and then fails to index it,
so there the server holds vectors and offsets only, and each process keeps
its corpus's terms beside it, in memory (``qa.term_postings.LocalTerms``),
tokenized from the documents it reads anyway to cut its quotes.  Two
processes agree on those terms exactly when they read the same versions of
the documents, which is what the version keys of the rows already check.
Older servers delete rows by primary key only, where the store deletes by a
filter on ``doc``: they are refused in one line.
"""

from __future__ import annotations

import re

from .base import StoreUnavailableError

OLDEST = (2, 3)
SPARSE_VECTORS = (2, 4)


def terms_on_server(version: str, uri: str) -> bool:
    """Whether a server reporting ``version`` (``get_server_version()``, e.g. "v2.3.5-lite") holds terms.

    A version without a number in it (a managed service may report its own
    name) is taken to be recent.
    """
    found = re.search(r"(\d+)\.(\d+)", version)
    if not found:
        return True
    number = (int(found[1]), int(found[2]))
    if number < OLDEST:
        raise StoreUnavailableError(
            f"the Milvus server at {uri} runs {version}; the store needs Milvus {OLDEST[0]}.{OLDEST[1]} or later "
            f"({SPARSE_VECTORS[0]}.{SPARSE_VECTORS[1]} or later to keep the terms on the server too): upgrade it"
        )
    return number >= SPARSE_VECTORS
