"""The browser chat: rendering and storage units, then the running app in headless Chromium.

One `qa serve` per module (a subprocess on a free port, with its own data
directory) and one browser for all the browser tests.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from qa import Answer, Quote, ShortAnswer, read_document
from ui.screenshot import CHROMIUM, CHROMIUM_FLAGS, VIEWPORT
from ui.render import esc, read_as, render_answer, render_documents, render_source, span_id
from ui.library import MAX_UPLOAD_BYTES, Library, UploadRefused, feedback_record, safe_name

from conftest import qa_serve
from ui import api

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
QA = Path(sys.executable).with_name("qa")
WAIT = 60_000  # ms, for every browser wait

EVIL = (
    "# Harbour cats <script>alert('title')</script>\n\n"
    "The lighthouse keeper's cat is called Biscuit <img src=x onerror=alert('img')> and sleeps by the lamp.\n"
    "Visitors may feed Biscuit only with fish on Sundays <script>alert('body')</script>.\n"
)
UPLOADED = (
    "# Skerry harbour log\n\n"
    "The Skerryvore lamp was first lit in 1844 by the engineer Alan Stevenson.\n"
    "The tower is 48 metres tall and stands on a reef twelve miles out at sea.\n"
)


# --------------------------------------------------------------------------- units
def quote(text="Kursk is a region.", doc="a.txt", start=10, score=0.61, position=2, section="Story", short=None):
    short_answer = None
    if short:
        at = start + text.index(short)
        short_answer = ShortAnswer(short, at, at + len(short))
    return Quote(text=text, doc=doc, title="A <b>title</b>", section=section, position=position,
                 start=start, end=start + len(text), score=score, short_answer=short_answer)


def test_esc_neutralises_html_markdown_and_templates():
    out = esc("<script>alert(1)</script> *b* ${x} [l](u) O'Neil & \"q\"")
    assert "<" not in out and ">" not in out and "$" not in out and "*" not in out and "[" not in out
    assert "'" not in out and '"' not in out
    import html
    assert html.unescape(out) == "<script>alert(1)</script> *b* ${x} [l](u) O'Neil & \"q\""


def test_render_answer_cites_and_escapes():
    a = Answer("q", True, (quote(text="<img src=x onerror=alert(1)> Kursk"),), "1 quote(s) from: <i>x</i>")
    out = render_answer(a, turn=3)
    assert 'href="#cite-3-1"' in out and "[1]" in out
    assert "<img" not in out and "&#60;img src=x" in out
    assert "<i>" not in out and "&#60;b&#62;title" in out
    assert "Story, sentence 3" in out and "score 0.61" in out
    assert "qa-best" in out and "\n\n" not in out


def test_short_answer_stands_out_inside_the_best_quote():
    a = Answer("Where?", True, (quote(text="It was found in the Kursk region today.", short="the Kursk region"),), "1 quote")
    out = render_answer(a, turn=1)
    assert '<strong class="qa-short">the Kursk region</strong>' in out
    assert "It was found in" in out


def test_render_answer_abstains_plainly():
    a = Answer("q", False, (quote(score=0.05),), "The documents don't say. The closest passages are listed.")
    out = render_answer(a, turn=0)
    assert "Not in the documents" in out and "Closest passages" in out and "qa-best" not in out


def test_render_source_marks_spans_with_ids_and_keeps_text():
    text = "Intro <b>. First sentence here. Second one & more."
    doc = SimpleNamespace(id="d<1>.txt", title="T", text=text, blocks=(), date=None)
    s1 = (text.index("First"), text.index("here.") + 5)
    s2 = (text.index("Second"), len(text))
    out = render_source(doc, [s2, s1, (0, 10_000)], active=s2)
    assert f'<mark id="{span_id(*s1)}" class="qa-span">First sentence here.</mark>' in out
    assert f'id="{span_id(*s2)}" class="qa-span active"' in out
    assert "<b>" not in out and "d&#60;1&#62;.txt" in out
    import html
    body = re.sub(r"<[^>]+>", "", out.split('class="qa-source-text">', 1)[1])
    assert html.unescape(body) == text


def test_the_source_view_heads_with_title_and_date_and_shows_headings():
    import html

    doc = read_document(SEEDS / "000_70eb0d637448346e.txt")
    kursk = (85, 177)
    out = render_source(doc, [kursk], active=kursk)
    head, body = out.split('class="qa-source-text">', 1)
    assert "Ukraine captures 2 North Korean soldiers in Russia" in head and "2025-01-12" in head
    assert "date 2025" not in body and "Ukraine captures 2" not in body  # the title line is the header now
    assert body.startswith('<span class="qa-heading">What&#39;s the story</span>')
    assert f'<mark id="{span_id(*kursk)}" class="qa-span active">' in body
    marked = html.unescape(re.search(r'class="qa-span active">(.*?)</mark>', body).group(1))
    assert marked == doc.text[kursk[0]:kursk[1]]


def test_render_documents_escapes():
    out = render_documents([{"title": "<script>x</script>", "id": "a.txt", "origin": "upload", "bytes": 2048,
                             "chars": 10, "sentences": 2}], "2025-01-01T00:00:00Z")
    assert "<script>" not in out and "2.0 KB" in out and "2025-01-01" in out


def test_documents_tab_says_how_each_file_was_read_and_names_the_files_skipped():
    out = render_documents([{"title": "Notes", "id": "a.txt", "origin": "docs", "bytes": 20, "chars": 10,
                             "sentences": 1, "read_as": "cp1252"}], "2025-01-01",
                           ["/d/bad.txt: not text in any encoding recognised <b>"])
    assert "<th>Read as</th>" in out and "<td>cp1252</td>" in out
    assert "Not indexed" in out and "/d/bad.txt: not text in any encoding recognised &#60;b&#62;" in out


def test_a_pdf_quote_cites_its_page_and_the_source_view_shows_that_page(tmp_path):
    from conftest import make_pdf

    path = tmp_path / "manual.pdf"
    path.write_bytes(make_pdf([["Unpack the kettle first."], ["Descale the kettle every month."]]))
    doc = read_document(path)
    start = doc.text.index("Descale")
    end = start + len("Descale the kettle every month.")
    q = Quote(text=doc.text[start:end], doc=doc.id, title=doc.title, section=None, position=1, start=start, end=end,
              score=0.5, page=doc.page_at(start))
    assert q.page == 2 and "manual, p. 2, sentence 2" in render_answer(Answer("q", True, (q,), "m"), turn=0)
    out = render_source(doc, [(start, end)], active=(start, end), page=2)
    assert "p. 2 of 2" in out and "Unpack" not in out
    assert f'<mark id="{span_id(start, end)}" class="qa-span active">Descale the kettle every month.</mark>' in out
    assert read_as(doc) == "PDF, 2 pages"


def test_safe_name_never_leaves_the_folder():
    assert safe_name("../../etc/passwd.txt") == "passwd.txt"
    assert safe_name("C:\\Users\\me\\My Notes (1).MD") == "My_Notes_1.md"
    assert safe_name("...") == "document"
    assert "/" not in safe_name("a/b/../../c.html")


def test_store_checks_uploads_on_the_server(tmp_path):
    store = Library(tmp_path / "data", [SEEDS])
    bad = tmp_path / "x.exe"
    bad.write_bytes(b"MZ")
    with pytest.raises(UploadRefused, match="not accepted"):
        store.add_upload(bad, "x.exe")
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(UploadRefused, match="limit"):
        store.add_upload(big, "big.txt")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(random.Random(1).randbytes(2000))
    with pytest.raises(UploadRefused, match="not text in any encoding"):
        store.add_upload(binary, "bin.txt")
    good = tmp_path / "up.txt"
    good.write_text(UPLOADED, encoding="utf-8")
    dest = store.add_upload(good, "../../../evil/../notes.txt")
    assert dest.parent == store.uploads and dest.name == "notes.txt"
    with pytest.raises(UploadRefused, match="already"):
        store.add_upload(good, "notes.txt")
    assert dest.resolve() in store.files()
    assert not list(store.uploads.glob(".incoming-*"))


def test_store_remove_excludes_base_documents_but_keeps_them(tmp_path):
    store = Library(tmp_path / "data", [SEEDS])
    seed = store.files()[0]
    with pytest.raises(UploadRefused, match="last document"):
        store.remove(seed)
    up = tmp_path / "up.md"
    up.write_text(UPLOADED, encoding="utf-8")
    store.add_upload(up, "up.md")
    store.remove(seed)
    assert seed.exists() and seed not in store.files()
    assert store.restore() == 1 and seed in store.files()


def test_feedback_record_is_a_test_case():
    turn = {"question": "Where?", "history": ["Who?"], "docs": ["seeds/a.txt"],
            "answer": {"answered": True, "kind": "answer", "quotes": [{"text": "In Kursk.", "doc": "a.txt"}]}}
    up = feedback_record(turn, "up")
    assert up["answers"] == ["In Kursk."] and up["verdict"] == "up" and up["history"] == ["Who?"]
    down = feedback_record(turn, "down")
    assert "answers" not in down and down["rejected"] == ["In Kursk."]
    abstained = {**turn, "answer": {"answered": False, "kind": "none", "quotes": [{"text": "close", "doc": "a.txt"}]}}
    assert feedback_record(abstained, "up")["answers"] == []
    # A thumbs-up on a possible answer confirms its first passage.
    possible = {**turn, "answer": {"answered": False, "kind": "possible", "quotes": [{"text": "In Kursk.", "doc": "a.txt"}]}}
    assert feedback_record(possible, "up")["answers"] == ["In Kursk."]


def test_serve_command_is_cheap_to_import():
    code = "import sys, ui.command; print('gradio' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- the running app
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with qa_serve(tmp_path_factory.mktemp("ui-data")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server):
    pw_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make chromium)")
    with pw_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                    args=CHROMIUM_FLAGS, viewport=VIEWPORT)
        page = ctx.new_page()
        page.dialogs = []
        page.requests = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: page.requests.append(r.url))
        page.goto(server.url)
        page.wait_for_selector("#qa-question textarea", timeout=WAIT)
        yield page
        ctx.close()


def expect():
    from playwright.sync_api import expect as _expect

    _expect.set_options(timeout=WAIT)
    return _expect


def ask(page, question: str):
    """Ask and wait for the answer to this question; return the last bot message."""
    bots = page.locator("#qa-chat [data-testid='bot']")
    before = bots.count()
    page.fill("#qa-question textarea", question)
    page.click("#qa-ask")
    expect()(bots).to_have_count(before + 1)
    return bots.nth(before)


@pytest.mark.browser
def test_page_loads_offline_and_lists_documents(browser, server):
    expect()(browser.locator("#qa-docs")).to_contain_text("Ukraine captures 2 North Korean soldiers")
    expect()(browser.locator("#qa-examples button").first).to_contain_text("?")
    outside = [u for u in browser.requests if not u.startswith(server.url[:-1])]
    assert outside == []


@pytest.mark.browser
def test_seed_question_quote_citation_and_source(browser):
    msg = ask(browser, "Which region was the ID card holder from?")
    best = msg.locator("blockquote.qa-best")
    expect()(best).to_contain_text("The ID card was reportedly issued to a 26-year-old man from Russia's Tyva region.")
    expect()(best).to_contain_text("[1]")
    expect()(best).to_contain_text("Identity disclosure, sentence")
    expect()(best).to_contain_text("score")
    # The source view opens on the cited document with every quoted span marked.
    source = browser.locator("#qa-source")
    expect()(source.locator("mark.active")).to_contain_text("Tyva region")
    assert source.locator("mark").count() >= 2
    # Choosing citation [2] marks its passage and scrolls it into view.
    second = msg.locator("blockquote.qa-quote").nth(1)
    second_text = second.locator("p").first.inner_text().strip("\u201c\u201d")
    second.locator("a.qa-cite").click()
    active = source.locator("mark.active")
    expect()(active).to_have_text(second_text)
    expect()(active).to_be_in_viewport()
    assert re.fullmatch(r"q-\d+-\d+", active.get_attribute("id"))


@pytest.mark.browser
def test_follow_up_uses_the_conversation(browser):
    browser.click("#qa-clear")
    expect()(browser.locator("#qa-chat [data-testid='bot']")).to_have_count(0)
    ask(browser, "Who is Ukraine's foreign minister?")
    msg = ask(browser, "What did he urge?")
    expect()(msg.locator("blockquote.qa-best")).to_contain_text("Sybiga urged more pressure")


@pytest.mark.browser
def test_off_topic_question_is_not_in_the_documents(browser):
    msg = ask(browser, "How long should sourdough bread be baked?")
    expect()(msg).to_contain_text("Not in the documents")
    expect()(msg).to_contain_text("Closest passages")
    assert msg.locator("blockquote.qa-best").count() == 0


@pytest.mark.browser
def test_thumbs_up_is_saved_as_a_test_case(browser, server):
    msg = ask(browser, "Which region was the ID card holder from?")
    browser.locator("#qa-chat button[aria-label='Like']").last.click()
    path = server.data / "feedback.jsonl"
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    record = json.loads(path.read_text().splitlines()[-1])
    assert record["question"] == "Which region was the ID card holder from?"
    assert record["verdict"] == "up" and "Tyva" in record["answers"][0]
    assert record["docs"] and record["quote"]["start"] < record["quote"]["end"]
    assert msg.is_visible()


@pytest.mark.browser
def test_api_returns_the_json_of_qa_ask(server):
    from gradio_client import Client

    question = "Which region was the ID card holder from?"
    got = Client(server.url, verbose=False).predict(question, None, api_name="/ask")
    cli = subprocess.run([str(QA), "ask", question, "--json", "--data-dir", str(server.data)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    want = json.loads(cli.stdout)
    assert set(got) == set(want)
    got.pop("latency_ms"), want.pop("latency_ms")
    assert got == want
    assert "Tyva" in got["answer"]
    follow = Client(server.url, verbose=False).predict(
        "What did he urge?", ["Who is Ukraine's foreign minister?"], api_name="/ask")
    assert follow["answered"] and "Sybiga" in follow["answer"]
    assert "foreign minister" in follow["query"]


@pytest.mark.browser
def test_upload_reindex_and_ask_about_the_new_document(browser, tmp_path):
    path = tmp_path / "skerry log.md"
    path.write_text(UPLOADED, encoding="utf-8")
    browser.set_input_files("#qa-upload input[type=file]", str(path))
    expect()(browser.locator("#qa-status")).to_contain_text("Indexed 2 document(s)")
    expect()(browser.locator("#qa-docs")).to_contain_text("skerry_log.md")
    msg = ask(browser, "When was the Skerryvore lamp first lit?")
    expect()(msg.locator("blockquote.qa-best")).to_contain_text("first lit in 1844")
    expect()(browser.locator("#qa-source mark.active")).to_contain_text("first lit in 1844")


@pytest.mark.browser
def test_script_injection_document_renders_as_text(browser, tmp_path, server):
    path = tmp_path / "evil.md"
    path.write_text(EVIL, encoding="utf-8")
    browser.set_input_files("#qa-upload input[type=file]", str(path))
    expect()(browser.locator("#qa-docs")).to_contain_text("<script>alert('title')</script>")
    msg = ask(browser, "What is the lighthouse keeper's cat called?")
    expect()(msg).to_contain_text("<img src=x onerror=alert('img')>")
    expect()(browser.locator("#qa-source")).to_contain_text("<script>alert('body')</script>")
    assert browser.locator("#qa-chat img[src='x'], #qa-source img, #qa-docs script, #qa-source script").count() == 0
    browser.wait_for_timeout(500)  # an onerror handler would have fired by now
    assert browser.dialogs == []
    assert (server.data / "uploads" / "evil.md").exists()


@pytest.mark.browser
def test_remove_a_document_and_reindex(browser, server):
    choice = browser.locator("#qa-remove-choice input")
    choice.click()
    browser.get_by_role("option", name=re.compile(r"\(evil\.md\)")).click()
    browser.click("#qa-remove")
    expect()(browser.locator("#qa-status")).to_contain_text("Indexed 2 document(s)")
    expect()(browser.locator("#qa-docs")).not_to_contain_text("evil.md")
    assert not (server.data / "uploads" / "evil.md").exists()


@pytest.mark.browser
def test_pdf_quotes_cite_their_page_and_windows_text_shows_its_encoding(browser, server, tmp_path):
    from conftest import make_pdf

    pdf, windows = tmp_path / "kettle.pdf", tmp_path / "menu.txt"
    pdf.write_bytes(make_pdf([["Unpack the kettle and remove the tape."],
                              ["Descale the kettle every month with white vinegar."]]))
    windows.write_bytes("The caf\u00e9 serves cr\u00eapes \u2013 every Sunday morning.\r\n".encode("cp1252"))
    mail = tmp_path / "hours.eml"
    mail.write_text("Subject: Cafe hours\nFrom: Ana <ana@example.org>\n\nThe cafe closes at six in winter.\n",
                    encoding="utf-8")
    browser.set_input_files("#qa-upload input[type=file]", [str(pdf), str(windows), str(mail)])
    docs = browser.locator("#qa-docs")
    expect()(docs).to_contain_text("PDF, 2 pages")
    expect()(docs).to_contain_text("cp1252")
    expect()(docs).to_contain_text("Cafe hours")
    msg = ask(browser, "How often should the kettle be descaled?")
    best = msg.locator("blockquote.qa-best")
    expect()(best).to_contain_text("Descale the kettle every month")
    expect()(best).to_contain_text("kettle, p. 2")
    source = browser.locator("#qa-source")
    expect()(source).to_contain_text("p. 2 of 2")
    expect()(source.locator("mark.active")).to_contain_text("Descale the kettle every month")
    expect()(source).not_to_contain_text("Unpack the kettle")  # the cited page alone
    msg = ask(browser, "When does the caf\u00e9 serve cr\u00eapes?")
    # Quoted as decoded: the Windows dash and accents, not their bytes.
    expect()(msg.locator("blockquote.qa-quote").first).to_contain_text("The caf\u00e9 serves cr\u00eapes \u2013 every Sunday")


@pytest.mark.browser
def test_refused_uploads_say_why(browser, server, tmp_path):
    exe = tmp_path / "notes.exe"
    exe.write_bytes(b"MZ not a document")
    browser.set_input_files("#qa-upload input[type=file]", str(exe))
    expect()(browser.locator(".toast-body").last).to_contain_text("Invalid file type")
    # Past the browser's check, the server reads the file before storing it.
    bad = tmp_path / "bad.txt"
    bad.write_bytes(random.Random(1).randbytes(2000))
    browser.set_input_files("#qa-upload input[type=file]", str(bad))
    expect()(browser.locator("#qa-status")).to_contain_text("Refused: bad.txt: not text in any encoding")
    uploads = server.data / "uploads"
    assert not (uploads / "notes.exe").exists() and not (uploads / "bad.txt").exists()
    assert not list(uploads.glob(".incoming-*"))


def test_the_plain_json_api_answers_and_refuses_with_the_reason(server):
    import urllib.error
    import urllib.request

    from gradio_client import Client

    def post(body):
        request = urllib.request.Request(f"{server.url}api/ask", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, answer = post({"question": "What did he urge?", "history": ["Who is Ukraine's foreign minister?"]})
    assert status == 200 and "Sybiga" in answer["answer"] and answer["kind"] in ("answer", "possible")
    status, kettle = post({"question": "How often should the kettle be descaled?"})
    if any(q["doc"] == "kettle.pdf" for q in kettle["quotes"]):  # uploaded by the browser test before this one
        assert [q["page"] for q in kettle["quotes"] if q["doc"] == "kettle.pdf"][0] == 2
    assert all(q["page"] is None for q in answer["quotes"])
    status, refused = post({"question": "???"})
    assert status == 400 and set(refused) == {"question", "error"} and refused["question"] == "???"
    assert "has no words to search for" in refused["error"]
    assert post({"history": []}) == (400, {"question": None, "error": api.USAGE})
    with pytest.raises(Exception, match="has no words to search for"):
        Client(server.url, verbose=False).predict("???", None, api_name="/ask")


def test_twenty_users_at_once_each_get_their_own_answers(server):
    """Concurrent conversations through the API: no failure, and no user sees another's follow-up context."""
    import urllib.request

    subjects = [("Who is Ukraine's foreign minister?", "What did he urge?", "Sybiga"),
                ("Which agency is interrogating the prisoners?", "What did it release?", "SBU")]
    results, failures, lock = [], [], threading.Lock()

    def user(n: int):
        first, follow, subject = subjects[n % 2]
        for _ in range(3):
            body = json.dumps({"question": follow, "history": [first]}).encode()
            request = urllib.request.Request(f"{server.url}api/ask", body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    answer = json.loads(response.read())
                with lock:
                    results.append((first, follow, answer))
            except Exception as exc:  # counted: the assertion below names it
                with lock:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=user, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failures == [] and len(results) == 60
    for first, follow, answer in results:
        assert answer["question"] == follow and answer["query"] == f"{first} {follow}"


def test_two_hundred_thumbs_at_once_write_two_hundred_whole_lines(tmp_path):
    library = Library(tmp_path / "data", [SEEDS])
    turn = {"question": "Where?", "history": [], "docs": ["a.txt"],
            "answer": {"answered": True, "kind": "answer", "quotes": [{"text": "In Kursk. " * 50, "doc": "a.txt"}]}}
    threads = [threading.Thread(target=library.add_feedback, args=(feedback_record(turn, ("up", "down")[n % 2]),))
               for n in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [json.loads(line) for line in library.feedback_file.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 200 and all(r["question"] == "Where?" for r in records)
    assert sorted(r["verdict"] for r in records) == ["down"] * 100 + ["up"] * 100


def test_a_copy_left_while_an_upload_was_checked_is_not_a_document(tmp_path):
    """A kill while an upload is checked leaves its hidden staging copy: never read as a document."""
    library = Library(tmp_path / "data", [SEEDS])
    library.uploads.mkdir(parents=True)
    (library.uploads / ".incoming-0123abcd.txt").write_text("Half of an upload that was being checked.\n")
    assert library.uploaded_files() == []
