"""Fit the answerability model on SQuAD v2.0 train and write it to ``models/``.

    .venv/bin/python -m qa.training.answerability      # or: make train

Every third article of ../shared/train/squad_v2.0_train_approx.jsonl (147 of
442) is indexed as its own document, and each of its questions is run through
the engine (its top 20 passages, as ``Assistant.ask`` sees them, and the
reader's short answer in the first) and turned into the evidence features of
``qa.answerability``.  Besides its answerable and unanswerable questions,
each article is also asked ``OFF_TOPIC`` questions of the next article: the
off-topic questions a user asks of the wrong documents.  Two regressions
are fitted on the same evidence: whether the engine's first quote is right
(the question is answerable and the quote covers a gold span), and whether
the question is off-topic.

The thresholds are chosen on out-of-fold probabilities (``FOLDS`` folds of
whole articles, each scored by regressions fitted on the others; see
``choose_off_topic_cut`` and ``choose_thresholds``), the shipped weights are
then fitted on every question, and the model is judged on
../shared/eval/squad_v2.0_dev_public.jsonl, whose articles it never saw.  The
score cut, a floor on the retrieval score under which the documents don't say
whatever the models think, is ``score_cut``.  Everything is deterministic
(the same retrieval, a deterministic solver), so a rerun rebuilds
byte-identical files.  SQuAD is CC BY-SA 4.0; the weights are derived from it
and carry the same license.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..answerability import (FEATURES, MANIFEST, AnswerabilityModel, Logistic, features, kind, missing_asked,
                             rerank)
from ..answers import READ, distinct, read
from ..evaluation import TestItem, auc, corpus_key, is_correct, open_corpora, read_squad
from ..store.index import default_data_dir

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT.parent / "shared" / "train" / "squad_v2.0_train_approx.jsonl"
EVAL = ROOT.parent / "shared" / "eval" / "squad_v2.0_dev_public.jsonl"
WEIGHTS = "answerability.weights.json"
COMMAND = ".venv/bin/python -m qa.training.answerability"
EVERY = 3  # every third train article: 147 articles, ~44k questions, ~15 minutes on 2 cores
OFF_TOPIC = 10  # questions of the next article asked of each article
FOLDS = 10
# "The documents don't say" must be right >= 80% of the time.
NONE_PRECISION = 0.8
# Answers must cover this share of the lowest-scoring quarter of answerable questions
# (``lowest_scoring``).  The policy between two kinds of text (docs/results.md, "The policy"): with
# the reader, 0.90 kept informal text answered (0.11 of its answerable questions left unanswered)
# but answered most on-topic questions the documents do not answer (SQuAD v2.0 reply accuracy
# 0.515, the informal set's on-topic unanswerable 4 of 12 not answered); 0.75 gives up a tenth of
# informal answers to a "possible" reply for 0.567 and 8 of 12.
COVERAGE_FLOOR = 0.75
OFF_TOPIC_LOSS = 0.005  # right first quotes the off-topic model may take for off-topic
# The score cut (``qa.assistant.DEFAULT_THRESHOLD``) only has to stop the plainly unrelated before the
# models read the evidence, and must not stop answers on text that scores lower than Wikipedia:
# the score that the lowest 5% of off-topic questions score under.
SCORE_CUT_QUANTILE = 0.05
TOP_K = 20  # what Assistant.ask retrieves for k <= 10
# The engine's score against the reader's margin when the reader picks the first quote among the
# ones it read (``AnswerabilityModel.rerank``): chosen on train, the weight whose first quotes are
# right most often.  A margin runs from about -10 to 10, a score from 0 to 1; 100 is the engine's order.
SCORE_WEIGHTS = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 100.0)


@dataclass
class Evidence:
    """Per question: features, whether the first quote is right, answerable, off-topic, article, top score."""

    x: np.ndarray
    right: np.ndarray
    answerable: np.ndarray
    off_topic: np.ndarray
    groups: np.ndarray
    top: np.ndarray


class Candidates(Evidence):
    """``Evidence`` for each weight of ``SCORE_WEIGHTS`` (the first quote the reranking puts first):
    ``x`` and ``right`` have one more axis in front, a row per weight."""

    def at(self, weight: float) -> Evidence:
        w = SCORE_WEIGHTS.index(weight)
        return Evidence(self.x[w], self.right[w], self.answerable, self.off_topic, self.groups, self.top)

    def best_weight(self) -> float:
        """The weight whose first quotes are right most often (ties: the smaller)."""
        return SCORE_WEIGHTS[int(np.argmax(self.right.sum(axis=1)))]


def every_nth(path: Path, every: int, out: Path) -> Path:
    """``out`` holding every ``every``-th article of ``path`` (rewritten only when it changes)."""
    lines = [line for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()) if n % every == 0]
    text = "\n".join(lines) + "\n"
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return out


def off_topic_items(items: list[TestItem], per_article: int) -> list[TestItem]:
    """``per_article`` answerable questions of each article asked of the article before it."""
    by_doc: dict = {}
    for item in items:
        if item.answerable:
            by_doc.setdefault(item.docs, []).append(item)
    docs = list(by_doc)
    return [TestItem(id=f"off-topic-{n}-{q.id}", question=q.question, docs=docs[n], unanswerable=True)
            for n in range(len(docs)) for q in by_doc[docs[(n + 1) % len(docs)]][:per_article]]


def collect(path: Path, data_dir: Path, off_topic: int = 0, progress=None) -> Candidates:
    """The evidence of every question of a SQuAD file, each article its own corpus, as ``compose``
    gathers it (the passages retrieved, the first ``READ`` read) for each reranking weight."""
    from ..assistant import Assistant

    items = read_squad(path, data_dir / "squad" / path.stem)
    extra = off_topic_items(items, off_topic) if off_topic else []
    assistants = open_corpora(items, [], lambda paths: Assistant(paths, data_dir=data_dir, rebuild="stale"))
    documents = {d.id: d for a in assistants.values() for d in a.documents}
    x = np.zeros((len(SCORE_WEIGHTS), len(items) + len(extra), len(FEATURES)))
    right = np.zeros((len(SCORE_WEIGHTS), len(items) + len(extra)), dtype=bool)
    top = []
    for n, item in enumerate(items + extra):
        assistant = assistants[corpus_key(item, [])]
        passages = distinct(assistant.retriever.retrieve(item.question, top_k=TOP_K))
        readings = read(item.question, passages, assistant.reader)
        seen = {}
        for w, weight in enumerate(SCORE_WEIGHTS):
            ordered, read_in_order = rerank(passages, readings, weight)
            order = tuple(id(p) for p in ordered[:READ])
            if order not in seen:
                s = ordered[0].segment if ordered else None
                seen[order] = (features(item.question, ordered, documents, read_in_order),
                               bool(s) and is_correct(item, s.doc_id, s.start, s.end, s.text))
            x[w, n], right[w, n] = seen[order]
        top.append(passages[0].score if passages else 0.0)
        if progress and n % 1000 == 0:
            progress(f"{path.name}: {n} of {len(items) + len(extra)} questions")
    everything = items + extra
    return Candidates(x, right, np.array([i.answerable for i in everything]),
                      np.array([i.id.startswith("off-topic-") for i in everything]),
                      np.array([corpus_key(i, [])[0] for i in everything]), np.array(top))


def fit(x: np.ndarray, y: np.ndarray) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / scale, y)
    return Logistic(mean, scale, model.coef_[0], float(model.intercept_[0]))


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each question's probability from a regression fitted on the other folds' articles."""
    articles = np.unique(groups)
    fold = dict(zip(articles, np.arange(len(articles)) % FOLDS))
    folds = np.array([fold[g] for g in groups])
    p = np.zeros(len(y))
    for f in range(FOLDS):
        test = folds == f
        p[test] = fit(x[~test], y[~test]).probabilities(x[test])
    return p


def lowest_scoring(answerable: np.ndarray, top: np.ndarray) -> np.ndarray:
    """The quarter of the answerable questions whose best passage scores lowest.

    Text unlike Wikipedia (reviews, forum posts) scores lower everywhere, and
    both probabilities shift with it; thresholds that hold for SQuAD's
    lowest-scoring quarter hold for such text where thresholds fitted to all of
    SQuAD do not (docs/choices.md, "Thresholds that carry over").
    """
    return answerable & (top <= np.quantile(top[answerable], 0.25))


def choose_off_topic_cut(p_off: np.ndarray, right: np.ndarray, low: np.ndarray) -> float:
    """The off-topic probability that only ``OFF_TOPIC_LOSS`` of the lowest-scoring right first quotes reach."""
    return float(np.round(np.quantile(p_off[right & low], 1 - OFF_TOPIC_LOSS), 3))


def choose_thresholds(p: np.ndarray, missing: np.ndarray, answerable: np.ndarray, low: np.ndarray,
                      off: np.ndarray) -> tuple[float, float]:
    """The answer threshold and the "possible" threshold, from out-of-fold probabilities.

    Answer: the highest threshold whose answers still cover ``COVERAGE_FLOOR``
    of the lowest-scoring answerable questions (``lowest_scoring``).
    Possible: the highest threshold, up to the answer one, below which "the
    documents don't say" is right >= NONE_PRECISION.
    """
    candidates = np.unique(np.round(p, 3))
    covering = [t for t in candidates
                if (kind(p[low], missing[low], t, t, off[low]) == "answer").mean() >= COVERAGE_FLOOR]
    answer = max(covering, default=float(candidates[0]))
    possible = max((t for t in candidates if t <= answer and ((p < t) | off).any()
                    and (~answerable[(p < t) | off]).mean() >= NONE_PRECISION), default=0.0)
    return float(answer), float(possible)


def sweep(p: np.ndarray, missing: np.ndarray, right: np.ndarray, answerable: np.ndarray, off: np.ndarray
          ) -> tuple[np.ndarray, list[dict]]:
    """Every distinct probability (to 3 decimals) as an answer threshold, and its kind table."""
    candidates = np.unique(np.round(p, 3))
    return candidates, [kind_table(p, missing, right, answerable, off, t, t) for t in candidates]


def best_threshold(candidates: np.ndarray, tables: list[dict], coverage: float) -> float:
    """The threshold of the best reply accuracy among those whose answers cover >= ``coverage``
    of the answerable questions (the lowest of equals, so as many answers as possible stay)."""
    allowed = [(row["reply_accuracy"], -t, t) for t, row in zip(candidates, tables)
               if row["answer_coverage_of_answerable"] >= coverage]
    return float(max(allowed)[2]) if allowed else float(candidates[0])


def kind_table(p: np.ndarray, missing: np.ndarray, right: np.ndarray, answerable: np.ndarray, off: np.ndarray,
               answer: float, possible: float) -> dict:
    """How often each kind of reply is right, and how much it covers."""
    kinds = kind(p, missing, answer, possible, off)
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


def judged(model: AnswerabilityModel, evidence: Evidence, cut: float) -> dict:
    """``model``'s figures on ``evidence``, with the score cut applied before it, as ``compose`` does."""
    below = evidence.top < cut
    p = np.where(below, 0.0, model.probabilities(evidence.x))
    off = below | model.is_off_topic(evidence.x)
    missing = missing_asked(evidence.x)
    right, answerable = evidence.right, evidence.answerable
    swept = sweep(p, missing, right, answerable, off)
    half = best_threshold(*swept, 0.5)
    kinds = kind(p, missing, model.answer, model.possible, off)
    return {"questions": int(len(p)), "answerable": int(answerable.sum()),
            "auc_answerable": auc(p, answerable), "auc_right": auc(p, right),
            **kind_table(p, missing, right, answerable, off, model.answer, model.possible),
            "answerable_off_topic": float(off[answerable].mean()),
            "off_topic_none": float((kinds[evidence.off_topic] == "none").mean()) if evidence.off_topic.any() else None,
            "best_at_half_coverage": {"threshold": half, **kind_table(p, missing, right, answerable, off, half, half)},
            # Accuracy against coverage as the answer threshold moves (possible = none = not answering).
            "curve": [{"threshold": t, **{k: v for k, v in kind_table(p, missing, right, answerable, off, t, t).items()
                                          if k in ("answer_right", "answer_coverage_of_answerable", "reply_accuracy")}}
                      for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)],
            "swept": swept}


def train(candidates: Candidates) -> tuple[AnswerabilityModel, float, dict]:
    """The model fitted on every question (the first quote chosen with the best reranking weight), the
    score cut, and the out-of-fold figures."""
    weight = candidates.best_weight()
    evidence = candidates.at(weight)
    x, right, answerable, groups = evidence.x, evidence.right, evidence.answerable, evidence.groups
    p = out_of_fold(x, right, groups)
    p_off = out_of_fold(x, evidence.off_topic, groups)
    low = lowest_scoring(answerable, evidence.top)
    off_cut = choose_off_topic_cut(p_off, right, low)
    off = p_off >= off_cut
    missing = missing_asked(x)
    answer, possible = choose_thresholds(p, missing, answerable, low, off)
    model = AnswerabilityModel(fit(x, right), answer, possible, fit(x, evidence.off_topic), off_cut, weight)
    cv = {"articles": int(len(np.unique(groups))), "questions": int(len(p)),
          "off_topic_questions": int(evidence.off_topic.sum()),
          "score_weight": weight,
          "right_first_by_score_weight": {str(w): int(r) for w, r in zip(SCORE_WEIGHTS, candidates.right.sum(axis=1))},
          "auc_answerable": auc(p, answerable), "auc_right": auc(p, right),
          "auc_off_topic": auc(p_off, evidence.off_topic),
          "thresholds": {"answer": answer, "possible": possible, "off_topic": off_cut},
          "coverage_floor": COVERAGE_FLOOR,
          "off_topic_caught": float(off[evidence.off_topic].mean()),
          "right_taken_for_off_topic": float(off[right].mean()),
          **kind_table(p, missing, right, answerable, off, answer, possible)}
    return model, score_cut(evidence), cv


def score_cut(evidence: Evidence) -> float:
    """The retrieval score under which ``SCORE_CUT_QUANTILE`` of the off-topic questions fall."""
    return float(np.round(np.quantile(evidence.top[evidence.off_topic], SCORE_CUT_QUANTILE), 3))


def write(model: AnswerabilityModel, cut: float, report: dict, out: Path) -> None:
    """The weights file and, beside it, its manifest (``out``) with the weights' sha256."""
    weights = (json.dumps(model.to_json(), indent=1) + "\n").encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / WEIGHTS).write_bytes(weights)
    manifest = {
        "name": "answerability",
        "description": "logistic regression over qa.answerability.FEATURES: the probability that the "
                       "engine's first quote answers the question",
        "source": {"command": COMMAND},
        "training_data": (f"SQuAD v2.0 train, approximated: every {EVERY}rd article of "
                          "../shared/train/squad_v2.0_train_approx.jsonl (Rajpurkar et al. 2018), with "
                          f"{OFF_TOPIC} questions of the next article asked of each as off-topic"),
        "license": "CC-BY-SA-4.0 (derived from SQuAD)",
        "weights": WEIGHTS,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "score_cut": cut,
        "cross_validation": f"{FOLDS} folds of whole articles; thresholds chosen out of fold",
        **report,
    }
    out.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def cached_collect(path: Path, data_dir: Path, off_topic: int, progress) -> Candidates:
    """``collect``, kept under the data dir by what it depends on, so a rerun (or a run resumed
    after the eval file) reads it back instead of running the engine again."""
    from ..models.embedder import DEFAULT_MODEL
    from ..models.manifest import resolve_model
    from ..models.reader import MANIFEST as READER

    key = hashlib.sha256(json.dumps([hashlib.sha256(path.read_bytes()).hexdigest(),
                                     resolve_model(DEFAULT_MODEL).weights_sha256,
                                     json.loads(READER.read_text(encoding="utf-8"))["files"],
                                     list(FEATURES), off_topic, TOP_K, READ, SCORE_WEIGHTS]).encode()).hexdigest()[:16]
    cache = data_dir / "answerability" / f"{path.stem}-{key}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            return Candidates(**{name: saved[name] for name in saved.files})
    evidence = collect(path, data_dir, off_topic, progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **vars(evidence))
    return evidence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=MANIFEST)
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="also draw accuracy against coverage as the answer threshold moves (public v2.0)")
    args = parser.parse_args(argv)
    progress = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    data_dir = args.data_dir or default_data_dir()
    train_file = every_nth(TRAIN, EVERY, data_dir / "squad" / f"{TRAIN.stem}-every-{EVERY}.jsonl")
    model, cut, cv = train(cached_collect(train_file, data_dir, OFF_TOPIC, progress))
    public = cached_collect(EVAL, data_dir, 0, progress)
    held_out = judged(model, public.at(model.score_weight), cut)
    held_out["right_first_by_score_weight"] = {str(w): int(r) for w, r in zip(SCORE_WEIGHTS, public.right.sum(axis=1))}
    swept = held_out.pop("swept")
    report = {"cv": cv, "public_v2.0": held_out}
    write(model, cut, report, args.out)
    if args.plot:
        from ..report import plot_answer_threshold

        points = [{"threshold": float(t), **row} for t, row in zip(*swept)
                  if row["n_answer"] >= 50]  # fewer answers are noise, as for the thresholds
        plot_answer_threshold(points, model.answer, args.plot,
                              f"SQuAD v2.0 public, unseen ({held_out['questions']:,} questions, "
                              f"{held_out['answerable']:,} answerable)")
    json.dump({"score_cut": cut, **report}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
