"""The examples in README.md and docs/ stay true: each fenced block is run as a reader would.

A block runs by its language:
- ``console``: each ``$ `` line runs in a shell; the lines shown under it must come out, in that
  order (a ``...`` line stands for lines left out);
- ``sh``: the block runs as one shell script and must exit 0;
- ``python``: the block runs as a script, in this process;
- ``json``: a ``qa ask --json`` reply: ``qa ask --json --k N`` with its question must print the
  same object (``latency_ms`` aside; scores to the rounding of another CPU);
- ``text``: never run (synopses, layouts, file formats).
The README's table of figures stays true too: a row whose command is ``qa eval seeds/... --json``
names metrics as that command prints them (``hit@1 0.854``), each to the digits shown.

A block whose info string also says ``notest`` (```` ```sh notest ````) is not run: it starts a
server, installs, trains, or needs a machine that is not here.

Blocks run in a scratch folder that holds ``seeds/`` (a link), with the suite's data
directory, and with ``qa`` meaning this checkout's ``python -m qa``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SEEDS

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "research" / "README.md"]
LANGUAGES = {"console", "sh", "python", "json", "text"}
FENCE = re.compile(r"^```(\S*)[ \t]*([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def blocks():
    """(page, line, language, whether it runs, body) for every fenced block of every page."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            language, flags, body = match.group(1), match.group(2).split(), match.group(3)
            found.append((page, line, language, "notest" not in flags and language != "text", body))
    return found


BLOCKS = blocks()
RUN = [pytest.param(language, body, id=f"{page.relative_to(ROOT)}:{line}")
       for page, line, language, runs, body in BLOCKS if runs]


def test_every_block_says_how_it_runs():
    unknown = [f"{page.relative_to(ROOT)}:{line} ```{language}" for page, line, language, _, _ in BLOCKS
               if language not in LANGUAGES]
    assert not unknown, f"give each block one of {sorted(LANGUAGES)} (and `notest` if it must not run): {unknown}"


def test_the_readme_runs_some_of_each():
    ran = {language for page, _, language, runs, _ in BLOCKS if runs and page.name == "README.md"}
    assert ran >= {"console", "sh", "python", "json"}


def test_links_between_pages_lead_somewhere():
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in PAGES
              for target in LINK.findall(page.read_text(encoding="utf-8"))
              if "://" not in target and not (page.parent / target).exists()]
    assert not broken


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, data_dir):
    """A folder to run blocks in, and the environment that makes ``qa`` this checkout's."""
    folder = tmp_path_factory.mktemp("docs")
    (folder / "seeds").symlink_to(SEEDS)
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "qa").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m qa "$@"\n')
    (bin_dir / "qa").chmod(0o755)
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return folder, env


def shell(command: str, scratch, stdin: str | None = None) -> subprocess.CompletedProcess:
    folder, env = scratch
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=folder, env=env, input=stdin,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stderr[-2000:]}"
    return result


def same(shown, actual) -> bool:
    """Equal, numbers within the last digit shown."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and shown.keys() == actual.keys() and all(same(shown[k], actual[k]) for k in shown)
    if isinstance(shown, list):
        return isinstance(actual, list) and len(shown) == len(actual) and all(map(same, shown, actual))
    if isinstance(shown, float) and not isinstance(actual, bool):
        return isinstance(actual, (int, float)) and abs(shown - actual) <= 2e-3
    return shown == actual


@pytest.mark.parametrize("language,body", RUN)
def test_documented_example(language, body, scratch, monkeypatch):
    if language == "sh":
        shell(body, scratch)
    elif language == "console":
        commands = []
        for line in body.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif line.strip() != "...":
                commands[-1][1].append(line.rstrip())
        for command, shown in commands:
            printed = shell(command, scratch).stdout
            out = iter(line.rstrip() for line in printed.splitlines())
            missing = next((line for line in shown if line not in out), None)  # `in` on an iterator keeps the order
            assert missing is None, f"{command}: does not print {missing!r} (in this order); it prints:\n{printed}"
    elif language == "python":
        monkeypatch.chdir(scratch[0])
        exec(compile(body, "<documented example>", "exec"), {"__name__": "__example__"})
    elif language == "json":
        shown = json.loads(body)
        question = shown["question"].replace("'", "'\\''")
        actual = json.loads(shell(f"qa ask --json --k {len(shown['quotes'])} '{question}'", scratch).stdout)
        shown.pop("latency_ms"), actual.pop("latency_ms")
        assert same(shown, actual), f"the reply is now:\n{json.dumps(actual, indent=1, ensure_ascii=False)}"


def eval_figures():
    """(command, metric, figure) for each ``name value`` figure of the README's rows of ``qa eval`` commands."""
    figures, command = [], None
    for row in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if not row.startswith("|") or len(cells) != 3:
            continue
        command = command if cells[2] == "same" else cells[2].strip("`")
        # The seed's: seconds to run here (the SQuAD ones take minutes, the informal set has its own
        # guard in tests/test_informal.py).
        if command.startswith("qa eval seeds/") and command.endswith("--json"):
            figures += [(command, name, value) for name, value in re.findall(r"([\w@]+) (\d+\.\d+)", cells[1])]
    return figures


def test_the_readme_table_names_eval_figures():
    assert {name for _, name, _ in eval_figures()} >= {"hit@1", "hit@3", "reply_accuracy"}


@pytest.fixture(scope="module")
def eval_metrics(scratch):
    printed = {}
    return lambda command: printed.get(command) or printed.setdefault(command, json.loads(shell(command, scratch).stdout))


@pytest.mark.parametrize("command,name,figure", eval_figures())
def test_the_readme_figure_is_what_qa_eval_prints(command, name, figure, eval_metrics):
    digits = len(figure.split(".")[1])
    assert f"{eval_metrics(command)[name]:.{digits}f}" == figure
