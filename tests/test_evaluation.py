"""Evaluation: metrics on hand-checked records, test-set parsing, and end-to-end runs of `qa eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from qa.answers import Answer, Quote
from qa.evaluation import (
    TestItem,
    TestSetError,
    auc,
    compare,
    compute_metrics,
    contains_answer,
    coverage_curve,
    exact_match_score,
    f1_score,
    normalize_answer,
    question_verdicts,
    read_squad,
    read_testset,
    score_answer,
)

ROOT = Path(__file__).resolve().parent.parent
SEED_QUESTIONS = ROOT / "seeds" / "questions.jsonl"

TEXT = "Paris is the capital of France. Berlin is in Germany. The Rhine flows north."
SENTENCES = ["Paris is the capital of France.", "Berlin is in Germany.", "The Rhine flows north."]
DOCS = {"geo.txt": SimpleNamespace(text=TEXT)}


def _span(i):
    start = TEXT.index(SENTENCES[i])
    return start, start + len(SENTENCES[i])


def _quote(i, score):
    start, end = _span(i)
    return Quote(SENTENCES[i], "geo.txt", "geo", None, i, start, end, score)


def fake_run(item: TestItem, order: list[int], answered: bool, latency=10.0, k=3, kind="",
             confidence=None) -> dict:
    """The record of an assistant that ranks the sentences in ``order``."""
    scores = [0.9 - 0.1 * n for n in range(len(order))]
    quotes = tuple(_quote(i, s) for i, s in zip(order, scores))
    answer = Answer(item.question, answered, quotes, "", latency_ms=latency, kind=kind, confidence=confidence)
    return score_answer(item, answer, DOCS, shown=k)


CAPITAL = TestItem("q1", "What is the capital of France?", ("Paris",))
BERLIN = TestItem("q2", "Where is Berlin?", ("Germany",))
RHINE = TestItem("q3", "Which way does the Rhine flow?", ("north",))
MOON = TestItem("q4", "What is on the moon?", (), unanswerable=True)


def test_normalization_and_scores_follow_squad():
    assert normalize_answer("The  Kursk-Region!") == "kurskregion"
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert exact_match_score("the Kursk region.", "Kursk region") == 1.0
    assert f1_score("Kursk region of Russia", "the Kursk region") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1_score("nothing", "Kursk") == 0.0
    assert contains_answer("They were captured in the Kursk region.", ["kursk REGION"])
    assert contains_answer("in hospital beds\u2014one with a bandage", ["hospital beds"])
    assert not contains_answer("They were captured near Moscow.", ["Kursk region", "Kursk"])
    assert not contains_answer("anything", [])


def test_a_perfect_run_scores_one():
    records = [fake_run(CAPITAL, [0, 1, 2], True), fake_run(BERLIN, [1, 0, 2], True),
               fake_run(RHINE, [2, 0, 1], True), fake_run(MOON, [0, 1, 2], False)]
    m = compute_metrics(records, threshold=0.5)
    for key in ("hit@1", "hit@3", "mrr", "abstain_precision", "abstain_recall", "abstain_f1", "quotes_verified"):
        assert m[key] == 1.0, key
    assert m["hit@k"] == [1.0] * 10
    assert (m["n"], m["n_answerable"], m["n_unanswerable"], m["n_abstained"]) == (4, 3, 1, 1)
    assert m["exact_match"] == 0.0 and m["f1"] == 0.0 and m["n_short_answers"] == 0  # none given scores 0
    assert [r["verdict"] for r in records] == ["correct"] * 3 + ["correctly_abstained"]


def test_a_known_miss_scores_what_it_should():
    records = [
        fake_run(CAPITAL, [0, 1, 2], True),  # rank 1
        fake_run(BERLIN, [0, 2, 1], True),  # right sentence third: rank 3
        fake_run(RHINE, [0, 1], True),  # never retrieved
        fake_run(TestItem("q5", "Capital?", ("Paris",)), [0, 1], False),  # retrieved first, abstained
    ]
    assert [r["rank"] for r in records] == [1, 3, None, 1]
    assert [r["verdict"] for r in records] == ["correct", "retrieved_not_first", "missed_not_retrieved",
                                               "wrongly_abstained"]
    m = compute_metrics(records)
    assert m["hit@1"] == 0.25
    assert m["hit@k"][1] == 0.25 and m["hit@3"] == 0.5 and m["hit@k"][9] == 0.5
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 4)
    # No unanswerable question: one abstention, all of them wrong.
    assert (m["abstain_precision"], m["abstain_recall"], m["abstain_f1"]) == (0.0, None, 0.0)


def test_abstention_counts():
    records = [
        fake_run(MOON, [0, 1], False),  # correctly abstained
        fake_run(TestItem("q6", "Mars?", (), unanswerable=True), [0, 1], True),  # should have abstained
        fake_run(TestItem("q7", "Venus?", (), unanswerable=True), [0, 1], False),  # correctly abstained
        fake_run(CAPITAL, [0, 1], False),  # wrongly abstained
        fake_run(BERLIN, [1, 0], True),
    ]
    m = compute_metrics(records)
    assert (m["n_unanswerable"], m["n_abstained"]) == (3, 3)
    assert m["abstain_precision"] == pytest.approx(2 / 3)
    assert m["abstain_recall"] == pytest.approx(2 / 3)
    assert m["abstain_f1"] == pytest.approx(2 / 3)
    assert m["hit@1"] == 0.5
    assert records[1]["verdict"] == "should_have_abstained"
    no_abstention = compute_metrics([fake_run(CAPITAL, [0], True)])
    assert no_abstention["abstain_precision"] is None and no_abstention["abstain_f1"] is None


def test_reply_accuracy_counts_a_possible_answer_as_abstaining():
    records = [
        fake_run(CAPITAL, [0, 1], True, confidence=0.9),  # right answer: right
        fake_run(BERLIN, [0, 1], True, confidence=0.7),  # wrong first quote: wrong
        fake_run(RHINE, [2, 0], False, kind="possible", confidence=0.4),  # answerable, not answered: wrong
        fake_run(MOON, [0, 1], False, kind="possible", confidence=0.5),  # unanswerable, possible: right
        fake_run(TestItem("q6", "Mars?", (), unanswerable=True), [0], True, confidence=0.2),  # wrong
        fake_run(TestItem("q7", "Venus?", (), unanswerable=True), [0], False, kind="none", confidence=0.1),  # right
    ]
    m = compute_metrics(records)
    assert m["reply_accuracy"] == pytest.approx(3 / 6)
    assert (m["n_abstained"], m["n_possible"]) == (3, 2)
    # Answerable 0.9, 0.7, 0.4 against unanswerable 0.5, 0.2, 0.1: 8 of 9 pairs in order.
    assert m["answerability_auc"] == pytest.approx(8 / 9)
    assert [r["kind"] for r in records] == ["answer", "answer", "possible", "possible", "answer", "none"]


def test_auc_counts_ties_half_and_needs_both_classes():
    assert auc([0.1, 0.2, 0.3, 0.4], [False, False, True, True]) == 1.0
    assert auc([0.4, 0.3, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.2, 0.5, 0.5, 0.9], [False, True, False, True]) == pytest.approx(0.875)
    assert auc([0.1, 0.2], [True, True]) is None
    assert compute_metrics([fake_run(CAPITAL, [0], True)])["answerability_auc"] is None


def test_latency_short_answers_and_unverified_quotes():
    records = [fake_run(CAPITAL, [0, 1], True, latency=float(ms)) for ms in range(1, 101)]
    m = compute_metrics(records)
    assert m["latency_ms_p50"] == pytest.approx(50.5) and m["latency_ms_p95"] == pytest.approx(95.05, abs=0.05)
    records[0]["short_answer"] = "Paris"
    records[1]["short_answer"] = "Paris, France"
    records[0]["quotes_verified"] -= 1  # a quote that is not its document slice
    m = compute_metrics(records)
    # Over every answerable question, as SQuAD scores them: the 98 given no short answer score 0.
    assert m["n_short_answers"] == 2 and m["exact_match"] == 0.01 and m["f1"] == pytest.approx((1 + 2 / 3) / 100)
    assert m["quotes_verified"] == pytest.approx(1 - 1 / 200)


def test_squad_spans_decide_correctness():
    start = TEXT.index("capital")
    item = TestItem("s1", "What is Paris?", ("capital",), docs=(Path("geo.txt"),),
                    spans=(("geo.txt", start, start + len("capital")),))
    assert fake_run(item, [0, 1], True)["verdict"] == "correct"
    # The same words elsewhere do not count: only the gold span does.
    other = TestItem("s2", "Where?", ("Germany",), spans=(("geo.txt", 0, 5),))
    assert fake_run(other, [1, 0], True)["rank"] == 2


def test_coverage_curve():
    records = [fake_run(CAPITAL, [0], True), fake_run(BERLIN, [0, 1], True), fake_run(MOON, [0], False)]
    for r, score in zip(records, (0.9, 0.5, 0.3)):
        r["top_score"] = score
    curve = coverage_curve(records, [0.0, 0.4, 0.6, 1.0])
    assert [c["coverage"] for c in curve] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert [c["accuracy"] for c in curve[:3]] == pytest.approx([1 / 3, 0.5, 1.0])
    assert curve[3]["accuracy"] is None


def test_compare_reports_changes_and_flips():
    old = [fake_run(CAPITAL, [1, 0], True), fake_run(BERLIN, [1, 0], True)]
    new = [fake_run(CAPITAL, [0, 1], True), fake_run(BERLIN, [1, 0], True)]
    result = compare(compute_metrics(old), compute_metrics(new), question_verdicts(old), question_verdicts(new))
    assert result["metrics"]["hit@1"] == {"old": 0.5, "new": 1.0, "delta": 0.5}
    assert result["flipped"] == [{"id": "q1", "old": "retrieved_not_first", "new": "correct", "change": "fixed"}]
    assert compare(compute_metrics(new), compute_metrics(new), None, question_verdicts(new))["flipped"] is None


def _write(tmp_path, lines, name="set.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "question": "Q?", "answers": ["x"]', "not valid JSON"),
    ('{"id": "a", "answers": ["x"]}', 'missing "question"'),
    ('{"id": "a", "question": "Q?", "answers": "x"}', '"answers" must be a list'),
    ('{"id": "a", "question": "Q?"}', '"answers" must be a list'),
    ('{"id": "a", "question": "Q?", "answers": [], "history": "x"}', '"history"'),
    ('{"id": "q1", "question": "Q?", "answers": []}', "already used on line 1"),
])
def test_testset_errors_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, ['{"id": "q1", "question": "First?", "answers": ["x"]}', line])
    with pytest.raises(TestSetError) as err:
        read_testset(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_testset_parsing(tmp_path):
    path = _write(tmp_path, [
        '{"id": "a", "question": " Q1? ", "answers": ["x"]}', "",
        '{"question": "Q2?", "answers": [], "history": ["Q1?"], "docs": ["../corpus"]}',
        '{"id": "c", "question": "Q3?", "answers": ["y"]}',
    ])
    items = read_testset(path)
    assert [i.id for i in items] == ["a", "line3", "c"]
    assert items[0].question == "Q1?" and items[1].unanswerable and items[1].history == ("Q1?",)
    assert items[1].docs == ((tmp_path.parent / "corpus").resolve(),)
    assert [i.id for i in read_testset(path, limit=2)] == ["a", "line3"]
    with pytest.raises(TestSetError, match="no such test-set file"):
        read_testset(tmp_path / "missing.jsonl")


PARAGRAPHS = [
    "The Rhine is a river that begins in the Swiss Alps. It flows north through Germany and reaches "
    "the North Sea in the Netherlands.",
    "The Danube is the second-longest river in Europe. It flows east from the Black Forest and ends in "
    "the Black Sea after passing Vienna and Budapest.",
]
ARTICLE = {
    "title": "Rivers of Europe",
    "paragraphs": PARAGRAPHS,
    "qas": [
        {"id": "r1", "question": "Where does the Rhine begin?",
         "answers": [{"text": "Swiss Alps", "paragraph": 0, "answer_start": PARAGRAPHS[0].index("Swiss Alps")}], "is_impossible": False},
        {"id": "r2", "question": "Into which sea does the Danube flow?",
         "answers": [{"text": "Black Sea", "paragraph": 1, "answer_start": PARAGRAPHS[1].index("the Black Sea") + 4}], "is_impossible": False},
        {"id": "r3", "question": "What is the population of Mars colonies?", "answers": [], "is_impossible": True},
    ],
}


def test_read_squad_maps_offsets(tmp_path):
    path = _write(tmp_path, [json.dumps(ARTICLE)], "squad.jsonl")
    items = read_squad(path, tmp_path / "docs")
    text = (tmp_path / "docs" / "Rivers_of_Europe.txt").read_text(encoding="utf-8")
    assert [text[s:e] for i in items for _, s, e in i.spans] == ["Swiss Alps", "Black Sea"]
    assert items[2].unanswerable and not items[0].unanswerable
    assert len(read_squad(path, tmp_path / "docs", limit=1)) == 1
    bad = dict(ARTICLE, qas=[{"id": "x", "question": "Q?", "answers": [{"text": "Alps", "paragraph": 0,
                                                                         "answer_start": 0}]}])
    with pytest.raises(TestSetError, match=r"squad\.jsonl:1: question x"):
        read_squad(_write(tmp_path, [json.dumps(bad)], "squad.jsonl"), tmp_path / "docs")


def _eval(*args):
    from qa.cli import cli

    result = CliRunner().invoke(cli, ["eval", *map(str, args)])
    return result


def test_eval_end_to_end_on_seed_questions(tmp_path, data_dir):
    lines = SEED_QUESTIONS.read_text(encoding="utf-8").splitlines()
    picked = [line for line in lines if '"answers": []' not in line][:2] + \
             [line for line in lines if '"answers": []' in line][:1] + \
             [line for line in lines if '"history"' in line][:1]
    testset = _write(tmp_path, picked)
    out = tmp_path / "out"
    result = _eval(testset, "--docs", ROOT / "seeds", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 4 and metrics["n_unanswerable"] == 1 and metrics["quotes_verified"] == 1.0
    assert len(metrics["hit@k"]) == 10 and 0 <= metrics["hit@1"] <= 1 and metrics["latency_ms_p50"] > 0
    for name in ("metrics.json", "results.jsonl", "report.md", "hitk.png", "coverage.png"):
        assert (out / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [json.loads(line)["id"] for line in picked]
    assert rows[3]["history"] and all(r["verdict"] for r in rows)
    again = _eval(testset, "--compare", out / "metrics.json", "--json")
    assert again.exit_code == 0, again.output
    compared = json.loads(again.stdout)["compare"]
    assert compared["flipped"] == []
    assert all(m["delta"] in (0, None) for name, m in compared["metrics"].items() if not name.startswith("latency"))
    text = _eval(testset, "--compare", out / "metrics.json")
    assert text.exit_code == 0 and "Flipped questions: 0" in text.stdout and "hit@1" in text.stdout


def test_eval_reports_bad_test_set(tmp_path, data_dir):
    bad = _write(tmp_path, ['{"id": "a", "question": "Q?", "answers": ["x"]}', '{"id": "b", "question": "Q?"}'])
    result = _eval(bad)
    assert result.exit_code == 1 and f"{bad}:2:" in result.output
    assert _eval().exit_code == 2


def test_eval_squad_end_to_end(tmp_path, data_dir):
    path = _write(tmp_path, [json.dumps(ARTICLE)], "squad.jsonl")
    # Each answerable question's rank checks the span mapping, whatever kind of reply it got.
    result = _eval("--squad", path, "--json", "--threshold=-1", "--data-dir", tmp_path / "data",
                   "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert (metrics["n"], metrics["n_answerable"], metrics["n_unanswerable"]) == (3, 2, 1)
    assert metrics["quotes_verified"] == 1.0 and metrics["reply_accuracy"] is not None
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["rank"] is not None for r in rows] == [True, True, False]
    assert all(r["kind"] in ("answer", "possible", "none") and r["confidence"] is not None for r in rows)
    assert (tmp_path / "data" / "squad" / "squad" / "Rivers_of_Europe.txt").is_file()


def test_importing_evaluation_has_no_side_effects():
    code = "import sys, qa.evaluation, qa.report; print(any(m.startswith('matplotlib') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
