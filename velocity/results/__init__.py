"""Results across sweeps: every run in polars frames (:func:`load`) and leaderboards over them
(:func:`leaderboard`)."""

from velocity.results.leaderboard import METRICS, Leaderboard, Metric, leaderboard
from velocity.results.load import Results, clean_fingerprint, find_sweeps, fingerprint, load

__all__ = ["METRICS", "Leaderboard", "Metric", "Results", "clean_fingerprint", "find_sweeps", "fingerprint", "leaderboard", "load"]
