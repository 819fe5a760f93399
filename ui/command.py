"""`qa serve`: registered through the "qa.commands" entry point (pyproject).

Importing this module stays cheap: Gradio and the engine's model are loaded
inside the command.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from qa import DEFAULT_CORPUS, Assistant, default_data_dir
from qa.cli import corpus_options, load_with_progress

from .library import Library


@click.command()
@corpus_options
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True,
              help="Port on 127.0.0.1 to serve on.")
def serve(docs, model, data_dir, store, threshold, port):
    """Start the browser chat on http://127.0.0.1:PORT (local only, no share link)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    library = Library(data_dir, list(docs) or [DEFAULT_CORPUS])
    click.echo(f"Opening {len(library.files())} document(s) (the index is built first if missing or stale)\u2026",
               err=True)
    assistant = load_with_progress(
        Assistant(library.files(), model=model, data_dir=data_dir, threshold=threshold, rebuild="stale", store=store,
                  corpus=library.corpus))

    # Gradio costs seconds to import: only now, when the app is really wanted.
    from .app import App, launch

    app = App(assistant, library, model=model)
    launch(app, port)
