"""Metrics of a run as JSON lines (``metrics.jsonl``) and the learning-curve PNG.

Each line is one JSON object with ``step`` (the run's position, in the learner's unit; for
POIR offline updates, then online environment steps), ``kind`` (``train`` or ``eval``),
wall-clock ``time`` since the run started, the learner's counters (``updates``,
``env_steps``, ...), and the values. A resumed run first
drops the lines written after its checkpoint, so the file describes one history.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from rlds_hub.learners.run_dir import RunDirectory


class MetricsLog:
    """Appends metrics lines to ``<run_dir>/metrics.jsonl`` (flushed line by line)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = RunDirectory(os.fspath(run_dir)).metrics
        self._file = open(self.path, "a")  # noqa: SIM115 (kept open for the run)

    def write(self, record: Mapping[str, Any]) -> str:
        line = json.dumps(_clean(record), sort_keys=False)
        self._file.write(line + "\n")
        self._file.flush()
        return line

    def close(self) -> None:
        self._file.close()


# Keys older versions wrote, read under their current names.
RENAMED = {"env steps_per_s": "env_steps_per_s"}


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines of ``metrics.jsonl`` (older runs' keys under their current names)."""
    path = RunDirectory(os.fspath(run_dir)).metrics
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [_current_keys(json.loads(line)) for line in f if line.strip()]


def _current_keys(record: dict[str, Any]) -> dict[str, Any]:
    return {RENAMED.get(key, key): value for key, value in record.items()}


def truncate_after(run_dir: str | os.PathLike, step: int) -> None:
    """Keeps only the lines of steps up to ``step`` (a resume continues from there)."""
    records = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    path = RunDirectory(os.fspath(run_dir)).metrics
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


def _clean(value: Any) -> Any:
    """JSON-safe: NumPy/JAX scalars to Python numbers, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plot_learning_curve(
    records: Iterable[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    title: str,
    unit: str,
    references: Mapping[str, Any] | None = None,
) -> str:
    """Evaluation return (normalised when an expert reference exists) and training loss
    against the learner's step; writes a PNG and returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(records)
    evals = [r for r in records if r.get("kind") == "eval" and r.get("return") is not None]
    trains = [r for r in records if r.get("kind") == "train"]
    loss_key = next(
        (k for k in ("loss", "critic_loss", "bc_loss") if any(k in r for r in trains)), None
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    if evals:
        steps = [r["step"] for r in evals]
        ax.plot(steps, [r["return"] for r in evals], marker="o", label="policy")
        if references and references.get("expert") is not None:
            ax.axhline(
                references["expert"],
                color="tab:green",
                ls="--",
                label=f"expert ({references.get('expert_source')})",
            )
        if references and references.get("random") is not None:
            ax.axhline(references["random"], color="tab:red", ls=":", label="random")
        ax.legend(fontsize=8)
    ax.set_xlabel(unit)
    ax.set_ylabel("evaluation return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax = axes[1]
    if loss_key:
        points = [(r["step"], r[loss_key]) for r in trains if r.get(loss_key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), color="tab:purple")
            if all(v > 0 for _, v in points):
                ax.set_yscale("log")
        ax.set_ylabel(loss_key.replace("_", " "))
    ax.set_xlabel(unit)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)
