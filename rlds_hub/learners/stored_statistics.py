"""The statistics a run normalises with: the stored ``statistics.json`` only while it still
describes the data.

``rlds-hub stats --save`` stores a split's statistics with the dataset. Episodes appended
afterwards make them stale: the stored episode count, step count or return sum no longer
match the split's episode table (read from ``episodes.jsonl``, without decoding a shard).
A stale entry is not used: the statistics are recomputed from the data and a note says so,
naming the command that refreshes the stored file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def stale_reason(saved: Mapping[str, Any], rows: list[dict[str, Any]]) -> str | None:
    """Why ``saved`` (one split's stored statistics) no longer describes a split whose
    episode table is ``rows``, or None when it still does."""
    steps = sum(int(r["num_steps"]) for r in rows)
    if saved.get("num_episodes") != len(rows):
        return f"it counts {saved.get('num_episodes')} episodes, the split holds {len(rows)}"
    if saved.get("num_steps") != steps:
        return f"it counts {saved.get('num_steps')} steps, the split holds {steps}"
    returns = [r.get("return") for r in rows]
    stored = (saved.get("returns") or {}).get("mean")
    finite = [float(r) for r in returns if isinstance(r, (int, float)) and math.isfinite(r)]
    if stored is not None and finite:
        mean = sum(finite) / len(finite)
        if not math.isclose(mean, float(stored), rel_tol=1e-6, abs_tol=1e-9):
            return f"its mean episode return is {float(stored):.6g}, the split's is {mean:.6g}"
    return None


def split_statistics(dataset: Any, split: str, *, note: Callable[[str], None]) -> dict[str, Any]:
    """A whole split's statistics: the stored ones when current, recomputed (with ``note``
    called once) when the stored ones are stale, computed when none are stored."""
    from rlds_hub.inspection import saved_statistics, statistics
    from rlds_hub.storage.episodes import episode_table

    saved = ((saved_statistics(dataset) or {}).get("splits") or {}).get(split)
    if saved is None:
        return statistics(dataset, split)
    reason = stale_reason(saved, episode_table(dataset, split))
    if reason is None:
        return saved
    note(
        f"{dataset.path}/statistics.json is stale for split {split!r} ({reason}): "
        "normalising with statistics recomputed from the data; run `rlds-hub stats "
        f"{dataset.path} --save` to refresh the stored file"
    )
    return statistics(dataset, split)
