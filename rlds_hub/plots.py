"""Pictures of a dataset: per-episode returns and lengths (from the episode index)."""

from __future__ import annotations

import os

import numpy as np

from rlds_hub.dataset import open_dataset


def plot_episodes(path: str | os.PathLike, out_png: str | os.PathLike) -> None:
    """Writes a PNG with each split's episode returns (in recording order) and lengths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataset = open_dataset(path)
    fig, (ax_return, ax_length) = plt.subplots(1, 2, figsize=(11, 4))
    plotted = False
    for split in sorted(dataset.splits):
        rows = dataset.episode_rows(split)
        if not rows:
            continue
        plotted = True
        returns = [r["return"] for r in rows if isinstance(r.get("return"), (int, float))]
        if returns:
            ax_return.plot(np.arange(len(returns)), returns, ".-", label=split, alpha=0.8)
        ax_length.hist([r["num_steps"] for r in rows], bins=30, alpha=0.6, label=split)
    if not plotted:
        plt.close(fig)
        raise ValueError(f"{path} has no episode index (episodes.jsonl) to plot")
    ax_return.set(title="episode return", xlabel="episode", ylabel="return")
    ax_length.set(title="episode length", xlabel="steps", ylabel="episodes")
    for ax in (ax_return, ax_length):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"{dataset.name} ({dataset.metadata.get('env_name', '')}, "
                 f"policy {dataset.metadata.get('policy')})")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
