"""Limits that hold whatever the client sends.

- :class:`BodyLimit`: a raw ASGI middleware that counts the body bytes actually received (a chunked
  body has no Content-Length) and answers 413 as soon as the count passes the limit; nothing past
  the limit is read or parsed.
- :func:`named_only`: text for the model with every code point Unicode does not name (unassigned,
  private use, surrogates; not control characters) replaced by U+FFFD, so odd input can never crash
  a text library downstream.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REPLACEMENT = "\ufffd"


class BodyLimit:
    """Reads an HTTP request body up to ``max_bytes`` before the app sees it; more is a 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry: an HTTP request's body is read (up to the limit) and replayed to the app."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(send, f"the body is {int(length)} bytes")
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return await self._too_large(send, f"the body passed {self.max_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, what: str) -> None:
        content = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "details": [],
                    "message": f"{what}; the limit is {self.max_bytes} (PODSKAZKA_MAX_BODY_BYTES); send less text",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


@lru_cache(maxsize=65536)
def _unnamed(char: str) -> bool:
    return not unicodedata.name(char, "") and unicodedata.category(char) != "Cc"


def named_only(text: str) -> str:
    """``text`` with every code point that Unicode does not name replaced by U+FFFD (see module doc).
    Each distinct character is looked up once, so a long text costs about one pass over it."""
    if text.isascii():
        return text
    bad = [char for char in set(text) if _unnamed(char)]
    return text.translate({ord(char): REPLACEMENT for char in bad}) if bad else text
