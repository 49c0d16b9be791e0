"""Temporary re-export while tests move to ``bench.reference_features``."""

from bench.reference_features import reference_features

__all__ = ["reference_features"]
