"""The Gradio app: wiring only.  Answers come from ``Assistant.ask``; markup from ``ui.render``.

The current assistant lives in a ``Holder``.  Re-indexing builds a new
``Assistant`` on the new list of files and swaps it in when it is complete;
questions asked meanwhile are answered by the previous one.
"""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path

import gradio as gr

from qa import Assistant, DocumentError, ModelError, StaleIndexError, StoreUnavailableError

from . import api, render
from .library import ALLOWED_SUFFIXES, MAX_UPLOAD_BYTES, Library, UploadRefused, feedback_record
from .limits import BodyLimit
from .signin import SignIn

CONCURRENCY = 4  # questions answered at once; re-indexing runs one at a time beside them
# Example questions for a corpus: one per line, in a file beside its documents.
EXAMPLES_FILE = "examples.lst"

CSS = """
.qa-hidden { display: none !important; }
.qa-answer blockquote.qa-quote { border-left: 4px solid #94a3b8; margin: 6px 0; padding: 4px 10px; }
.qa-answer blockquote.qa-best { border-left-color: #2563eb; background: rgba(37, 99, 235, 0.06); }
.qa-answer .qa-short { font-weight: 600; }
.qa-answer .qa-where { font-size: 0.85em; opacity: 0.85; margin: 2px 0 0 0; }
.qa-answer { border-left: 4px solid transparent; padding-left: 8px; }
.qa-answer.qa-kind-answer { border-left-color: #16a34a; }
.qa-answer.qa-kind-possible { border-left-color: #d97706; }
.qa-answer.qa-kind-none { border-left-color: #9ca3af; }
.qa-kind-answer .qa-mark { color: #16a34a; }
.qa-kind-possible .qa-mark, .qa-answer .qa-possible { color: #b45309; }
.qa-kind-none .qa-mark, .qa-answer .qa-none { color: #6b7280; }
.qa-kind-none blockquote.qa-quote, .qa-kind-possible blockquote.qa-quote { opacity: 0.85; }
.qa-answer .qa-closest { font-size: 0.9em; font-style: italic; }
a.qa-cite { font-weight: 700; text-decoration: none; cursor: pointer; }
#qa-source { max-height: 560px; overflow-y: auto; }
.qa-source-head { position: sticky; top: 0; background: var(--background-fill-primary); padding: 4px 0; }
.qa-source-text { white-space: pre-wrap; line-height: 1.5; font-size: 0.95em; }
.qa-source-text .qa-heading { font-weight: 700; font-size: 1.05em; }
.qa-source mark.qa-span { background: #fde68a; color: inherit; border-radius: 2px; }
.qa-source mark.qa-span.active { background: #f59e0b; outline: 2px solid #b45309; }
.qa-skipped { color: #b45309; font-size: 0.9em; }
.qa-note { opacity: 0.75; font-size: 0.9em; }
table.qa-docs { width: 100%; font-size: 0.9em; }
table.qa-docs td, table.qa-docs th { padding: 2px 6px; text-align: left; }
"""

# Citations in the chat are links to "#cite-<turn>-<n>": a click is caught here,
# handed to the hidden "cite" button's event, and the source view re-renders
# with that passage marked active and scrolled into view.
JS = """
() => {
  if (window.qaCiteInstalled) return;
  window.qaCiteInstalled = true;
  document.addEventListener('click', (ev) => {
    const a = ev.target && ev.target.closest ? ev.target.closest('a[href^="#cite-"]') : null;
    if (!a) return;
    ev.preventDefault();
    ev.stopPropagation();
    window.qaCite = a.getAttribute('href').slice(6);
    const go = document.querySelector('#qa-cite-go');
    if (go) go.click();
  }, true);
}
"""
SCROLL_JS = """
() => {
  const m = document.querySelector('#qa-source mark.active');
  if (m) m.scrollIntoView({block: 'center'});
}
"""


class Holder:
    """The assistant that answers now, swapped whole when a new index is ready."""

    def __init__(self, assistant: Assistant):
        self._lock = threading.Lock()
        self.generation = 0
        self.assistant = assistant
        # Document texts of every generation, so old citations still open.
        self.documents = {0: dict(assistant.documents_by_id)}

    def current(self) -> tuple[int, Assistant]:
        with self._lock:
            return self.generation, self.assistant

    def swap(self, assistant: Assistant) -> int:
        with self._lock:
            self.generation += 1
            self.assistant = assistant
            self.documents[self.generation] = dict(assistant.documents_by_id)
            return self.generation


class App:
    def __init__(self, assistant: Assistant, library: Library, model: str | Path | None = None,
                 k: int | None = None, threshold: float | None = None):
        self.holder = Holder(assistant)
        self.library = library
        self.model = assistant.embedder.model if model is None else model
        self.k = assistant.k if k is None else k
        self.threshold = assistant.threshold if threshold is None else threshold
        self._reindex_lock = threading.Lock()

    # -- answering ------------------------------------------------------------
    def ask_json(self, question: str, history: list | None = None) -> dict:
        """The API: the same JSON as ``qa ask --json``; a refused question raises ``ValueError``."""
        _, assistant = self.holder.current()
        if isinstance(history, str):
            history = json.loads(history) if history.strip().startswith("[") else [history]
        # An earlier turn is its question, or the JSON this API answered it with (which carries its quotes).
        history = [h if isinstance(h, dict) else str(h) for h in (history or [])]
        return assistant.ask(question or "", history=history).to_dict()

    def respond(self, question, messages, turns):
        question = (question or "").strip()
        if not question:
            gr.Warning("Type a question first.")
            return gr.update(), messages, turns, gr.update()
        gen, assistant = self.holder.current()
        history = [t["question"] for t in turns]
        try:
            # The earlier answers, not only their questions: a follow-up favours the previous quote's neighbourhood.
            answer = assistant.ask(question, history=[t["answer"] for t in turns])
        except ValueError as exc:  # a refused question: say why, keep the chat and the question as they are
            gr.Warning(html.escape(str(exc)))  # toasts render HTML
            return gr.update(), messages, turns, gr.update()
        question = answer.question  # as searched: without control characters or invalid bytes
        turn = len(turns)
        turns = turns + [{
            "question": question,
            "history": history,
            "answer": answer.to_dict(),
            "docs": [d.path for d in assistant.documents],
            "gen": gen,
        }]
        messages = (messages or []) + [
            {"role": "user", "content": render.render_question(question)},
            {"role": "assistant", "content": render.render_answer(answer, turn)},
        ]
        source = self.source_for(turns, turn, 1) if answer.quotes else render.render_source_empty()
        return "", messages, turns, source

    def source_for(self, turns, turn: int, n: int) -> str:
        """The source view for citation ``n`` of answer ``turn``."""
        t = turns[turn]
        quotes = t["answer"]["quotes"]
        q = quotes[n - 1]
        docs = self.holder.documents.get(t["gen"], {})
        doc = docs.get(q["doc"])
        if doc is None or doc.text[q["start"]:q["end"]] != q["text"]:
            return render.render_source_empty()
        spans = [(o["start"], o["end"]) for o in quotes if o["doc"] == q["doc"]]
        note = "" if t["answer"]["answered"] else "closest passages; the documents don't answer the question"
        return render.render_source(doc, spans, active=(q["start"], q["end"]), note=note, page=q.get("page"))

    def show_citation(self, key, turns):
        try:
            turn, n = (int(x) for x in str(key).split("-", 1))
            if not (0 <= turn < len(turns) and 1 <= n <= len(turns[turn]["answer"]["quotes"])):
                raise ValueError
        except ValueError:
            return gr.update()
        return self.source_for(turns, turn, n)

    def feedback(self, data: gr.LikeData, turns):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        turn = int(index) // 2
        if not (0 <= turn < len(turns)):
            return
        verdict = "up" if data.liked is True or data.liked == "Like" else "down"
        if data.liked is None or data.liked == "":
            return  # a vote taken back
        self.library.add_feedback(feedback_record(turns[turn], verdict))
        gr.Info("Thanks: your judgement was saved as a test case.")

    # -- documents -----------------------------------------------------------------
    def documents_view(self):
        _, assistant = self.holder.current()
        manifest = assistant.manifest
        rows = []
        for d in manifest["documents"]:
            path = Path(d["path"])
            try:
                size = path.stat().st_size
            except OSError:
                size = d["chars"]
            document = assistant.documents_by_id.get(d["id"])
            rows.append({**d, "bytes": size, "origin": "upload" if self.library.is_upload(path) else "docs",
                         "read_as": render.read_as(document) if document else ""})
        table = render.render_documents(rows, manifest.get("built_at", ""), [str(s) for s in assistant.skipped])
        choices = [(f"{d['title']} ({d['id']})", d["path"]) for d in manifest["documents"]]
        return table, gr.update(choices=choices, value=None)

    def examples(self) -> list[list[str]]:
        _, assistant = self.holder.current()
        found, seen_dirs = [], set()
        for d in assistant.documents:
            folder = Path(d.path).parent
            if folder in seen_dirs:
                continue
            seen_dirs.add(folder)
            path = folder / EXAMPLES_FILE
            if path.is_file():
                found.extend(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        if not found:
            found = [f"What does \u201c{d.title}\u201d say?" for d in assistant.documents]
        return [[q] for q in list(dict.fromkeys(found))[:4]]

    def reindex(self, progress=gr.Progress()):
        """Build a new assistant on the library's current files, then swap it in."""
        if not self._reindex_lock.acquire(blocking=False):
            raise gr.Error("A re-index is already running; wait for it to finish.")
        try:
            _, old = self.holder.current()
            try:
                files = self.library.files()
            except DocumentError as exc:
                raise gr.Error(html.escape(f"Re-index failed; questions still use the previous index. {exc}")) from None
            progress(0, desc="reading documents")

            def report(stage, done, total):
                progress((done, max(total, 1)), desc=stage)

            new = Assistant(files, model=self.model, data_dir=old.data_dir, k=self.k, threshold=self.threshold,
                            rebuild="stale", store=old.store_uri, corpus=self.library.corpus)
            try:
                new.load(report)
            except (DocumentError, ModelError, StoreUnavailableError, StaleIndexError, OSError, ValueError) as exc:
                raise gr.Error(html.escape(f"Re-index failed; questions still use the previous index. {exc}")) from None
            self.holder.swap(new)
            n = len(new.documents)
            skipped = f" Skipped {len(new.skipped)} file(s) that could not be read (listed below)." if new.skipped else ""
            damaged = f"The index was damaged and has been rebuilt ({new.rebuilt_because}). " if new.rebuilt_because else ""
            return f"{damaged}Indexed {n} document(s); {'built a new index' if new.built else 'the index was up to date'}. " \
                   f"Questions now use this corpus.{skipped}"
        finally:
            self._reindex_lock.release()

    def upload(self, files):
        files = files or []
        stored, refused = [], []
        for f in files:
            path = getattr(f, "name", None) or getattr(f, "path", None) or f
            original = getattr(f, "orig_name", None) or Path(str(path)).name
            try:
                stored.append(self.library.add_upload(path, original).name)
            except UploadRefused as exc:
                refused.append(str(exc))
        lines = []
        if stored:
            lines.append("Stored " + ", ".join(stored) + "; re-indexing\u2026")
        if refused:
            lines.append("Refused: " + "; ".join(refused))
        if refused:
            gr.Warning(html.escape("Refused: " + "; ".join(refused)))  # toasts render HTML
        return render.esc("\n".join(lines) or "Nothing uploaded."), bool(stored)

    def remove(self, path):
        if not path:
            return render.esc("Choose a document to remove."), False
        try:
            msg = self.library.remove(path)
        except UploadRefused as exc:
            return render.esc(str(exc)), False
        return render.esc(msg + " Re-indexing\u2026"), True


def build(app: App) -> gr.Blocks:
    with gr.Blocks(title="qa: ask your documents") as demo:
        turns = gr.State([])
        gr.Markdown("## Ask your documents\nEvery answer is a verbatim quote, cited; click a citation "
                    "[n] to see it in its document.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", show_label=False, elem_id="qa-chat", height=470, latex_delimiters=[],
                                     feedback_options=("Like", "Dislike"), buttons=["copy"],
                                     placeholder="Ask a question about the documents.")
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask a question\u2026", show_label=False, scale=5,
                                          elem_id="qa-question", autofocus=True, max_lines=3)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-ask")
                    clear = gr.Button("Clear", scale=1, elem_id="qa-clear")
                examples = gr.Dataset(components=[gr.Textbox(visible=False)], samples=app.examples(),
                                      label="Example questions", elem_id="qa-examples")
            with gr.Column(scale=2):
                source = gr.HTML(render.render_source_empty(), elem_id="qa-source", label="Source")
        cite_key = gr.Textbox(elem_id="qa-cite-key", elem_classes="qa-hidden", show_label=False, container=False)
        cite_go = gr.Button("cite", elem_id="qa-cite-go", elem_classes="qa-hidden")

        with gr.Accordion("Documents", open=True, elem_id="qa-docs-panel"):
            table0, _ = app.documents_view()
            docs_table = gr.HTML(table0, elem_id="qa-docs")
            status = gr.Markdown("", elem_id="qa-status")
            with gr.Row():
                upload = gr.File(label=f"Add documents ({', '.join(ALLOWED_SUFFIXES)}; up to "
                                       f"{MAX_UPLOAD_BYTES // 1048576} MB each)",
                                 file_count="multiple", file_types=list(ALLOWED_SUFFIXES),
                                 type="filepath", elem_id="qa-upload", scale=2)
                with gr.Column(scale=2):
                    to_remove = gr.Dropdown(label="Remove a document", choices=[], elem_id="qa-remove-choice")
                    with gr.Row():
                        remove_btn = gr.Button("Remove", elem_id="qa-remove")
                        restore_btn = gr.Button("Restore removed", elem_id="qa-restore")
                        reindex_btn = gr.Button("Re-index", elem_id="qa-reindex")
        changed = gr.State(False)

        # -- chat
        chat_io = dict(inputs=[question, chatbot, turns], outputs=[question, chatbot, turns, source])
        question.submit(app.respond, **chat_io, api_visibility="private")
        send.click(app.respond, **chat_io, api_visibility="private")
        clear.click(lambda: ([], [], render.render_source_empty(), ""), outputs=[chatbot, turns, source, question],
                    api_visibility="private")
        examples.click(lambda v: v[0] if isinstance(v, (list, tuple)) else v, inputs=examples, outputs=question,
                       api_visibility="private").then(app.respond, **chat_io, api_visibility="private")
        cite_go.click(app.show_citation, inputs=[cite_key, turns], outputs=source,
                      js="(key, t) => [window.qaCite || key, t]", api_visibility="private"
                      ).then(None, js=SCROLL_JS)
        chatbot.like(app.feedback, inputs=turns, api_visibility="private")

        # -- documents
        def refresh():
            table, choices = app.documents_view()
            return table, choices, gr.Dataset(samples=app.examples())

        def reindex_if(flag, progress=gr.Progress()):
            if not flag:
                return gr.update()
            return render.esc(app.reindex(progress))

        after = dict(outputs=[docs_table, to_remove, examples], api_visibility="private")
        rx = dict(inputs=changed, outputs=status, concurrency_limit=1, concurrency_id="reindex",
                  api_visibility="private", show_progress="full")
        upload.upload(app.upload, inputs=upload, outputs=[status, changed], api_visibility="private"
                      ).then(reindex_if, **rx).then(refresh, **after).then(lambda: None, outputs=upload,
                                                                           api_visibility="private")
        remove_btn.click(app.remove, inputs=to_remove, outputs=[status, changed], api_visibility="private"
                         ).then(reindex_if, **rx).then(refresh, **after)
        restore_btn.click(lambda: (render.esc(f"Restored {app.library.restore()} removed document(s); "
                                              "re-indexing\u2026"), True),
                          outputs=[status, changed], api_visibility="private"
                          ).then(reindex_if, **rx).then(refresh, **after)
        reindex_btn.click(lambda: True, outputs=changed, api_visibility="private"
                          ).then(reindex_if, **rx).then(refresh, **after)
        demo.load(refresh, **after)

        # -- API: the JSON of `qa ask --json`
        def ask(question: str, history: list[str] | None = None) -> dict:
            """Answer a question with verbatim quotes; history: the earlier questions of the conversation."""
            try:
                return app.ask_json(question, history)
            except ValueError as exc:  # a refused question: the client gets the reason
                raise gr.Error(str(exc)) from None

        gr.api(ask, api_name="ask", queue=False)
    return demo


def launch(app: App, port: int, prevent_thread_lock: bool = False, host: str = "127.0.0.1",
           password: str | None = None) -> gr.Blocks:
    """Serve the chat on ``host``:``port``, with the plain JSON API ``POST /api/ask`` beside it.

    Every request body is capped (``ui.limits``); with ``password`` every route asks for it (``ui.signin``).
    """
    from starlette.middleware import Middleware

    demo = build(app)
    demo.queue(default_concurrency_limit=CONCURRENCY)
    # Sign-in first: a request without the password is refused before its body is read.
    middleware = [Middleware(SignIn, password=password)] if password else []
    middleware.append(Middleware(BodyLimit))
    # Gradio's own API route costs about twice the CPU per question of a plain route: 20 users
    # at once got 83 questions/s and p95 610 ms through it, about 150/s and p95 220-280 ms
    # through a plain FastAPI route (docs/speed.md). It is in place before the server starts.
    demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=False,
        prevent_thread_lock=prevent_thread_lock, max_file_size=MAX_UPLOAD_BYTES,
        footer_links=["api"], ssr_mode=False, enable_monitoring=False, mcp_server=False,
        css=CSS, js=JS, show_error=True,
        app_kwargs={"routes": [api.route(app)], "middleware": middleware},
    )
    return demo
