"""Run the service with uvicorn (used by ``podskazka serve`` and ``python -m serve``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from serve.main import create_app
from serve.settings import Settings


def run(model_dir: Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    settings = Settings(model_dir=model_dir, host=host, port=port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers > 1:
        import os

        os.environ["PODSKAZKA_MODEL_DIR"] = str(model_dir)
        uvicorn.run("serve.asgi:app", host=host, port=port, workers=workers)
    else:
        uvicorn.run(create_app(settings), host=host, port=port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve", description="Serve the Podskazka HTTP API.")
    parser.add_argument("--model", type=Path, default=Settings().model_dir)
    parser.add_argument("--host", default=Settings().host)
    parser.add_argument("--port", type=int, default=Settings().port)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    run(args.model, args.host, args.port, args.workers)
