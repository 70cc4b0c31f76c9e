"""TFDS dataset builders, built with ``tfds build builders/<name>`` in a checkout (they are
not installed with rlds_hub); from the repository root, ``python -m builders <name>`` prints a
builder's folder (see docs/pipelines.md)."""

from __future__ import annotations

from pathlib import Path

NAMES = ("dm_control_expert", "envlogger_logs", "minari_dataset")


def builder_dir(name: str) -> Path:
    """The folder of builder ``name`` (what ``tfds build`` takes).

    Raises:
      ValueError: an unknown name, listing the builders.
    """
    if name not in NAMES:
        raise ValueError(f"no builder {name!r}; the builders are {', '.join(NAMES)}")
    return Path(__file__).resolve().parent / name
