"""SIGKILL anywhere in a rebuild: the previous index still opens, verifies and answers; nothing is left behind.

The kill points are every file write, fsync, rename and removal the build makes
(counted by a dry run), so the moments between writing and renaming are hit
for certain, plus kills at moments spread over a whole `qa index --force`
process.  `make test` runs the points around the swap; `make stress` all of them.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from qa import Assistant

from conftest import ROOT, SEEDS

QUESTIONS = ["Where were the North Korean soldiers captured?", "What did the foreign minister urge?",
             "Which region was the ID card holder from?"]

# Runs `qa index --force ARGS`, SIGKILLing itself at the QA_KILL_AT-th step of the
# build's writing; with QA_KILL_AT=0 it only counts the steps, on stderr.
KILLER = r"""
import atexit, os, pathlib, shutil, signal, sys, tempfile
import faiss
target, steps = int(os.environ["QA_KILL_AT"]), [0]
def step(f):
    def wrapped(*args, **kwargs):
        steps[0] += 1
        if steps[0] == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return f(*args, **kwargs)
    return wrapped
os.rename, os.fsync, shutil.rmtree, tempfile.mkdtemp = map(step, (os.rename, os.fsync, shutil.rmtree, tempfile.mkdtemp))
faiss.write_index, pathlib.Path.write_text = step(faiss.write_index), step(pathlib.Path.write_text)
atexit.register(lambda: print(f"steps={steps[0]}", file=sys.stderr))
from qa.cli import main
sys.argv = ["qa", "index", "--force", *sys.argv[1:]]
main()
"""


def _answers(data):
    assistant = Assistant([SEEDS], data_dir=data).load()  # rebuild="never": must open as it is
    return [[(q.text, q.start, q.end) for q in assistant.ask(question).quotes] for question in QUESTIONS]


def _index(data, kill_at):
    env = {**os.environ, "QA_DATA_DIR": str(data), "QA_KILL_AT": str(kill_at)}
    return subprocess.run([sys.executable, "-c", KILLER, str(SEEDS)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def _leftovers(data):
    return [p.name for p in (data / "indexes").iterdir() if ".tmp-" in p.name or p.name.endswith(".old")]


def _kill_points(data):
    dry = _index(data, 0)
    assert dry.returncode == 0, dry.stderr
    return int(dry.stderr.rsplit("steps=", 1)[1].split()[0])


def _survives(data, before, kill):
    """After ``kill()``, the index opens with the API as it is and answers exactly as before."""
    kill()
    assert _answers(data) == before


@pytest.fixture()
def seed_data(tmp_path, seed_assistant):
    data = tmp_path / "data"
    Assistant([SEEDS], data_dir=data, rebuild="stale").load()
    return data


def _check_kills(data, points):
    before = _answers(data)
    for point in points:
        result = _index(data, point)
        assert result.returncode == -signal.SIGKILL, (point, result.stderr)
        assert _answers(data) == before, f"killed at step {point}"
    final = _index(data, 0)
    assert final.returncode == 0, final.stderr
    assert _leftovers(data) == []
    assert _answers(data) == before


def test_a_kill_around_the_swap_never_loses_the_index(seed_data):
    steps = _kill_points(seed_data)
    # The last steps: the manifest's fsync, moving the old index aside, renaming the new one in, removing the old.
    _check_kills(seed_data, range(steps - 3, steps + 1))


@pytest.mark.stress
def test_kills_at_every_step_and_through_a_whole_rebuild(seed_data):
    steps = _kill_points(seed_data)
    _check_kills(seed_data, range(1, steps + 1))
    started = time.perf_counter()
    assert _index(seed_data, 0).returncode == 0
    whole = time.perf_counter() - started
    before = _answers(seed_data)
    timed = 12
    for n in range(timed):
        env = {**os.environ, "QA_DATA_DIR": str(seed_data)}
        process = subprocess.Popen([sys.executable, "-m", "qa", "index", "--force", str(SEEDS)], env=env,
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(whole * (n + 1) / (timed + 1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert _answers(seed_data) == before, f"killed after {whole * (n + 1) / (timed + 1):.2f} s"
    assert _index(seed_data, 0).returncode == 0 and _leftovers(seed_data) == []
    print(f"survived {steps} step kills and {timed} timed kills over a {whole:.1f} s rebuild")
