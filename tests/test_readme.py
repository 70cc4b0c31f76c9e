"""Every Python and shell block of the README runs, in order, in one fresh directory (each
block on its own, as a reader pasting them would) — so the tour cannot rot. ``make`` lines (the set-up commands) are not run; a block preceded by
``<!-- readme-test: skip (reason) -->`` is not run either (a server that runs until Ctrl-C)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\s*)?```(python|sh)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return [(lang, body) for skip, lang, body in _BLOCK.findall(README.read_text()) if not skip]


def test_readme_has_runnable_blocks():
    kinds = [lang for lang, _ in _blocks()]
    assert kinds.count("python") >= 3 and kinds.count("sh") >= 2


def test_every_readme_block_runs(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MUJOCO_GL=os.environ.get("MUJOCO_GL", ""))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for number, (lang, body) in enumerate(_blocks()):
        if lang == "sh":
            lines = [
                line
                for line in body.splitlines()
                if line.strip() and not line.lstrip().startswith("make ")
            ]
            if not lines:
                continue
            command = ["bash", "-c", "set -euo pipefail\n" + "\n".join(lines)]
        else:  # each Python block is self-contained (its own imports), run in order
            command = [sys.executable, "-W", "ignore", "-c", body]
        result = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, (
            f"README {lang} block {number} failed:\n{body}\n{result.stderr[-3000:]}"
        )
