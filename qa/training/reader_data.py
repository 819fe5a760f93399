"""The reader's data (``qa.training.reader``): SQuAD articles as the engine reads them, and its candidates.

``prepare`` runs here, on the CPU, with the engine's own code: every article
written and read as ``read_squad`` and the index do it, split into the
engine's sentences, their terms stemmed as the store counts them.  For
../shared/train it keeps the questions and their answer sentences (no
candidates: mining them needs an embedding of every sentence, seconds on an
accelerator); for ../shared/eval it asks the engine of the day itself
(``Assistant``'s retriever, the shipped embedder) for every question's top
``TOP_K`` and the answerability evidence of its first, so the figures judge
exactly what the engine does.  Both go into compact ``.json.xz`` files,
beside an fp16 copy of the base model: the folder an accelerator call carries.

``mine`` runs on the accelerator machine, which has neither the stemmer nor
FAISS nor bm25s: the engine's retriever (``HybridRetriever``, its formula and
its reading in context unchanged) over a ``CorpusIndex`` whose vector and term
structures are numpy stand-ins, with the prepared terms and vectors embedded
in large batches on the GPU.
"""

from __future__ import annotations

import json
import lzma
import multiprocessing
import shutil
import sys
from itertools import groupby
from pathlib import Path

import numpy as np

from ..documents import load_documents
from ..evaluation import corpus_key, is_correct, read_squad
from ..models.embedder import BASE_MODEL
from ..models.manifest import resolve_model
from ..retrieval import HybridRetriever
from ..segments import Segment, segment_document
from ..store.index import CorpusIndex
from ..terms import tokenize

TRAIN_FILES = ("squad_v1.1_train.jsonl", "squad_v2.0_train_approx.jsonl")  # answerable, unanswerable
EVAL_FILES = {"v1.1": "squad_v1.1_dev_public.jsonl", "v2.0": "squad_v2.0_dev_public.jsonl"}
TRAIN, EVAL, BASE = "train.json.xz", "eval.json.xz", "base"
TOP_K = 20  # what Assistant.ask retrieves for k <= 10


def write_xz(path: Path, data) -> None:
    with lzma.open(path, "wt", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))


def read_xz(path: Path):
    with lzma.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _head(path: Path, articles: int | None, folder: Path) -> Path:
    """``path``, or a copy of its first ``articles`` lines (a tiny slice to try the pipeline on)."""
    if articles is None:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:articles]
    (folder / path.name).write_text("".join(lines), encoding="utf-8")
    return folder / path.name


def _article(title: str, segments: list[Segment], terms: bool) -> dict:
    """What the engine needs of an article's sentences to rebuild its ``Segment``s (and, for mining, terms)."""
    out = {"title": title, "sentences": [s.text for s in segments], "starts": [s.start for s in segments],
           "paragraphs": [s.paragraph for s in segments]}
    if terms:
        out["terms"] = [" ".join(t) for t in tokenize(out["sentences"])]
    return out


def segments_of(article: dict) -> list[Segment]:
    """The article's sentences as the engine's ``Segment``s (one document per article, as in evaluation)."""
    return [Segment(article["title"], i, start, start + len(text), text, None, paragraph)
            for i, (text, start, paragraph) in enumerate(zip(article["sentences"], article["starts"],
                                                              article["paragraphs"]))]


def _first(items, questions: int | None) -> list:
    """The first ``questions`` of an article's questions (all when None)."""
    return list(items)[:questions]


def prepare_train(train_dir: Path, work: Path, articles: int | None = None, questions: int | None = None) -> dict:
    """Answerable questions of SQuAD v1.1 train with their answer sentences (an answer whose offset was
    guessed among several occurrences, ``offset_ambiguous``, may name the wrong sentence: dropped), and
    the unanswerable ones of v2.0 train whose paragraph link is confident, by article."""
    v11, v20 = (_head(train_dir / name, articles, work / "slice") for name in TRAIN_FILES)
    ambiguous, unanswerable = set(), {}
    for line in v11.open(encoding="utf-8"):
        for q in json.loads(line)["qas"]:
            if any(a.get("offset_ambiguous") for a in q["answers"]):
                ambiguous.add(q["id"])
    for line in v20.open(encoding="utf-8"):
        article = json.loads(line)
        unanswerable[article["title"]] = [q["question"].strip() for q in article["qas"]
                                          if not q["answers"] and q.get("link_confident")]
    titles = [json.loads(line)["title"] for line in v11.open(encoding="utf-8")]
    out = {"articles": [], "questions": [], "dropped": {"offset_ambiguous": 0, "answer_split": 0}}
    for title, (key, items) in zip(titles, groupby(read_squad(v11, work / "articles"), lambda i: corpus_key(i, []))):
        segments = segment_document(load_documents([key[0]])[0])
        n = len(out["articles"])
        out["articles"].append(_article(title, segments, terms=True))
        for item in _first(items, questions):
            positives = [i for i, s in enumerate(segments) if is_correct(item, s.doc_id, s.start, s.end, s.text)]
            reason = "offset_ambiguous" if item.id in ambiguous else None if positives else "answer_split"
            if reason:
                out["dropped"][reason] += 1
                continue
            out["questions"].append({"article": n, "question": item.question, "positives": positives})
        out["questions"] += [{"article": n, "question": q, "positives": []}
                             for q in _first(unanswerable.get(title, []), questions)]
    for q, terms in zip(out["questions"], tokenize([q["question"] for q in out["questions"]])):
        q["terms"] = " ".join(terms)
    return out


def prepare_eval(eval_dir: Path, work: Path, data_dir: Path, articles: int | None = None,
                 questions: int | None = None) -> dict:
    """Every public dev question asked of its article by the engine of the day: its top ``TOP_K``
    sentences, their scores, which cover a gold answer, and the answerability evidence of the first."""
    from ..answerability import features
    from ..assistant import Assistant
    from ..evaluation import open_corpora

    out = {"articles": [], "questions": []}
    for version, name in EVAL_FILES.items():
        path = _head(eval_dir / name, articles, work / "slice")
        items = [item for _, group in groupby(read_squad(path, data_dir / "squad" / Path(name).stem),
                                              lambda i: corpus_key(i, [])) for item in _first(group, questions)]
        titles = [json.loads(line)["title"] for line in path.open(encoding="utf-8")]
        assistants = open_corpora(items, [], lambda paths: Assistant(paths, data_dir=data_dir, rebuild="stale"))
        index = {}
        for title, (key, assistant) in zip(titles, assistants.items()):
            index[key] = len(out["articles"])
            out["articles"].append({**_article(title, assistant.segments, terms=False), "version": version})
        for item in items:
            assistant = assistants[corpus_key(item, [])]
            passages = assistant.retriever.retrieve(item.question, top_k=TOP_K)
            out["questions"].append({
                "id": item.id, "version": version, "article": index[corpus_key(item, [])],
                "question": item.question, "answerable": item.answerable,
                "positions": [p.segment.position for p in passages], "scores": [round(p.score, 5) for p in passages],
                "correct": [is_correct(item, p.segment.doc_id, p.segment.start, p.segment.end, p.segment.text)
                            for p in passages],
                "features": [round(x, 5) for x in features(item.question, passages, assistant.documents_by_id)]})
        print(f"{version}: {len(items)} questions", file=sys.stderr)
    return out


def copy_base(target: Path) -> None:
    """The verified base model, its weights in fp16 (45 MB): the reader's start and the miner's embedder."""
    from safetensors.numpy import load_file, save_file

    source = resolve_model(BASE_MODEL).path
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.bin", "onnx", "openvino"))
    weights = load_file(str(source / "model.safetensors"))
    save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in weights.items()},
              str(target / "model.safetensors"))


def prepare(out: Path, train_dir: Path, eval_dir: Path, data_dir: Path, articles: int | None = None,
            questions: int | None = None) -> None:
    """``out``: train.json.xz, eval.json.xz and base/, everything an accelerator call needs."""
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work-prepare"
    write_xz(out / TRAIN, prepare_train(train_dir, work, articles, questions))
    write_xz(out / EVAL, prepare_eval(eval_dir, work, data_dir, articles, questions))
    copy_base(out / BASE)
    shutil.rmtree(work)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(f"{path}: {path.stat().st_size / 1e6:.1f} MB", file=sys.stderr)


class _Vectors:
    """FAISS's part in a ``CorpusIndex``: exact inner-product search over one article's vectors."""

    def __init__(self, vectors: np.ndarray):
        self.matrix, self.ntotal = vectors, len(vectors)

    def search(self, queries: np.ndarray, top: int):
        similarity = queries @ self.matrix.T
        ids = np.argsort(-similarity, axis=1, kind="stable")[:, :top]
        return np.take_along_axis(similarity, ids, axis=1), ids

    def reconstruct_batch(self, ids: np.ndarray) -> np.ndarray:
        return self.matrix[ids]


class _Postings:
    """bm25s's part in a ``CorpusIndex``: for each term, the sorted ids of the sentences holding it."""

    def __init__(self, terms: list[str]):
        held: dict[str, list[int]] = {}
        for i, sentence in enumerate(terms):
            for term in dict.fromkeys(sentence.split()):
                held.setdefault(term, []).append(i)
        self.vocab_dict = {term: n for n, term in enumerate(held)}
        self.scores = {"indptr": np.cumsum([0] + [len(ids) for ids in held.values()]),
                       "indices": np.array([i for ids in held.values() for i in ids], dtype=np.int64),
                       "num_docs": len(terms)}


# Set before the worker processes fork, so that each reads them without a copy through a pipe.
_SHARED: dict = {}


def _mine_article(n: int) -> list[tuple[int, list[int]]]:
    data, sentences, questions = _SHARED["data"], _SHARED["sentences"], _SHARED["questions"]
    article = data["articles"][n]
    segments = segments_of(article)
    first = _SHARED["first_sentence"][n]
    index = CorpusIndex([], segments, _Vectors(sentences[first:first + len(segments)]),
                        _Postings(article["terms"]), manifest={})
    retriever = HybridRetriever(index, segments, embedder=None)
    out = []
    for q in _SHARED["by_article"].get(n, []):
        question = data["questions"][q]
        passages = retriever.rank(question["question"], [question["question"]], questions[q:q + 1], TOP_K,
                                  terms=[question["terms"].split()])
        out.append((q, [p.segment.position for p in passages]))
    return out


def embed(model_dir: Path, texts: list[str], device: str) -> np.ndarray:
    """Unit vectors of ``texts`` by the sentence-transformers model in ``model_dir`` (fp16 on a GPU)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    # Loaded as the file holds it (fp16), which a CPU computes many times slower than fp32.
    model.half() if device == "cuda" else model.float()
    return model.encode(texts, batch_size=1024 if device == "cuda" else 64, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


def mine(data: dict, model_dir: Path, device: str, processes: int = 1) -> list[list[int]]:
    """Each training question's top ``TOP_K`` sentences of its article, ranked by the engine's retriever
    with the embedder in ``model_dir``."""
    sizes = [len(a["sentences"]) for a in data["articles"]]
    sentences = embed(model_dir, [s for a in data["articles"] for s in a["sentences"]], device)
    questions = embed(model_dir, [q["question"] for q in data["questions"]], device)
    by_article: dict[int, list[int]] = {}
    for q, question in enumerate(data["questions"]):
        by_article.setdefault(question["article"], []).append(q)
    _SHARED.update(data=data, sentences=sentences, questions=questions, by_article=by_article,
                   first_sentence=np.cumsum([0] + sizes).tolist())
    articles = list(range(len(sizes)))
    if processes > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            results = pool.map(_mine_article, articles, chunksize=1)
    else:
        results = [_mine_article(n) for n in articles]
    _SHARED.clear()
    candidates: list[list[int]] = [[] for _ in data["questions"]]
    for q, positions in (row for rows in results for row in rows):
        candidates[q] = positions
    return candidates
