"""The reader: whether a sentence says what is asked, and the words inside it that do.

A six-layer MiniLM reads "[CLS] question [SEP] sentence [SEP]" and scores every
word piece of the sentence as the answer's first and last, and the [CLS]
position as "no answer" (SQuAD 2.0's reader).  Per sentence it gives the best
span no longer than ``MAX_ANSWER_TOKENS`` (character offsets into the
sentence, so the quote stays verbatim) and its ``margin``: the span's start and
end scores added, less [CLS]'s.  A sentence that only holds the question's
words gets a negative margin; one that says what is asked, a positive one.
It is trained on SQuAD train by ``python -m qa.training.reader`` and ships in
``models/`` as ONNX with a manifest (sha256 of every file, base model,
training data and license), checked before use like the embedder's.
onnxruntime and tokenizers run it: no torch on the query path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .manifest import MODELS_DIR, ModelError, resolve_model

MANIFEST = MODELS_DIR / "reader.json"
MAX_TOKENS = 128  # question and sentence together; a longer sentence is read up to here
MAX_ANSWER_TOKENS = 30
REBUILD = "rebuild it with `python -m qa.training.reader` (docs/reader.md)"


class ReaderModelError(ModelError):
    """The reader model is missing or does not match its manifest."""


def best_span(start: np.ndarray, end: np.ndarray, allowed: np.ndarray,
              longest: int = MAX_ANSWER_TOKENS) -> tuple[int, int, float] | None:
    """(first, last, score) of the best answer within the ``allowed`` word pieces, or None."""
    if not allowed.any():
        return None
    s = np.where(allowed, start, -np.inf)
    e = np.where(allowed, end, -np.inf)
    pairs = s[:, None] + e[None, :]
    n = len(s)
    band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), longest)
    pairs = np.where(band, pairs, -np.inf)
    first, last = np.unravel_index(int(np.argmax(pairs)), pairs.shape)
    return int(first), int(last), float(pairs[first, last])


def encode_pairs(tokenizer, questions: Sequence[str], sentences: Sequence[str]):
    """Padded model inputs for each (question, sentence), and per pair the sentence's word pieces
    (a boolean mask) and their character offsets in the sentence."""
    encodings = tokenizer.encode_batch(list(zip(questions, sentences)))
    width = max(len(e.ids) for e in encodings)
    feed = {name: np.zeros((len(encodings), width), dtype=np.int64)
            for name in ("input_ids", "attention_mask", "token_type_ids")}
    allowed = np.zeros((len(encodings), width), dtype=bool)
    offsets = np.zeros((len(encodings), width, 2), dtype=np.int64)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        feed["input_ids"][row, :n] = e.ids
        feed["attention_mask"][row, :n] = 1
        feed["token_type_ids"][row, :n] = e.type_ids
        # The sentence's own word pieces: the second sequence, less its closing [SEP].
        allowed[row, :n] = [sid == 1 and not special for sid, special in zip(e.sequence_ids, e.special_tokens_mask)]
        offsets[row, :n] = e.offsets
    return feed, allowed, offsets


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    # "longest_first" cuts the sentence as "only_second" would while the question is the shorter of
    # the two, and cuts a question too long to fit (past ~62 word pieces) instead of failing on it.
    tokenizer.enable_truncation(MAX_TOKENS, strategy="longest_first")
    return tokenizer


@dataclass(frozen=True)
class Reading:
    """The reader's view of one sentence: its best answer span and how much better than "no answer" it is."""

    start: int  # character offsets of the span in the sentence
    end: int
    score: float  # the span's start and end scores added
    no_answer: float  # [CLS]'s start and end scores added

    @property
    def margin(self) -> float:
        """Above 0 the reader takes the sentence to answer; the higher, the surer."""
        return self.score - self.no_answer


class Reader:
    """Reads sentences against a question.  Cheap to construct; ``load`` verifies and opens the model."""

    def __init__(self, manifest: Path = MANIFEST):
        self.manifest = Path(manifest)
        self._session = None
        self._tokenizer = None

    def load(self) -> "Reader":
        if self._session is None:
            info = _verified(self.manifest)
            self._tokenizer, self._session = _open(info.path, info.weights, info.weights_sha256)
        return self

    def read(self, question: str, sentences: Sequence[str]) -> list[Reading | None]:
        """Each sentence read with the question, in one batch (None for a sentence of no words)."""
        if not sentences:
            return []
        self.load()
        return read_pairs(self._session, self._tokenizer, [question] * len(sentences), sentences)


def read_pairs(session, tokenizer, questions: Sequence[str], sentences: Sequence[str]) -> list[Reading | None]:
    """The reading of each (question, sentence) pair, by ``session`` in one batch."""
    feed, allowed, offsets = encode_pairs(tokenizer, questions, sentences)
    start, end = session.run(None, feed)
    out: list[Reading | None] = []
    for row in range(len(sentences)):
        found = best_span(start[row], end[row], allowed[row])
        if found is None:
            out.append(None)
            continue
        first, last, score = found
        out.append(Reading(int(offsets[row, first, 0]), int(offsets[row, last, 1]), score,
                           float(start[row, 0] + end[row, 0])))
    return out


def _verified(manifest: Path):
    """The model's files, checked against ``manifest`` as the embedder's are (``resolve_model``)."""
    try:
        return resolve_model(manifest)
    except (ModelError, KeyError) as exc:
        raise ReaderModelError(f"{exc}; {REBUILD}") from None


@functools.cache
def _open(directory: Path, weights: str, digest: str):
    """The tokenizer and ONNX session of verified files, once a process: every reader shares them.
    ``digest`` (the weights' sha256) keys the cache, so retrained weights are opened anew."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # As the embedder's session: idle threads sleep rather than spin on 2 shared cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(directory / weights), options, providers=["CPUExecutionProvider"])
    return load_tokenizer(directory / "tokenizer.json"), session
