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
from .signin import PASSWORD_ENV, needs_sign_in, read_password


@click.command()
@corpus_options
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help=f"Address to serve on; any but 127.0.0.1 needs a password (${PASSWORD_ENV} or --password-file).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"A file holding the password every page and API call must send [or ${PASSWORD_ENV}].")
def serve(docs, model, data_dir, store, threshold, port, host, password_file):
    """Start the browser chat on http://HOST:PORT (127.0.0.1: this machine only; no share link)."""
    password = read_password(password_file)  # a bad password file fails here, before anything loads
    if password is None and needs_sign_in(host):
        raise click.UsageError(f"--host {host} may be reached from other machines: set a password in "
                               f"${PASSWORD_ENV} or give --password-file FILE (never on the command line)")
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

    if password:
        click.echo("Sign-in is on: every page and API call asks for the password.", err=True)
    launch(App(assistant, library, model=model), port, host=host, password=password)
