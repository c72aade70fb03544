"""Podskazka's inference library: taxonomy, normalisation, classifiers, bundles, Predictor.

Imports neither the web framework nor the training code.
"""

__version__ = "0.1.0"
