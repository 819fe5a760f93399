# `make run` and `make test` set everything up on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup chromium run test stress bench index train train-reader train-embedder clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel first: an unpinned torch would pull a 5 GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed
	# Export the model to ONNX now (once; seconds), so the first question is fast.
	$(PY) -m qa.models

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

run: setup
	$(VENV)/bin/qa serve

test: setup chromium
	$(PY) -m pytest

# The heavier kill and load runs (docs/robustness.md).
stress: setup chromium
	$(PY) -m pytest -m stress -s

# Speed and memory from the seed to a million sentences; prints a table, writes bench.json (docs/speed.md).
bench: setup chromium
	$(PY) benchmarks/bench.py --json bench.json

index: setup
	$(VENV)/bin/qa index seeds/

# Refit models/answerability.weights.json and its manifest on ../shared/train, judged on
# ../shared/eval (about 20 minutes on 2 quiet cores; the engine's evidence is cached under the data dir).
train: setup
	$(PY) -m qa.training.answerability

# Retrain the reader in models/reader/ on ../shared/train: mine the engine's candidates (16 minutes),
# train (60 minutes, resumable after a kill), export and judge; then `make train`, since the reader's
# margin is evidence. The shipped reader started from the span-only reader before it (--init;
# docs/reader.md says how to take that file from git history).
train-reader: setup
	$(PY) -m qa.training.reader

# Refit the fine-tuned embedder in models/ from ../shared/eval (CPU: about 10 minutes on 2 quiet
# cores); then `make train`, since the answerability evidence depends on the vectors.
train-embedder: setup
	$(PY) -m qa.training.embedder

clean:
	rm -rf $(VENV) .pytest_cache
