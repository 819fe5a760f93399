"""Bad input, as a user would meet it: odd bytes in questions, special files, huge files,
control characters in documents, no network.  Real model, real files, real `qa` processes.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, SEED_ARTICLE, SEEDS, NetworkBlocked
from qa import DocumentError, load_documents, read_document
from qa.questions import MAX_QUESTION_CHARS, QuestionError

QA = [sys.executable, "-m", "qa"]
KURSK = "Ukraine has claimed that it has captured two North Korean soldiers in Russia's Kursk region."


def qa(args, data_dir, stdin: bytes = b"", env=None, prefix=(), timeout=300):
    """Run ``qa ARGS`` (bytes allowed) as a user would; stdout and stderr as text."""
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), **(env or {})}
    result = subprocess.run([*prefix, *QA, *args], input=stdin, capture_output=True, env=env, cwd=ROOT,
                            timeout=timeout)
    result.stdout = result.stdout.decode("utf-8", "surrogateescape")
    result.stderr = result.stderr.decode("utf-8", "surrogateescape")
    return result


# --------------------------------------------------------------------------- questions
def test_invalid_bytes_in_a_question_are_dropped_and_it_is_answered(data_dir, seed_assistant):
    result = qa(["ask", "--json", b"Where were the North Korean \xff\xfe soldiers captured?"], data_dir)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["question"] == "Where were the North Korean soldiers captured?"
    assert answer["answered"] and answer["answer"] == KURSK


def test_chat_keeps_going_after_binary_and_nul_lines(data_dir, seed_assistant):
    lines = [b"Who is Ukraine's foreign minister?", b"\x00\x00\x00", bytes(range(0x80, 0x100)),
             b"\x1b[A\x1b[B", b"\x00" * 200_000, b"What did he urge?"]
    result = qa(["chat", "--json"], data_dir, stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(replies) == len(lines)  # one reply per line: the four bad ones get an error object each
    errors = [r["error"] for r in replies[1:5]]
    assert all(e.startswith("the question is empty") for e in errors[:3]) and errors[3].startswith("a line of over 64")
    assert [r["question"] for r in replies[1:5]] == ["", "", "", None]
    assert result.stderr.count("Error: the question is empty") == 3
    assert result.stderr.count("Error: a line of over 64 KiB: ask in at most 1,000 characters") == 1
    # ...and did not end the conversation: the follow-up still knows who "he" is.
    assert "foreign minister" in replies[5]["query"]
    assert "Sybiga urged more pressure" in replies[5]["answer"]


@pytest.mark.parametrize("question, message", [
    ("\U0001f389\U0001f389\U0001f389", "has no words to search for"),
    ("?!... --- ???", "has no words to search for"),
    (" ".join(["what"] * 150), 'only question words like "what"'),
    ("what " * 20_000, "characters long: ask in at most 1,000"),
])
def test_questions_without_words_or_too_long_are_refused(data_dir, question, message):
    result = qa(["ask", question], data_dir)
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_the_engine_cleans_refuses_and_follows_up(seed_assistant):
    assert seed_assistant.ask("Where were the North Korean \udcff soldiers\x00 captured?\x07").answer == KURSK
    for question in ["\U0001f389", "What is it?", "x" * (MAX_QUESTION_CHARS + 1), "\x00\x00"]:
        with pytest.raises(QuestionError):
            seed_assistant.ask(question)
    first = seed_assistant.ask("Who is Ukraine's foreign minister?")
    # Question words alone make a follow-up, searched with the turn before it...
    assert "foreign minister" in seed_assistant.ask("What did he say?", history=[first]).query
    # ...but NUL bytes or emoji never do.
    for question in ["\x00\x00\x00", "\U0001f389?"]:
        with pytest.raises(QuestionError):
            seed_assistant.ask(question, history=[first])


def test_the_app_says_why_a_question_is_refused(seed_assistant, tmp_path):
    from ui import api
    from ui.app import App
    from ui.library import Library

    app = App(seed_assistant, Library(tmp_path, [SEEDS]))
    with pytest.warns(UserWarning, match="has no words to search for"):
        _, messages, turns, _ = app.respond("\U0001f389 ?!", [], [])
    assert messages == [] and turns == []
    with pytest.raises(ValueError, match="has no words to search for"):
        app.ask_json("???")
    status, refused = api.reply(app, {"question": "???"})
    assert status == 400 and refused["question"] == "???" and "has no words to search for" in refused["error"]
    _, messages, turns, _ = app.respond("Where were the North Korean \x1b[31msoldiers captured?", [], [])
    assert turns[0]["question"] == "Where were the North Korean soldiers captured?"
    assert turns[0]["answer"]["answer"] == KURSK


# --------------------------------------------------------------------------- files named on the command line
@pytest.fixture
def special_files(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "loop.txt").symlink_to("loop.txt")
    (tmp_path / "broken.txt").symlink_to("nowhere.txt")
    (tmp_path / "folder.txt").mkdir()
    return tmp_path


@pytest.mark.parametrize("name, message", [
    ("pipe.txt", "is a named pipe (FIFO), not a document file"),
    ("/dev/zero", "is a character device, not a document file"),
    ("loop.txt", "symbolic link loop"),
    ("broken.txt", "broken symbolic link to nowhere.txt"),
])
def test_special_files_are_named_for_what_they_are(data_dir, special_files, name, message):
    path = special_files / name  # an absolute name stays as it is
    result = qa(["ask", "What is here?", "--docs", str(path)], data_dir, timeout=60)  # a FIFO must not block
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {path}: {message}") and result.stderr.count("\n") == 1


def test_reading_a_special_file_directly_never_blocks(special_files):
    code = ("import sys; from qa import read_document\n"
            "for name in sys.argv[1:]:\n"
            "    try: read_document(name)\n"
            "    except ValueError as exc: print(exc)\n")
    names = [str(special_files / "pipe.txt"), "/dev/zero", str(special_files / "folder.txt")]
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, check=True).stdout.splitlines()
    assert [line.split(": ", 1)[1].split(",")[0] for line in out] == [
        "is a named pipe (FIFO)", "is a character device", "is a folder"]


def test_special_files_inside_a_folder_are_passed_over(special_files):
    (special_files / "notes.txt").write_text("The pipe in this folder is not a document.\n")
    assert [d.id for d in load_documents([special_files])] == ["notes.txt"]


def test_a_folder_where_a_file_is_expected_is_named(data_dir, special_files):
    result = qa(["eval", str(special_files / "folder.txt")], data_dir)
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_an_unreadable_file_is_named(data_dir, tmp_path):
    """Tests run as root, who reads any file: the command runs without the capabilities that allow it."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux) to drop the capability to read any file")
    secret = tmp_path / "secret.txt"
    secret.write_text("The safe code is 1234.\n")
    secret.chmod(0)
    drop = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    if subprocess.run([*drop, "cat", str(secret)], capture_output=True).returncode == 0:
        pytest.skip("setpriv could not drop CAP_DAC_OVERRIDE here")
    result = qa(["ask", "What is the code?", "--docs", str(secret)], data_dir, prefix=drop)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {secret}: permission denied; make it readable")


def test_size_limit_names_the_file_its_size_and_the_option(data_dir, tmp_path):
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:
        f.truncate(25 * 1024 * 1024)  # sparse: refused before a byte is read
    result = qa(["ask", "When does the ferry leave?", "--docs", str(huge)], data_dir)
    assert result.returncode == 1
    assert result.stderr == (f"Error: {huge}: 25.0 MB is over the 20 MB limit for one document; "
                             "raise it with --max-file-mb or QA_MAX_FILE_MB\n")
    small = tmp_path / "small.txt"
    small.write_text("The ferry leaves the harbour at seven every morning.\n" * 40)  # 2 KB
    assert "over the 0.001 MB limit" in qa(["index", str(small), "--max-file-mb", "0.001"], data_dir).stderr
    assert "over the 0.001 MB limit" in qa(["index", str(small)], data_dir, env={"QA_MAX_FILE_MB": "0.001"}).stderr
    assert qa(["index", str(small), "--max-file-mb", "-1"], data_dir).returncode == 2
    allowed = qa(["index", str(small), "--max-file-mb", "1", "--json"], data_dir)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["counts"]["documents"] == 1


def test_indexing_progress_shows_counts_on_a_terminal(data_dir, tmp_path):
    doc = tmp_path / "logbook.txt"
    doc.write_text("".join(f"On day {n} the keeper logged {n * 3} ships passing the point.\n" for n in range(150)))
    master, terminal = pty.openpty()
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), "COLUMNS": "100"}
    with subprocess.Popen([*QA, "index", str(doc)], stdout=subprocess.DEVNULL, stderr=terminal, env=env,
                          cwd=ROOT) as proc:
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(300) == 0
    os.close(master)
    text = shown.decode("utf-8", "replace")
    assert "embedding" in text and "64/150" in text and "150/150" in text


def test_the_same_document_twice_is_read_once_and_copies_are_not_quoted_twice(data_dir, tmp_path):
    doc = tmp_path / "ferry.txt"
    doc.write_text("The ferry leaves the harbour at seven every morning.\nTickets are sold on board.\n")
    (tmp_path / "copy").mkdir()
    shutil.copy(doc, tmp_path / "copy" / "ferry.txt")
    (tmp_path / "link.txt").symlink_to(doc)
    names = [str(doc), str(doc), str(tmp_path / "." / "ferry.txt"), str(tmp_path / "link.txt"),
             str(tmp_path / "copy" / "ferry.txt")]
    result = qa(["ask", "--json", "When does the ferry leave?", *[a for n in names for a in ("--docs", n)]], data_dir)
    assert result.returncode == 0, result.stderr
    assert "Indexed 2 document(s)" in result.stderr  # the file and its copy; the rest named the file again
    answer = json.loads(result.stdout)
    texts = [q["text"] for q in answer["quotes"]]
    assert texts[0] == "The ferry leaves the harbour at seven every morning."
    assert len(texts) == len(set(texts))


@pytest.mark.parametrize("name, content", [
    ("headings.txt", "Introduction\n\nChapter One\n\nChapter Two\n"),
    ("headings.md", "# Guide\n\n## Setup\n\n## Usage\n"),
    ("headings.html", "<h1>Guide</h1><h2>Setup</h2><h3>Usage</h3>"),
])
def test_a_document_of_headings_only_is_refused_by_name(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DocumentError, match="has only headings, no sentences to quote"):
        read_document(path)


def test_a_headings_only_document_on_the_command_line(data_dir, tmp_path):
    path = tmp_path / "outline.md"
    path.write_text("# Guide\n\n## Setup\n")
    result = qa(["ask", "How do I set up?", "--docs", str(path)], data_dir)
    assert result.returncode == 1
    assert result.stderr == f"Error: {path}: has only headings, no sentences to quote; add the text under them\n"


@pytest.mark.parametrize("markup", ["<!-- draft: the launch code is 0000", "<![if gte mso 9 the launch code is 0000",
                                    "<![CDATA[ the launch code is 0000",
                                    "<!DOCTYPE the launch code is 0000", "<p the launch code is 0000"])
def test_unfinished_html_markup_is_never_quotable(tmp_path, markup):
    path = tmp_path / "page.html"
    path.write_text(f"<p>The launch is on Friday.</p>{markup}")
    doc = read_document(path)
    assert doc.text == "The launch is on Friday."


# --------------------------------------------------------------------------- output
def test_control_characters_from_documents_never_reach_the_terminal_raw(data_dir, tmp_path):
    doc = tmp_path / "tricky.txt"
    doc.write_text("The vault code is \x1b[8m4711\x1b[0m today.\nNobody\x9b2J saw\x08\x08\x08 it \u202eelbisivni.\n")
    unsafe = ("\x1b", "\x08", "\x9b", "\u202e")
    result = qa(["ask", "What is the vault code?", "--docs", str(doc)], data_dir)
    assert result.returncode == 0, result.stderr
    assert not any(raw in result.stdout for raw in unsafe)
    assert "\u201cThe vault code is \\x1b[8m4711\\x1b[0m today.\u201d" in result.stdout
    assert "\u201cNobody\\x9b2J saw\\x08\\x08\\x08 it \\u202eelbisivni.\u201d" in result.stdout
    as_json = qa(["ask", "--json", "What is the vault code?", "--docs", str(doc)], data_dir)
    assert not any(raw in as_json.stdout for raw in unsafe)
    quote = json.loads(as_json.stdout)["quotes"][0]
    assert quote["text"] == doc.read_text()[quote["start"]:quote["end"]]  # JSON stays exact
    assert "\x1b[8m4711" in quote["text"]


def test_bad_file_names_are_shown_escaped_in_errors(data_dir, tmp_path):
    path = tmp_path / "evil\x1b]0;pwned\x07.txt"
    result = qa(["ask", "Anything?", "--docs", str(path)], data_dir)
    assert result.returncode == 1
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "evil\\x1b]0;pwned\\x07.txt: no such file or folder" in result.stderr


# --------------------------------------------------------------------------- no network
def test_the_tests_cannot_reach_the_network():
    with socket.socket() as s, pytest.raises(NetworkBlocked):
        s.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())  # loopback stays open


def test_ask_answers_without_any_network(data_dir, seed_assistant):
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n (a new network namespace) is not available here")
    result = qa(["ask", "--json", "Where were the North Korean soldiers captured?"], data_dir, prefix=[unshare, "-n"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["answer"] == KURSK


# --------------------------------------------------------------------------- the app's file routes
@pytest.fixture(scope="module")
def app_server(data_dir, seed_assistant):
    """The app, in this process, on a free loopback port."""
    from ui.app import App, launch
    from ui.library import Library

    data, assistant = data_dir, seed_assistant
    (data / "feedback.jsonl").write_text('{"question": "private"}\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = launch(App(assistant, Library(data, [SEEDS])), port, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}", data, assistant
    demo.close()


@pytest.mark.parametrize("route", ["/gradio_api/file=", "/gradio_api/file/"])
def test_the_file_routes_refuse_system_and_data_files(app_server, route):
    import httpx

    url, data, assistant = app_server
    # The route itself works: it serves what was uploaded through the app.
    [uploaded] = httpx.post(url + "/gradio_api/upload", files={"files": ("note.txt", b"an upload")}).json()
    assert httpx.get(url + route + uploaded).text == "an upload"
    for path in ["/etc/passwd", uploaded.rsplit("/", 2)[0] + "/../../etc/passwd", str(data / "feedback.jsonl"),
                 str(assistant.index_dir / "manifest.json"), str(SEED_ARTICLE)]:
        response = httpx.get(url + route + path, follow_redirects=True)
        assert response.status_code == 403 and "File not allowed" in response.text, path
