"""One exception family for the whole project.

Every error carries a short ``code`` (stable, for clients and logs) and a message that says what
was wrong and how to fix it. The HTTP layer maps these to its JSON error envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Detail = str | dict[str, Any]
"""One entry of an error's ``details``: a problem in words, or a structured one (``{"field", "problem", "type"}``)."""


class PodskazkaError(Exception):
    """Base class of every error the project raises on purpose."""

    code = "podskazka_error"

    def __init__(self, message: str, *, details: Sequence[Detail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])


class TaxonomyError(PodskazkaError):
    """The taxonomy file is missing, unreadable or inconsistent."""

    code = "taxonomy_invalid"


class InputError(PodskazkaError):
    """An interaction given for prediction is malformed."""

    code = "input_invalid"


class DataError(PodskazkaError):
    """Training or evaluation data cannot be used (unreadable file, bad rows, unknown labels)."""

    code = "data_invalid"


class BundleError(PodskazkaError):
    """A model bundle is missing, corrupted, tampered with or made by incompatible versions."""

    code = "bundle_invalid"


class ConfigError(PodskazkaError):
    """A training or service configuration value is invalid."""

    code = "config_invalid"


class NotFittedError(PodskazkaError):
    """A model was used before it was trained."""

    code = "not_fitted"
