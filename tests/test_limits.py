"""No question crashes anything: questions at and around every length limit, in characters and in
word pieces, through `qa ask`, `qa chat --json` and `POST /api/ask`, on-topic (the short-answer
reader reads them) and off-topic (it is skipped).  And one reply per question in `qa chat --json`.

The limits: 1,000 characters (``MAX_QUESTION_CHARS``); the reader's 128 word pieces, question and
sentence together; the embedder's 256 (its ``max_seq_length``); BERT's 512 positions.  Runs of
punctuation reach them fastest: each mark is a word piece of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SEED_ARTICLE, SEEDS, free_port
from qa.answers import KINDS
from qa.questions import MAX_QUESTION_CHARS

QA = [sys.executable, "-m", "qa"]
ON_TOPIC = "Where were the North Korean soldiers captured"
OFF_TOPIC = "How long should sourdough bread be baked in the oven"
KURSK = "Ukraine has claimed that it has captured two North Korean soldiers in Russia's Kursk region."
# Word-piece limits of the models the question passes through, and a little either side of each.
PIECE_LIMITS = (128, 256, 512)


def pieces(text: str) -> int:
    """Word pieces of ``text`` (no special tokens), by the embedder's tokenizer: the readers' split alike."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(ROOT / "models" / "all-MiniLM-L6-v2-squad" / "tokenizer.json"))
    tokenizer.no_truncation()  # the file cuts at the embedder's 256: the count here must not
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def long_questions() -> list[str]:
    """Questions at and around every limit, on-topic and off-topic."""
    made = []
    for base, words in ((ON_TOPIC, " soldiers captured Kursk"), (OFF_TOPIC, " sourdough bread oven")):
        fixed = pieces(base)
        for limit in PIECE_LIMITS:
            for n in (limit - 2, limit - 1, limit, limit + 1, limit + 2):
                made.append(base + "?" * (n - fixed))  # a run of punctuation: one piece a mark
        for chars in (MAX_QUESTION_CHARS - 1, MAX_QUESTION_CHARS, MAX_QUESTION_CHARS + 1):
            made.append((base + "!" * chars)[:chars])  # ~950 pieces in 1,000 characters
            made.append((base + words * 100)[:chars].rstrip() + "?")  # long in words, not in marks
    for n in (126, 127, 128, 129, 130):  # a question of words alone at the reader's limit
        made.append(" ".join(["Where", "were", "the"] + ["captured"] * (n - 3)))
    return made


QUESTIONS = long_questions()
# Through `qa ask`, a process each: the reader's limit, the most word pieces in the most characters, one
# character over, and an off-topic question at the embedder's limit.
ASK = [ON_TOPIC + "?" * (128 - pieces(ON_TOPIC)), (ON_TOPIC + "!" * 1000)[:1000], (ON_TOPIC + "!" * 1001)[:1001],
       OFF_TOPIC + "?" * (256 - pieces(OFF_TOPIC))]


def check_reply(question: str, reply: dict, text: str) -> None:
    """An accepted question is answered or abstained on, its quotes exact; a refused one says why."""
    if len(question) > MAX_QUESTION_CHARS:
        assert reply == {"question": question, "error": f"the question is {len(question):,} characters long: "
                                                         f"ask in at most {MAX_QUESTION_CHARS:,}"}
        return
    assert reply["question"] == question and reply["kind"] in KINDS, reply.get("error")
    for quote in reply["quotes"]:
        assert quote["text"] == text[quote["start"]:quote["end"]]
    if question.startswith(ON_TOPIC):
        # A long tail of marks dilutes the question's vector: the sentence is among the quotes, maybe not first.
        assert KURSK in [q["text"] for q in reply["quotes"]], question
    elif question.startswith(OFF_TOPIC):
        assert reply["kind"] == "none", question


def test_the_questions_reach_every_limit():
    counts = {pieces(q) for q in QUESTIONS}
    assert all({n - 1, n, n + 1} <= counts for n in PIECE_LIMITS)
    assert max(counts) > 900
    assert {len(q) for q in QUESTIONS} >= {MAX_QUESTION_CHARS - 1, MAX_QUESTION_CHARS, MAX_QUESTION_CHARS + 1}


def test_chat_json_answers_every_question_at_every_limit_one_line_each(data_dir, seed_assistant):
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    result = subprocess.run([*QA, "chat", "--json"], input="\n\n".join(QUESTIONS) + "\n", capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "QA_DATA_DIR": str(data_dir)}, timeout=600)
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(replies) == len(QUESTIONS)  # an empty line between: each question is a conversation of its own
    for question, reply in zip(QUESTIONS, replies):
        check_reply(question, reply, text)
    # The on-topic ones went through the short-answer reader: it marked the words of an answer.
    read = [r for q, r in zip(QUESTIONS, replies) if q.startswith(ON_TOPIC) and "quotes" in r
            and r["quotes"][0]["short_answer"]]
    assert len(read) >= 10


@pytest.mark.parametrize("question", ASK, ids=["128-pieces", "1000-chars", "1001-chars", "off-topic-256-pieces"])
def test_ask_answers_at_the_limits_and_refuses_past_them(data_dir, seed_assistant, question):
    result = subprocess.run([*QA, "ask", "--json", question], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "QA_DATA_DIR": str(data_dir)}, timeout=300)
    if len(question) > MAX_QUESTION_CHARS:
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr == f"Error: the question is {len(question):,} characters long: ask in at most 1,000\n"
    else:
        assert result.returncode == 0, result.stderr
        check_reply(question, json.loads(result.stdout), SEED_ARTICLE.read_text(encoding="utf-8"))


def test_the_api_answers_every_question_at_every_limit(seed_assistant, tmp_path):
    import httpx

    from ui.app import App, launch
    from ui.library import Library

    port = free_port()
    demo = launch(App(seed_assistant, Library(tmp_path, [SEEDS])), port, prevent_thread_lock=True)
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    try:
        for question in QUESTIONS:
            for history in ([], ["Who is Ukraine's foreign minister?"]):
                response = httpx.post(f"http://127.0.0.1:{port}/api/ask", json={"question": question,
                                                                                "history": history}, timeout=120)
                assert response.status_code == (400 if len(question) > MAX_QUESTION_CHARS else 200)
                if not history:
                    check_reply(question, response.json(), text)
    finally:
        demo.close()


def test_question_words_alone_get_a_reply_that_says_why_or_an_answer(data_dir, tmp_path):
    """Over one document "What does it do?" names nothing to search for: one error line says so; asked as a
    follow-up it is searched with the question before it."""
    reviews = tmp_path / "blender-reviews.txt"
    reviews.write_text("The blender crushes ice in seconds and makes smoothies without lumps.\n"
                       "It also grinds coffee beans, though the jug is loud.\n"
                       "Returns are accepted within thirty days of delivery.\n")
    lines = ["What does it do?", "", "Does the blender crush ice?", "What does it do?", "???"]
    result = subprocess.run([*QA, "chat", "--json", "--docs", str(reviews)], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "QA_DATA_DIR": str(data_dir)},
                            timeout=300)
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(replies) == 4  # one per question; the empty line only started a new conversation
    assert replies[0]["question"] == "What does it do?" and "only question words" in replies[0]["error"]
    assert replies[1]["quotes"][0]["text"].startswith("The blender crushes ice")
    assert replies[2]["question"] == "What does it do?" and replies[2]["quotes"] and "error" not in replies[2]
    assert replies[3] == {"question": "???", "error": replies[3]["error"]} and "no words" in replies[3]["error"]
