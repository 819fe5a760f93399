"""The `qa` command as a user runs it: real processes, real files."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SEED_ARTICLE, make_pdf

QA = [sys.executable, "-m", "qa"]


def run(args, data_dir, stdin=None):
    env = {**os.environ, "QA_DATA_DIR": str(data_dir)}
    return subprocess.run(QA + args, input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_ask_json_returns_the_kursk_sentence_with_exact_offsets(data_dir, seed_assistant):
    result = run(["ask", "--json", "Where were the North Korean soldiers captured?"], data_dir)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) >= {"question", "answered", "answer", "quotes", "message"}
    assert answer["answered"] is True
    best = answer["quotes"][0]
    assert set(best) >= {"text", "doc", "title", "section", "start", "end", "score"}
    text = SEED_ARTICLE.read_bytes().decode("utf-8")
    assert best["text"] == text[best["start"]:best["end"]]
    assert best["text"] == "Ukraine has claimed that it has captured two North Korean soldiers in Russia's Kursk region."
    assert answer["answer"] == best["text"]


def test_chat_answers_follow_ups_and_empty_line_starts_over(data_dir, seed_assistant):
    questions = "Who is Ukraine's foreign minister?\nWhat did he urge?\n\nHow do I bake sourdough bread?\n"
    result = run(["chat", "--json"], data_dir, stdin=questions)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 3
    assert "more pressure on Moscow and Pyongyang" in answers[1]["quotes"][0]["text"]
    assert answers[2]["answered"] is False
    assert answers[2]["query"] == "How do I bake sourdough bread?"  # the new conversation has no history


def test_index_builds_a_new_corpus_with_progress_on_stderr(data_dir, tmp_path):
    doc = tmp_path / "lighthouse.md"
    doc.write_text("# Lighthouses\n\nThe lamp was lit every evening at dusk.\n")
    result = run(["index", str(doc), "--json"], data_dir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rebuilt"] is True and report["counts"] == {"documents": 1, "segments": 1}
    assert "embedding" in result.stderr
    again = run(["ask", "When was the lamp lit?", "--docs", str(doc)], data_dir)
    assert again.returncode == 0
    assert "The lamp was lit every evening at dusk." in again.stdout
    assert "Indexed" not in again.stderr  # the index was fresh, not rebuilt


@pytest.mark.parametrize("args, code, message", [
    (["ask", "   "], 1, "question is empty"),
    (["ask", "Anything?", "--docs", "no/such/file.txt"], 1, "no/such/file.txt: no such file"),
    (["ask"], 2, "Missing argument"),
    (["ask", "x", "--k", "zero"], 2, "--k"),
])
def test_errors_name_the_bad_value_and_exit_codes_follow_the_contract(data_dir, args, code, message):
    result = run(args, data_dir)
    assert result.returncode == code
    assert message in result.stderr
    assert result.stdout == ""


def test_a_folder_with_a_bad_file_is_indexed_and_the_bad_file_named(data_dir, tmp_path):
    (tmp_path / "review.txt").write_text("The grinder is quiet and the burrs are made of steel.\n", encoding="utf-8")
    (tmp_path / "windows.txt").write_bytes("The café opens at eight – every day.\r\n".encode("cp1252"))
    (tmp_path / "bad.txt").write_bytes(bytes(range(256)) * 16)
    result = run(["index", str(tmp_path), "--json"], data_dir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["documents"] == 2
    assert [s["path"] for s in report["skipped"]] == [str(tmp_path / "bad.txt")]
    assert "not text in any encoding" in report["skipped"][0]["reason"]
    assert result.stderr.count(f"Skipped {tmp_path / 'bad.txt'}: not text in any encoding") == 1
    answer = run(["ask", "--json", "When does the café open?", "--docs", str(tmp_path)], data_dir)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["quotes"][0]["text"] == "The café opens at eight – every day."
    nothing = run(["ask", "Anything?", "--docs", str(tmp_path / "bad.txt")], data_dir)
    assert nothing.returncode == 1 and "bad.txt: not text in any encoding" in nothing.stderr


def test_a_pdf_quote_carries_its_page(data_dir, tmp_path):
    pdf = tmp_path / "kettle.pdf"
    pdf.write_bytes(make_pdf([["Unpack the kettle and remove the tape."], ["Descale the kettle every month with vinegar."]]))
    result = run(["ask", "--json", "--k", "2", "How often should I descale the kettle?", "--docs", str(pdf)], data_dir)
    assert result.returncode == 0, result.stderr
    best = json.loads(result.stdout)["quotes"][0]
    assert best["text"] == "Descale the kettle every month with vinegar." and best["page"] == 2
    text = run(["ask", "How often should I descale the kettle?", "--docs", str(pdf)], data_dir)
    assert "kettle.pdf, p. 2, sentence 2" in text.stdout


def test_word_and_email_files_are_indexed_and_cited(data_dir, tmp_path):
    docx = pytest.importorskip("docx")
    from email.message import EmailMessage

    word = docx.Document()
    word.add_heading("Service agreement", level=0)
    word.add_heading("Notice", level=1)
    word.add_paragraph("Either party may end the agreement with three months' notice in writing.")
    word.save(tmp_path / "contract.docx")
    message = EmailMessage()
    message["Subject"], message["From"], message["Date"] = "Offsite", "Ida <ida@example.org>", "Mon, 2 Feb 2026 10:00:00 +0000"
    message.set_content("The offsite moves to the lake hotel on Thursday.\n")
    (tmp_path / "offsite.eml").write_bytes(bytes(message))
    result = run(["index", str(tmp_path), "--json"], data_dir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["documents"] == 2
    answer = run(["ask", "How much notice ends the agreement?", "--docs", str(tmp_path)], data_dir)
    assert "contract.docx, Notice, sentence 1" in answer.stdout
    answer = run(["ask", "--json", "Where is the offsite?", "--docs", str(tmp_path)], data_dir)
    best = json.loads(answer.stdout)["quotes"][0]
    assert best["text"] == "The offsite moves to the lake hotel on Thursday." and best["title"] == "Offsite"
