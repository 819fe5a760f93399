"""Shared fixtures: the real model, real index files, a throwaway data dir."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "000_70eb0d637448346e.txt"

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class NetworkBlocked(RuntimeError):
    """The tests reached for a host other than this machine; qa must work offline."""


def _loopback(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:  # a host name other than localhost
        return False


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Any connection from the test process to a host other than this machine raises ``NetworkBlocked``.

    Processes the tests start are not covered; ``test_robustness`` runs ``qa ask``
    without a network to check those.
    """
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(real):
        def connect(sock, address):
            if not _loopback(address):
                raise NetworkBlocked(f"network access in a test: connect to {address!r}")
            return real(sock, address)
        return connect

    socket.socket.connect, socket.socket.connect_ex = guard(real_connect), guard(real_connect_ex)
    yield
    socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One data directory for the whole run, so the seed index is built once."""
    path = tmp_path_factory.mktemp("qa-data")
    os.environ["QA_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def seed_assistant(data_dir):
    from qa import Assistant

    return Assistant([SEEDS], data_dir=data_dir, rebuild="stale").load()


@pytest.fixture()
def model_copy(tmp_path):
    """A private copy of the embedder's files and a manifest pointing at it: (folder, manifest path)."""
    import json
    import shutil

    from qa.models.embedder import DEFAULT_MODEL
    from qa.models.manifest import MODELS_DIR, resolve_model

    copy = tmp_path / "model"
    shutil.copytree(resolve_model(DEFAULT_MODEL).path, copy)
    manifest = json.loads((MODELS_DIR / f"{DEFAULT_MODEL}.json").read_text())
    manifest["source"] = {"path": str(copy)}
    manifest_path = tmp_path / "minilm.json"
    manifest_path.write_text(json.dumps(manifest))
    return copy, manifest_path


def make_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with a line of Helvetica text per item, a page per list (an empty list: a page without text)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for lines in pages:
        stream = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
        kids.append(len(objects) + 1)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects) + 2} 0 R "
                       "/Resources << /Font << /F1 FONT 0 R >> >> >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    objects = [o.replace("FONT", str(len(objects))) for o in objects]
    out, offsets = "%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n" + "".join(f"{o:010d} 00000 n \n" for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out.encode("latin-1")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def qa_serve(data: Path, *args: str, host: str = "127.0.0.1", port: int | None = None, env: dict | None = None,
             timeout: float = 180):
    """``qa serve`` as a user starts it, in its own process group on ``port`` (default: a free one) of
    ``host``: yields (url, data, log lines, pid); SIGTERM on exit."""
    port = port or free_port(host)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "QA_DATA_DIR": str(data),
           **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--host", host, "--port", str(port),
                             "--data-dir", str(data), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "Running on local URL" in line:
                ready.set()
        ready.set()  # the process ended: stop waiting

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout) or proc.poll() is not None:
            raise RuntimeError("qa serve did not start:\n" + "".join(lines))
        url = f"http://{host}:{port}/"
        assert url.rstrip("/") in "".join(lines)  # it prints its URL
        yield SimpleNamespace(url=url, data=data, log=lines, pid=proc.pid, proc=proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
