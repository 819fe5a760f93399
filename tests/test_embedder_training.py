"""Fine-tuning the embedder: what it trains on (the training itself takes minutes: `make train-embedder`)."""

from __future__ import annotations

import json

import pytest

from qa.training.embedder import SQUAD, SQUAD_V20, articles, main, with_unanswerable

needs_squad = pytest.mark.skipif(not (SQUAD.is_file() and SQUAD_V20.is_file()),
                                 reason="../shared/eval is not beside the repository")


@needs_squad
def test_unanswerable_questions_join_their_own_articles_only():
    v11 = articles(SQUAD)
    assert not any(a["unanswerable"] for a in v11)  # the shipped model trains on v1.1 alone
    half = with_unanswerable(v11[1::2])
    expected = {}
    for line in SQUAD_V20.open(encoding="utf-8"):
        article = json.loads(line)
        expected[article["title"]] = [q["question"] for q in article["qas"] if not q["answers"]]
    assert [a["title"] for a in half] == [a["title"] for a in v11[1::2]]
    for article in half:
        assert article["unanswerable"] == expected.get(article["title"], [])
    assert sum(len(a["unanswerable"]) for a in half) > 1000


@pytest.mark.parametrize("experiment", [["--unanswerable"], ["--mine-with", "models/all-MiniLM-L6-v2-squad"]])
def test_experiments_never_overwrite_the_shipped_model(experiment, capsys):
    with pytest.raises(SystemExit) as exit:
        main(experiment)
    assert exit.value.code == 2
    assert "--out DIR" in capsys.readouterr().err
