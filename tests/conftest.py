"""Shared fixtures: the real model, real index files, a throwaway data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "000_70eb0d637448346e.txt"

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
