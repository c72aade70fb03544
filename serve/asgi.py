"""ASGI entry for process managers: ``uvicorn serve.asgi:app`` (settings from PODSKAZKA_* variables)."""

from serve.main import create_app

app = create_app()
