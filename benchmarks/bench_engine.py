"""Start-up, indexing and answering speed, and memory: prints numbers, asserts nothing.

    .venv/bin/python benchmarks/bench_engine.py [--squad ../shared/eval/squad_v1.1_dev_public.jsonl]

Indexes go to a fresh temporary data directory, so the build is timed too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn):
    started = time.perf_counter()
    value = fn()
    print(f"{label:<38} {time.perf_counter() - started:8.2f} s   peak RSS {rss_mb():7.0f} MB")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, help="also index and query the first article of this SQuAD file")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="qa-bench-"))

    qa = timed("import qa", lambda: __import__("qa"))
    seeds = qa.Assistant([ROOT / "seeds"], data_dir=data_dir, rebuild="stale")
    timed("seed: import models, load, build index", seeds.load)
    timed("seed: second Assistant, open index", qa.Assistant([ROOT / "seeds"], data_dir=data_dir).load)
    questions = [json.loads(line)["question"] for line in (ROOT / "seeds" / "questions.jsonl").open()]
    report_latency("seed", seeds, questions)

    if args.squad:
        article = json.loads(args.squad.open().readline())
        folder = data_dir / "squad"
        folder.mkdir()
        (folder / f"{article['title']}.txt").write_text("\n\n".join(article["paragraphs"]))
        squad = qa.Assistant([folder], data_dir=data_dir, rebuild="stale")
        timed(f"squad '{article['title']}': build index", squad.load)
        print(f"  {squad.manifest['counts']['segments']} sentences, "
              f"{sum(len(p) for p in article['paragraphs'])} characters")
        report_latency("squad", squad, [q["question"] for q in article["qas"]])


def report_latency(label: str, assistant, questions: list[str]):
    latencies = sorted(assistant.ask(q).latency_ms for q in questions)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(f"{label}: {len(questions)} questions, latency p50 {statistics.median(latencies):.1f} ms, "
          f"p95 {p95:.1f} ms, peak RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
