"""Hot reload: each server process swaps its model when the registry pointer (or the bundle) changes.

:class:`Reloader` polls every ``reload_seconds`` (and on ``POST /v1/models/reload``) what it serves:
the bundle folder ``--model`` resolves to (a registry's ``ACTIVE`` pointer, serve/registry.py) and
that folder's manifest (a bundle rewritten in place by ``podskazka train --force`` is a change too).
On a change it loads and verifies the new bundle in a thread (never on the event loop), smoke-tests
it (:func:`smoke_test`), and only then replaces the service's ``predictor``: requests already running keep
the object they took, new ones get the new one, none is dropped. A bundle that fails is logged,
counted (``podskazka_model_reloads_total{result="failed"}``) and shown in ``/readyz`` and
``GET /v1/model``; the old model goes on serving and that target is not tried again until it changes.
With several worker processes each one does this by itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.errors import BundleError, PodskazkaError
from model.predictor import Predictor
from serve import metrics, registry

if TYPE_CHECKING:  # serve.deps imports this module
    from serve.deps import Service

log = logging.getLogger(__name__)

SMOKE = (
    {
        "channel": "call",
        "turns": [
            {"role": "operator", "text": "здравствуйте чем могу помочь"},
            {"role": "client", "text": "у меня вчера с баланса сняли сто рублей"},
        ],
    },
    {
        "channel": "chat",
        "turns": [
            {"role": "client", "text": "где мой заказ статус не меняется неделю"},
            {"role": "operator", "text": "создала запрос ответ придет в течение трех дней"},
        ],
    },
)


def smoke_test(predictor: Predictor) -> None:
    """Predict the built-in conversations: every task ranks every label with finite confidences that
    sum to 1; raises :class:`BundleError` otherwise."""
    results = predictor.predict(list(SMOKE), top_k=None, top_macros=3)
    if len(results) != len(SMOKE):
        raise BundleError(f"smoke test: {len(results)} results for {len(SMOKE)} conversations")
    for result in results:
        for task in predictor.tasks:
            ranked = result.predictions.get(task)
            if not ranked:
                raise BundleError(f"smoke test: no prediction for task {task!r}")
            values = [x.confidence for x in ranked]
            total = sum(values)
            if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values) or abs(total - 1.0) > 1e-3:
                raise BundleError(f"smoke test: task {task!r} confidences sum to {total:.6f}, not 1")
            if task not in result.decisions:
                raise BundleError(f"smoke test: no decision for task {task!r}")


def load_checked(path: Path) -> Predictor:
    """Load (verify every file against the manifest) and smoke-test the bundle at ``path``."""
    predictor = Predictor.load(path)
    smoke_test(predictor)
    return predictor


BundleKey = tuple[str, tuple[int, int, int] | None]
"""The bundle folder a source resolves to, and its manifest's (inode, mtime in ns, size), ``None`` when unreadable."""


def _key(source: Path) -> BundleKey:
    """What identifies the served bundle: the folder ``source`` resolves to and its manifest's identity."""
    target = registry.resolve(source)
    stamp: tuple[int, int, int] | None
    try:
        st = os.stat(Path(target) / "manifest.json")
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    return str(target), stamp


class Reloader:
    """Watches ``source`` (a bundle or a registry) for one app's :class:`~serve.deps.Service`; see the module doc."""

    def __init__(self, service: Service, source: Path, interval: float) -> None:
        self.service = service
        self.source = Path(source)
        self.interval = interval
        self.current: BundleKey | None = None  # the key of the served bundle
        self.failed: BundleKey | None = None  # the key that failed last (not retried until it changes)
        self.last_error: dict[str, Any] | None = None
        self.last_check: float | None = None
        self.loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def target(self) -> Path:
        """At start-up: the bundle folder to load now (remembered as the served one)."""
        key = _key(self.source)
        self.served(key)
        return Path(key[0])

    def served(self, key: BundleKey) -> None:
        """Remember ``key`` as the bundle being served (loaded now)."""
        self.current = key
        self.loaded_at = time.time()

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/model`` and ``/readyz`` show of the watcher: source, bundle, times, last error."""
        return {
            "source": str(self.source),
            "bundle": self.current[0] if self.current else None,
            "interval_seconds": self.interval,
            "loaded_at": self.loaded_at,
            "last_check": self.last_check,
            "last_error": self.last_error,
        }

    async def check(self, *, force: bool = False) -> dict[str, Any]:
        """Reload if the target changed (``force``: also retry a target that failed before). Returns
        ``{"changed", "model_version", "error"}``."""
        async with self._lock:
            self.last_check = time.time()
            try:
                key = await asyncio.to_thread(_key, self.source)
            except PodskazkaError as exc:
                return self._failure(None, exc)
            if key == self.current:  # (back to) what is served: an earlier failure no longer matters
                if self.last_error is not None:
                    self.failed, self.last_error = None, None
                    metrics.RELOAD_FAILED.set(0)
                return self._answer(False)
            if key == self.failed and not force:
                return self._answer(False)
            log.info("model change seen: loading %s", key[0], extra={"event": "reload_start", "bundle": key[0]})
            try:
                predictor = await asyncio.to_thread(load_checked, Path(key[0]))
            except Exception as exc:  # anything a bad bundle does must leave the old model serving
                return self._failure(key, exc)
            old = self.service.predictor
            self.service.predictor = predictor  # one reference swap: running requests keep the old one
            self.served(key)
            self.failed, self.last_error = None, None
            metrics.model_served(predictor)
            metrics.reload_result(True)
            log.info(
                "model reloaded: %s -> %s",
                old.model_version if old is not None else None,
                predictor.model_version,
                extra={"event": "reload_ok", "bundle": key[0], "model_version": predictor.model_version},
            )
            return self._answer(True)

    def _failure(self, key: BundleKey | None, exc: Exception) -> dict[str, Any]:
        self.failed = key
        message = exc.message if isinstance(exc, PodskazkaError) else f"{type(exc).__name__}: {exc}"
        self.last_error = {
            "bundle": key[0] if key else str(self.source),
            "message": message[:1000],
            "time": time.time(),
        }
        metrics.reload_result(False)
        log.error(
            "model reload refused, the old model keeps serving: %s",
            message[:1000],
            extra={"event": "reload_failed", "bundle": self.last_error["bundle"]},
        )
        return self._answer(False)

    def _answer(self, changed: bool) -> dict[str, Any]:
        predictor = self.service.predictor
        return {
            "changed": changed,
            "model_version": predictor.model_version if predictor is not None else None,
            "error": self.last_error,
        }

    def start(self) -> None:
        """Start polling every ``interval`` seconds (none when it is 0)."""
        if self.interval > 0:
            self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling and wait for the poller to end."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # the watcher must outlive any surprise
                log.exception("model watcher: check failed")
