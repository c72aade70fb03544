"""``WebSocket /v1/live``: suggestions while the conversation happens (protocol in README.md).

One connection streams one interaction. The connection's Origin must be the server's own (or one of
``PODSKAZKA_ALLOWED_ORIGINS``); the caller authenticates (an ``Authorization`` header, or an ``auth``
message first) with a key holding the role operator; only that key, with the session's resume token,
may resume a session. Final turns are answered at once, partials at most once per
debounce interval; the model runs in the live hub's thread pool; the shown label per task goes
through the session's hysteresis. A bad message is answered with an error and the session goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from model.assist.duplicates import duplicate_tasks
from model.conversation.record import DEFAULT_CHANNEL, MAX_CHARS, Channel, Interaction, Role, Turn
from model.errors import Detail, PodskazkaError
from model.predictor import Predictor
from model.suggestion import Suggestion
from serve import metrics
from serve.auth import Principal, principal_for
from serve.deps import Service, ServiceDep
from serve.duplicates import duplicate_for_request
from serve.errors import field_path, problems_summary
from serve.feedback_store import StoreHolder
from serve.limits import named_only
from serve.live_sessions import LiveHub, LiveSession, NotOwner
from serve.pool import Busy
from serve.schemas import DuplicateOut, ModelText, SuggestResponse
from serve.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

CLOSE_CODES = {
    "ended": 1000,
    "origin": 1008,
    "not_ready": 1013,
    "idle": 4000,
    "taken_over": 4001,
    "evicted": 4002,
    "unauthorized": 4401,
    "forbidden": 4403,
}


class AuthMessage(BaseModel):
    """The ``auth`` message: the API key, for a client that cannot set an Authorization header."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["auth"]
    key: str = Field(min_length=1, max_length=500)


class StartMessage(BaseModel):
    """The ``start`` message: which interaction this connection streams, and how (a resume needs its token)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["start"]
    interaction_id: str = Field(min_length=1, max_length=200)
    channel: Channel = DEFAULT_CHANNEL
    client_id: str | None = Field(None, max_length=200)
    tasks: list[str] | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    resume_token: str | None = Field(None, max_length=200, description="from 'started': needed to resume")
    domain: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="the line's domain (e.g. 'telecom', "
        "'marketplace') when the queue knows it; tasks of another domain get no decision",
    )


class TurnMessage(BaseModel):
    """The ``turn`` message: one turn by ``seq``; a partial (``final: false``) may be replaced by later ones."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["turn"]
    seq: int = Field(ge=0, le=10**9, strict=True)
    role: Role
    text: ModelText = Field(max_length=MAX_CHARS)
    final: bool = Field(True, strict=True)


@dataclass(frozen=True)
class LiveUpdate:
    """What one live update predicts on, taken on the event loop so the model thread sees a fixed view."""

    session: LiveSession  # its running sums make an update cost only its new turns
    interaction_id: str
    channel: str
    turns: tuple[Turn, ...]
    tasks: list[str]
    client_id: str | None
    check_duplicate: bool  # a final turn with a client id: remember the interaction, flag a duplicate
    domain: str | None


def predict_live(
    predictor: Predictor, store_holder: StoreHolder, settings: Settings, update: LiveUpdate, now: float
) -> tuple[Suggestion, DuplicateOut | None]:
    """The model call of one live update (runs in the thread pool). Returns (result with every label
    ranked, duplicate block or ``None``; ``None`` too when ``update.check_duplicate`` is off)."""
    interaction = Interaction(
        turns=update.turns, channel=update.channel, id=update.interaction_id, domain=update.domain
    )
    tasks = list(update.tasks)
    if update.check_duplicate:
        tasks += [t for t in duplicate_tasks(predictor.taxonomy, predictor.tasks) if t not in tasks]
    held = update.session
    if held.model_state is None or held.model_state_of is not predictor:
        held.model_state, held.model_state_of = predictor.live_state(interaction.channel), predictor
    result = predictor.predict_live(
        held.model_state, interaction, tasks=tasks, top_k=None, top_macros=settings.top_macros
    )
    held.state_bytes = predictor.live_state_bytes(held.model_state)
    if not update.check_duplicate:
        return result, None
    duplicate = duplicate_for_request(
        predictor,
        store_holder,
        settings,
        interaction=interaction,
        interaction_id=update.interaction_id,
        client_id=update.client_id,
        result=result,
        now=now,
    )
    return result, duplicate


class LiveConnection:
    """The protocol on one socket."""

    def __init__(
        self,
        ws: WebSocket,
        service: Service,
        *,
        hub: LiveHub,
        store: StoreHolder,
        predictor: Predictor,
        principal: Principal | None = None,
    ) -> None:
        self.ws = ws
        self.principal = principal  # None until an auth message is accepted
        self.service = service
        self.hub = hub
        self.store = store
        self.settings = service.settings
        self.predictor = predictor
        self.session: LiveSession | None = None
        self.stop = asyncio.Event()
        self.stop_reason = "taken_over"
        self._send_lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None  # a debounced partial update, still waiting
        self._tasks: set[asyncio.Task[None]] = set()

    def kick(self, reason: str) -> None:
        """Ask this connection to close (another connection took its session, or it was evicted)."""
        self.stop_reason = reason
        self.stop.set()

    async def run(self) -> None:
        """Serve the socket until it ends, idles out, is taken over or goes away."""
        receive: asyncio.Task[Message] | None = None
        try:
            while True:
                receive = receive or asyncio.ensure_future(self.ws.receive())
                stopped = asyncio.ensure_future(self.stop.wait())
                done, _ = await asyncio.wait(
                    {receive, stopped}, timeout=self.settings.live_idle_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                stopped.cancel()
                if self.stop.is_set():
                    return await self.close(self.stop_reason)
                if not done:
                    return await self.close("idle")
                message, receive = receive.result(), None
                if message["type"] == "websocket.disconnect":
                    return
                raw = message.get("text")
                if raw is None and message.get("bytes") is not None:
                    raw = message["bytes"].decode("utf-8", errors="replace")
                if await self.handle(raw) == "ended":
                    return
        finally:
            if receive is not None:
                receive.cancel()
            for task in list(self._tasks):
                task.cancel()
            if self.session is not None:
                self.hub.sessions.detach(self.session, self)

    async def handle(self, raw: str | None) -> str | None:
        """One message from the client; returns ``"ended"`` when the connection is to close."""
        try:
            data = json.loads(raw or "")
        except ValueError:
            await self.error("bad_message", "the message is not JSON; send one JSON object per frame")
            return None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "ping":
            await self.send({"type": "pong"})
            return None
        if kind == "auth" or self.principal is None:
            return await self.on_auth(data, kind)
        if kind not in ("start", "turn", "end"):
            await self.error("unknown_type", f"unknown message type {kind!r}; use 'start', 'turn', 'end' or 'ping'")
            return None
        if self.session is not None:
            self.hub.sessions.touch(self.session)
        if kind == "start":
            await self._validated(kind, lambda: self.on_start(StartMessage.model_validate(data), self.principal))
            return None
        if self.session is None:
            await self.error("not_started", "send {'type': 'start', 'interaction_id': ...} first")
            return None
        session = self.session
        if kind == "turn":
            if isinstance(data.get("text"), str):  # before validation: a lone surrogate is no str to pydantic
                data["text"] = named_only(data["text"])
            await self._validated(kind, lambda: self.on_turn(session, TurnMessage.model_validate(data)))
            return None
        return await self.on_end(session)

    async def _validated(self, kind: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` (which validates its message first); a bad message or a refused one is answered
        with an error and the session goes on."""
        try:
            await step()
        except ValidationError as exc:
            details = [
                {"field": field_path(e["loc"], skip=(), root="message"), "problem": e["msg"]} for e in exc.errors()
            ]
            await self.error("invalid_message", f"the {kind} message is invalid: {problems_summary(details)}", details)
        except PodskazkaError as exc:
            await self.error(exc.code, exc.message, exc.details)

    async def on_auth(self, data: Any, kind: str | None) -> str | None:
        """The ``auth`` message (or anything sent before it): a bad or missing key closes the socket."""
        if kind != "auth":
            await self.error(
                "unauthorized",
                "authenticate first: send {'type': 'auth', 'key': 'pk_…'} "
                "(or connect with an 'Authorization: Bearer' header), then 'start'",
            )
            await self.close("unauthorized")
            return "ended"
        try:
            principal = authorize(self.service, AuthMessage.model_validate(data).key)
        except (ValidationError, HTTPException) as exc:
            reason = "forbidden" if getattr(exc, "status_code", 401) == 403 else "unauthorized"
            message = exc.detail if isinstance(exc, HTTPException) else "the auth message is {'type': 'auth', 'key': …}"
            await self.error(reason, message)
            await self.close(reason)
            return "ended"
        self.principal = principal
        await self.send({"type": "authenticated", "key_id": principal.key_id})
        return None

    async def on_start(self, msg: StartMessage, principal: Principal | None) -> None:
        """Open (or resume, with its token) the session of ``msg.interaction_id`` and say ``started``."""
        if principal is None:  # handle() sends anything before a valid key to on_auth
            raise RuntimeError("start before authentication")
        if self.session is not None and self.session.interaction_id != msg.interaction_id:
            await self.error(
                "already_started",
                f"this connection streams {self.session.interaction_id!r}; "
                "open a new connection for another interaction",
            )
            return
        tasks = self.predictor.check_tasks(msg.tasks)
        top_k = msg.top_k or self.settings.default_top_k
        try:
            session, resumed, to_close = self.hub.sessions.open(
                msg.interaction_id,
                self,
                key_id=principal.key_id,
                token=msg.resume_token,
                make=lambda: self.hub.new_session(
                    msg.interaction_id, channel=msg.channel, client_id=msg.client_id, tasks=tasks, top_k=top_k
                ),
            )
        except NotOwner:
            await self.error(
                "not_owner",
                f"interaction {msg.interaction_id!r} is held by another session; "
                "resume it with the same key and the resume_token its 'started' gave, "
                "or start another interaction_id",
            )
            return
        if resumed and msg.tasks is not None:
            session.tasks = tasks
        if resumed and msg.top_k is not None:
            session.top_k = top_k
        session.client_id = session.client_id or msg.client_id
        session.domain = msg.domain or session.domain
        for owner, reason in to_close:
            owner.kick(reason)
        self.session = session
        await self.send(
            {
                "type": "started",
                "interaction_id": session.interaction_id,
                "model_version": self.predictor.model_version,
                "resumed": resumed,
                "last_seq": max(session.final_seqs, default=None),
                "final_seqs": session.final_seqs,
                "resume_token": session.resume_token,
            }
        )
        if resumed and session.has_text():
            await self.update()

    async def on_turn(self, session: LiveSession, msg: TurnMessage) -> None:
        """A turn (partial or final): a final one is answered at once, partials once per debounce interval."""
        changed = session.apply_turn(msg.seq, msg.role, msg.text, msg.final)
        if not changed:
            return
        for owner, reason in self.hub.sessions.within_budget(session):  # the byte budget of all sessions
            owner.kick(reason)
        if msg.final:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            await self.update()
            return
        if self._pending is None:
            self._pending = self._spawn(self._debounced())

    async def on_end(self, session: LiveSession) -> str:
        """The client ended the interaction: forget the session, say ``ended``, close."""
        if self._pending is not None:
            self._pending.cancel()
        self.hub.sessions.end(session, self)
        await self.send({"type": "ended", "interaction_id": session.interaction_id})
        self.session = None
        await self.close("ended")
        return "ended"

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _debounced(self) -> None:
        await asyncio.sleep(self.settings.live_debounce_ms / 1000)
        self._pending = None
        await self.update()

    async def update(self) -> None:
        """Predict on the turns so far and send the suggestions (in order, one at a time per session)."""
        session = self.session
        if session is None or not session.has_text():
            return
        async with session.compute_lock:
            self.predictor = self.service.predictor or self.predictor  # a hot reload reaches live sessions too
            seq = session.last_seq
            if seq is None:
                return
            final = session.is_final(seq)
            update = LiveUpdate(
                session=session,
                interaction_id=session.interaction_id,
                channel=session.channel,
                turns=session.window(),
                tasks=session.tasks or self.predictor.tasks,
                client_id=session.client_id,
                check_duplicate=bool(final and session.client_id),
                domain=session.domain,
            )
            try:
                result, duplicate = await self.hub.run_model(
                    predict_live, self.predictor, self.store, self.settings, update, time.time()
                )
            except PodskazkaError as exc:
                await self.error(exc.code, exc.message, exc.details)
                return
            except Busy as exc:  # the next turn (or a resend) is answered when there is room
                await self.error("busy", exc.message, [{"retry_after": exc.retry_after}])
                return
            except Exception:  # a bug must not end the session silently: log it, say so, go on
                log.exception("live update failed for %s", session.interaction_id)
                await self.error("internal_error", "the server failed to update the suggestions; it has been logged")
                return
            if update.check_duplicate:  # otherwise keep what was shown
                session.duplicate = duplicate
            if final:  # partials are not counted in the prediction metrics
                metrics.observe_result(result, update.tasks)
            message = self.suggestions(session, result, update.tasks, seq, final)
            await self.send(message)

    def suggestions(
        self, session: LiveSession, result: Suggestion, tasks: list[str], seq: int, final: bool
    ) -> dict[str, Any]:
        """The ``suggestions`` message: the /v1/suggest body for ``tasks`` and the stable label per task."""
        stable: dict[str, dict[str, Any]] = {}
        for task in tasks:
            ranked = result.predictions[task]
            label, held = session.stabilizer.update(task, {x.label: x.confidence for x in ranked})
            confidence = next(x.confidence for x in ranked if x.label == label)
            stable[task] = {"label": label, "confidence": confidence, "held": held}
        body = SuggestResponse(  # the /v1/suggest body: every field the predictor gives, tasks as asked
            **result.only(tasks, top_k=session.top_k).to_dict(),
            interaction_id=session.interaction_id,
            model_version=self.predictor.model_version,
            duplicate=session.duplicate,
        ).model_dump(mode="json")
        return {"type": "suggestions", "seq": seq, "final": final, **body, "stable": stable}

    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message; a socket already gone stops the connection instead of raising."""
        async with self._send_lock:
            try:
                await self.ws.send_json(message)
            except (WebSocketDisconnect, RuntimeError):
                self.stop_reason = "gone"
                self.stop.set()

    async def error(self, code: str, message: str, details: Sequence[Detail] | None = None) -> None:
        """Send an ``error`` message (the session goes on)."""
        await self.send({"type": "error", "code": code, "message": message, "details": list(details or [])})

    async def close(self, reason: str) -> None:
        """Close the socket with the code of ``reason`` (:data:`CLOSE_CODES`)."""
        if reason == "gone":
            return
        async with self._send_lock:
            try:
                await self.ws.close(code=CLOSE_CODES.get(reason, 1000), reason=reason)
            except (WebSocketDisconnect, RuntimeError):
                pass


def authorize(service: Service, key: str | None) -> Principal:
    """The caller of a live connection: a valid key with the role operator (HTTPException otherwise)."""
    principal = principal_for(service, key)
    if not principal.has("operator"):
        raise HTTPException(403, f"the key {principal.key_id!r} lacks the role 'operator' needed for /v1/live")
    return principal


def origin_allowed(ws: WebSocket, settings: Settings) -> bool:
    """No Origin (not a browser), the server's own host (whatever the scheme: a TLS proxy in front
    changes it), or one of ``allowed_origins``."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    if urlsplit(origin).netloc.lower() == ws.headers.get("host", "").lower():
        return True
    return origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in settings.allowed_origins}


def _bearer(ws: WebSocket) -> str | None:
    scheme, _, key = ws.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


@router.websocket("/v1/live")
async def live(ws: WebSocket, service: ServiceDep) -> None:
    """Stream one interaction's turns; receive suggestions (see README «Live suggestions and feedback»)."""
    if not origin_allowed(ws, service.settings):  # refused before the handshake completes (HTTP 403)
        return await ws.close(code=CLOSE_CODES["origin"], reason="origin not allowed")
    await ws.accept()
    principal = None
    if _bearer(ws) is not None or service.settings.insecure_local:
        try:
            principal = authorize(service, _bearer(ws))
        except HTTPException as exc:
            reason = "forbidden" if exc.status_code == 403 else "unauthorized"
            await ws.send_json({"type": "error", "code": reason, "message": exc.detail, "details": []})
            return await ws.close(code=CLOSE_CODES[reason], reason=reason)
    predictor, hub, store = service.predictor, service.live, service.store
    if predictor is None or hub is None or store is None:
        await ws.send_json(
            {
                "type": "error",
                "code": "not_ready",
                "details": [],
                "message": "no model is loaded yet; retry when /readyz answers 200",
            }
        )
        return await ws.close(code=CLOSE_CODES["not_ready"], reason="not_ready")
    await LiveConnection(ws, service, hub=hub, store=store, predictor=predictor, principal=principal).run()
