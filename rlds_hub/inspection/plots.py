"""Pictures of a dataset: per-episode returns (terminated and truncated episodes marked
apart) and the distribution of episode lengths, for every split."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rlds_hub.extras import require
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.episodes import LAYOUT_OXE, dataset_layout, episode_table
from rlds_hub.storage.names import as_dataset


def plot_episodes(path: str | os.PathLike | RLDSDataset, out_png: str | os.PathLike) -> None:
    """Writes a PNG with each split's episode returns (in recording order) and lengths.

    Works on any RLDS dataset: the rows come from ``episodes.jsonl`` or from the records.

    Raises:
      ValueError: the dataset has no episodes.
    """
    plt = require("matplotlib.pyplot", "plots", "plotting episodes")

    fig = episode_figure(path)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def episode_figure(path: str | os.PathLike | RLDSDataset) -> Any:
    """The figure :func:`plot_episodes` writes (a matplotlib ``Figure``; close it)."""
    matplotlib = require("matplotlib", "plots", "plotting episodes")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    dataset = as_dataset(path, "plot_episodes()", selection=False)
    names = [s for s in sorted(dataset.splits) if dataset.splits[s].num_episodes]
    if not names:
        raise ValueError(f"{dataset.path} has no episodes to plot")
    plt.close("all")
    tables = {split: episode_table(dataset, split) for split in names}
    fig, (ax_return, ax_length) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    has_returns = False
    notes = []
    for k, split in enumerate(names):
        rows = tables[split]
        color = colors[k % len(colors)]
        returns = np.array([np.nan if r["return"] is None else r["return"] for r in rows])
        if all(r["return"] is None for r in rows):
            continue
        has_returns = True
        episode = np.arange(len(rows))
        finite = np.isfinite(returns)
        terminated = np.array([r["terminated"] for r in rows], dtype=bool)
        ax_return.plot(episode[finite], returns[finite], "-", color=color, alpha=0.35, lw=1)
        for mask, marker, what in (
            (terminated, "x", "terminated"),
            (~terminated, "o", "truncated"),
        ):
            shown = mask & finite
            if shown.any():
                ax_return.plot(
                    episode[shown],
                    returns[shown],
                    marker,
                    color=color,
                    ms=5,
                    mfc="none" if marker == "o" else color,
                    ls="none",
                    label=f"{split}: {what} ({int(shown.sum())})",
                )
        if (~finite).any():
            notes.append(f"{split}: {int((~finite).sum())} non-finite return(s) not drawn")
    if has_returns:
        ax_return.set(title="episode return", xlabel="episode (recording order)", ylabel="return")
        ax_return.legend(fontsize=8)
    else:
        ax_return.text(
            0.5,
            0.5,
            "no scalar reward: no returns",
            ha="center",
            va="center",
            transform=ax_return.transAxes,
        )
        ax_return.set(title="episode return")
    ax_return.xaxis.set_major_locator(MaxNLocator(integer=True))
    if notes:
        ax_return.text(
            0.01,
            0.01,
            "; ".join(notes),
            transform=ax_return.transAxes,
            fontsize=8,
            color="crimson",
            va="bottom",
        )

    lengths = [np.array([r["num_steps"] for r in tables[s]]) for s in names]
    low = int(min(x.min() for x in lengths))
    high = int(max(x.max() for x in lengths))
    if high - low < 40:  # one bar per length, centred on it
        edges = np.arange(low, high + 2) - 0.5
    else:
        edges = np.unique(np.linspace(low, high + 1, 31).round())
    ax_length.hist(
        lengths, bins=edges, label=names, color=colors[: len(names)], histtype="bar", rwidth=0.9
    )  # side by side per bin, not overlapping
    unit = "RLDS steps" if dataset_layout(dataset) == LAYOUT_OXE else "RLDS steps = transitions + 1"
    ax_length.set(title="episode length", xlabel=f"length ({unit})", ylabel="episodes")
    ax_length.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_length.yaxis.set_major_locator(MaxNLocator(integer=True))
    if high - low < 40:
        ax_length.set_xlim(low - 1, high + 1)
    ax_length.legend(fontsize=8)
    for ax in (ax_return, ax_length):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{dataset.name}: {_provenance(dataset)}", fontsize=10)
    fig.tight_layout()
    return fig


def _provenance(dataset: RLDSDataset) -> str:
    """Every session's environment and policy, e.g. "dm_control/x (expert, random)"."""
    meta = dataset.dataset_metadata
    by_env: dict[str, list[str]] = {}
    for session, env in zip(meta.sessions or (), meta.session_envs, strict=True):
        policies = by_env.setdefault(env or "?", [])
        policy = session.policy or "?"
        if policy not in policies:
            policies.append(policy)
    if not by_env:
        return meta.env_name or "episodes"
    return "; ".join(f"{env} (policy {', '.join(p)})" for env, p in by_env.items())
