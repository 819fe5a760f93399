"""The Milvus store on a real Milvus server process (2.3.5), started here on loopback and stopped here.

The server runs in a network namespace of its own (``tests/milvus_server.py``
says why); the `qa` processes that use it join it.  Milvus 2.3 has no sparse
vectors, so these processes keep their terms beside the server
(``qa.store.milvus_servers``): the term calls are checked against a brute force too.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys

import pytest

from qa.store.milvus_servers import terms_on_server
from qa.store import StoreUnavailableError

from conftest import ROOT, SEED_ARTICLE, SEEDS

pytestmark = pytest.mark.milvus

HELPER = ROOT / "tests" / "milvus_server.py"
URI = "milvus:http://127.0.0.1:19530"
STARTUP_S = 180  # about 9 s on a quiet machine; generous for a loaded one
REPLY_S = 300  # one command of a client: loading the model and embedding the seed at most


def _line(stream, process, seconds: float, what: str) -> str:
    """The next line of ``stream``, or a failure naming ``what`` after ``seconds``."""
    ready, _, _ = select.select([stream], [], [], seconds)
    if not ready:
        pytest.fail(f"{what}: no reply in {seconds} s")
    line = stream.readline()
    if not line:
        pytest.fail(f"{what}: the process ended (exit {process.wait()})")
    return line


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("a network namespace for the server needs root, unshare and nsenter")
    base = tmp_path_factory.mktemp("milvus-server")
    process = subprocess.Popen(["unshare", "--net", sys.executable, str(HELPER), "serve", str(base)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert _line(process.stdout, process, STARTUP_S, "starting Milvus 2.3.5").split() == ["listening", "19530"]
        yield process.pid
    finally:
        process.stdin.close()  # the helper stops the server at EOF
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Client:
    """A `qa` process in the server's network namespace, driven a command at a time."""

    def __init__(self, server: int, data_dir):
        self.process = subprocess.Popen(
            ["nsenter", f"--net=/proc/{server}/ns/net", "--", sys.executable, str(HELPER), "client"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "QA_DATA_DIR": str(data_dir)})

    def __call__(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        reply = json.loads(_line(self.process.stdout, self.process, REPLY_S, f"qa client, {command}"))
        assert "error" not in reply, reply.get("traceback")
        return reply

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def seed_questions() -> list[str]:
    return [json.loads(line)["question"] for line in (SEEDS / "questions.jsonl").read_text().splitlines()]


def test_hnsw_and_terms_beside_the_server_match_brute_force(server, tmp_path):
    folder = tmp_path / "seed"
    folder.mkdir()
    shutil.copy(SEED_ARTICLE, folder)
    client = Client(server, tmp_path / "data")
    try:
        loaded = client(load=[str(folder)], store=URI)
        assert loaded["built"] and not loaded["terms_on_server"]
        assert client(brute=seed_questions())["checked"] == len(seed_questions())
    finally:
        client.close()


def test_two_processes_on_one_server_see_each_others_documents_after_a_sync(server, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED_ARTICLE, folder / "seed.txt")
    (folder / "bees.txt").write_text("Bees make honey in the spring.\n\nThey sleep through the winter.\n",
                                     encoding="utf-8")
    comet = "How often does Halley's Comet return?"
    reader = Client(server, tmp_path / "reader")
    try:
        assert reader(load=[str(folder)], store=URI)["embedded"] > 0
        assert all(q[0] != "comet.txt" for q in reader(ask=comet)["quotes"])

        # Another process adds a document and rewrites one, shifting its sentences' offsets.
        (folder / "comet.txt").write_text("Halley's Comet returns every 76 years.\n", encoding="utf-8")
        (folder / "bees.txt").write_text("In the hive, bees make honey in the spring.\n\nThey sleep through the "
                                         "winter.\n", encoding="utf-8")
        env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "writer")}
        written = subprocess.run(["nsenter", f"--net=/proc/{server}/ns/net", "--", sys.executable, "-m", "qa",
                                  "index", "--store", URI, "--json", str(folder)],
                                 capture_output=True, text=True, env=env, cwd=ROOT, timeout=REPLY_S)
        assert written.returncode == 0, written.stderr
        assert "embedded 3 sentence(s)" in written.stderr  # the comet and the new version of bees.txt

        # Until it syncs, the reader answers from its own versions: never the comet, never the new
        # offsets of bees.txt (the client checks every quote against the sentences it loaded).
        assert all(q[0] != "comet.txt" for q in reader(ask=comet)["quotes"])
        reader(ask="When do bees make honey?")

        synced = reader(load=[str(folder)], store=URI)
        assert synced["embedded"] == 0  # the other process embedded them
        first = reader(ask=comet)["quotes"][0]
        assert first == ["comet.txt", 0, 38, "Halley's Comet returns every 76 years."]
        assert reader(ask="When do bees make honey?")["quotes"][0][:3] == ["bees.txt", 0, 43]
    finally:
        reader.close()


@pytest.mark.parametrize("version", ["v2.2.16", "2.1.0"])
def test_a_server_older_than_2_3_is_refused_in_one_line(version):
    with pytest.raises(StoreUnavailableError) as refused:
        terms_on_server(version, "http://milvus:19530")
    assert str(refused.value).count("\n") == 0 and "Milvus 2.3 or later" in str(refused.value)
    assert version in str(refused.value) and "http://milvus:19530" in str(refused.value)


@pytest.mark.parametrize("version, holds", [("v2.3.5-lite", False), ("v2.4.0", True), ("v2.6.4", True),
                                            ("Zilliz Cloud", True)])
def test_sparse_vectors_from_milvus_2_4(version, holds):
    assert terms_on_server(version, "http://milvus:19530") is holds
