"""Durable store of operator feedback and of recent interactions (for the duplicate check).

SQLite in WAL mode by default; PostgreSQL (psycopg 3, the ``postgres`` extra) when a database URL
is configured. Both run the same SQL (``?`` placeholders, rewritten to ``%s`` for psycopg).

No personal data is stored in the clear (152-ФЗ): every text (turns, comments) is masked first by
:func:`model.text.pii.mask_pii` (phones and e-mails typed or dictated, passport, SNILS, INN, card numbers,
birth dates, addresses, full names → ``[ТЕЛЕФОН]``, ``[ФИО]``...), and client and operator ids are kept
as keyed HMAC-SHA256 pseudonyms: the key is ``PODSKAZKA_PII_SECRET``, or, for a local run without it,
a random key generated once into ``pii-secret`` next to the SQLite file (mode 0600, said in the log).
Without the key a pseudonym cannot be reversed by enumerating phone numbers, as the old unsalted hash
could. Rows written before keep their old client hash; the duplicate check still matches them.

Rows written before that (a database of an earlier version) are upgraded once, when a store first opens it: clear
operator ids become pseudonyms and every stored turn and comment is masked again (see :meth:`Store._upgrade_privacy`);
the ``meta`` table keeps the ``privacy_version`` the rows are at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar

from model.errors import PodskazkaError
from model.text.pii import mask_pii

if TYPE_CHECKING:
    from psycopg import Connection

    from serve.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

Row = tuple[Any, ...]
"""One database row as both drivers return it (psycopg's ``TupleRow``): the column values in ``SELECT`` order."""


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses (``sqlite3.Cursor`` and psycopg's ``Cursor`` both have it)."""

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""
        ...

    def execute(self, sql: str, params: Sequence[object] = ..., /) -> object:
        """Run one statement with its parameters."""
        ...

    def fetchone(self) -> Row | None:
        """The next row of the last query, None when there is none."""
        ...

    def fetchall(self) -> list[Row]:
        """The remaining rows of the last query."""
        ...


class Rate(TypedDict):
    """Feedback counted: rows, accepted ones and their share (None without rows)."""

    total: int
    accepted: int
    acceptance_rate: float | None


# the key order of each dict below is the order of the JSON of GET /v1/stats: the fields are declared in it
class VersionRate(TypedDict):
    """The acceptance of one model version."""

    model_version: str
    total: int
    accepted: int
    acceptance_rate: float | None


class TaskRate(TypedDict):
    """The acceptance of one task (``macros`` for macros)."""

    task: str
    total: int
    accepted: int
    acceptance_rate: float | None


class LabelRate(TypedDict):
    """The acceptance of one suggested label of one task (``label`` None: feedback on no suggestion)."""

    task: str
    label: str | None
    total: int
    accepted: int
    acceptance_rate: float | None


class Stats(TypedDict):
    """What :meth:`Store.stats` returns (the body of GET /v1/stats): overall, then grouped."""

    total: int
    accepted: int
    acceptance_rate: float | None
    by_model_version: list[VersionRate]
    by_task: list[TaskRate]
    by_label: list[LabelRate]


MACROS_TASK = "macros"  # feedback on a macro is counted under this task, the macro id as its label

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id {pk},
    created_at TEXT NOT NULL,
    interaction_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    task TEXT NOT NULL,
    suggested TEXT,
    chosen TEXT,
    accepted INTEGER NOT NULL,
    operator_id TEXT,
    client_key TEXT,
    channel TEXT,
    confidence DOUBLE PRECISION,
    turns TEXT,
    comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_interaction ON feedback (interaction_id);
CREATE INDEX IF NOT EXISTS feedback_version ON feedback (model_version);
CREATE TABLE IF NOT EXISTS interactions (
    interaction_id TEXT PRIMARY KEY,
    client_key TEXT,
    channel TEXT NOT NULL,
    problem_task TEXT,
    problem_label TEXT,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    turns TEXT
);
CREATE INDEX IF NOT EXISTS interactions_client ON interactions (client_key, channel, status);
CREATE INDEX IF NOT EXISTS interactions_seen ON interactions (last_seen);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

PRIVACY_VERSION = 1
"""What the stored rows hold (``meta.privacy_version``): 1 = operator ids pseudonymised, turns and comments masked
by :func:`model.text.pii.mask_pii` (issue #11). A store opening a database below it upgrades the rows once."""
_UPGRADE_BATCH = 500  # rows read and rewritten at a time by the upgrade
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")  # what operator_key writes
_UPGRADE_LOCK = 0x706F64736B617A6B  # the PostgreSQL advisory lock key of schema creation and upgrade


class StoreError(PodskazkaError):
    """The feedback store cannot be opened or written (the request can be retried)."""

    code = "store_unavailable"
    http_status = 503


SECRET_FILE = "pii-secret"
_MIN_SECRET_BYTES = 16


def pseudonym(kind: str, value: str | None, secret: bytes) -> str | None:
    """A keyed HMAC-SHA256 of ``value`` (32 hex digits): stable for one key, so rows of one client or
    operator still match, and not reversible without the key."""
    if value is None or value == "":
        return None
    return hmac.new(secret, f"podskazka-{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def client_key(client_id: str | None, secret: bytes) -> str | None:
    """The client id as stored: a keyed pseudonym, enough to match a client's interactions, not to name them."""
    return pseudonym("client", client_id, secret)


def operator_key(operator_id: str | None, secret: bytes) -> str | None:
    """The operator id as stored: a keyed pseudonym, like :func:`client_key`."""
    return pseudonym("operator", operator_id, secret)


def legacy_client_key(client_id: str | None) -> str | None:
    """The unsalted hash rows were keyed by before (issue #11): looked up, never written."""
    if client_id is None or client_id == "":
        return None
    return hashlib.sha256(f"podskazka-client:{client_id}".encode()).hexdigest()[:32]


def local_secret(path: str | Path) -> bytes:
    """The key in ``path``, generated there (random, mode 0600) when there is none yet. Two processes
    starting at once agree: the file is created with a hard link, which fails if the other won."""
    path = Path(path)
    for _ in range(50):
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            text = None
        except OSError as exc:
            raise StoreError(f"cannot read the personal-data key {path}: {exc}; set PODSKAZKA_PII_SECRET") from exc
        if text:
            if path.stat().st_mode & 0o077:
                log.warning("the personal-data key %s is readable by others: chmod 600 it", path)
            return text.encode()
        if text is None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(secrets.token_hex(32) + "\n")
                try:
                    os.link(tmp, path)
                    log.warning(
                        "PODSKAZKA_PII_SECRET is not set: generated a personal-data key into %s (mode 0600); "
                        "set PODSKAZKA_PII_SECRET (the same on every server sharing a database) in production",
                        path,
                    )
                except FileExistsError:
                    pass  # another process made it first: read theirs
                finally:
                    tmp.unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the personal-data key {path}: {exc}; set PODSKAZKA_PII_SECRET"
                ) from exc
            continue
        time.sleep(0.02)  # created but not written yet
    raise StoreError(f"the personal-data key {path} is empty; delete it or set PODSKAZKA_PII_SECRET")


def pii_secret(settings: Settings) -> bytes:
    """The HMAC key: ``PODSKAZKA_PII_SECRET``, else a key kept next to the SQLite file (``var/pii-secret``)."""
    if settings.pii_secret is not None:
        value = settings.pii_secret.get_secret_value()
        if len(value.encode()) < _MIN_SECRET_BYTES:
            raise StoreError(
                f"PODSKAZKA_PII_SECRET is {len(value.encode())} bytes; use at least {_MIN_SECRET_BYTES} "
                "random bytes (python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return value.encode()
    return local_secret(Path(settings.feedback_db).parent / SECRET_FILE)


def mask_text(text: str | None) -> str | None:
    """``text`` with personal data replaced by placeholders (:func:`model.text.pii.mask_pii`)."""
    return None if text is None else mask_pii(text)


def mask_turns(turns: Sequence[Mapping[str, str]] | None) -> str | None:
    """The turns as stored: a JSON list of ``{role, text}`` with the texts masked (None without turns)."""
    if not turns:
        return None
    return json.dumps([{"role": t["role"], "text": mask_pii(t["text"])} for t in turns], ensure_ascii=False)


def _masked_json(value: object) -> object:
    """Every string of a decoded JSON value masked (but the turns' ``role``)."""
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, list):
        return [_masked_json(v) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "role" else _masked_json(v) for k, v in value.items()}
    return value


def remask_turns(stored: str | None) -> str | None:
    """Stored turns (a JSON list of ``{role, text}``) masked again: what :func:`mask_turns` writes for turns already
    in that form (so masked turns come back as they were); any other JSON has its strings masked, a text that is
    not JSON is masked as one text."""
    if stored is None:
        return None
    try:
        decoded = json.loads(stored)
    except ValueError:
        return mask_pii(stored)
    return json.dumps(_masked_json(decoded), ensure_ascii=False)


def is_pseudonym(value: str) -> bool:
    """Whether a stored id is already a pseudonym (32 lowercase hex digits, as :func:`pseudonym` writes)."""
    return _PSEUDONYM.fullmatch(value) is not None


def iso_time(ts: float) -> str:
    """A Unix time as an ISO 8601 UTC time to the second."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Feedback:
    """One operator reaction to one suggestion (a label of ``task``, or a macro: task ``macros``)."""

    interaction_id: str
    model_version: str
    task: str
    suggested: str | None
    chosen: str | None
    accepted: bool
    operator_id: str | None = None
    client_id: str | None = None
    channel: str | None = None
    confidence: float | None = None
    turns: tuple[Mapping[str, str], ...] | None = None  # {role, text} each
    comment: str | None = None


@dataclass(frozen=True)
class Remembered:
    """A row of the recent interactions (the duplicate check): when it began, its problem and status."""

    interaction_id: str
    channel: str
    problem_task: str | None
    problem_label: str | None
    first_seen: float
    status: str


class Store:
    """The SQL shared by both backends; subclasses only say how to run a unit of work."""

    placeholder = "?"
    primary_key = "INTEGER PRIMARY KEY AUTOINCREMENT"
    secret: bytes  # the HMAC key of client and operator pseudonyms
    # what opening it upgraded (row counts; see _upgrade_privacy), None when the rows were already at the version
    upgraded: dict[str, int] | None = None

    def client_key(self, client_id: str | None) -> str | None:
        """``client_id`` as this store keeps it (the keyed pseudonym)."""
        return client_key(client_id, self.secret)

    # -- backend hooks --
    def _run(self, work: Callable[[Cursor], T]) -> T:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        """Close the store's connections (the service's shutdown)."""
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _exec(self, cur: Cursor, sql: str, params: Sequence[object] = ()) -> Cursor:
        cur.execute(self._sql(sql), tuple(params))
        return cur

    @staticmethod
    def _one(cur: Cursor) -> Row:
        """The row a statement that always returns one returned (an aggregate, ``RETURNING``, an upsert)."""
        row = cur.fetchone()
        if row is None:
            raise StoreError("the feedback store returned no row where one was due; retry later")
        return row

    def _lock_upgrade(self, cur: Cursor) -> None:
        """Hold off every other process opening the store until this transaction ends (SQLite: ``BEGIN
        IMMEDIATE`` already holds the database's write lock)."""

    def _create_schema(self) -> None:
        def work(cur: Cursor) -> dict[str, int] | None:
            self._lock_upgrade(cur)
            for statement in _SCHEMA.format(pk=self.primary_key).split(";"):
                if statement.strip():
                    cur.execute(statement)
            return self._upgrade_privacy(cur)

        counts = self._run(work)
        self.upgraded = counts
        if counts and counts["feedback_rows"] + counts["interaction_rows"]:
            log.info(
                "feedback store upgraded to privacy version %d: %d operator ids pseudonymised, %d of %d feedback rows"
                " and %d of %d interactions masked again",
                PRIVACY_VERSION,
                counts["operator_ids"],
                counts["feedback_masked"],
                counts["feedback_rows"],
                counts["interactions_masked"],
                counts["interaction_rows"],
            )

    def _upgrade_privacy(self, cur: Cursor) -> dict[str, int] | None:
        """Bring rows written by an earlier version to :data:`PRIVACY_VERSION`, in the transaction that created the
        schema (other processes wait for it, then find the version written): clear operator ids become pseudonyms
        (those already 32 lowercase hex digits are kept), turns and comments are masked again, in batches of
        :data:`_UPGRADE_BATCH` rows by key. The row counts, or None when the rows were already at the version."""
        row = self._exec(cur, "SELECT value FROM meta WHERE key = 'privacy_version'").fetchone()
        if row is not None and int(row[0]) >= PRIVACY_VERSION:
            return None
        counts = dict.fromkeys(
            ("operator_ids", "feedback_masked", "feedback_rows", "interactions_masked", "interaction_rows"), 0
        )
        last: object = -(2**63)
        while rows := self._exec(
            cur,
            "SELECT id, operator_id, turns, comment FROM feedback WHERE id > ? ORDER BY id LIMIT ?",
            (last, _UPGRADE_BATCH),
        ).fetchall():
            for row_id, operator, turns, comment in rows:
                new_operator = (
                    operator if operator is None or is_pseudonym(operator) else operator_key(operator, self.secret)
                )
                new_turns, new_comment = remask_turns(turns), mask_text(comment)
                counts["operator_ids"] += new_operator != operator
                counts["feedback_masked"] += (new_turns, new_comment) != (turns, comment)
                if (new_operator, new_turns, new_comment) != (operator, turns, comment):
                    self._exec(
                        cur,
                        "UPDATE feedback SET operator_id = ?, turns = ?, comment = ? WHERE id = ?",
                        (new_operator, new_turns, new_comment, row_id),
                    )
            counts["feedback_rows"] += len(rows)
            last = rows[-1][0]
        last = ""
        while rows := self._exec(
            cur,
            "SELECT interaction_id, turns FROM interactions WHERE interaction_id > ? ORDER BY interaction_id LIMIT ?",
            (last, _UPGRADE_BATCH),
        ).fetchall():
            for interaction_id, turns in rows:
                new_turns = remask_turns(turns)
                if new_turns != turns:
                    counts["interactions_masked"] += 1
                    self._exec(
                        cur, "UPDATE interactions SET turns = ? WHERE interaction_id = ?", (new_turns, interaction_id)
                    )
            counts["interaction_rows"] += len(rows)
            last = rows[-1][0]
        self._exec(
            cur,
            "INSERT INTO meta (key, value) VALUES ('privacy_version', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(PRIVACY_VERSION),),
        )
        return counts

    # -- feedback --
    def add_feedback(self, fb: Feedback, *, now: float) -> int:
        """Store one feedback row (masked). Without turns it keeps the remembered interaction's turns,
        so the export does not depend on how long interactions are remembered."""
        row = (
            iso_time(now),
            fb.interaction_id,
            fb.model_version,
            fb.task,
            fb.suggested,
            fb.chosen,
            int(fb.accepted),
            operator_key(fb.operator_id, self.secret),
            self.client_key(fb.client_id),
            fb.channel,
            fb.confidence,
            mask_turns(fb.turns),
            fb.interaction_id,
            mask_text(fb.comment),
        )

        def work(cur: Cursor) -> int:
            self._exec(
                cur,
                "INSERT INTO feedback (created_at, interaction_id, model_version, task, suggested, chosen, accepted,"
                " operator_id, client_key, channel, confidence, turns, comment)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " COALESCE(?, (SELECT turns FROM interactions WHERE interaction_id = ?)), ?) RETURNING id",
                row,
            )
            return int(self._one(cur)[0])

        return self._run(work)

    def set_status(self, interaction_id: str, status: str) -> None:
        """Mark an interaction ``open`` or ``closed`` (a closed one is no duplicate's original)."""
        self._run(
            lambda cur: self._exec(
                cur, "UPDATE interactions SET status = ? WHERE interaction_id = ?", (status, interaction_id)
            )
        )

    def stats(self, *, model_version: str | None = None) -> Stats:
        """Acceptance counts and rates: overall, per model version, per task, per task and label."""
        where, params = ("WHERE model_version = ?", (model_version,)) if model_version else ("", ())

        def grouped(cur: Cursor, keys: str) -> list[Row]:
            sql = f"SELECT {keys}, COUNT(*), SUM(accepted) FROM feedback {where} GROUP BY {keys} ORDER BY {keys}"
            return list(self._exec(cur, sql, params).fetchall())

        def work(cur: Cursor) -> tuple[Row, list[Row], list[Row], list[Row]]:
            overall = self._one(self._exec(cur, f"SELECT COUNT(*), SUM(accepted) FROM feedback {where}", params))
            return overall, grouped(cur, "model_version"), grouped(cur, "task"), grouped(cur, "task, suggested")

        (total, accepted), versions, tasks, labels = self._run(work)

        def rate(n: int, k: int | None) -> Rate:  # SUM is NULL over no rows
            n, k = int(n), int(k or 0)
            return {"total": n, "accepted": k, "acceptance_rate": round(k / n, 4) if n else None}

        return {
            **rate(total or 0, accepted),
            "by_model_version": [{"model_version": v, **rate(n, k)} for v, n, k in versions],
            "by_task": [{"task": t, **rate(n, k)} for t, n, k in tasks],
            "by_label": [{"task": t, "label": s, **rate(n, k)} for t, s, n, k in labels],
        }

    def feedback_for(self, interaction_ids: Sequence[str], *, model_version: str | None = None) -> list[Row]:
        """The feedback rows of these interactions with their remembered turns and channel, by interaction
        (columns: interaction_id, task, suggested, chosen, accepted, turns, channel, client_key, created_at,
        the interaction's turns and channel)."""
        if not interaction_ids:
            return []
        marks = ", ".join("?" for _ in interaction_ids)
        sql = (
            "SELECT f.interaction_id, f.task, f.suggested, f.chosen, f.accepted, f.turns, f.channel,"
            " f.client_key, f.created_at, i.turns, i.channel FROM feedback f"
            " LEFT JOIN interactions i ON i.interaction_id = f.interaction_id"
            f" WHERE f.interaction_id IN ({marks})"
        )
        params: list[object] = list(interaction_ids)
        if model_version:
            sql += " AND f.model_version = ?"
            params.append(model_version)
        return self._run(lambda cur: list(self._exec(cur, sql + " ORDER BY f.interaction_id, f.id", params).fetchall()))

    def interaction_ids_after(self, after: str, limit: int) -> list[str]:
        """At most ``limit`` interaction ids with feedback that sort after ``after``, in order (a page)."""
        sql = "SELECT DISTINCT interaction_id FROM feedback WHERE interaction_id > ? ORDER BY interaction_id LIMIT ?"
        return self._run(lambda cur: [str(r[0]) for r in self._exec(cur, sql, (after, limit)).fetchall()])

    # -- recent interactions (duplicate check) --
    def remember(
        self,
        interaction_id: str,
        *,
        client_id: str | None,
        channel: str,
        problem_task: str | None,
        problem_label: str | None,
        turns: Sequence[Mapping[str, str]] | None,
        now: float,
    ) -> Remembered:
        """Insert or refresh an interaction (first_seen kept, the problem and turns updated)."""

        def work(cur: Cursor) -> Row:
            self._exec(
                cur,
                "INSERT INTO interactions (interaction_id, client_key, channel, problem_task, problem_label,"
                " first_seen, last_seen, status, turns) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?)"
                " ON CONFLICT (interaction_id) DO UPDATE SET"
                " client_key = COALESCE(excluded.client_key, interactions.client_key),"
                " channel = excluded.channel,"
                " problem_task = COALESCE(excluded.problem_task, interactions.problem_task),"
                " problem_label = COALESCE(excluded.problem_label, interactions.problem_label),"
                " last_seen = excluded.last_seen, turns = COALESCE(excluded.turns, interactions.turns)",
                (
                    interaction_id,
                    self.client_key(client_id),
                    channel,
                    problem_task,
                    problem_label,
                    now,
                    now,
                    mask_turns(turns),
                ),
            )
            return self._one(
                self._exec(
                    cur,
                    "SELECT interaction_id, channel, problem_task, problem_label, first_seen, status FROM interactions"
                    " WHERE interaction_id = ?",
                    (interaction_id,),
                )
            )

        return Remembered(*self._run(work))

    def prune_interactions(self, *, before: float) -> int:
        """Forget interactions last seen before ``before`` (they can no longer be duplicated)."""
        return self._run(
            lambda cur: self._exec(cur, "DELETE FROM interactions WHERE last_seen < ?", (before,)).rowcount
        )

    def find_open_duplicate(self, this: Remembered, *, client_id: str, since: float) -> Remembered | None:
        """The latest open interaction of the same client, channel and problem that began before ``this``."""
        row = self._run(
            lambda cur: self._exec(
                cur,
                "SELECT interaction_id, channel, problem_task, problem_label, first_seen, status FROM interactions"
                " WHERE client_key IN (?, ?) AND channel = ? AND problem_task = ? AND problem_label = ?"
                " AND status = 'open' AND interaction_id <> ? AND first_seen < ? AND last_seen >= ?"
                " ORDER BY first_seen DESC LIMIT 1",
                (
                    self.client_key(client_id),
                    legacy_client_key(client_id),
                    this.channel,
                    this.problem_task,
                    this.problem_label,
                    this.interaction_id,
                    this.first_seen,
                    since,
                ),
            ).fetchone()
        )
        return None if row is None else Remembered(*row)


def _journal_wal(conn: sqlite3.Connection) -> object:
    """Switch the file to WAL and return the journal mode it is in. Several processes opening a new file at
    once can see "database is locked" here even with a busy timeout (SQLite does not wait for the switch),
    so the switch is retried for up to 10 s."""
    for attempt in range(100):
        try:
            return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


class SQLiteStore(Store):
    """One connection in WAL mode behind a lock (several processes may share the file)."""

    def __init__(self, path: str | Path, *, secret: bytes | None = None) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            mode = _journal_wal(self._conn)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the feedback database {self.path}: {exc}; set PODSKAZKA_FEEDBACK_DB to a writable path"
            ) from exc
        self.journal_mode = str(mode).lower()
        self.secret = secret if secret is not None else local_secret(self.path.parent / SECRET_FILE)
        self._lock = threading.Lock()
        self._create_schema()

    def _run(self, work: Callable[[Cursor], T]) -> T:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                result = work(cur)
                cur.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                self._rollback()
                log.exception("feedback store (sqlite) failed")
                raise StoreError("the feedback store failed to write or read; retry later") from exc
            except BaseException:  # any other failure too: the one connection must not stay in the transaction
                self._rollback()
                raise
            finally:
                cur.close()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


class PostgresStore(Store):
    """A small pool of psycopg connections; each unit of work is one transaction."""

    placeholder = "%s"
    primary_key = "BIGSERIAL PRIMARY KEY"

    def __init__(self, url: str, *, pool_size: int = 4, secret: bytes | None = None) -> None:
        self.secret = secret if secret is not None else local_secret(Path("var") / SECRET_FILE)
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                "PODSKAZKA_DATABASE_URL is set but psycopg is not installed; pip install 'podskazka[postgres]'"
            ) from exc
        self._error: type[psycopg.Error] = psycopg.Error
        self._url = url
        self._pool: queue.LifoQueue[Connection[Row]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._closed = False
        self._create_schema()

    def _lock_upgrade(self, cur: Cursor) -> None:
        """A transaction-level advisory lock: one process creates the schema and upgrades the rows, the others wait
        and then find the version written."""
        self._exec(cur, "SELECT pg_advisory_xact_lock(?)", (_UPGRADE_LOCK,))

    def _connect(self) -> Connection[Row]:
        import psycopg  # the postgres extra, found installed by __init__

        try:
            return psycopg.connect(self._url, autocommit=False, connect_timeout=10)
        except psycopg.Error as exc:
            log.exception("cannot connect to PostgreSQL")
            raise StoreError("cannot connect to the PostgreSQL feedback store; check PODSKAZKA_DATABASE_URL") from exc

    def _run(self, work: Callable[[Cursor], T]) -> T:
        with self._slots:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    result = work(cur)
            except self._error as exc:
                conn.close()
                log.exception("feedback store (postgres) failed")
                raise StoreError("the feedback store failed to write or read; retry later") from exc
            except BaseException:  # rolled back by the transaction block; not left open and unpooled
                conn.close()
                raise
            if self._closed or conn.closed:
                conn.close()
            else:
                self._pool.put(conn)
            return result

    def close(self) -> None:
        """Close the idle connections; those in use are closed when their work is done."""
        self._closed = True
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def open_store(settings: Settings) -> Store:
    """The store the settings ask for: PostgreSQL when ``database_url`` is set, else SQLite (WAL)."""
    secret = pii_secret(settings)
    if settings.database_url:
        return PostgresStore(settings.database_url, pool_size=settings.database_pool_size, secret=secret)
    return SQLiteStore(settings.feedback_db, secret=secret)


class StoreHolder:
    """Opens the store on first use (a service that never gets feedback creates no database)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        """The store, opened now if this is its first use (:class:`StoreError` when it cannot be)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.settings)
        return self._store

    def close(self) -> None:
        """Close the store if it was opened (the next :meth:`get` opens it again)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
