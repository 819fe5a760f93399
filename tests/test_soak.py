"""A soak of `qa serve` as a team runs it (`make stress`): minutes of mixed traffic, memory and disk
reported over time, then checked.

- 20 API clients ask fixed questions, with and without history, all the time;
- a browser signs in, uploads a document, asks about it, gives a thumbs up and removes it, again
  and again (each upload and removal re-indexes);
- halfway, the server is killed with SIGKILL and started again on the same port and data.

Afterwards: every thumbs up is a whole line of feedback.jsonl, no temporary file is left in the data
directory, the data directory holds what it held at the start (plus the feedback), and the fixed
questions get the answers they got before.  ``QA_SOAK_SECONDS`` sets the length (default 240).
"""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import free_port, qa_serve

pytestmark = pytest.mark.stress

HOST = "127.0.0.2"
PASSWORD = "soak test team password"
AUTH = {"Authorization": f"Bearer {PASSWORD}"}
SOAK_SECONDS = float(os.environ.get("QA_SOAK_SECONDS", 240))
CLIENTS = 20
FIXED = [("Where were the North Korean soldiers captured?", []),
         ("What did he urge?", ["Who is Ukraine's foreign minister?"]),
         ("Which region was the ID card holder from?", []),
         ("How long should sourdough bread be baked?", [])]
TEMPORARY = re.compile(r"^\.incoming-|\.tmp|^\..*\.old$")


def rss_mb(pid: int) -> float | None:
    """The resident memory of process ``pid``; None while it is down (killed, not yet started again)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def disk(data: Path) -> tuple[int, float]:
    files = [p for p in data.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files) / 1048576


def replies(url: str) -> list[tuple[str, str | None]]:
    """Each fixed question's kind and first quote."""
    import httpx

    got = []
    for question, history in FIXED:
        answer = httpx.post(url + "api/ask", json={"question": question, "history": history}, headers=AUTH,
                            timeout=120).json()
        got.append((answer["kind"], answer["quotes"][0]["text"] if answer["quotes"] else None))
    return got


def test_a_team_server_under_mixed_traffic_for_minutes(tmp_path):
    import httpx

    pw_api = pytest.importorskip("playwright.sync_api")
    from ui.screenshot import CHROMIUM, CHROMIUM_FLAGS, VIEWPORT

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make chromium)")
    data = tmp_path / "data"
    data.mkdir()
    env = {"QA_SERVE_PASSWORD": PASSWORD}
    port = free_port(HOST)
    stack = ExitStack()
    server = stack.enter_context(qa_serve(data, host=HOST, port=port, env=env))
    url = server.url
    before = replies(url)
    files_at_start, mb_at_start = disk(data)
    state = {"pid": server.pid, "stop": False}
    asked, statuses, down, lock = [0], {}, [0], threading.Lock()
    samples: list[tuple[float, float | None, int, float, int]] = []
    started = time.monotonic()

    def client(n: int):
        with httpx.Client(headers=AUTH, timeout=120) as http:
            while not state["stop"]:
                question, history = FIXED[n % len(FIXED)]
                try:
                    status = http.post(url + "api/ask", json={"question": question, "history": history}).status_code
                except httpx.TransportError:  # the server is down: it is restarted below
                    with lock:
                        down[0] += 1
                    time.sleep(0.5)
                    continue
                with lock:
                    asked[0] += 1
                    statuses[status] = statuses.get(status, 0) + 1
                time.sleep(0.2)

    def sample():
        while not state["stop"]:
            samples.append((time.monotonic() - started, rss_mb(state["pid"]), *disk(data), asked[0]))
            time.sleep(10)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    threads.append(threading.Thread(target=sample, daemon=True))
    for t in threads:
        t.start()

    thumbs, cycles, restarted = 0, 0, False
    flags = [f + f" , EXCLUDE {HOST}" if f.startswith("--host-resolver-rules") else f for f in CHROMIUM_FLAGS]
    feedback = data / "feedback.jsonl"

    def feedback_lines() -> int:
        return len(feedback.read_text(encoding="utf-8").splitlines()) if feedback.exists() else 0

    with pw_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as folder:
        expect = pw_api.expect
        expect.set_options(timeout=120_000)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        page = browser.new_context(viewport=VIEWPORT, http_credentials={"username": "soak", "password": PASSWORD}
                                   ).new_page()
        page.goto(url)
        while time.monotonic() - started < SOAK_SECONDS:
            name = f"lighthouse-{cycles}.md"
            doc = Path(folder) / name
            doc.write_text(f"# Lighthouse {cycles}\n\nThe lamp of lighthouse {cycles} was first lit in "
                           f"{1800 + cycles} by keeper number {cycles}.\nIt stands on a reef off the coast.\n")
            page.set_input_files("#qa-upload input[type=file]", str(doc))
            expect(page.locator("#qa-docs")).to_contain_text(name)
            bots = page.locator("#qa-chat [data-testid='bot']")
            count = bots.count()
            page.fill("#qa-question textarea", f"When was the lamp of lighthouse {cycles} first lit?")
            page.click("#qa-ask")
            expect(bots).to_have_count(count + 1)
            page.locator("#qa-chat button[aria-label='Like']").last.click()
            thumbs += 1
            page.locator("#qa-remove-choice input").click()
            page.get_by_role("option", name=re.compile(rf"\({re.escape(name)}\)")).click()
            page.click("#qa-remove")
            expect(page.locator("#qa-docs")).not_to_contain_text(name)
            cycles += 1
            if not restarted and time.monotonic() - started > SOAK_SECONDS / 2:
                deadline = time.monotonic() + 60
                while feedback_lines() < thumbs and time.monotonic() < deadline:
                    time.sleep(0.2)  # a thumb clicked but not yet written is not a line lost to the kill
                os.killpg(state["pid"], signal.SIGKILL)
                killed_at = time.monotonic() - started
                server = stack.enter_context(qa_serve(data, host=HOST, port=port, env=env))
                state["pid"], restarted = server.pid, True
                back_at = time.monotonic() - started
                page.goto(url)
        browser.close()
    state["stop"] = True
    for t in threads:
        t.join(180)
    deadline = time.monotonic() + 60
    while feedback_lines() < thumbs and time.monotonic() < deadline:
        time.sleep(0.2)
    after = replies(url)
    samples.append((time.monotonic() - started, rss_mb(state["pid"]), *disk(data), asked[0]))
    stack.close()

    print(f"\nsoak: {SOAK_SECONDS:.0f} s, {CLIENTS} API clients, {asked[0]} questions answered "
          f"({asked[0] / SOAK_SECONDS:.1f}/s), statuses {statuses}, {down[0]} tries while the server was down; "
          f"{cycles} upload/ask/thumbs-up/remove cycles in the browser; SIGKILL at {killed_at:.0f} s, "
          f"answering again at {back_at:.0f} s")
    print(f"{'t (s)':>6} {'server RSS (MB)':>16} {'data files':>11} {'data (MB)':>10} {'answered':>9}")
    for t, rss, files, mb, n in samples:
        print(f"{t:6.0f} {'down' if rss is None else f'{rss:.0f}':>16} {files:11d} {mb:10.2f} {n:9d}")

    records = [json.loads(line) for line in feedback.read_text(encoding="utf-8").splitlines()]
    assert len(records) == thumbs and all(r["verdict"] == "up" for r in records)  # no feedback line lost
    left = [str(p) for p in data.rglob("*") if TEMPORARY.search(p.name)]
    assert left == []  # no temporary file left
    assert set(statuses) == {200}  # every question reached was answered
    assert after == before  # the fixed questions are answered as before
    files, _ = disk(data)
    assert files == files_at_start + 1  # the same indexes and vectors as at the start, plus feedback.jsonl
    assert restarted and cycles >= 4
