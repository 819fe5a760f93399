"""The trained models the engine runs, each found and verified the same way.

- ``manifest``: a model's manifest in ``models/``, the sha256 check of its files,
  and the per-user model cache (shared by every model);
- ``embedder``: the sentence embedder (``Embedder``);
- ``reader``: the reader that tells whether a sentence says what is asked, and finds the short
  answer inside it (``Reader``);
- ``onnx``: a verified sentence-transformers model exported to ONNX and run by
  onnxruntime, so answering never imports torch.

``python -m qa.models [MODEL]`` prepares a model ahead of its first use.
"""
