#!/usr/bin/env bash
# LeRobot's own library in its own venv, to judge the LeRobot bridge (tests, benchmarks).
# lerobot 0.4.4 (the newest release for Python 3.11) pins torch < 2.11, which PyPI has only as a
# CUDA build of ~3 GB to download. This venv takes torch 2.14.1 and torchvision 0.29.1 from the
# machine's disk instead (pip's find-links; elsewhere they come from PyPI), torchcodec 0.14 (the
# release built for torch 2.14) from PyPI, then LeRobot without its dependencies and its other
# requirements exactly as it declares them: the torch, torchvision and torchcodec pins are the
# only ones overridden. tests/lerobot proves the bridge against this venv (22 tests pass).
# Usage: scripts/lerobot_venv.sh VENV [LEROBOT_SPEC]; LEROBOT_TORCH overrides the torch trio.
set -euo pipefail
VENV=${1:?usage: lerobot_venv.sh VENV [LEROBOT_SPEC]}
LEROBOT=${2:-lerobot==0.4.4}
TORCH=${LEROBOT_TORCH:-torch==2.14.1 torchvision==0.29.1 torchcodec==0.14.0}
PIP_OPTS=(--quiet --retries 10 --resume-retries 10)
export PYTHONWARNINGS=ignore

rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --retries 10 --upgrade pip
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" $TORCH
"$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" "packaging>=24.2,<26"
echo "lerobot_venv.sh: pip reports LeRobot's torch pins as conflicts below; they are overridden on purpose"
"$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" --no-deps "$LEROBOT"
"$VENV/bin/python" - "$VENV/requirements-lerobot.txt" <<'PY'
import sys
from importlib.metadata import requires
from packaging.requirements import Requirement

keep = []
for line in requires("lerobot") or []:
    req = Requirement(line)
    if req.marker is not None and "extra" in str(req.marker):
        continue
    if req.name in {"torch", "torchvision", "torchcodec"}:
        continue
    keep.append(line)
open(sys.argv[1], "w").write("\n".join(keep) + "\n")
PY
"$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" -r "$VENV/requirements-lerobot.txt"
"$VENV/bin/python" -c "from lerobot.datasets.lerobot_dataset import LeRobotDataset; import torch, torchcodec; print('lerobot venv: torch', torch.__version__)"
