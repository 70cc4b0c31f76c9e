"""Every Python and shell block of the README runs, in order, in one fresh directory (each
block on its own, as a reader pasting them would) — so the tour cannot rot. ``make`` lines (the
set-up commands) are not run; a block preceded by ``<!-- readme-test: skip (reason) -->`` is
not run either (a server that runs until Ctrl-C). The machinery is tests/doc_blocks.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import block_env, blocks, run_blocks

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_has_runnable_blocks():
    kinds = [lang for lang, _ in blocks(README)]
    assert kinds.count("python") >= 3 and kinds.count("sh") >= 2


@pytest.mark.slow
def test_every_readme_block_runs(tmp_path):
    run_blocks(README, tmp_path, block_env())
