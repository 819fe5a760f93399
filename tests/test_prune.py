"""The data directory stays bounded: indexes of corpora whose files are gone and cached vectors of
documents removed or changed are pruned after every build and by `qa prune`; never an index that a
process has open, never one being written."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from conftest import ROOT
from qa import Assistant
from qa.store.index import FORMAT_VERSION
from qa.store.pruning import prune

QA = [sys.executable, "-m", "qa"]


def files_and_bytes(data) -> tuple[int, int]:
    files = [p for p in data.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def write(path, n: int, version: int = 0):
    path.write_text("".join(f"Lighthouse {n} was painted {c} in year {1900 + version * 10 + n}.\n"
                            for c in ("red", "white", "green", "blue")))


def open_corpus(paths, data):
    return Assistant(paths, data_dir=data, rebuild="stale").load()


def test_building_editing_and_removing_documents_many_times_keeps_the_data_dir_bounded(tmp_path):
    data, docs = tmp_path / "data", tmp_path / "docs"
    (docs / "folder").mkdir(parents=True)
    sizes = []
    for round_ in range(10):
        one = docs / f"single-{round_}.txt"  # a corpus of its own, each round
        write(one, round_)
        open_corpus([one], data)
        for version in range(1, 4):  # edited three times: each version embedded once
            write(one, round_, version)
            open_corpus([one], data)
        added = docs / "folder" / f"added-{round_}.txt"  # a folder whose files come and go
        write(added, round_)
        open_corpus([docs / "folder"], data)
        if round_:
            (docs / "folder" / f"added-{round_ - 1}.txt").unlink()
        one.unlink()
        open_corpus([docs / "folder"], data)
        sizes.append(files_and_bytes(data))
    gc.collect()
    assert sizes[-1] == sizes[2], sizes  # bounded: the same files, the same bytes, round after round
    indexes = [p.name for p in (data / "indexes").iterdir()]
    assert len([n for n in indexes if not n.startswith(".")]) == 1, indexes  # the folder's; the singles' are gone
    vectors = list((data / "vectors").rglob("*.npy"))
    assert len(vectors) == 1  # the one file of the folder, as it is now


def test_prune_keeps_what_is_open_and_current_and_removes_the_rest(tmp_path):
    data = tmp_path / "data"
    kept_doc, gone_doc = tmp_path / "kept.txt", tmp_path / "gone.txt"
    write(kept_doc, 1)
    write(gone_doc, 2)
    kept = open_corpus([kept_doc], data)
    held = open_corpus([gone_doc], data)  # like a running `qa serve`: it has its index open
    gone_dir = held.index_dir
    gone_doc.unlink()
    write(kept_doc, 1, version=1)  # edited: its earlier vectors are no longer anyone's
    kept = open_corpus([kept_doc], data)
    old_format = data / "indexes" / "old-format-0000"
    old_format.mkdir()
    (old_format / "manifest.json").write_text(json.dumps({"format_version": FORMAT_VERSION - 1, "documents": []}))
    damaged = data / "indexes" / "damaged-0000"
    damaged.mkdir()  # no manifest: rebuilt in place by the next command over its corpus, not removed
    leftover = data / "indexes" / f".{kept.index_dir.name}.tmp-dead"
    leftover.mkdir()

    cli = subprocess.run([*QA, "prune", "--json", "--data-dir", str(data)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ}, timeout=120)
    assert cli.returncode == 0, cli.stderr
    report = json.loads(cli.stdout)
    assert report["in_use"] == [f"indexes/{gone_dir.name}"] and gone_dir.is_dir()  # open: kept
    assert "indexes/old-format-0000" in report["removed"] and not old_format.exists()
    assert damaged.is_dir() and kept.index_dir.is_dir() and not leftover.exists()
    assert [p for p in report["removed"] if p.startswith("vectors/")] == []  # the held index still holds gone.txt's

    del held
    gc.collect()  # the process let the index go
    report = prune(data)
    assert f"indexes/{gone_dir.name}" in report.removed and not gone_dir.exists()
    assert report.in_use == () and report.freed_bytes > 0
    assert len(list((data / "vectors").rglob("*.npy"))) == 1  # kept.txt as it is now
    # What was kept is what is used: the current index opens as it is, and a rebuild embeds nothing.
    assert Assistant([kept_doc], data_dir=data).load().ask("What colour was lighthouse 1 painted?").quotes
    assert Assistant([kept_doc], data_dir=data, rebuild="always").load().embedded == 0
    text = subprocess.run([*QA, "prune", "--data-dir", str(data)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120).stdout
    assert text.startswith("Removed 0 index(es) and 0 cached vector file(s), 0.0 MB; kept 2 index(es)")


def test_the_locks_of_an_index_never_built_are_removed_unless_it_is_being_built(tmp_path):
    from qa.store.locking import hold_open

    data = tmp_path / "data"
    building, failed = data / "indexes" / "building-0000", data / "indexes" / "failed-0000"
    held = hold_open(building)  # a build under way in another process
    hold_open(failed).close()  # a build that failed: its lock files stay behind
    prune(data)
    assert sorted(p.name for p in (data / "indexes").iterdir()) == [".building-0000.inuse.lock"]
    held.close()
