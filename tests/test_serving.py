"""`qa serve` for a team: request bodies capped before they are read, sign-in on any address but
127.0.0.1.  One real server on a second loopback address (127.0.0.2) with a password, as a team
would run it on its network address.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, qa_serve
from ui.limits import MAX_UPLOAD_REQUEST_BYTES

HOST = "127.0.0.2"
PASSWORD = "a shared team password"
BEARER = {"Authorization": f"Bearer {PASSWORD}"}
KURSK = "Ukraine has claimed that it has captured two North Korean soldiers in Russia's Kursk region."
QA = [sys.executable, "-m", "qa"]


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("team-data")
    secret = data.parent / "password.txt"
    secret.write_text(PASSWORD + "\n")
    with qa_serve(data, "--password-file", str(secret), host=HOST) as running:
        yield running


def post(url: str, body, headers=None, timeout=120) -> tuple[int, dict]:
    import httpx

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(url, content=data, headers={"Content-Type": "application/json", **(headers or {})},
                          timeout=timeout)
    return response.status_code, response.json()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def stream_body(url: str, size: int, chunked: bool, headers: dict) -> tuple[int | None, int, dict | None]:
    """POST ``size`` bytes, sent as fast as the server takes them, until it answers:
    (status, bytes sent, the reply's JSON when it came whole)."""
    parts = urlsplit(url)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in headers.items()),
            "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"]
    block = b"a" * 65536
    piece = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            while sent < size:
                readable, writable, _ = select.select([sock], [sock], [], 30)
                if readable:
                    break  # the server answered before the body was sent
                if writable:
                    sent += sock.send(piece)
            reply = b""
            while chunk := sock.recv(65536):  # the reply, until the server closes the connection
                reply += chunk
        except (BrokenPipeError, ConnectionResetError):
            reply = b""
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
    _, _, body = reply.partition(b"\r\n\r\n")
    return status, sent, json.loads(body) if body else None


# --------------------------------------------------------------------------- bounded requests
def test_a_body_over_the_cap_is_refused_with_413_before_it_is_read(team_server):
    url = team_server.url + "api/ask"
    # Declared too large: refused on the headers alone, a 20 MB question included.
    status, sent, refused = stream_body(url, 20 * 1024 * 1024, False, BEARER)
    assert status == 413 and sent < 4 * 1024 * 1024
    assert refused["question"] is None and set(refused) == {"question", "error"}
    assert "over 1 MB" in refused["error"] and "1,000 characters" in refused["error"]
    for chunked in (False, True):
        started = time.monotonic()
        status, sent, _ = stream_body(url, 200 * 1024 * 1024, chunked, BEARER)
        assert status == 413, chunked
        assert sent < 32 * 1024 * 1024 and time.monotonic() - started < 10, (chunked, sent)
    # Under the cap, a body is read and answered as before.
    status, answer = post(url, {"question": "Where were the North Korean soldiers captured?",
                                "history": ["x" * 900] * 100}, BEARER)  # ~90 KB
    assert status == 200 and answer["quotes"]
    # Uploads have their own cap: ten files of 5 MB.
    status, _, _ = stream_body(team_server.url + "gradio_api/upload", MAX_UPLOAD_REQUEST_BYTES + 1, False, BEARER)
    assert status == 413


def test_twenty_oversized_bodies_at_once_leave_memory_bounded_and_the_server_answers(team_server):
    url = team_server.url + "api/ask"
    question = {"question": "Where were the North Korean soldiers captured?"}
    assert post(url, question, BEARER)[1]["answer"] == KURSK  # warm
    idle = rss_mb(team_server.pid)
    peak, done = [idle], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(rss_mb(team_server.pid))
            time.sleep(0.05)

    results: list = []
    clients = [threading.Thread(target=lambda n=n: results.append(
        stream_body(url, 200 * 1024 * 1024, chunked=n % 2 == 1, headers=BEARER))) for n in range(20)]
    sampler = threading.Thread(target=sample)
    sampler.start()
    for t in clients:
        t.start()
    for t in clients:
        t.join(120)
    done.set()
    sampler.join()
    assert sorted(status for status, _, _ in results) == [413] * 20
    assert sum(sent for _, sent, _ in results) < 20 * 32 * 1024 * 1024
    print(f"\n20 bodies of 200 MB at once: idle {idle:.0f} MB, peak {max(peak):.0f} MB")
    assert max(peak) - idle < 100, f"idle {idle:.0f} MB, peak {max(peak):.0f} MB"
    assert post(url, question, BEARER)[1]["answer"] == KURSK


# --------------------------------------------------------------------------- sign-in
def test_serving_beyond_127_0_0_1_refuses_to_start_without_a_password(tmp_path):
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path)}
    env.pop("QA_SERVE_PASSWORD", None)
    result = subprocess.run([*QA, "serve", "--host", HOST, "--port", "9"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "--host 127.0.0.2 may be reached from other machines: set a password in $QA_SERVE_PASSWORD" \
           in result.stderr
    short = subprocess.run([*QA, "serve", "--host", HOST, "--port", "9"], capture_output=True, text=True,
                           env={**env, "QA_SERVE_PASSWORD": "secret"}, cwd=ROOT, timeout=60)
    assert short.returncode == 1
    assert short.stderr == "Error: the password in $QA_SERVE_PASSWORD has 6 characters: use at least 12\n"
    missing = subprocess.run([*QA, "serve", "--host", HOST, "--password-file", str(tmp_path / "none.txt")],
                             capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert missing.returncode == 1 and "none.txt: cannot read the password file" in missing.stderr
    assert "--password" not in subprocess.run([*QA, "serve", "--help"], capture_output=True, text=True,
                                              cwd=ROOT).stdout.replace("--password-file", "")


# Gradio guards some of its routes when given auth= and leaves others open; sign-in guards them all.
ROUTES = [("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/theme.css"),
          ("GET", "/favicon.ico"), ("GET", "/manifest.json"), ("GET", "/gradio_api/heartbeat/x"),
          ("GET", "/gradio_api/file=/etc/passwd"), ("GET", "/assets/index.js"), ("GET", "/gradio_api/user"),
          ("POST", "/api/ask"), ("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/upload"),
          ("POST", "/gradio_api/call/ask"), ("POST", "/gradio_api/cancel"), ("POST", "/gradio_api/reset"),
          ("POST", "/gradio_api/stream/x"), ("POST", "/gradio_api/vibe-edit")]


def test_every_page_and_api_route_asks_for_the_password(team_server):
    import httpx

    url = team_server.url.rstrip("/")
    wrong = {"Authorization": "Basic " + base64.b64encode(b"me:not the password").decode()}
    for method, path in ROUTES:
        for headers in ({}, wrong, {"Authorization": "Bearer nope"}):
            response = httpx.request(method, url + path, headers=headers, content=b'{"question": "x"}')
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"].startswith("sign in:")
            assert response.headers["www-authenticate"].startswith("Basic")
    # An unauthenticated body is refused before it is read, however large.
    status, sent, _ = stream_body(url + "/api/ask", 200 * 1024 * 1024, True, {})
    assert status == 401 and sent < 32 * 1024 * 1024
    # The password never stands on the command line, where anyone on the machine could read it.
    assert PASSWORD not in Path(f"/proc/{team_server.pid}/cmdline").read_text()


def test_with_the_password_the_page_the_api_and_gradios_client_answer(team_server):
    import httpx
    from gradio_client import Client

    basic = {"Authorization": "Basic " + base64.b64encode(f"anyone:{PASSWORD}".encode()).decode()}
    for headers in (basic, BEARER):
        assert httpx.get(team_server.url, headers=headers).status_code == 200
        status, answer = post(team_server.url + "api/ask",
                              {"question": "Where were the North Korean soldiers captured?"}, headers)
        assert status == 200 and answer["answer"] == KURSK
    client = Client(team_server.url, headers=BEARER, verbose=False)
    assert client.predict("Where were the North Korean soldiers captured?", None, api_name="/ask")["answer"] == KURSK


@pytest.mark.browser
def test_a_browser_signs_in_and_asks(team_server):
    pw_api = pytest.importorskip("playwright.sync_api")
    from ui.screenshot import CHROMIUM, CHROMIUM_FLAGS, VIEWPORT

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make chromium)")
    with pw_api.sync_playwright() as pw:
        # The flags send every host name nowhere but 127.0.0.1: this server's address is let through too.
        flags = [f + f" , EXCLUDE {HOST}" if f.startswith("--host-resolver-rules") else f for f in CHROMIUM_FLAGS]
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        try:
            with pytest.raises(pw_api.Error, match="AUTH"):  # a browser without the password gets nothing
                browser.new_page().goto(team_server.url)
            page = browser.new_context(viewport=VIEWPORT,
                                       http_credentials={"username": "colleague", "password": PASSWORD}).new_page()
            page.goto(team_server.url)
            page.fill("#qa-question textarea", "Where were the North Korean soldiers captured?")
            page.click("#qa-ask")
            pw_api.expect(page.locator("#qa-chat blockquote.qa-best")).to_contain_text("Kursk region",
                                                                                        timeout=60_000)
        finally:
            browser.close()
