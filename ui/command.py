"""`qa serve`: registered through the "qa.commands" entry point (pyproject)."""

import click


@click.command()
def serve():
    """Start the browser chat (not built yet)."""
    raise click.ClickException("the browser chat is not built yet")
