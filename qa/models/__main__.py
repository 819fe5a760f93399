"""``python -m qa.models [MODEL]``: export the embedder (default: the default model) to ONNX ahead of first use.

``make setup`` runs it once, so the first question does not wait for the export.
"""

import sys

from .embedder import DEFAULT_MODEL
from .manifest import ModelError, model_cache_dir, resolve_model
from .onnx import ONNX_FILE, prepare


def main(argv: list[str]) -> int:
    model = argv[0] if argv else DEFAULT_MODEL
    try:
        info = resolve_model(model)
        if info.weights is None:
            raise ModelError(f"{model}: only a model with a manifest in models/ runs as ONNX")
        directory, _ = prepare(info, model_cache_dir(),
                               lambda stage, done, total: done or print(f"{stage}\u2026", file=sys.stderr))
    except ModelError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"ONNX model ready: {directory / ONNX_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
