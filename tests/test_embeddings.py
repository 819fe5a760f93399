"""The embedder: ONNX against sentence-transformers, one network per process, integrity."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from qa import Assistant, ModelError, load_documents, segment_document
from qa.models import manifest
from qa.models.embedder import DEFAULT_MODEL, Embedder
from qa.models.manifest import model_cache_dir, resolve_model
from qa.models.onnx import ONNX_FILE, OnnxNetwork, export_dir, prepare
from qa.store import checksums

from conftest import ROOT, SEED_ARTICLE, SEEDS

QUESTION = "Where were the North Korean soldiers captured?"


def seed_texts() -> tuple[list[str], list[str]]:
    sentences = [s.text for d in load_documents([SEED_ARTICLE]) for s in segment_document(d)]
    questions = [json.loads(line)["question"] for line in (SEEDS / "questions.jsonl").open()]
    return sentences, questions


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers itself, on the same verified files."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve_model(DEFAULT_MODEL).path), device="cpu", local_files_only=True)


def test_onnx_vectors_match_sentence_transformers(data_dir, reference):
    embedder = Embedder().load()
    assert isinstance(embedder._network, OnnxNetwork)
    sentences, questions = seed_texts()
    # Past the 256-word-piece truncation, and batches of mixed lengths.
    texts = sentences + questions + [" ".join(["The soldiers were captured in Kursk."] * 60)]
    ours = embedder.embed(texts)
    theirs = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (len(texts), 384) and ours.dtype == np.float32
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.9999, texts[int(cosines.argmin())]
    # The same sentence ranks first for every seed question.
    n = len(sentences)
    assert ((ours[n:-1] @ ours[:n].T).argmax(axis=1) == (theirs[n:-1] @ theirs[:n].T).argmax(axis=1)).all()


def test_a_text_embeds_the_same_alone_and_in_a_batch(data_dir):
    embedder = Embedder().load()
    sentences, _ = seed_texts()
    together = embedder.embed(sentences)
    alone = np.vstack([embedder.embed([s]) for s in sentences])
    assert np.abs(together - alone).max() < 1e-5


def test_every_embedder_of_a_model_shares_one_network(data_dir, tmp_path):
    first, second = Embedder().load(), Embedder(DEFAULT_MODEL).load()
    assert first._network is second._network
    (tmp_path / "a.txt").write_text("date 2024-01-01 Wasps\n\nWasps sting. Bees make honey.\n")
    one = Assistant([SEEDS], data_dir=data_dir, rebuild="stale").load()
    two = Assistant([tmp_path / "a.txt"], data_dir=data_dir, rebuild="stale").load()
    assert one.embedder._network is two.embedder._network is first._network


def test_answering_imports_neither_torch_nor_sentence_transformers(data_dir):
    Assistant([SEEDS], data_dir=data_dir, rebuild="stale").load()  # index and export ready
    script = (
        "import sys\n"
        "from qa import Assistant\n"
        f"answer = Assistant([{str(SEEDS)!r}], data_dir={str(data_dir)!r}).load().ask({QUESTION!r})\n"
        "assert \"Kursk\" in answer.quotes[0].text, answer\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sentence_transformers', 'transformers')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "QA_DATA_DIR": str(data_dir)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""


def test_a_damaged_export_is_made_again(tmp_path):
    info = Embedder().load().info
    sound = export_dir(info, model_cache_dir())
    copy = export_dir(info, tmp_path)
    shutil.copytree(sound, copy)
    with (copy / ONNX_FILE).open("r+b") as f:
        f.seek(5_000_000)
        f.write(b"\x00\x01\x02\x03")
    stages = []
    directory, exported = prepare(info, tmp_path, lambda stage, done, total: stages.append((stage, done, total)))
    assert directory == copy
    assert "does not match its manifest" in stages[0][0] and [s[1:] for s in stages] == [(0, 1), (1, 1)]
    assert exported == json.loads((copy / "manifest.json").read_text())
    assert prepare(info, tmp_path, lambda *a: pytest.fail("exported twice"))[1] == exported


def test_verified_files_are_not_hashed_again(monkeypatch):
    resolve_model(DEFAULT_MODEL)
    monkeypatch.setattr(manifest._hashes, "_entries", None)  # as a new process would: read the record
    monkeypatch.setattr(checksums, "sha256_file", lambda path: pytest.fail(f"{path} hashed again"))
    shipped = json.loads((manifest.MODELS_DIR / f"{DEFAULT_MODEL}.json").read_text())
    assert resolve_model(DEFAULT_MODEL).weights_sha256 == shipped["files"][shipped["weights"]]


def test_a_rewritten_weight_file_is_hashed_again_even_with_its_old_mtime(tmp_path, model_copy):
    """Verified hashes are remembered by file metadata; a rewrite in place must still be caught."""
    copy, manifest_path = model_copy
    assert resolve_model(str(manifest_path)).path == copy  # hashed and remembered
    weights = copy / "model.safetensors"
    before = weights.stat()
    with weights.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ModelError, match="does not match its manifest"):
        resolve_model(str(manifest_path))
