"""The ``qa`` command: parse, call the engine, print.  Nothing more.

Results go to stdout (``--json`` for machines), progress and status to stderr.
Exit codes: 0 answered or abstained, 1 a user error, 2 bad usage.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from .answers import Answer
from .assistant import DEFAULT_CORPUS, DEFAULT_K, DEFAULT_THRESHOLD, Assistant
from . import questions
from .documents import DEFAULT_MAX_FILE_MB, MAX_FILE_MB_ENV, DocumentError
from .models.embedder import DEFAULT_MODEL
from .models.manifest import ModelError
from .store import CorruptIndexError, MissingIndexError, StaleIndexError, StoreUnavailableError

USER_ERRORS = (DocumentError, ModelError, MissingIndexError, StaleIndexError, CorruptIndexError, StoreUnavailableError,
               ValueError, OSError)


class _Group(click.Group):
    """Turns engine errors into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            echo_error(exc)
            ctx.exit(1)


# Control characters (ESC starts terminal commands, CR rewrites the line) and
# bidirectional overrides, as documents, file names or questions may hold them.
# Text output shows them as escapes such as \x1b; line breaks and tabs stay.
_TERMINAL_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    return _TERMINAL_UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)


def echo_error(exc: Exception | str):
    click.echo(visible(f"Error: {exc}"), err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qa")
def cli():
    """Ask questions about your documents; every answer is a verbatim, cited quote."""


# Files and folders are checked by the engine, which names what is wrong with
# each (a FIFO, a link loop, an unreadable file) in the same way for every caller.
DOCUMENT_PATH = click.Path(path_type=Path, readable=False)


def corpus_options(f):
    """Options shared by every command that opens a corpus."""
    f = click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
                     help="Abstain when the best quote scores below this.")(f)
    f = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="QA_DATA_DIR",
                     help="Where indexes are kept [env: QA_DATA_DIR; default ~/.local/share/qa].")(f)
    f = click.option("--model", default=DEFAULT_MODEL, show_default=True,
                     help="Model manifest name, manifest .json, or sentence-transformers directory.")(f)
    f = store_option(f)
    f = click.option("--docs", "docs", multiple=True, type=DOCUMENT_PATH,
                     help="Document file or folder (repeatable) [default: seeds/].")(f)
    return max_file_option(f)


store_option = click.option(
    "--store", envvar="QA_STORE", help="Keep the index in Milvus: milvus:PATH.db (embedded) or "
                                       "milvus:http://HOST:19530 [env: QA_STORE; default: files in the data dir].")


def _export_max_file_mb(ctx, param, value):
    # The engine reads the limit where it reads the documents, from the environment.
    if value is not None:
        os.environ[MAX_FILE_MB_ENV] = repr(value)


max_file_option = click.option(
    "--max-file-mb", type=click.FloatRange(min=0, min_open=True), envvar=MAX_FILE_MB_ENV, expose_value=False,
    callback=_export_max_file_mb, help=f"Refuse documents larger than this many MB "
                                       f"[env: {MAX_FILE_MB_ENV}; default {DEFAULT_MAX_FILE_MB:g}].")


class StderrProgress:
    """A progress bar per stage, on stderr."""

    def __init__(self):
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int):
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = click.progressbar(length=total, label=stage, file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def load_with_progress(assistant: Assistant) -> Assistant:
    """Load, with a progress bar on stderr while an index is built."""
    progress = StderrProgress()
    try:
        assistant.load(progress)
    finally:
        progress.close()
    for skipped in assistant.skipped:
        click.echo(visible(f"Skipped {skipped}"), err=True)
    if assistant.rebuilt_because:
        click.echo(visible(f"The index was damaged and has been rebuilt: {assistant.rebuilt_because}"), err=True)
    if assistant.built:
        reused = len(assistant.segments) - assistant.embedded
        where = assistant.index_dir or assistant.store_uri
        click.echo(visible(f"Indexed {len(assistant.documents)} document(s) into {where} (embedded "
                           f"{assistant.embedded} sentence(s), {reused} from the vector cache)"), err=True)
    return assistant


def open_assistant(docs, model, data_dir, threshold, store, k=DEFAULT_K) -> Assistant:
    """Open the corpus, building or refreshing its index first when needed."""
    return load_with_progress(Assistant(list(docs) or [DEFAULT_CORPUS], model=model, data_dir=data_dir,
                                        k=k, threshold=threshold, rebuild="stale", store=store))


def format_answer(answer: Answer) -> str:
    lines = []
    if not answer.answered:
        lines.append(answer.message)
    if answer.quotes and answer.quotes[0].short_answer:
        lines.append(f"Short answer: {answer.quotes[0].short_answer.text}")
    for n, q in enumerate(answer.quotes, 1):
        where = (q.doc + (f", p. {q.page}" if q.page is not None else "") + (f", {q.section}" if q.section else "")
                 + f", sentence {q.position + 1}")
        lines.append(f"[{n}] \u201c{q.text}\u201d\n    \u2014 {where}, chars {q.start}-{q.end}, score {q.score:.2f}")
    return "\n".join(lines)


def _echo_json(reply: dict):
    # json.dumps escapes C0 controls but not DEL, C1 or bidi controls: escaped
    # here too, the JSON still decodes to the exact text.
    line = json.dumps(reply, ensure_ascii=False)
    click.echo(_TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line))


def emit(answer: Answer, as_json: bool):
    if as_json:
        _echo_json(answer.to_dict())
    else:
        click.echo(visible(format_answer(answer)))
    sys.stdout.flush()


@cli.command()
@click.argument("paths", nargs=-1, type=DOCUMENT_PATH)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model to embed with.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="QA_DATA_DIR",
              help="Where indexes are kept [env: QA_DATA_DIR].")
@max_file_option
@store_option
@click.option("--force", is_flag=True, help="Rebuild even when the index is up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print the index manifest as JSON.")
def index(paths, model, data_dir, store, force, as_json):
    """Build or refresh the index of PATHS (files or folders; default seeds/)."""
    assistant = load_with_progress(Assistant(list(paths) or [DEFAULT_CORPUS], model=model, data_dir=data_dir,
                                             rebuild="always" if force else "stale", store=store))
    manifest = assistant.manifest
    if as_json:
        where = {"index_dir": str(assistant.index_dir)} if assistant.index_dir else {}
        skipped = [{"path": s.path, "reason": s.reason} for s in assistant.skipped]
        click.echo(json.dumps({**where, "rebuilt": assistant.built, **manifest, "skipped": skipped}))
        return
    state = "built" if assistant.built else "up to date"
    click.echo(f"Index {state}: {manifest['counts']['documents']} document(s), "
               f"{manifest['counts']['segments']} sentences, model {manifest['model']['id']}")
    click.echo(f"  {assistant.index_dir or assistant.store_uri}")
    if assistant.skipped:
        click.echo(f"Skipped {len(assistant.skipped)} file(s) that could not be read (named on stderr)")


@cli.command()
@click.argument("question")
@corpus_options
@click.option("--k", type=click.IntRange(min=1), default=DEFAULT_K, show_default=True, help="Most quotes to return.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
def ask(question, docs, model, data_dir, store, threshold, k, as_json):
    """Answer QUESTION with quotes from the documents."""
    questions.check(question)  # refuse a bad question before the model is loaded
    assistant = open_assistant(docs, model, data_dir, threshold, store, k)
    emit(assistant.ask(question), as_json)


@cli.command()
@corpus_options
@click.option("--k", type=click.IntRange(min=1), default=DEFAULT_K, show_default=True, help="Most quotes per answer.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per question, one per line: its answer, or {"question", "error"}.')
def chat(docs, model, data_dir, store, threshold, k, as_json):
    """Answer one question per line from stdin as one conversation.

    Follow-up questions use the earlier ones; an empty line starts a new
    conversation.
    """
    assistant = open_assistant(docs, model, data_dir, threshold, store, k)
    if sys.stdin.isatty():
        click.echo("Ask a question (empty line: new conversation, Ctrl-D: quit).", err=True)
    history: list[Answer] = []
    for line in _lines(click.get_binary_stream("stdin")):
        if line is None:
            refuse(None, f"a line of over {MAX_LINE_BYTES // 1024} KiB: ask in at most "
                         f"{questions.MAX_QUESTION_CHARS:,} characters", as_json)
            continue
        question = line.strip()
        if not question:
            history = []
            continue
        try:
            answer = assistant.ask(question, history=history)
        except ValueError as exc:  # a refused question: say why, keep the conversation
            refuse(question, exc, as_json)
            continue
        history.append(answer)
        emit(answer, as_json)
        if not as_json:
            click.echo()


def refuse(question: str | None, reason: Exception | str, as_json: bool):
    """A refused ``qa chat`` line: one line on stderr, and with ``--json`` its error object on stdout,
    so that a script reading one line per question stays paired with its questions."""
    echo_error(reason)
    if as_json:
        _echo_json(questions.refusal(question, reason))
        sys.stdout.flush()


# Far more than a question may hold (questions.MAX_QUESTION_CHARS), and little
# enough memory that binary without line breaks (< /dev/zero) is never held whole.
MAX_LINE_BYTES = 64 * 1024


def _lines(stream):
    """The lines of a byte stream as text, or None for each line over ``MAX_LINE_BYTES`` (skipped).

    Bytes are decoded as Python decodes argv: invalid UTF-8 arrives as lone
    surrogates, which the engine drops, rather than ending the session.
    """
    while line := stream.readline(MAX_LINE_BYTES):
        if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield line.decode("utf-8", "surrogateescape")


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="QA_DATA_DIR",
              help="The data directory to prune [env: QA_DATA_DIR; default ~/.local/share/qa].")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed and kept as JSON.")
def prune(data_dir, as_json):
    """Remove indexes and cached vectors that no corpus uses any more.

    Kept: every index whose documents are still there, and the cached vectors
    of their documents as they are now; an index a running `qa serve` has open
    is never removed. Indexing prunes by itself after every build.
    """
    from .store.pruning import prune as prune_data_dir

    report = prune_data_dir(data_dir)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    indexes = sum(1 for p in report.removed if p.startswith("indexes"))
    click.echo(f"Removed {indexes} index(es) and {len(report.removed) - indexes} cached vector file(s), "
               f"{report.freed_bytes / 1048576:.1f} MB; kept {report.kept_indexes} index(es)")
    for path in report.in_use:
        click.echo(visible(f"  kept {path}: its documents are gone, but a process has it open or is writing it"), err=True)


@cli.command(name="eval")
@click.argument("testset", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--squad", type=click.Path(dir_okay=False, path_type=Path),
              help="A per-article SQuAD JSONL file (../shared/eval) in place of TESTSET.")
@corpus_options
@click.option("--limit", type=click.IntRange(min=1), help="Keep the first N questions in file order.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write metrics.json, results.jsonl, report.md, hitk.png and coverage.png here.")
@click.option("--compare", "compare_to", type=click.Path(dir_okay=False, path_type=Path),
              help="An earlier metrics.json: print every metric's change and the questions that flipped.")
def eval_command(testset, squad, docs, model, data_dir, store, threshold, limit, as_json, out_dir, compare_to):
    """Score the assistant on TESTSET (JSONL, one question per line) or a SQuAD file."""
    from . import evaluation, report
    from .store.index import default_data_dir

    if (testset is None) == (squad is None):
        raise click.UsageError("give either TESTSET or --squad FILE")
    try:
        squad_dir = Path(data_dir or default_data_dir()) / "squad"
        if squad is not None:
            items = evaluation.read_squad(squad, squad_dir / squad.stem, limit)
        else:
            items = evaluation.read_testset(testset, limit, squad_dir)
        previous = evaluation.load_previous(compare_to) if compare_to else None
    except evaluation.TestSetError as exc:
        raise click.ClickException(str(exc)) from None
    default_docs = [Path(d) for d in docs] or [DEFAULT_CORPUS]
    progress = StderrProgress()
    try:
        assistants = evaluation.open_corpora(
            items, default_docs, lambda paths: Assistant(paths, model=model, data_dir=data_dir, k=DEFAULT_K,
                                                          threshold=threshold, rebuild="stale", store=store),
            progress)
        records = evaluation.run_eval(items, assistants, default_docs, progress)
    finally:
        progress.close()
    metrics = evaluation.compute_metrics(records, threshold)
    if out_dir:
        report.write_outputs(out_dir, records, metrics, title=f"Evaluation: {(squad or testset).name}")
        click.echo(f"Wrote metrics.json, results.jsonl, report.md, hitk.png, coverage.png to {out_dir}", err=True)
    compared = None
    if previous:
        compared = evaluation.compare(previous[0], metrics, previous[1], evaluation.question_verdicts(records))
    if as_json:
        click.echo(json.dumps({**metrics, "compare": compared} if compared else metrics))
    else:
        click.echo(report.format_table(metrics))
        if compared:
            click.echo(f"\nCompared with {compare_to}:")
            click.echo(report.format_compare(compared))


def main():
    for entry in entry_points(group="qa.commands"):
        cli.add_command(entry.load(), entry.name)
    cli()
