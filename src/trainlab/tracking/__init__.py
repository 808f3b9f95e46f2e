"""Tracking: the narrow interface the loop talks to, and its MLflow implementation."""

from trainlab.tracking.base import NullTracker, Tracker

__all__ = ["NullTracker", "Tracker"]
