"""Live sessions: the turns of one conversation as speech recognition streams them, stable labels.

Pure state and policy, no sockets: ``LiveSession`` (turns by sequence number, partials replaced,
bounded), ``Stabilizer`` (hysteresis so the shown label does not flicker word by word) and
``SessionManager`` (resume by the owner only, idle expiry, LRU eviction within a count and a byte
budget). ``LiveHub`` bundles the manager with the thread pool the model runs in. The WebSocket protocol is in serve/routes/live.py.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict, TypeVar, TypeVarTuple, Unpack

from model.conversation.record import DEFAULT_CHANNEL, MAX_CHARS, MAX_TURNS, Turn
from serve.pool import ModelPool
from serve.schemas import DuplicateOut

if TYPE_CHECKING:
    from model.predictor import LiveConversation, Predictor
    from serve.settings import Settings

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

TURN_OVERHEAD = 200  # bytes a held turn costs besides its text (tuple, Turn, dict slot)


class Owner(Protocol):
    """The connection streaming a session (the manager only compares it; callers kick the ones it returns)."""

    def kick(self, reason: str) -> None:
        """Ask the connection to close, saying why (``taken_over``, ``evicted``)."""
        ...


ToClose = list[tuple[Owner, str]]
"""Owners to kick, each with the reason (what :meth:`SessionManager.open` and ``within_budget`` return)."""


class NotOwner(Exception):
    """A start for an interaction held by another key, or without its resume token."""


class Stabilizer:
    """Hysteresis on the top label of each task.

    The shown label changes to a new leader only when the leader's confidence beats the shown
    label's by ``margin``, or when the same new leader has led ``updates`` updates in a row.
    """

    def __init__(self, margin: float = 0.15, updates: int = 3) -> None:
        if not 0.0 <= margin <= 1.0:
            raise ValueError(f"margin must be within [0, 1], got {margin}")
        if updates < 1:
            raise ValueError(f"updates must be >= 1, got {updates}")
        self.margin = margin
        self.updates = updates
        self.shown: dict[str, str] = {}
        self._challenger: dict[str, tuple[str, int]] = {}

    def update(self, task: str, scores: dict[str, float]) -> tuple[str, bool]:
        """Feed the new confidences of ``task``; returns (label to show, held) where ``held`` says the
        shown label is not the current leader."""
        if not scores:
            raise ValueError(f"no scores for task {task!r}")
        leader = max(scores, key=lambda label: scores[label])
        shown = self.shown.get(task)
        if shown is None or shown not in scores or leader == shown:
            return self._switch(task, leader), False
        if scores[leader] - scores[shown] >= self.margin:
            return self._switch(task, leader), False
        name, count = self._challenger.get(task, (None, 0))
        count = count + 1 if name == leader else 1
        if count >= self.updates:
            return self._switch(task, leader), False
        self._challenger[task] = (leader, count)
        return shown, True

    def _switch(self, task: str, label: str) -> str:
        self.shown[task] = label
        self._challenger.pop(task, None)
        return label


@dataclass
class LiveSession:
    """One interaction being streamed: its turns by ``seq`` (partial or final) and what was shown."""

    interaction_id: str
    channel: str = DEFAULT_CHANNEL
    client_id: str | None = None
    tasks: list[str] | None = None
    top_k: int = 3
    max_turns: int = MAX_TURNS
    stabilizer: Stabilizer = field(default_factory=Stabilizer)
    turns: dict[int, tuple[Turn, bool]] = field(default_factory=dict)
    duplicate: DuplicateOut | None = None  # the last duplicate block shown (kept across partial updates)
    last_active: float = 0.0
    owner: Owner | None = None  # the connection streaming it now, None when detached
    compute_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    key_id: str | None = None  # the API key that started it: only that key may resume it
    resume_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    bytes: int = 0  # memory its turns hold (text and overhead)
    domain: str | None = None  # the domain the client said the line is (None: routed by content)
    # the predictor's running sums for this conversation (Predictor.live_state; None: not made yet, or a kind
    # that cannot score incrementally)
    model_state: LiveConversation | None = None
    model_state_of: Predictor | None = None  # the predictor that state belongs to (a hot reload starts a new one)
    state_bytes: int = 0  # an estimate of what model_state holds, counted in the live byte budget

    def apply_turn(self, seq: int, role: str, text: str, final: bool) -> bool:
        """Record a turn; a partial after the final of the same ``seq`` is ignored (returns False)."""
        held = self.turns.get(seq)
        if held is not None and held[1] and not final:
            return False
        self.drop(seq)
        self.turns[seq] = (Turn(role=role, text=text), final)
        self.bytes += _turn_bytes(text)
        while len(self.turns) > self.max_turns:
            self.drop(min(self.turns))
        return True

    def drop(self, seq: int) -> None:
        """Forget turn ``seq`` (if held)."""
        held = self.turns.pop(seq, None)
        if held is not None:
            self.bytes -= _turn_bytes(held[0].text)

    def may_resume(self, key_id: str | None, token: str | None) -> bool:
        """Only the key that started the session, with the session's resume token."""
        return key_id == self.key_id and hmac.compare_digest(self.resume_token, token or "")

    @property
    def last_seq(self) -> int | None:
        """The highest ``seq`` held (partial or final), None without turns."""
        return max(self.turns) if self.turns else None

    @property
    def final_seqs(self) -> list[int]:
        """The ``seq`` of each final turn held, in order."""
        return sorted(seq for seq, (_, final) in self.turns.items() if final)

    def is_final(self, seq: int | None) -> bool:
        """Whether turn ``seq`` (held) is final; False for None."""
        return seq is not None and self.turns[seq][1]

    def window(self) -> tuple[Turn, ...]:
        """The latest turns in order that fit the model's limits (turns and characters)."""
        out: list[Turn] = []
        chars = 0
        for seq in sorted(self.turns, reverse=True):
            turn = self.turns[seq][0]
            if len(out) >= MAX_TURNS or chars + len(turn.text) > MAX_CHARS:
                break
            out.append(turn)
            chars += len(turn.text)
        return tuple(reversed(out))

    def has_text(self) -> bool:
        """Whether any held turn has more than whitespace."""
        return any(turn.text.strip() for turn, _ in self.turns.values())


def _turn_bytes(text: str) -> int:
    return sys.getsizeof(text) + TURN_OVERHEAD


class SessionManager:
    """Holds live sessions within a bound; sessions are resumable after a drop, then expire.

    The clock is injectable (``time.monotonic`` by default) so the policy is tested without sleeping.
    """

    def __init__(
        self,
        *,
        max_sessions: int = 1000,
        resume_seconds: float = 300.0,
        max_turns: int = MAX_TURNS,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.resume_seconds = resume_seconds
        self.max_turns = max_turns
        self.clock = clock
        self._sessions: OrderedDict[str, LiveSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, interaction_id: str) -> LiveSession | None:
        """The session of ``interaction_id`` if it is held."""
        return self._sessions.get(interaction_id)

    @property
    def total_bytes(self) -> int:
        """Memory all held sessions take: their turns and model states."""
        return sum(s.bytes + s.state_bytes for s in self._sessions.values())

    def open(
        self,
        interaction_id: str,
        owner: Owner,
        *,
        make: Callable[[], LiveSession],
        key_id: str | None = None,
        token: str | None = None,
    ) -> tuple[LiveSession, bool, ToClose]:
        """Start or resume ``interaction_id`` for ``owner``. Returns (session, resumed, owners to close):
        the previous owner of a taken-over session and the owners of evicted sessions. Resuming (and
        taking over) a held session needs the key that started it and its resume token, else
        :class:`NotOwner`."""
        to_close: ToClose = []
        self.sweep()
        session = self._sessions.get(interaction_id)
        resumed = session is not None
        if session is not None and session.owner is not owner and not session.may_resume(key_id, token):
            raise NotOwner(interaction_id)
        if session is None:
            session = make()
            session.key_id = key_id
            session.max_turns = self.max_turns
            self._sessions[interaction_id] = session
        elif session.owner is not None and session.owner is not owner:
            to_close.append((session.owner, "taken_over"))
        session.owner = owner
        self.touch(session)
        while len(self._sessions) > self.max_sessions:
            to_close += self._evict(keep=interaction_id)
        return session, resumed, to_close

    def within_budget(self, session: LiveSession) -> ToClose:
        """After ``session`` grew: evict least recently used other sessions, then drop its own oldest
        turns, until every session together holds at most ``max_bytes``. Returns owners to close."""
        to_close: ToClose = []
        if self.max_bytes is None:
            return to_close
        while self.total_bytes > self.max_bytes and len(self._sessions) > 1:
            to_close += self._evict(keep=session.interaction_id)
        while self.total_bytes > self.max_bytes and len(session.turns) > 1:
            session.drop(min(session.turns))
        return to_close

    def _evict(self, keep: str) -> ToClose:
        removed = self._sessions.pop(self._lru_victim(keep=keep))
        if removed.owner is None:
            return []
        owner, removed.owner = removed.owner, None
        return [(owner, "evicted")]

    def _lru_victim(self, keep: str) -> str:
        # detached sessions go first, then the least recently used connected one
        for interaction_id, session in self._sessions.items():
            if interaction_id != keep and session.owner is None:
                return interaction_id
        return next(i for i in self._sessions if i != keep)

    def touch(self, session: LiveSession) -> None:
        """Mark ``session`` used now (the most recently used, evicted last)."""
        session.last_active = self.clock()
        if session.interaction_id in self._sessions:
            self._sessions.move_to_end(session.interaction_id)

    def detach(self, session: LiveSession, owner: Owner) -> None:
        """The connection went away: keep the session for resuming (if ``owner`` still holds it)."""
        if session.owner is owner:
            session.owner = None
            session.last_active = self.clock()

    def end(self, session: LiveSession, owner: Owner) -> None:
        """The client ended the interaction: forget it now (if ``owner`` still holds it)."""
        if session.owner is owner and self._sessions.get(session.interaction_id) is session:
            del self._sessions[session.interaction_id]
            session.owner = None

    def sweep(self) -> int:
        """Free detached sessions not resumed within ``resume_seconds``; returns how many."""
        cutoff = self.clock() - self.resume_seconds
        expired = [i for i, s in self._sessions.items() if s.owner is None and s.last_active < cutoff]
        for interaction_id in expired:
            del self._sessions[interaction_id]
        return len(expired)


class SessionFields(TypedDict, total=False):
    """What a start message may set on a new session (:meth:`LiveHub.new_session`)."""

    channel: str
    client_id: str | None
    tasks: list[str] | None
    top_k: int


class LiveHub:
    """What the live endpoint shares across connections: sessions, settings, the model's thread pool
    (the same pool as HTTP's, so both share one bound)."""

    def __init__(
        self, settings: Settings, pool: ModelPool | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.sessions = SessionManager(
            max_sessions=settings.live_max_sessions,
            resume_seconds=settings.live_resume_seconds,
            max_turns=settings.live_max_turns,
            max_bytes=settings.live_max_bytes,
            clock=clock,
        )
        self.pool = pool or ModelPool(
            settings.model_workers, settings.model_queue, retry_after=settings.retry_after_seconds
        )
        self._sweeper: asyncio.Task[None] | None = None

    def new_session(self, interaction_id: str, **fields: Unpack[SessionFields]) -> LiveSession:
        """A new session with the hysteresis the settings ask for."""
        return LiveSession(
            interaction_id=interaction_id,
            stabilizer=Stabilizer(self.settings.live_switch_margin, self.settings.live_switch_updates),
            **fields,
        )

    async def run_model(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``fn`` in the model's thread pool, never on the event loop (:class:`serve.pool.Busy`
        when the pool is full)."""
        return await self.pool.run(fn, *args)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LiveHub]:
        """Start the model pool and the sweep of expired sessions; stop both on the way out."""
        self.pool.start()
        sweeper = self._sweeper = asyncio.create_task(self._sweep_forever())
        try:
            yield self
        finally:
            sweeper.cancel()
            try:
                await sweeper
            except asyncio.CancelledError:
                pass
            self.pool.shutdown()

    async def _sweep_forever(self) -> None:
        period = max(0.5, min(30.0, self.settings.live_resume_seconds / 4))
        while True:
            await asyncio.sleep(period)
            self.sessions.sweep()
