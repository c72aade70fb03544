"""Podskazka's HTTP service (FastAPI). Imports the model library, never the training code."""
