"""Prometheus metrics (``GET /metrics``, text format).

Series (every name starts with ``podskazka_``):

- ``http_requests_total{route,method,status}``, ``http_request_duration_seconds{route,method}``
  (histogram; ``route`` is the route template, ``unmatched`` for unknown paths), ``http_requests_in_flight``;
- ``queue_rejections_total``: model calls refused because every worker was busy and the queue full (503 busy);
- ``model_info{model_version,model_kind}`` = 1 for the served bundle, ``model_reloads_total{result}``
  (ok, failed), ``model_reload_failed`` = 1 while the last reload attempt failed, ``workers_ready``: the
  server processes with a model loaded (a worker still loading is not counted);
- ``prediction_confidence{task}`` (histogram of the top-1 confidence), ``decisions_total{task}`` and
  ``abstentions_total{task}`` (decisions without a label: abstention rate = their ratio),
  ``top_label_total{task,label}`` (the top-1 label: its mix over time shows drift).

Predictions are counted for ``/v1/suggest``, ``/v1/suggest/batch`` and the final turns of
``/v1/live`` (partials are not). With several server processes (``podskazka serve --workers N``)
``PROMETHEUS_MULTIPROC_DIR`` is set to a fresh folder and ``/metrics`` adds up every process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from model.predictor import Predictor
    from model.suggestion import Suggestion

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("podskazka_http_requests", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "podskazka_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge("podskazka_http_requests_in_flight", "HTTP requests being handled", multiprocess_mode="livesum")
QUEUE_REJECTIONS = Counter("podskazka_queue_rejections", "model calls refused: workers busy and queue full")
MODEL_INFO = Gauge(
    "podskazka_model_info",
    "the served model bundle (value 1)",
    ["model_version", "model_kind"],
    multiprocess_mode="livemax",
)
WORKERS_READY = Gauge("podskazka_workers_ready", "server processes with a model loaded", multiprocess_mode="livesum")
RELOADS = Counter("podskazka_model_reloads", "model reload attempts", ["result"])
RELOAD_FAILED = Gauge(
    "podskazka_model_reload_failed", "1 while the last reload attempt failed", multiprocess_mode="livemax"
)
CONFIDENCE = Histogram(
    "podskazka_prediction_confidence",
    "top-1 confidence per task",
    ["task"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
DECISIONS = Counter("podskazka_decisions", "decisions made per task (abstentions included)", ["task"])
ABSTENTIONS = Counter("podskazka_abstentions", "decisions without a label per task", ["task"])
TOP_LABELS = Counter("podskazka_top_label", "top-1 label per task", ["task", "label"])

_served: tuple[str, str] | None = None


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered HTTP request and its latency."""
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)


def rejected() -> None:
    """Count one model call refused because the pool was full."""
    QUEUE_REJECTIONS.inc()


def observe_result(result: Suggestion, tasks: Iterable[str]) -> None:
    """Count one prediction (a ``Predictor.predict`` result) for ``tasks``."""
    for task in tasks:
        ranked = result.predictions.get(task)
        if ranked:
            CONFIDENCE.labels(task).observe(ranked[0].confidence)
            TOP_LABELS.labels(task, ranked[0].label).inc()
        decision = result.decisions.get(task)
        if decision is not None:
            DECISIONS.labels(task).inc()
            if decision.label is None:
                ABSTENTIONS.labels(task).inc()


def model_served(predictor: Predictor | None) -> None:
    """Mark ``predictor`` as the served model (the previous one goes to 0)."""
    global _served
    if predictor is None:
        return
    current = (predictor.model_version, predictor.bundle.manifest.model_kind)
    if _served is not None and _served != current:
        MODEL_INFO.labels(*_served).set(0)
    MODEL_INFO.labels(*current).set(1)
    WORKERS_READY.set(1)
    _served = current


def reload_result(ok: bool) -> None:
    """Count one reload attempt; the failure gauge follows the last one."""
    RELOADS.labels("ok" if ok else "failed").inc()
    RELOAD_FAILED.set(0 if ok else 1)


def multiprocess() -> bool:
    """Whether several server processes share their metrics (``PROMETHEUS_MULTIPROC_DIR`` is set)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The exposition text of this process, or of every process in multiprocess mode."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_exit() -> None:
    """At a worker's shutdown: drop its live gauges (in-flight, model info) from the shared folder."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(os.getpid())
