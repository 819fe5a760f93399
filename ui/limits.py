"""A cap on the size of every request body, enforced before the body is read whole.

Without it a 200 MB ``POST /api/ask`` is read into memory before the JSON is
even parsed; a few at once exhaust the machine.  ``BodyLimit`` answers 413
with one JSON error as soon as a body is known to be too large: at once from
its Content-Length, or, for a chunked body, at the first chunk past the cap,
having held no more than that.  The connection is then closed rather than the
rest read.
"""

from __future__ import annotations

import asyncio
import json

from qa.questions import MAX_QUESTION_CHARS

from .library import MAX_UPLOAD_BYTES

# A question is at most 1,000 characters; with the earlier turns a follow-up
# sends (each a few KB as the JSON of its reply) and the chat's own state, a
# request to answer one is far below this.
MAX_REQUEST_BYTES = 1024 * 1024
# The Documents tab takes several files at once, 5 MB each (checked per file by the library).
MAX_FILES_PER_UPLOAD = 10
MAX_UPLOAD_REQUEST_BYTES = MAX_FILES_PER_UPLOAD * MAX_UPLOAD_BYTES + MAX_REQUEST_BYTES
UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/upload/")


def limit_for(path: str) -> int:
    return MAX_UPLOAD_REQUEST_BYTES if path in UPLOAD_PATHS else MAX_REQUEST_BYTES


def _mb(size: int) -> str:
    return f"{size / 1048576:g} MB"


def refusal_message(path: str) -> str:
    limit = limit_for(path)
    if limit == MAX_UPLOAD_REQUEST_BYTES:
        return (f"the upload is over {_mb(limit)}: send at most {MAX_FILES_PER_UPLOAD} files of "
                f"{_mb(MAX_UPLOAD_BYTES)} each at a time")
    return (f"the request body is over {_mb(limit)}: send a question of at most {MAX_QUESTION_CHARS:,} "
            "characters and fewer earlier turns")


# After a refusal, what the client has already sent is read and dropped for this long, at most
# this much, before the connection closes: closing on unread data resets the connection, and the
# client could lose the reply it has been sent ("lingering close", as web servers do).
LINGER_SECONDS = 1.0
LINGER_BYTES = 8 * 1024 * 1024


async def refuse(receive, send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer ``status`` with the JSON ``body`` without reading the request's body, then close the connection."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close"), *headers]})
    # The reply goes out whole now; the response is completed (and the connection closed) after the linger.
    await send({"type": "http.response.body", "body": payload, "more_body": True})
    dropped = 0
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            while dropped < LINGER_BYTES:
                message = await receive()
                dropped += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
    except TimeoutError:
        pass
    await send({"type": "http.response.body", "body": b""})


class BodyLimit:
    """ASGI middleware: 413 ``{"question": null, "error": ...}`` for a body over ``limit_for(path)``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        limit = limit_for(path)
        refusal = {"question": None, "error": refusal_message(path)}
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await refuse(receive, send, 413, refusal)

        received, responded, refused = 0, False, False

        async def guarded_send(message):
            nonlocal responded
            if refused:
                return  # this request was answered with 413; what the app says after is dropped
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        async def counted_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body past the cap: stop here, the app sees the client leave
                    refused = True
                    if not responded:
                        await refuse(receive, send, 413, refusal)
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted_receive, guarded_send)
