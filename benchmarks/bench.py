"""`make bench`: build, start-up, answering speed and memory from the seed to a million sentences.

    .venv/bin/python benchmarks/bench.py [--sizes seed,article,squad24,100k,1m] [--json bench.json]

Prints one table and writes the same rows as JSON.  Each corpus is measured in
a fresh process, so its peak RSS is its own.  Asserts nothing: timings are only
worth something on a quiet machine.

- seed, article (the first SQuAD v1.1 public article), squad24 (all 24): real
  documents through ``Assistant``; the build embeds every sentence.
- 100k, 1m: the 24 articles' sentences copied until the size is reached, each
  copy's vectors the real ones plus Gaussian noise (sigma 0.02 per dimension,
  renormalized), indexed with ``CorpusIndex.from_vectors``: the build time is
  the index's, not the embedder's (the embedder's rate is the squad24 row's).
  Questions are the articles' real SQuAD questions.
- warm: ``Assistant.ask``-equivalent end to end (embed the question, retrieve,
  compose verified quotes and weigh the answerability evidence), and its parts:
  embedding the question, retrieval alone (question vector given) and, within it,
  reading each candidate after the sentence before it;
  recall@10 of the dense search against exact inner product where it is ANN.
- cold: a fresh `qa ask` process over a built seed index, and a fresh `qa serve`
  until its page answers (median of 3).
- clients: 20 concurrent users x 10 seed questions against `qa serve`'s API, over loopback.
- swaps: the app's resident memory after the first and the 20th document swap (re-index).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"
SYNTHETIC = {"100k": 100_000, "1m": 1_000_000}
QUESTIONS_PER_SIZE = 300


def _status_mb(field: str, pid: int | str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int | str = "self") -> float:
    return _status_mb("VmHWM:", pid)


def current_rss_mb(pid: int | str = "self") -> float:
    return _status_mb("VmRSS:", pid)


def percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(0.95 * len(values)))]


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def squad_articles(limit: int | None = None) -> list[dict]:
    with SQUAD.open() as f:
        return [json.loads(line) for line in f if line.strip()][:limit]


def write_articles(articles: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, article in enumerate(articles):
        (folder / f"{n:02d}.txt").write_text("\n\n".join(article["paragraphs"]) + "\n", encoding="utf-8")


# --- one corpus, in its own process ---

def measure_real(size: str, data_dir: Path) -> dict:
    from qa import Assistant

    if size == "seed":
        paths = [ROOT / "seeds"]
        questions = [json.loads(line)["question"] for line in (ROOT / "seeds" / "questions.jsonl").open()]
    else:
        articles = squad_articles(1 if size == "article" else None)
        folder = data_dir / f"docs-{size}"
        write_articles(articles, folder)
        paths = [folder]
        questions = [q["question"] for a in articles for q in a["qas"]][:QUESTIONS_PER_SIZE]
    assistant = Assistant(paths, data_dir=data_dir, rebuild="stale")
    assistant.embedder.load()
    started = time.perf_counter()
    assistant.load()
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    opened = Assistant(paths, data_dir=data_dir).load()
    open_s = time.perf_counter() - started
    return {**answer_speed(opened, questions, opened.retriever), "sentences": len(opened.segments), "build_s": build_s,
            "open_s": open_s, "disk_mb": dir_mb(opened.index_dir), "dense": opened.manifest["dense"]}


def synthetic_corpus(sentences: int):
    """Documents and segments: the 24 articles copied until ``sentences``; copies share their text."""
    from qa.documents import read_document
    from qa.segments import segment_document

    folder = Path(tempfile.mkdtemp(prefix="qa-bench-docs-"))
    articles = squad_articles()
    write_articles(articles, folder)
    originals = [read_document(p, p.name) for p in sorted(folder.glob("*.txt"))]
    shutil.rmtree(folder)
    per_doc = [(d, segment_document(d)) for d in originals]
    documents, segments, copy = [], [], 0
    while len(segments) < sentences:
        for doc, segs in per_doc:
            twin = replace(doc, id=f"{copy:05d}-{doc.id}", path=f"/synthetic/{copy:05d}-{doc.id}")
            documents.append(twin)
            segments.extend(replace(s, doc_id=twin.id) for s in segs[:sentences - len(segments)])
            if len(segments) >= sentences:
                break
        copy += 1
    questions = [q["question"] for a in articles for q in a["qas"]][:QUESTIONS_PER_SIZE]
    return documents, segments, questions, per_doc


def measure_synthetic(size: str, data_dir: Path) -> dict:
    import numpy as np

    from qa import Embedder
    from qa.store.index import CorpusIndex
    from qa.terms import tokenize

    documents, segments, questions, per_doc = synthetic_corpus(SYNTHETIC[size])
    embedder = Embedder().load()
    unique = [s for _, segs in per_doc for s in segs]
    base = embedder.embed([s.text for s in unique])
    base_tokens = tokenize([s.text for s in unique])
    rng = np.random.default_rng(0)
    reps = -(-len(segments) // len(unique))
    vectors = np.tile(base, (reps, 1))[:len(segments)]
    vectors += rng.normal(0, 0.02, vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tokens = (base_tokens * reps)[:len(segments)]
    started = time.perf_counter()
    index = CorpusIndex.from_vectors(documents, segments, vectors, embedder.info, tokens=tokens)
    directory = index.save(data_dir / "indexes" / f"synthetic-{size}")
    build_s = time.perf_counter() - started
    del index, tokens
    # The exact top 10 by inner product, for the ANN's recall; order within it does not matter.
    exact_top = np.argpartition(-(vectors @ embedder.embed(questions).T), 10, axis=0)[:10].T
    del vectors
    build_rss = peak_rss_mb()
    row = {"sentences": len(segments), "build_s": build_s, "build_peak_mb": build_rss,
           "disk_mb": dir_mb(directory)}
    # Serving is measured in a fresh process, so its memory is not the build's.
    np.save(data_dir / "exact_top.npy", exact_top)
    result = subprocess.run([sys.executable, __file__, "--serve-synthetic", size, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, check=True)
    return {**row, **json.loads(result.stdout.strip().splitlines()[-1])}


def serve_synthetic(size: str, data_dir: Path) -> dict:
    import numpy as np

    from qa import Embedder, HybridRetriever
    from qa.answers import compose
    from qa.assistant import DEFAULT_THRESHOLD
    from qa.models.reader import Reader
    from qa.store.index import CorpusIndex, read_manifest, verify_files

    documents, _, questions, _ = synthetic_corpus(SYNTHETIC[size])
    embedder = Embedder().load()
    directory = data_dir / "indexes" / f"synthetic-{size}"
    started = time.perf_counter()
    verify_files(directory, read_manifest(directory))
    verify_s = time.perf_counter() - started
    started = time.perf_counter()
    index = CorpusIndex.load(directory, documents, embedder.info)
    open_s = time.perf_counter() - started
    retriever = HybridRetriever(index, index.segments, embedder)
    by_id = {d.id: d for d in documents}

    class Asker:  # what Assistant.ask does, over a prebuilt store
        reader = Reader().load()

        def ask(self, question):
            t = time.perf_counter()
            answer = compose(question, question, retriever.retrieve(question, top_k=20), by_id, 3,
                             DEFAULT_THRESHOLD, self.reader)
            return replace(answer, latency_ms=(time.perf_counter() - t) * 1000)

    row = answer_speed(Asker(), questions, retriever)
    exact = np.load(data_dir / "exact_top.npy")
    found = index.dense_search(embedder.embed(questions), 10)
    row["recall_at_10"] = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact)]))
    return {**row, "open_s": open_s, "verify_s": verify_s, "dense": index.manifest["dense"], "peak_mb": peak_rss_mb()}


def answer_speed(assistant, questions: list[str], retriever) -> dict:
    """Per question, warm: end to end, and its parts: embedding the question, retrieval (question
    vector given), within retrieval the reading of each candidate after its predecessor, and the
    reader over the first ``READ`` candidates."""
    from qa.answers import READ

    for q in questions[:5]:
        assistant.ask(q)  # warm caches
    ends = [assistant.ask(q).latency_ms for q in questions]
    embedding, retrieval, in_context, reading = [], [], [], []
    read = retriever._read_in_context

    def timed_read(*args):
        started = time.perf_counter()
        out = read(*args)
        in_context.append((time.perf_counter() - started) * 1000)
        return out

    retriever._read_in_context = timed_read
    try:
        for q in questions:
            t = time.perf_counter()
            v = retriever.embedder.embed([q])
            embedding.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            passages = retriever.rank(q, [q], v, top_k=20)
            retrieval.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            assistant.reader.read(q, [p.segment.text for p in passages[:READ]])
            reading.append((time.perf_counter() - t) * 1000)
    finally:
        del retriever._read_in_context
    (p50, p95), (r50, r95) = percentiles(ends), percentiles(retrieval)
    return {"questions": len(questions), "p50_ms": p50, "p95_ms": p95, "embed_p50_ms": percentiles(embedding)[0],
            "retrieval_p50_ms": r50, "retrieval_p95_ms": r95, "in_context_p50_ms": percentiles(in_context)[0],
            "reader_p50_ms": percentiles(reading)[0],
            "peak_mb": peak_rss_mb()}


# --- whole processes ---

def qa_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "qa"), *args]


def cold_starts(data_dir: Path) -> dict:
    env = {**os.environ, "QA_DATA_DIR": str(data_dir)}
    subprocess.run(qa_command("index"), env=env, check=True, capture_output=True)
    asks = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(qa_command("ask", "Where were the North Korean soldiers captured?"), env=env, check=True,
                       capture_output=True)
        asks.append(time.perf_counter() - started)
    serves = []
    for n in range(3):
        port = 7870 + n
        started = time.perf_counter()
        server = subprocess.Popen(qa_command("serve", "--port", str(port)), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_for_page(port)
            serves.append(time.perf_counter() - started)
        finally:
            stop(server)
    return {"cold_ask_s": statistics.median(asks), "cold_serve_s": statistics.median(serves)}


def stop(server: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it; killed if it has not exited 10 s later."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def wait_for_page(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"qa serve did not answer on port {port} within {timeout} s")


def concurrent_clients(data_dir: Path, clients: int = 20, per_client: int = 10) -> dict:
    """Users asking at once through the app's plain JSON API (POST /api/ask)."""
    env = {**os.environ, "QA_DATA_DIR": str(data_dir)}
    port = 7880
    server = subprocess.Popen(qa_command("serve", "--port", str(port)), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    questions = [json.loads(line)["question"] for line in (ROOT / "seeds" / "questions.jsonl").open()]
    latencies, failures, lock = [], [], threading.Lock()
    try:
        wait_for_page(port)
        after_start = peak_rss_mb(server.pid)

        def user(n: int):
            for i in range(per_client):
                body = json.dumps({"question": questions[(n + i) % len(questions)]}).encode()
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/ask", body,
                                                 {"Content-Type": "application/json"})
                t = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        assert "quotes" in json.loads(response.read())
                    with lock:
                        latencies.append((time.perf_counter() - t) * 1000)
                except Exception as exc:  # every failure is counted, none stops the run
                    with lock:
                        failures.append(repr(exc))

        threads = [threading.Thread(target=user, args=(n,)) for n in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        elapsed = time.perf_counter() - started
        serve_peak = peak_rss_mb(server.pid)
    finally:
        stop(server)
    p50, p95 = percentiles(latencies) if latencies else (float("nan"), float("nan"))
    if failures:
        print(f"{len(failures)} failures, e.g. {sorted(set(failures))[:3]}", file=sys.stderr)
    return {"clients": clients, "answered": len(latencies), "failures": len(failures), "client_p50_ms": p50,
            "client_p95_ms": p95, "questions_per_s": len(latencies) / elapsed,
            "serve_rss_after_start_mb": after_start, "serve_peak_mb": serve_peak}


def app_swaps(data_dir: Path, swaps: int = 20) -> dict:
    """The app's memory as documents are swapped: an upload added, re-indexed, removed, re-indexed, ..."""
    from qa import Assistant
    from ui.app import App
    from ui.library import Library

    article = data_dir / "incoming.txt"
    write_articles(squad_articles(1), data_dir / "article")
    shutil.copy(data_dir / "article" / "00.txt", article)
    library = Library(data_dir, [ROOT / "seeds"])
    app = App(Assistant(library.files(), data_dir=data_dir, rebuild="stale").load(), library)
    rss = []
    for n in range(swaps):
        if n % 2 == 0:
            library.add_upload(article, "article.txt")
        else:
            library.remove(next(p for p in library.files() if library.is_upload(p)))
        app.reindex(lambda *args, **kwargs: None)
        rss.append(current_rss_mb())
    return {"swaps": swaps, "rss_after_first_swap_mb": rss[0], "rss_after_last_swap_mb": rss[-1]}


# --- the table ---

COLUMNS = [("corpus", "{}"), ("sentences", "{:,}"), ("dense", "{}"), ("build_s", "{:.1f}"), ("rate", "{:,.0f}"),
           ("open_s", "{:.2f}"), ("verify_s", "{:.2f}"), ("p50_ms", "{:.1f}"), ("p95_ms", "{:.1f}"), ("embed_p50_ms", "{:.1f}"),
           ("retrieval_p50_ms", "{:.1f}"), ("retrieval_p95_ms", "{:.1f}"), ("in_context_p50_ms", "{:.2f}"), ("reader_p50_ms", "{:.1f}"), ("recall_at_10", "{:.3f}"), ("peak_mb", "{:,.0f}"),
           ("disk_mb", "{:,.1f}")]


def print_table(rows: list[dict], processes: dict) -> None:
    print("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        row = {**row, "rate": row["sentences"] / row["build_s"]}
        print("| " + " | ".join(fmt.format(row[name]) if name in row else "" for name, fmt in COLUMNS) + " |")
    for key, value in processes.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="seed,article,squad24,100k,1m")
    parser.add_argument("--json", type=Path, default=ROOT / "bench.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--serve-synthetic", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--swaps", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if args.one:
        measure = measure_synthetic if args.one in SYNTHETIC else measure_real
        print(json.dumps({"corpus": args.one, **measure(args.one, args.data_dir)}))
        return 0
    if args.swaps:
        print(json.dumps(app_swaps(args.data_dir)))
        return 0
    if args.serve_synthetic:
        print(json.dumps(serve_synthetic(args.serve_synthetic, args.data_dir)))
        return 0
    rows = []
    for size in args.sizes.split(","):
        data_dir = Path(tempfile.mkdtemp(prefix=f"qa-bench-{size}-"))
        print(f"measuring {size} ...", file=sys.stderr, flush=True)
        try:
            result = subprocess.run([sys.executable, __file__, "--one", size, "--data-dir", str(data_dir)],
                                    capture_output=True, text=True)
            if result.returncode:
                print(result.stderr[-3000:], file=sys.stderr)
                continue
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    data_dir = Path(tempfile.mkdtemp(prefix="qa-bench-serve-"))
    print("measuring cold starts and concurrent clients ...", file=sys.stderr, flush=True)
    try:
        processes = {**cold_starts(data_dir), **concurrent_clients(data_dir)}
        swapped = subprocess.run([sys.executable, __file__, "--swaps", "--data-dir", str(data_dir)],
                                 capture_output=True, text=True)
        if swapped.returncode:
            print(swapped.stderr[-3000:], file=sys.stderr)
        else:
            processes.update(json.loads(swapped.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "command": "make bench"}
    print(f"{meta['date']}, {meta['cores']} cores, `make bench`")
    print_table(rows, processes)
    args.json.write_text(json.dumps({**meta, "corpora": rows, "processes": processes}, indent=2))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
