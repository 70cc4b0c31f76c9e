"""What every benchmark shares: the workload, the machine line, isolated child runs, best-of
timing and the tables.

- The workload (the peers' measurement workload): :class:`StateEnv`, 17-d float32
  observations, 6-d float32 actions in [-1, 1], 1000-step episodes (an 84x84x3 uint8 image
  variant for recording); :func:`gym_state_env` is the same for Gymnasium (Minari);
  :func:`record_dataset` records it with rlds_hub's Recorder (``rlds_hub.testing.record``);
  :func:`drive` plays it through any dm_env wrapper (envlogger's).
- :func:`machine_line`: date, CPU, cores, load, Python and package versions, and how many
  other processes were busy, for the top of every report.
- :func:`run_isolated`: one scheme for measuring in a fresh process — ``module:function`` is
  called with a JSON config in a new interpreter (``python -m benchmarks.harness --child``)
  and its result comes back as JSON on stdout; ``tree=`` runs it against another checkout's
  ``rlds_hub`` (that tree on ``PYTHONPATH``; this process's ``sys.path`` is never touched).
- :func:`best_of`, :func:`spread`, :func:`si`, :func:`table` and :func:`ratio_table`.

Run benchmarks as modules from the repository root: ``python -m benchmarks.<name>``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dm_env
import numpy as np
from dm_env import specs

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

# ---- the workload --------------------------------------------------------------------------

OBS, ACT, EPISODE_STEPS = 17, 6, 1000
IMAGE_SHAPE = (84, 84, 3)


def frames() -> Callable[[int], np.ndarray]:
    """Rendered-looking frames (gradients and a moving square): PNG compresses them like real
    renders, not like incompressible noise."""
    yy, xx = np.mgrid[0 : IMAGE_SHAPE[0], 0 : IMAGE_SHAPE[1]]
    base = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).astype(np.uint8)

    def frame(t: int) -> np.ndarray:
        out = base.copy()
        x = (t * 3) % (IMAGE_SHAPE[1] - 10)
        out[30:40, x : x + 10] = (255, 40, 40)
        return out

    return frame


class StateEnv(dm_env.Environment):
    """The workload as a dm_env: standard-normal 17-d float32 observations (or 84x84x3 frames
    with ``image=True``), 6-d float32 actions in [-1, 1], reward 1.0, each episode truncated
    after ``episode_steps`` steps."""

    def __init__(
        self, *, episode_steps: int = EPISODE_STEPS, image: bool = False, seed: int = 0
    ) -> None:
        self._rng = np.random.default_rng(seed)
        self._frame = frames() if image else None
        self._episode_steps = episode_steps
        self._t = 0

    def _observation(self) -> np.ndarray:
        if self._frame is not None:
            return self._frame(self._t)
        return self._rng.standard_normal(OBS).astype(np.float32)

    def reset(self) -> dm_env.TimeStep:
        self._t = 0
        return dm_env.restart(self._observation())

    def step(self, action: Any) -> dm_env.TimeStep:
        self._t += 1
        if self._t >= self._episode_steps:
            return dm_env.truncation(1.0, self._observation())
        return dm_env.transition(1.0, self._observation())

    def observation_spec(self) -> specs.Array:
        if self._frame is not None:
            return specs.Array(IMAGE_SHAPE, np.uint8, "pixels")
        return specs.Array((OBS,), np.float32, "observation")

    def action_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((ACT,), np.float32, -1.0, 1.0, "action")


def gym_state_env(*, episode_steps: int = EPISODE_STEPS, image: bool = False, seed: int = 0) -> Any:
    """The workload as a Gymnasium environment (for Minari's DataCollector)."""
    import gymnasium as gym

    rng = np.random.default_rng(seed)
    frame = frames() if image else None

    class GymStateEnv(gym.Env):
        observation_space = (
            gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)
            if image
            else gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        )
        action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)

        def _observation(self) -> np.ndarray:
            return frame(self.t) if frame else rng.standard_normal(OBS).astype(np.float32)

        def reset(self, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
            super().reset(seed=seed)
            self.t = 0
            return self._observation(), {}

        def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
            self.t += 1
            return self._observation(), 1.0, False, self.t >= episode_steps, {}

    return GymStateEnv()


def random_action(rng: np.random.Generator) -> np.ndarray:
    """A uniform random action of the workload."""
    return rng.uniform(-1, 1, ACT).astype(np.float32)


def drive(env: Any, episodes: int, seed: int = 1) -> int:
    """Plays ``episodes`` episodes of a dm_env-like ``env`` with random actions; the steps."""
    rng, steps = np.random.default_rng(seed), 0
    for _ in range(episodes):
        timestep = env.reset()
        while not timestep.last():
            timestep = env.step(random_action(rng))
            steps += 1
    return steps


def record_dataset(
    path: str | os.PathLike, episodes: int, *, episode_steps: int = EPISODE_STEPS, **options: Any
) -> str:
    """Records the workload (random actions) with rlds_hub's Recorder, through
    ``rlds_hub.testing.record``, into ``path`` once: kept and reused; a recording cut short is
    never reused (it is written next to ``path`` and renamed). ``options``: the Recorder's."""
    from rlds_hub.testing import record

    path = os.fspath(path)
    if os.path.exists(os.path.join(path, "dataset_info.json")):
        return path
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    rng = np.random.default_rng(1)
    env = StateEnv(episode_steps=episode_steps)
    record(env, partial, episodes=episodes, policy=lambda _: random_action(rng), **options)
    os.replace(partial, path)
    return path


def allow_envlogger_writes() -> None:
    """envlogger 1.2's encoder uses ``np.unicode_``, gone in NumPy 2 (peers' runs only)."""
    if "unicode_" not in np.__dict__:
        np.unicode_ = np.str_  # type: ignore[attr-defined]


# ---- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def busy_processes(interval: float = 0.5, threshold: float = 10.0) -> int:
    """How many other processes used more than ``threshold`` % of a core over ``interval`` s."""
    import psutil

    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    processes = [p for p in psutil.process_iter() if p.pid not in mine]
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    time.sleep(interval)
    busy = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            busy += process.cpu_percent(None) > threshold
    return busy


def machine(packages: Sequence[str] = ("numpy", "rlds_hub")) -> dict[str, Any]:
    """The facts of the machine line, as a dict."""
    found = {}
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return {
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": found,
    }


def machine_line(packages: Sequence[str] = ("numpy", "rlds_hub"), *, busy: bool = True) -> str:
    """One line for the top of a report: when, where, how loaded, which versions."""
    facts = machine(packages)
    versions = ", ".join(f"{k} {v}" for k, v in facts["versions"].items())
    load = "/".join(f"{x:.1f}" for x in facts["load"])
    line = (
        f"{facts['time']}; {facts['cpu']}, {facts['cores']} cores; load average {load}; "
        f"Python {facts['python']}; {versions}"
    )
    if busy:
        line += f"; {busy_processes()} other busy processes"
    return line


def load_average() -> str:
    """The 1-minute load average, for "at the start" / "at the end" notes."""
    return f"{os.getloadavg()[0]:.1f}"


# ---- isolated child runs -------------------------------------------------------------------

RESULT = "RESULT "


def run_isolated(
    target: str,
    config: Mapping[str, Any] | None = None,
    *,
    tree: str | os.PathLike | None = None,
    sample_memory: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Calls ``target`` (``"benchmarks.module:function"``) with ``config`` as keyword arguments
    in a fresh interpreter; returns its result (a JSON object), or ``{"error": ...}``.

    ``tree``: another checkout whose ``rlds_hub`` the child imports (that tree on the child's
    ``PYTHONPATH``, this ``benchmarks`` package linked into an otherwise empty working
    directory); a child that imported another ``rlds_hub`` (or none) is an error.
    ``sample_memory``: ``peak_tree_mib`` is the largest total resident size of the child's
    process tree (workers included), sampled every 0.1 s.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    workdir = None
    cwd = REPO_ROOT
    if tree is not None:
        tree = Path(tree).resolve()
        if not (tree / "rlds_hub" / "__init__.py").exists():
            raise ValueError(f"{tree} has no rlds_hub/__init__.py: pass a checkout of rlds_hub")
        workdir = Path(tempfile.mkdtemp(prefix="rlds_bench_child_"))
        (workdir / "benchmarks").symlink_to(PACKAGE_DIR, target_is_directory=True)
        cwd, env["PYTHONPATH"] = workdir, str(tree)
    command = [sys.executable, "-m", "benchmarks.harness", "--child", target]
    command.append(json.dumps(dict(config or {})))
    try:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        with _peak_tree_memory(process.pid, sample_memory) as peak:
            try:
                out, err = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                return {"error": f"{target} ran past {timeout} s"}
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    lines = [line for line in out.splitlines() if line.startswith(RESULT)]
    if process.returncode or not lines:
        last = (err.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{target} exited with {process.returncode}: {last}"}
    answer = json.loads(lines[-1][len(RESULT) :])
    result, imported = answer["result"], answer["rlds_hub"]
    if tree is not None and (imported is None or Path(imported).parent != tree):
        return {"error": f"the child imported rlds_hub from {imported}, not from {tree}"}
    if sample_memory:
        # The child's own peak (getrusage) is the floor: a child that ends between two samples
        # would otherwise report 0.
        result["peak_tree_mib"] = max(peak[0], answer.get("maxrss_kib", 0) * 1024) / 2**20
    return result


@contextlib.contextmanager
def _peak_tree_memory(pid: int, enabled: bool) -> Iterator[list[int]]:
    """Samples the total RSS of ``pid`` and its descendants until the block ends."""
    peak = [0]
    if not enabled:
        yield peak
        return
    import psutil

    stop = threading.Event()

    def sample() -> None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            while True:  # a first sample at once, then every 0.1 s
                total = 0
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
                peak[0] = max(peak[0], total)
                if stop.wait(0.1):
                    break

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def _child(target: str, config: str) -> None:
    """The child's side of :func:`run_isolated`: call, print the JSON result."""
    module, _, function = target.partition(":")
    if not function:
        raise SystemExit(f"--child takes module:function, not {target!r}")
    result = getattr(importlib.import_module(module), function)(**json.loads(config))
    if not isinstance(result, dict):
        raise SystemExit(f"{target} returned {type(result).__name__}, not a dict")
    package = sys.modules.get("rlds_hub")
    imported = os.path.dirname(package.__file__ or "") if package else None
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    answer = {"result": result, "rlds_hub": imported, "maxrss_kib": maxrss_kib}
    print(RESULT + json.dumps(answer), flush=True)


def which_rlds_hub() -> dict[str, Any]:
    """Imports rlds_hub (a child run reports where it came from): its version, this pid."""
    import rlds_hub

    return {"version": getattr(rlds_hub, "__version__", None), "pid": os.getpid()}


# ---- memory of this process ----------------------------------------------------------------


def reset_peak_rss() -> None:
    """Resets this process's peak resident size (VmHWM) to its current size (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def status_mib(field: str) -> float:
    """A field of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(f"/proc/self/status has no {field}")


# ---- timing and tables ---------------------------------------------------------------------


def best_of(function: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` calls of ``function``, in seconds."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def spread(values: Iterable[float]) -> tuple[float, float, float]:
    """(median, min, max) of the values."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return statistics.median(ordered), ordered[0], ordered[-1]


def si(value: float) -> str:
    """A rate for a table: 3.74M, 259k, 912."""
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    return f"{value:,.0f}"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio_table(
    values: Mapping[str, float],
    reference: str,
    *,
    what: str = "what",
    unit: str = "per second",
    fmt: Callable[[float], str] = si,
) -> str:
    """A Markdown table of ``values`` with each one's ratio to ``values[reference]``."""
    if reference not in values:
        raise KeyError(f"the reference row {reference!r} is not among {sorted(values)}")
    base = values[reference]
    rows = [(name, fmt(value), f"{value / base:.2f}") for name, value in values.items()]
    return table([what, unit, f"/ {reference}"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmarks' harness (child runs)")
    parser.add_argument("--child", nargs=2, metavar=("MODULE:FUNCTION", "CONFIG_JSON"))
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
    else:
        print(machine_line())


if __name__ == "__main__":
    main()
