"""``python -m pipelines.<job>`` from the repository root (a checkout): the same as
``python -m rlds_hub.pipelines.<job>``, which is what an installed rlds_hub provides (this
folder is not installed). Messages name ``pipelines.<job>``."""

from __future__ import annotations

from collections.abc import Sequence

from rlds_hub.pipelines import main as _main

__all__ = ["main"]


def main(job: str, argv: Sequence[str] | None = None) -> int:
    """Runs ``job`` as :func:`rlds_hub.pipelines.main` does, named ``pipelines.<job>``."""
    return _main(job, argv, prog=f"pipelines.{job}")
