"""``POST /api/ask``: the JSON of ``qa ask --json`` over HTTP, beside Gradio's own routes.

Errors have the shape of ``qa chat --json``'s refusals, ``{"question", "error"}``,
whatever is wrong: a refused question, a body that is not a JSON object, one
too large (``ui.limits``), a missing password (``ui.signin``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from qa import questions

if TYPE_CHECKING:
    from .app import App

USAGE = 'send {"question": "...", "history": ["an earlier question, or the JSON of its reply", ...]}'


def reply(app: App, body) -> tuple[int, dict]:
    """The reply to a decoded body: 200 and the answer's JSON, or 400 and ``{"question", "error"}``."""
    question = body.get("question") if isinstance(body, dict) else None
    history = (body.get("history") or []) if isinstance(body, dict) else None
    if not isinstance(question, str) or not isinstance(history, list):
        return 400, questions.refusal(question if isinstance(question, str) else None, USAGE)
    try:
        return 200, app.ask_json(question, history)
    except ValueError as exc:  # a refused question: the client gets the reason
        return 400, questions.refusal(question, exc)


def route(app: App):
    """The route, decoding the body itself so that malformed JSON gets the same error shape as the rest."""
    async def ask(request: Request):
        try:
            body = json.loads(await request.body())
        except ValueError:  # not JSON, or not UTF-8
            body = None
        status, answer = await run_in_threadpool(reply, app, body)  # off the event loop: answering takes CPU
        return JSONResponse(answer, status_code=status)

    return APIRoute("/api/ask", ask, methods=["POST"])
