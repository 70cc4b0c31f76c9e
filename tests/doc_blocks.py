"""Run a Markdown file's ``python``, ``sh`` and ``bash`` blocks as a reader pasting them would:
each block on its own (a Python block is self-contained, with its own imports), in order, in
one directory. ``make`` lines (the set-up commands) are not run; a block preceded by
``<!-- readme-test: skip (reason) -->`` is not run either (a server that runs until Ctrl-C,
a cloud runner the tests cannot have)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

_BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\s*)?```(python|sh|bash)\n(.*?)```", re.S)


def blocks(markdown: Path) -> list[tuple[str, str]]:
    """The (language, body) of every block of ``markdown`` that is not marked skip."""
    return [
        ("python" if lang == "python" else "sh", body)
        for skip, lang, body in _BLOCK.findall(markdown.read_text())
        if not skip
    ]


def block_env(**extra: str) -> dict[str, str]:
    """The environment the blocks run in: this interpreter's scripts on PATH, TF quiet."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MUJOCO_GL=os.environ.get("MUJOCO_GL", ""))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def _command(lang: str, body: str) -> list[str] | None:
    if lang == "python":
        return [sys.executable, "-W", "ignore", "-c", body]
    lines = [
        line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("make ")
    ]
    return ["bash", "-c", "set -euo pipefail\n" + "\n".join(lines)] if lines else None


def run_blocks(markdown: Path, cwd: Path, env: dict[str, str]) -> None:
    """Run every block of ``markdown`` in ``cwd``; fail naming the first block that fails."""
    for number, (lang, body) in enumerate(blocks(markdown)):
        command = _command(lang, body)
        if command is None:
            continue
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, (
            f"{markdown.name} {lang} block {number} failed:\n{body}\n{result.stderr[-3000:]}"
        )
