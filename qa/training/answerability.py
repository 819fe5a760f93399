"""Fit the answerability model on SQuAD v2.0's public articles and write it to ``models/``.

    .venv/bin/python -m qa.training.answerability      # or: make train

Every question of ../shared/eval/squad_v2.0_dev_public.jsonl is run through
the engine (its top 20 passages, as ``Assistant.ask`` sees them) and turned
into the evidence features of ``qa.answerability``.  The label is whether the
engine's first quote is right (the question is answerable and the quote
covers a gold span), so the probability is that of a right answer.

The figures it prints are out-of-fold: leave-one-article-out cross-validation,
each article's questions scored by a model fitted on the other articles only.
The two thresholds are chosen on those out-of-fold probabilities
(``choose_thresholds``); the shipped weights are then fitted on all articles.
Everything is deterministic (the same retrieval, a deterministic solver), so
a rerun rebuilds byte-identical files.  SQuAD is CC BY-SA 4.0; the weights
are derived from it and carry the same license.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from ..answerability import MANIFEST, AnswerabilityModel, features, kind, missing_asked
from ..evaluation import auc, corpus_key, is_correct, open_corpora, read_squad
from ..store.index import default_data_dir

ROOT = Path(__file__).resolve().parents[2]
SQUAD = ROOT.parent / "shared" / "eval" / "squad_v2.0_dev_public.jsonl"
SQUAD_V11 = ROOT.parent / "shared" / "eval" / "squad_v1.1_dev_public.jsonl"  # what the embedder trains on
WEIGHTS = "answerability.weights.json"
COMMAND = ".venv/bin/python -m qa.training.answerability"
# Each reply kind has a bar (issue 7): answers right >= 90% of the time;
# "the documents don't say" right >= 80% of the time.  A bar met by fewer
# than 50 questions is noise, not a threshold.
ANSWER_PRECISION = 0.9
NONE_PRECISION = 0.8
# The answer threshold may not make answers cover fewer answerable questions than this.  The
# issue's bar is 50%, where SQuAD v2.0's reply accuracy peaks (0.58 out of fold, threshold ~0.42),
# but there the seed set keeps 19 of its 33 right standalone first quotes as answers: its questions
# are reworded rather than copied, so they share fewer words with their sentence than SQuAD's and
# score lower.  At 80% it keeps 31 (seed hit@1 under its guard), at 85% all 33; see
# docs/choices.md.
COVERAGE_FLOOR = 0.85
TOP_K = 20  # what Assistant.ask retrieves for k <= 10


def collect(path: Path, data_dir: Path, embedder_for: Callable[[str], str] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, right-first-quote labels, answerable labels and article of every question.

    ``embedder_for(title)`` names the embedder that reads each article (default: the shipped one).
    """
    from ..assistant import Assistant
    from ..models.embedder import DEFAULT_MODEL

    items = read_squad(path, data_dir / "squad" / path.stem)
    # Articles come in file order, one corpus each.
    titles = [json.loads(line)["title"] for line in path.open(encoding="utf-8")]
    corpora = list(dict.fromkeys(corpus_key(item, []) for item in items))
    model = {key: embedder_for(title) if embedder_for else DEFAULT_MODEL for key, title in zip(corpora, titles)}
    assistants = open_corpora(items, [], lambda paths: Assistant(
        paths, model=model[tuple(str(p) for p in paths)], data_dir=data_dir, rebuild="stale"))
    documents = {d.id: d for a in assistants.values() for d in a.documents}
    rows, right, answerable, groups = [], [], [], []
    for item in items:
        key = corpus_key(item, [])
        # The passages Assistant.ask hands to compose(), before any reply kind is decided.
        passages = assistants[key].retriever.retrieve(item.question, top_k=TOP_K)
        rows.append(features(item.question, passages, documents))
        s = passages[0].segment if passages else None
        right.append(bool(s) and is_correct(item, s.doc_id, s.start, s.end, s.text))
        answerable.append(item.answerable)
        groups.append(key[0])
    return np.array(rows), np.array(right), np.array(answerable), np.array(groups)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / scale, y)
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each article's probabilities from a model fitted on the other articles."""
    p = np.zeros(len(y))
    for g in np.unique(groups):
        test = groups == g
        m = AnswerabilityModel(*fit(x[~test], y[~test]), answer=1.0, possible=0.0)
        p[test] = [m.probability(row) for row in x[test]]
    return p


def choose_thresholds(p: np.ndarray, missing: np.ndarray, right: np.ndarray, answerable: np.ndarray
                      ) -> tuple[float, float]:
    """The answer threshold and the "possible" threshold, from out-of-fold probabilities.

    Answer: the lowest threshold whose answers are right >= ANSWER_PRECISION
    while covering >= half the answerable questions (the issue's bar); when
    none does (the case on SQuAD v2.0 today), the threshold of the best reply
    accuracy among those whose answers cover >= COVERAGE_FLOOR of the
    answerable questions.
    Possible: the highest threshold, up to the answer one, below which "the
    documents don't say" is right >= NONE_PRECISION.
    """
    candidates, tables = sweep(p, missing, right, answerable)
    precise = [t for t, row in zip(candidates, tables) if row["n_answer"] >= 50
               and row["answer_coverage_of_answerable"] >= 0.5 and row["answer_right"] >= ANSWER_PRECISION]
    if precise:
        answer = precise[0]
    else:
        answer = best_threshold(candidates, tables, COVERAGE_FLOOR)
    possible = max((t for t in candidates if t <= answer and (p < t).any()
                    and (~answerable[p < t]).mean() >= NONE_PRECISION), default=0.0)
    return float(answer), float(possible)


def sweep(p: np.ndarray, missing: np.ndarray, right: np.ndarray, answerable: np.ndarray
          ) -> tuple[np.ndarray, list[dict]]:
    """Every distinct probability (to 3 decimals) as an answer threshold, and its kind table."""
    candidates = np.unique(np.round(p, 3))
    return candidates, [kind_table(p, missing, right, answerable, t, t) for t in candidates]


def best_threshold(candidates: np.ndarray, tables: list[dict], coverage: float) -> float:
    """The threshold of the best reply accuracy among those whose answers cover >= ``coverage``
    of the answerable questions (the lowest of equals, so as many answers as possible stay)."""
    allowed = [(row["reply_accuracy"], -t, t) for t, row in zip(candidates, tables)
               if row["answer_coverage_of_answerable"] >= coverage]
    return float(max(allowed)[2]) if allowed else float(candidates[0])


def kind_table(p: np.ndarray, missing: np.ndarray, right: np.ndarray, answerable: np.ndarray,
               answer: float, possible: float) -> dict:
    """How often each kind of reply is right, and how much it covers."""
    kinds = kind(p, missing, answer, possible)
    said, none = kinds == "answer", kinds == "none"
    return {
        "answer_right": float(right[said].mean()) if said.any() else None,
        "answer_coverage_of_answerable": float((said & answerable).sum() / answerable.sum()),
        "none_right": float((~answerable[none]).mean()) if none.any() else None,
        "none_coverage_of_unanswerable": float((none & ~answerable).sum() / (~answerable).sum()),
        "n_answer": int(said.sum()), "n_possible": int((kinds == "possible").sum()), "n_none": int(none.sum()),
        # A possible answer counts as an abstention (docs/results.md).
        "reply_accuracy": float(((said & right) | (~said & ~answerable)).mean()),
    }


def train(x: np.ndarray, right: np.ndarray, answerable: np.ndarray, groups: np.ndarray, plot: Path | None = None
          ) -> tuple[AnswerabilityModel, dict]:
    """The model fitted on every question, and its out-of-fold figures (drawn into ``plot`` when given)."""
    p = out_of_fold(x, right, groups)
    missing = missing_asked(x)
    answer, possible = choose_thresholds(p, missing, right, answerable)
    swept = sweep(p, missing, right, answerable)
    # The operating point (answers cover >= half the answerable questions), for comparison.
    half = best_threshold(*swept, 0.5)
    cv = {"articles": int(len(np.unique(groups))), "questions": int(len(right)),
          "auc_answerable": auc(p, answerable), "auc_right": auc(p, right),
          "thresholds": {"answer": answer, "possible": possible},
          **kind_table(p, missing, right, answerable, answer, possible),
          "coverage_floor": COVERAGE_FLOOR,
          "best_at_half_coverage": {"threshold": half, **kind_table(p, missing, right, answerable, half, half)},
          # Accuracy against coverage as the answer threshold moves (possible = none = not answering).
          "curve": [{"threshold": t, **{k: v for k, v in kind_table(p, missing, right, answerable, t, t).items()
                                        if k in ("answer_right", "answer_coverage_of_answerable", "reply_accuracy")}}
                    for t in np.round(np.arange(0.1, 1.0, 0.1), 1).tolist()]}
    if plot:
        from ..report import plot_answer_threshold

        points = [{"threshold": float(t), **row} for t, row in zip(*swept)
                  if row["n_answer"] >= 50]  # fewer answers are noise, as for the thresholds
        plot_answer_threshold(points, answer, plot, f"SQuAD v2.0 public, out of fold ({len(right):,} questions, "
                                                    f"{int(answerable.sum()):,} answerable)")
    return AnswerabilityModel(*fit(x, right), answer=answer, possible=possible), cv


def write(model: AnswerabilityModel, cv: dict, out: Path) -> None:
    """The weights file and, beside it, its manifest (``out``) with the weights' sha256."""
    weights = (json.dumps(model.to_json(), indent=1) + "\n").encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / WEIGHTS).write_bytes(weights)
    manifest = {
        "name": "answerability",
        "description": "logistic regression over qa.answerability.FEATURES: the probability that the "
                       "engine's first quote answers the question",
        "source": {"command": COMMAND},
        "training_data": "SQuAD v2.0 dev, the public articles of ../shared/eval/squad_v2.0_dev_public.jsonl "
                         "(Rajpurkar et al. 2018)",
        "license": "CC-BY-SA-4.0 (derived from SQuAD)",
        "weights": WEIGHTS,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "cross_validation": "leave one article out; figures out-of-fold",
        "cv": cv,
    }
    out.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def held_out_embedders(even: Path, odd: Path, v11: Path = SQUAD_V11) -> Callable[[str], str]:
    """For each article, the embedder fine-tuned without it: ``even`` was trained on the v1.1
    articles at even positions (``qa.training.embedder --half 0``), ``odd`` on the others."""
    position = {json.loads(line)["title"]: n for n, line in enumerate(v11.open(encoding="utf-8"))}
    return lambda title: str(odd if position[title] % 2 == 0 else even)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=MANIFEST)
    parser.add_argument("--held-out-embedders", nargs=2, type=Path, metavar=("EVEN", "ODD"),
                        help="figures only, each article read by an embedder fine-tuned without it "
                             "(the shipped one saw every article); writes nothing")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="also draw accuracy against coverage as the answer threshold moves (out of fold)")
    args = parser.parse_args(argv)
    embedder_for = held_out_embedders(*args.held_out_embedders) if args.held_out_embedders else None
    model, cv = train(*collect(args.squad, args.data_dir or default_data_dir(), embedder_for), plot=args.plot)
    if not args.held_out_embedders:
        write(model, cv, args.out)
    json.dump(cv, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
