"""Sign-in for a server that others can reach: one shared password, asked for on every route.

``qa serve`` on 127.0.0.1 serves this machine alone.  On any other address it
may be reached by others, so it starts only with a password, read from the
environment (``QA_SERVE_PASSWORD``) or from a file (``--password-file``), never
from the command line, where every user of the machine can read it in the
process list.

``SignIn`` guards every route, Gradio's included (Gradio's own ``auth=`` leaves
several of its routes open): a request carries the password as HTTP Basic
(any user name; a browser asks for it once and resends it) or as
``Authorization: Bearer PASSWORD`` (scripts).  Anything else gets 401.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import os
from pathlib import Path

from .limits import refuse

PASSWORD_ENV = "QA_SERVE_PASSWORD"
MIN_PASSWORD_CHARS = 12
# This machine's usual loopback addresses: served there, nobody else can connect.
LOCAL_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
# Gradio calls this route of its own server, without credentials, to finish starting; it returns
# ``true`` and reads nothing.
OPEN_PATHS = ("/gradio_api/startup-events",)


class SignInError(ValueError):
    """No usable password where one is needed; the message names the fix."""


def needs_sign_in(host: str) -> bool:
    """Whether serving on ``host`` may reach others: anything but 127.0.0.1, ::1 and localhost.

    Another loopback address (127.0.0.2) counts as reachable too: what it is
    forwarded to is not known here.
    """
    if host == "localhost":
        return False
    try:
        return ipaddress.ip_address(host) not in LOCAL_ADDRESSES
    except ValueError:  # a host name: it may resolve to any address
        return True


def read_password(password_file: Path | None) -> str | None:
    """The password from ``--password-file`` or ``$QA_SERVE_PASSWORD``; None when neither is given."""
    if password_file is not None:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SignInError(f"{password_file}: cannot read the password file ({exc})") from None
        where = str(password_file)
    elif os.environ.get(PASSWORD_ENV):
        password, where = os.environ[PASSWORD_ENV].strip(), f"${PASSWORD_ENV}"
    else:
        return None
    if len(password) < MIN_PASSWORD_CHARS:
        raise SignInError(f"the password in {where} has {len(password)} characters: "
                          f"use at least {MIN_PASSWORD_CHARS}")
    return password


def _presented(headers: dict[bytes, bytes]) -> str | None:
    """The password a request carries: Bearer, or Basic's password part."""
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return None
    return None


class SignIn:
    """ASGI middleware: 401 ``{"question": null, "error": ...}`` for a request without the password."""

    def __init__(self, app, password: str):
        self.app = app
        self._password = password.encode("utf-8")

    def _signed_in(self, scope) -> bool:
        presented = _presented(dict(scope["headers"]))
        return presented is not None and hmac.compare_digest(presented.encode("utf-8"), self._password)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS or self._signed_in(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await refuse(receive, send, 401, {"question": None, "error": "sign in: send the server's password as HTTP Basic "
                                                               "(any user name) or as 'Authorization: Bearer "
                                                               "PASSWORD'"},
                        headers=[(b"www-authenticate", b'Basic realm="qa", charset="UTF-8"')])
