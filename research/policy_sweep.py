"""The decision's answer threshold, both sides: SQuAD train (out of fold), public v2.0, the informal set, the seed.

    .venv/bin/python research/policy_sweep.py

Reads the evidence ``python -m qa.training.answerability`` cached under the
data dir (run it first), and asks the two test sets through the engine the way
``compose`` does, then prints, for each answer threshold (the "possible" one
set equal), what each kind of text gets.  Also prints how much the reader's
evidence adds over the rest (public v2.0 AUC of regressions on subsets of the
features).  The informal set and the seed are measured here, never fitted on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa.answerability import FEATURES, kind, load_model, missing_asked
from qa.answers import distinct, weigh
from qa.assistant import DEFAULT_THRESHOLD, Assistant
from qa.evaluation import auc, corpus_key, is_correct, open_corpora, read_testset
from qa.store.index import default_data_dir
from qa.training import answerability as training

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
SUBSETS = {
    "all": FEATURES,
    "reader and score": ("reader_margin", "reader_span", "reader_other", "reader_in_question", "score"),
    "margin": ("reader_margin",),
    "no reader": tuple(f for f in FEATURES if not f.startswith("reader")),
}


def test_set_evidence(testset: str, docs: str) -> list[dict]:
    """Each standalone question's evidence, as ``compose`` gathers it."""
    items = [i for i in read_testset(testset) if not i.history]
    paths = [Path(docs)]
    assistants = open_corpora(items, paths, lambda p: Assistant(p, rebuild="stale"))
    model, rows = load_model(), []
    for item in items:
        assistant = assistants[corpus_key(item, paths)]
        retrieved = distinct(assistant.retriever.retrieve(item.question, top_k=20))
        passages, _, x = weigh(item.question, retrieved, assistant.documents_by_id, assistant.reader, model)
        s = passages[0].segment
        rows.append({"x": x, "top": retrieved[0].score, "answerable": item.answerable,
                     "right": is_correct(item, s.doc_id, s.start, s.end, s.text)})
    return rows


def unanswered(rows: list[dict], threshold: float) -> tuple[int, int]:
    """(answerable questions not answered, unanswerable questions not answered) at ``threshold``."""
    model, counts = load_model(), [0, 0]
    for r in rows:
        below = r["top"] < DEFAULT_THRESHOLD
        p = 0.0 if below else model.probability(r["x"])
        reply = kind(p, missing_asked(r["x"]), threshold, threshold, below or bool(model.is_off_topic(r["x"])))
        counts[0 if r["answerable"] else 1] += reply != "answer"
    return counts[0], counts[1]


def main() -> None:
    data_dir = default_data_dir()
    train_file = training.every_nth(training.TRAIN, training.EVERY,
                                    data_dir / "squad" / f"{training.TRAIN.stem}-every-{training.EVERY}.jsonl")
    train = training.cached_collect(train_file, data_dir, training.OFF_TOPIC, None)
    public = training.cached_collect(training.EVAL, data_dir, 0, None)
    weight = train.best_weight()
    ev, pv = train.at(weight), public.at(weight)
    for name, subset in SUBSETS.items():
        cols = [FEATURES.index(f) for f in subset]
        p = training.fit(ev.x[:, cols], ev.right).probabilities(pv.x[:, cols])
        print(f"{name:18s} public v2.0 AUC answerable {auc(p, pv.answerable):.3f}, right first quote {auc(p, pv.right):.3f}")
    model = load_model()
    p_train = training.out_of_fold(ev.x, ev.right, ev.groups)
    off_train = training.out_of_fold(ev.x, ev.off_topic, ev.groups) >= model.off_topic_cut
    low = training.lowest_scoring(ev.answerable, ev.top)
    below = pv.top < DEFAULT_THRESHOLD
    p_public = np.where(below, 0.0, model.probabilities(pv.x))
    off_public = below | model.is_off_topic(pv.x)
    informal = test_set_evidence("tests/informal/questions.jsonl", "tests/informal/docs")
    seed = test_set_evidence("seeds/questions.jsonl", "seeds")
    for t in THRESHOLDS:
        tr = training.kind_table(p_train, missing_asked(ev.x), ev.right, ev.answerable, off_train, t, t)
        lowest = (kind(p_train[low], missing_asked(ev.x)[low], t, t, off_train[low]) == "answer").mean()
        pu = training.kind_table(p_public, missing_asked(pv.x), pv.right, pv.answerable, off_public, t, t)
        (i_ans, i_un), (s_ans, s_un) = unanswered(informal, t), unanswered(seed, t)
        print(f"threshold {t:.2f} | train reply accuracy {tr['reply_accuracy']:.3f}, answers right "
              f"{tr['answer_right']:.3f}, lowest quarter answered {lowest:.3f} | public v2.0 {pu['reply_accuracy']:.3f}, "
              f"{pu['answer_right']:.3f} | informal answerable unanswered {i_ans}, unanswerable not answered {i_un} "
              f"| seed answerable unanswered {s_ans}, unanswerable not answered {s_un}")


if __name__ == "__main__":
    main()
