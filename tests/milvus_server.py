"""A real Milvus server for the tests, and a `qa` process that talks to it.

    unshare --net python tests/milvus_server.py serve DIR   # prints "listening 19530"; stops at EOF or SIGTERM
    nsenter --net=/proc/PID/ns/net python tests/milvus_server.py client

The server is Milvus 2.3.5 standalone (PyPI ``milvus``: the Go and C++ binary
with etcd embedded), the last Milvus server published as a Python package.
Milvus 2.3 listens on every interface whatever its configuration says (its
``ip`` settings only choose the address it advertises), so it runs in a
network namespace of its own, whose only interface is loopback: nothing off
this machine can reach it, and two test runs on one machine do not fight over
port 19530.  The processes that talk to it join that namespace.

``client`` is a `qa` process that stays up between questions: it reads one
JSON command a line on stdin and answers one JSON line on stdout.
``{"load": [paths], "store": URI}`` loads an Assistant (a sync);
``{"ask": question}`` answers and checks that every quote is one of the
loaded sentences, at that version's offsets; ``{"brute": true}`` checks the
store's dense and term calls against a brute force over the loaded sentences.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import traceback
from pathlib import Path

COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode", "dataCoord", "dataNode")


def serve(base: str) -> None:
    from milvus import MilvusServer

    # A new network namespace starts with its loopback down.
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = MilvusServer()
    server.set_base_dir(base)
    for component in COMPONENTS:
        server.config.set(f"{component}.ip", "127.0.0.1")
    # Stopped by EOF on stdin or by SIGTERM: either way the server goes down with this process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()  # returns once its health check answers
        print(f"listening {server.listen_port}", flush=True)
        sys.stdin.read()
    finally:
        server.stop()


def client() -> None:
    import numpy as np

    from qa import Assistant
    from qa.retrieval import HybridRetriever
    from qa.terms import tokenize

    assistant = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if "load" in command:
                assistant = Assistant(command["load"], store=command["store"]).load()
                reply = {"built": assistant.built, "embedded": assistant.embedded,
                         "terms_on_server": assistant.index.terms_on_server}
            elif "ask" in command:
                answer = assistant.ask(command["ask"])
                sentences = {(s.doc_id, s.start, s.end, s.text) for s in assistant.segments}
                quotes = [(q.doc, q.start, q.end, q.text) for q in answer.quotes]
                assert all(q in sentences for q in quotes), f"a quote is not a loaded sentence: {quotes}"
                reply = {"kind": answer.kind, "quotes": quotes}
            else:
                store, segments = assistant.index, assistant.segments
                vectors = assistant.embedder.embed([s.text for s in segments])
                questions = command["brute"]
                for question, found in zip(questions, store.dense_search(assistant.embedder.embed(questions), 10)):
                    assert found.tolist() == np.argsort(-(vectors @ assistant.embedder.embed([question])[0]),
                                                        kind="stable")[:10].tolist(), question
                held = [set(terms) for terms in tokenize([s.text for s in segments])]
                retriever = HybridRetriever(store, segments, assistant.embedder)
                for question in questions:
                    weights = retriever._term_weights(tokenize([question])[0])
                    assert store.term_counts(list(weights)) == [sum(t in h for h in held) for t in weights]
                    brute = np.array([sum(weights.get(t, 0.0) for t in h) for h in held], dtype=np.float32)
                    top, sums = store.term_search(weights, 5)
                    assert np.abs(sums - brute[top]).max(initial=0) < 1e-5, question
                    assert np.abs(np.sort(sums)[::-1] - np.sort(brute[brute > 0])[::-1][:5]).max(initial=0) < 1e-5
                assert np.abs(store.vectors(np.arange(len(segments))) - vectors).max() < 1e-5
                reply = {"checked": len(questions)}
        except Exception as exc:  # the test reads the failure as the reply
            reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    serve(sys.argv[2]) if sys.argv[1] == "serve" else client()
