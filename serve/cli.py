"""Run the service with uvicorn (used by ``podskazka serve`` and ``python -m serve``).

With no API keys configured and a loopback host, a local dev key is made on the first run
(``var/dev-keys.json``, the key itself in ``var/dev-key.txt``); a non-loopback host needs keys
(``PODSKAZKA_API_KEYS_FILE``). ``--insecure-local`` serves without keys, on loopback only.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from model.errors import ConfigError
from serve.auth import ensure_dev_key, is_loopback
from serve.logs import logging_config, resolve_format
from serve.main import create_app
from serve.settings import Settings

log = logging.getLogger(__name__)


def access_settings(settings: Settings) -> Settings:
    """``settings`` with keys to serve with: as configured, or the loopback dev key (made once);
    refuses a non-loopback host without keys, and ``insecure_local`` off loopback."""
    if settings.insecure_local:
        if not is_loopback(settings.host):
            raise ConfigError(
                f"--insecure-local serves without keys and only on loopback, not on {settings.host!r}; "
                "bind 127.0.0.1, or configure keys (PODSKAZKA_API_KEYS_FILE)"
            )
        log.warning("serving WITHOUT API keys (--insecure-local): anyone on this machine can call every endpoint")
        return settings
    if settings.api_keys_file is not None or settings.api_keys:
        return settings
    if not is_loopback(settings.host):
        raise ConfigError(
            f"no API keys are configured and the host {settings.host!r} is not loopback; create keys "
            "with 'podskazka keys add --file keys.json --id NAME --role operator' and set "
            "PODSKAZKA_API_KEYS_FILE=keys.json"
        )
    key_path, key = ensure_dev_key(settings.dev_keys_file)
    if key is not None:
        print(
            f"podskazka: a local dev API key (role admin) was made; it is shown once here and kept in {key_path}:\n"
            f"  {key}\n  use it as 'Authorization: Bearer <key>' or paste it into the page's key field"
        )
    else:
        print(f"podskazka: the local dev API key (role admin) is in {key_path}")
    return settings.model_copy(update={"api_keys_file": settings.dev_keys_file})


def cpu_cores() -> int:
    """The CPU cores this process may use (its affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run(
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 0,
    insecure_local: bool = False,
    log_format: str | None = None,
) -> None:
    """Serve ``model_dir`` (a bundle, or a registry: its active bundle) on ``host:port`` with ``workers``
    processes (0: one per core; keys as :func:`access_settings` says). uvloop and httptools are used
    where installed. Logs: ``log_format`` json, text or auto (PODSKAZKA_LOG_FORMAT; auto: text on a
    terminal). Several workers share their Prometheus metrics through a fresh temporary folder."""
    workers = workers or cpu_cores()
    log_format = resolve_format(log_format or os.environ.get("PODSKAZKA_LOG_FORMAT") or "auto")
    log_config = logging_config(log_format)
    logging.config.dictConfig(log_config)
    given: dict[str, Any] = {"model_dir": model_dir, "host": host, "port": port}
    if insecure_local:  # otherwise PODSKAZKA_INSECURE_LOCAL still applies
        given["insecure_local"] = True
    settings = access_settings(Settings(**given))
    if workers > 1:
        os.environ["PODSKAZKA_MODEL_DIR"] = str(model_dir)
        os.environ["PODSKAZKA_HOST"] = host
        if settings.insecure_local:
            os.environ["PODSKAZKA_INSECURE_LOCAL"] = "true"
        if settings.api_keys_file is not None:
            os.environ["PODSKAZKA_API_KEYS_FILE"] = str(settings.api_keys_file)
        os.environ["PODSKAZKA_LOG_FORMAT"] = log_format
        metrics_dir = None
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # every worker writes its metrics there
            metrics_dir = tempfile.mkdtemp(prefix="podskazka-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            uvicorn.run(
                "serve.asgi:app", host=host, port=port, workers=workers, access_log=False, log_config=log_config
            )
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_config=log_config)


def main(argv: list[str] | None = None) -> None:
    """``python -m serve``: parse the command line and :func:`run`."""
    parser = argparse.ArgumentParser(prog="python -m serve", description="Serve the Podskazka HTTP API.")
    parser.add_argument("--model", type=Path, default=Settings().model_dir)
    parser.add_argument("--host", default=Settings().host)
    parser.add_argument("--port", type=int, default=Settings().port)
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("PODSKAZKA_WORKERS") or 0),
        help="server processes (0: one per CPU core; default PODSKAZKA_WORKERS)",
    )
    parser.add_argument("--insecure-local", action="store_true", help="no API keys; loopback hosts only")
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=None,
        help="log lines as JSON or text (default PODSKAZKA_LOG_FORMAT, else auto: text on a terminal)",
    )
    args = parser.parse_args(argv)
    run(args.model, args.host, args.port, args.workers, args.insecure_local, args.log_format)
