"""``python -m serve``: serve the HTTP API (``python -m serve --help``); the Docker image starts it so."""

from serve.cli import main

main()
