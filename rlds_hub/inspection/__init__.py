"""What the CLI and the service call to look at a dataset: ``info`` (summary),
``statistics`` (the one statistics implementation), ``validate`` (the RLDS contract, episode
by episode), and ``plot_episodes``. Everything here reads through :mod:`rlds_hub.storage`;
nothing imports TensorFlow unless asked to (``validate(..., tensorflow=True)``)."""

from rlds_hub.inspection.info import describe_features, format_summary, summarize
from rlds_hub.inspection.plots import plot_episodes
from rlds_hub.inspection.stats import (
    distribution,
    format_statistics,
    save_statistics,
    saved_statistics,
    split_statistics,
    statistics,
)
from rlds_hub.inspection.validate import Problem, Report, format_report, validate

__all__ = [
    "Problem",
    "Report",
    "describe_features",
    "distribution",
    "format_report",
    "format_statistics",
    "format_summary",
    "plot_episodes",
    "save_statistics",
    "saved_statistics",
    "split_statistics",
    "statistics",
    "summarize",
    "validate",
]
