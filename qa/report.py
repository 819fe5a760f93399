"""Evaluation output: the printed table, report.md, the plots and the comparison text.

Plots use matplotlib (the ``eval`` extra), imported only when a plot is drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .evaluation import K_MAX, compute_metrics, coverage_curve, question_verdicts

ROWS = (
    ("hit@1", "hit@1 (answerable: correct quote first)", "rate"),
    ("hit@3", "hit@3 (correct quote in the first 3)", "rate"),
    ("ranking_hit@1", "ranking hit@1 (correct quote first, whatever the reply's kind)", "rate"),
    ("ranking_hit@3", "ranking hit@3", "rate"),
    ("mrr", "MRR (top 10)", "rate"),
    ("exact_match", "short answer exact match (over every answerable question)", "rate"),
    ("f1", "short answer F1 (over every answerable question)", "rate"),
    ("abstain_precision", "abstention precision", "rate"),
    ("abstain_recall", "abstention recall", "rate"),
    ("abstain_f1", "abstention F1", "rate"),
    ("reply_accuracy", "reply accuracy (right answer, or no answer when unanswerable)", "rate"),
    ("answerable_unanswered", "answerable questions left without an answer", "rate"),
    ("answerability_auc", "answerability AUC (confidence: answerable above unanswerable)", "rate"),
    ("quotes_verified", "quotes equal to their document slice", "rate"),
    ("latency_ms_p50", "latency p50 (ms)", "ms"),
    ("latency_ms_p95", "latency p95 (ms)", "ms"),
    ("n", "questions", "count"),
    ("n_answerable", "answerable", "count"),
    ("n_unanswerable", "unanswerable", "count"),
    ("n_abstained", "abstained (possible answer or none)", "count"),
    ("n_possible", "possible answers", "count"),
    ("n_short_answers", "with a short answer", "count"),
    ("threshold", "abstention threshold", "number"),
)

FAILURE_KINDS = (
    ("missed_not_retrieved", "The right sentence was not retrieved in the top 10"),
    ("retrieved_not_first", "Retrieved in the top 10 but not ranked first"),
    ("wrongly_abstained", "Wrongly abstained (the documents answer it)"),
    ("should_have_abstained", "Should have abstained (the documents do not answer it)"),
)


def fmt(value, kind: str = "rate") -> str:
    if value is None:
        return "n/a"
    if kind == "rate":
        return f"{value:.3f}"
    if kind == "ms":
        return f"{value:.1f}"
    if kind == "count":
        return str(value)
    return f"{value:g}"


def format_table(metrics: dict) -> str:
    width = max(len(label) for _, label, _ in ROWS)
    lines = [f"{label:<{width}}  {fmt(metrics.get(key), kind)}" for key, label, kind in ROWS]
    hits = " ".join(fmt(h) for h in metrics["hit@k"])
    lines.append(f"{'hit@k, k=1..' + str(K_MAX):<{width}}  {hits}")
    return "\n".join(lines)


def format_compare(result: dict) -> str:
    kinds = {key: kind for key, _, kind in ROWS}
    lines = ["metric                 old -> new (change)"]
    for name, m in result["metrics"].items():
        kind = kinds.get(name, "rate")
        delta = m["delta"]
        change = "n/a" if delta is None else (f"{delta:+.3f}" if kind == "rate" else f"{delta:+.1f}"
                                             if kind == "ms" else f"{delta:+g}")
        lines.append(f"{name:<20} {fmt(m['old'], kind):>7} -> {fmt(m['new'], kind):<7} ({change})")
    flipped = result["flipped"]
    if flipped is None:
        lines.append("Flipped questions: unknown (the old metrics file keeps no per-question verdicts)")
    else:
        lines.append(f"Flipped questions: {len(flipped)}")
        lines += [f"  {f['change']:<7} {f['id']}: {f['old']} -> {f['new']}" for f in flipped]
    return "\n".join(lines)


def _quote_md(text: str | None, limit: int = 300) -> str:
    if text is None:
        return "(nothing)"
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return text.replace("|", "\\|")


def report_markdown(metrics: dict, records: Sequence[dict], title: str = "Evaluation") -> str:
    lines = [f"# {title}", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {label} | {fmt(metrics.get(key), kind)} |" for key, label, kind in ROWS]
    lines += ["", "hit@k, k = 1..10: " + ", ".join(fmt(h) for h in metrics["hit@k"]), "",
              "![hit@k](hitk.png)", "", "![accuracy against coverage](coverage.png)", ""]
    counts = {kind: sum(1 for r in records if r["verdict"] == kind) for kind, _ in FAILURE_KINDS}
    lines.append("## Failures")
    lines.append("")
    lines += [f"- {heading}: {counts[kind]}" for kind, heading in FAILURE_KINDS]
    for kind, heading in FAILURE_KINDS:
        failed = [r for r in records if r["verdict"] == kind]
        if not failed:
            continue
        lines += ["", f"### {heading} ({len(failed)})", ""]
        for r in failed:
            first = r["quotes"][0] if r["quotes"] else None
            history = f" (after: {' / '.join(r['history'])})" if r["history"] else ""
            expected = " | ".join(dict.fromkeys(r["expected"])) if r["expected"] else "(abstain)"
            lines.append(f"- **{r['id']}** {_quote_md(r['question'])}{history}")
            lines.append(f"  - expected: {_quote_md(expected)}")
            if first:
                confidence = "" if r["confidence"] is None else f", confidence {r['confidence']:.2f}"
                lines.append(f"  - came first ({r['kind']}, "
                             f"score {first['score']:.3f}{confidence}): {_quote_md(first['text'])}")
            else:
                lines.append("  - came first: (no quote)")
            if r.get("correct_text") and kind != "correct":
                lines.append(f"  - right sentence at rank {r['rank']}: {_quote_md(r['correct_text'])}")
    return "\n".join(lines) + "\n"


def plot_hitk(metrics: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(range(1, K_MAX + 1))
    hits = [h if h is not None else float("nan") for h in metrics["hit@k"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, hits, marker="o")
    for k, h in zip(ks, hits):
        if h == h:
            ax.annotate(f"{h:.2f}", (k, h), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(ks)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("k")
    ax.set_ylabel("hit@k (answerable questions)")
    ax.set_title(f"hit@k, n = {metrics['n_answerable']} answerable questions")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_coverage(records: Sequence[dict], threshold: float | None, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = coverage_curve(records)
    ts = [c["threshold"] for c in curve]
    cov = [c["coverage"] for c in curve]
    acc = [c["accuracy"] if c["accuracy"] is not None else float("nan") for c in curve]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(ts, acc, label="accuracy of answered")
    left.plot(ts, cov, label="coverage (share answered)")
    right.plot(cov, acc)
    if threshold is not None:
        left.axvline(threshold, color="red", linestyle="--", label=f"current threshold {threshold:g}")
        here = coverage_curve(records, [threshold])[0]
        if here["accuracy"] is not None:
            right.plot([here["coverage"]], [here["accuracy"]], "o", color="red",
                       label=f"threshold {threshold:g}: coverage {here['coverage']:.2f}, "
                             f"accuracy {here['accuracy']:.2f}")
        right.axvline(here["coverage"], color="red", linestyle="--", alpha=0.5)
    left.set_xlabel("abstention threshold (top quote score)")
    left.set_ylim(0, 1.05)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("coverage")
    right.set_ylabel("accuracy")
    right.set_xlim(0, 1.05)
    right.set_ylim(0, 1.05)
    right.grid(alpha=0.3)
    if threshold is not None:
        right.legend(fontsize=8)
    fig.suptitle(f"Accuracy against coverage as the threshold moves (n = {len(records)})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_answer_threshold(points: Sequence[dict], answer: float, path: str | Path, title: str,
                          bars: tuple[float, float] = (0.9, 0.5)) -> None:
    """Accuracy against coverage as the answerability model's answer threshold moves.

    ``points`` are ``qa.training.answerability.kind_table`` rows with their
    ``threshold``; ``answer`` is the shipped threshold; ``bars`` the issue's
    goal (answers right, answerable questions answered).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [p["threshold"] for p in points]
    right = [p["answer_right"] if p["answer_right"] is not None else float("nan") for p in points]
    covered = [p["answer_coverage_of_answerable"] for p in points]
    shipped = min(points, key=lambda p: abs(p["threshold"] - answer))
    fig, (left, curve) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(ts, right, label="answers right")
    left.plot(ts, covered, label="answerable questions answered")
    left.plot(ts, [p["reply_accuracy"] for p in points], label="reply accuracy")
    left.axvline(answer, color="red", linestyle="--", label=f"shipped answer threshold {answer:g}")
    left.set_xlabel("answer threshold (probability that the first quote answers)")
    left.set_ylim(0, 1.05)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    curve.plot(covered, right)
    curve.plot([shipped["answer_coverage_of_answerable"]], [shipped["answer_right"]], "o", color="red",
               label=f"shipped: covers {shipped['answer_coverage_of_answerable']:.2f}, "
                     f"right {shipped['answer_right']:.2f}")
    curve.plot([bars[1]], [bars[0]], "*", color="green", markersize=12,
               label=f"goal: right {bars[0]:g} covering {bars[1]:g}")
    curve.set_xlabel("answerable questions answered")
    curve.set_ylabel("answers right")
    curve.set_xlim(0, 1.05)
    curve.set_ylim(0, 1.05)
    curve.legend(fontsize=8)
    curve.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(out_dir: str | Path, records: Sequence[dict], metrics: dict | None = None,
                  title: str = "Evaluation") -> Path:
    """metrics.json (with per-question verdicts), results.jsonl, report.md, hitk.png, coverage.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = metrics or compute_metrics(records)
    (out / "metrics.json").write_text(
        json.dumps({**metrics, "questions": question_verdicts(records)}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8")
    with (out / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(report_markdown(metrics, records, title), encoding="utf-8")
    plot_hitk(metrics, out / "hitk.png")
    plot_coverage(records, metrics.get("threshold"), out / "coverage.png")
    return out
