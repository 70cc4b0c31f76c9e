"""Camera frames: rlds_hub's loaders against the decode ceiling, tf.data (the OXE path) and
LeRobot's own loader, side by side in one run on all cores (issue 18).

Workload (``rlds_hub.testing.cameras``): an Open X-Embodiment-like dataset, ``--episodes`` of
``--steps`` steps with two 180x320x3 uint8 cameras, 7-d state and actions and an instruction
per episode, stored as PNG by rlds_hub's writer and as JPEG by TFDS's builder (written once,
kept under ``--data``). Every arm runs in a fresh process (``harness.run_isolated``, peak
memory of its process tree sampled) for ``--seconds`` after its first batch:

- ``ceiling``: the stored frame bytes (the first ``--ceiling-frames`` of each store, read
  into memory first) decoded by the fastest decoder here — libjpeg-turbo through simplejpeg
  for JPEG, Pillow for PNG — in a pool of all cores (threads and forked processes, the
  faster pool's median pass counts), no framework; frames/s;
- ``rlds_hub numpy`` / ``rlds_hub jax``: ``rlds_hub.data.steps`` shuffled batches of single
  steps (both cameras, state, action, instruction; JAX without the instruction: strings
  are not JAX arrays) and of windows (``--history`` 7: 8 frames per camera, ``--chunk`` 16
  actions, masks), shuffle buffer ``--shuffle-buffer`` episodes;
- ``tf.data``: plain TFDS + tf.data on the JPEG store as Octo loads OXE: episodes read with
  frames left encoded, windows gathered per episode, steps flattened and shuffled (a buffer
  of ``--shuffle-buffer`` episodes' steps), frames decoded in a parallel map, batched,
  prefetched;
- ``lerobot``: the first ``--lerobot-episodes`` episodes written by LeRobot's own writer as
  MP4 video (its default codec) and as images, read by ``LeRobotDataset`` (with
  ``delta_timestamps`` for windows) under a ``DataLoader`` with one worker per core
  (``benchmarks/lerobot_frames.py`` in ``.venv-lerobot``);
- ``copy ceiling`` (JPEG store): the same stored frames, decoded once beforehand, gathered
  into ``[batch, history + 1, H, W, 3]`` windows of random steps by ``np.take`` on one
  thread per core (each a slice of the batch), into reused memory: window frames copied/s,
  what the windows' ``[batch, 8, ...]`` output costs with nothing decoded;
- ``--threads-arms``: the NumPy arms again with frames decoded by threads
  (``$RLDS_HUB_DECODE_PROCESSES=0``) instead of the worker processes, same run;
- ``--frame-cache``: the NumPy arms again on the JPEG store through the column cache holding
  decoded frames (``$RLDS_HUB_FRAME_CACHE=1``; without the instruction, since a plan with
  strings is not cached): what training sees once the decode ceiling is out of the way. The
  cache is built once per run, before the rounds, by one epoch in its own process (the
  ``frame cache build`` arm: its seconds and size), and the arms then read it.

Ratios: rlds_hub's decoded frames/s (each step's frames are decoded once, however many
windows show them) to the ceiling's (target >= 0.8); for windows also the frames delivered
to the copy ceiling's, and decoded frames to the combined ceiling of decoding each frame
once and copying it into ``history + 1`` windows on the same cores
(``1 / (1 / decode + (history + 1) / copy)``); rlds_hub's samples/s to tf.data's (target
>= 2) and LeRobot's (target >= 3).

    python -m benchmarks.frames_throughput [--episodes 100] [--steps 200] [--seconds 30]
        [--lerobot-episodes 10] [--frame-cache] [--threads-arms] [--out frames_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

CAMERA_KEYS = ("steps/observation/image", "steps/observation/wrist_image")
# Every field but the instruction (JAX arms and the frame cache: strings are neither).
CACHED_KEYS = [
    *("observation", "action", "reward", "discount", "is_first", "is_last", "is_terminal")
]
LEROBOT_PYTHON_ENV = "RLDS_HUB_LEROBOT_PYTHON"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---- the ceiling -------------------------------------------------------------------------------

_BLOBS: list[bytes] = []  # the frames a forked pool decodes (inherited, never pickled)


def _frame_blobs(path: str, limit: int) -> list[bytes]:
    """The first ``limit`` stored camera frames of the dataset, as bytes (the format core's
    record walk; nothing decoded)."""
    from rlds_hub.format.decode import bytes_values, parse_features
    from rlds_hub.storage import open_dataset
    from rlds_hub.storage.query import select
    from rlds_hub.storage.reader import iter_records

    blobs: list[bytes] = []
    for record in iter_records(select(open_dataset(path), "train")):
        features = parse_features(memoryview(record.data))
        for key in CAMERA_KEYS:
            blobs += [bytes(b) for b in bytes_values(features[key][1])]
        if len(blobs) >= limit:
            break
    return blobs[:limit]


def _decode_one(blob: bytes) -> Any:
    import numpy as np

    if blob[:2] == b"\xff\xd8":
        import simplejpeg

        return simplejpeg.decode_jpeg(blob, colorspace="RGB", fastdct=True, fastupsample=False)
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def _decode_slice(bounds: tuple[int, int]) -> int:
    for blob in _BLOBS[bounds[0] : bounds[1]]:
        _decode_one(blob)
    return bounds[1] - bounds[0]


def ceiling(path: str, frames: int, workers: int, seconds: float) -> dict[str, Any]:
    """Frames/s of the fastest decoder on all cores: a thread pool and a forked process pool
    over the same in-memory frames, passes interleaved for about ``seconds``; the faster
    pool's median pass counts."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    global _BLOBS
    _BLOBS = _frame_blobs(path, frames)
    size = max(1, len(_BLOBS) // (8 * workers))
    slices = [(lo, min(lo + size, len(_BLOBS))) for lo in range(0, len(_BLOBS), size)]
    passes: dict[str, list[float]] = {"threads": [], "processes": []}
    with (
        ThreadPoolExecutor(workers) as threads,
        multiprocessing.get_context("fork").Pool(workers) as processes,
    ):
        pools = {"threads": threads.map, "processes": processes.map}
        for mapper in pools.values():
            list(mapper(_decode_slice, slices[: 2 * workers]))  # warm up
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for name, mapper in pools.items():  # interleaved: the load changes for both
                started = time.perf_counter()
                decoded = sum(mapper(_decode_slice, slices))
                passes[name].append(decoded / (time.perf_counter() - started))
    # the median pass of each pool (the machine's load changes during the run), the faster
    rates = {name: statistics.median(values) for name, values in passes.items()}
    best = max(rates, key=rates.get)
    return {
        "frames_per_s": rates[best],
        "pool": best,
        "rates": rates,
        "passes": passes,
        "frames": len(_BLOBS),
        "mean_frame_bytes": sum(map(len, _BLOBS)) / len(_BLOBS),
        "workers": workers,
    }


def copy_ceiling(
    path: str, frames: int, workers: int, seconds: float, history: int, batch: int
) -> dict[str, Any]:
    """Window frames/s of the fastest gather on all cores: the first ``frames`` stored frames,
    decoded once, gathered into ``[batch, history + 1, H, W, C]`` windows of random steps by
    ``np.take`` on ``workers`` threads (a slice of the batch each; NumPy releases the GIL in
    ``take``) into reused memory; the median of passes over about ``seconds``."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    decoded = np.stack([_decode_one(blob) for blob in _frame_blobs(path, frames)])
    size = history + 1
    rng = np.random.default_rng(0)
    indices = [
        rng.integers(0, len(decoded) - size + 1, batch)[:, None] + np.arange(size)
        for _ in range(16)
    ]
    out = np.empty((batch, size, *decoded.shape[1:]), decoded.dtype)
    step = -(-batch // workers)
    bounds = [(lo, min(lo + step, batch)) for lo in range(0, batch, step)]

    def gather(index: Any, lo: int, hi: int) -> None:
        np.take(decoded, index[lo:hi], axis=0, out=out[lo:hi], mode="clip")

    passes: list[float] = []
    with ThreadPoolExecutor(workers) as pool:
        for index in indices[:2]:  # warm up (first touch of ``out``)
            list(pool.map(lambda b, i=index: gather(i, *b), bounds))
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or not passes:
            started = time.perf_counter()
            for index in indices:
                list(pool.map(lambda b, i=index: gather(i, *b), bounds))
            elapsed = time.perf_counter() - started
            passes.append(len(indices) * batch * size / elapsed)
    rate = statistics.median(passes)
    return {
        "frames_per_s": rate,
        "pool": f"{workers} threads",
        "windows_per_s": rate / size,
        "gigabytes_per_s": rate * decoded[0].nbytes / 1e9,
        "passes": passes,
        "frames": len(decoded),
        "history": history,
        "workers": workers,
    }


# ---- rlds_hub ---------------------------------------------------------------------------------


def rlds_hub_loader(
    path: str,
    api: str,
    history: int,
    chunk: int,
    batch: int,
    shuffle_buffer: int,
    seconds: float,
    frame_cache: str | None = None,
    decode: str = "auto",
) -> dict[str, Any]:
    """Samples/s of ``rlds_hub.data.steps`` (NumPy batches, or JAX arrays on the device).

    ``frame_cache``: the column cache's directory with decoded frames
    (``$RLDS_HUB_FRAME_CACHE=1``, built by :func:`build_frame_cache`). ``decode``:
    ``$RLDS_HUB_DECODE_PROCESSES`` (``0``: frames decoded by threads)."""
    os.environ["RLDS_HUB_DECODE_PROCESSES"] = decode
    from rlds_hub import data

    keys = None
    if api == "jax" or frame_cache:  # strings cannot be JAX arrays, nor cached
        keys = CACHED_KEYS
    if frame_cache:
        os.environ.update(RLDS_HUB_FRAME_CACHE="1", RLDS_HUB_COLUMN_CACHE=frame_cache)
    loader = data.steps(
        path,
        batch_size=batch,
        history=history,
        action_chunk=chunk,
        shuffle_buffer=shuffle_buffer,
        episodes_per_chunk=max(1, shuffle_buffer // 2),
        num_epochs=None,
        keys=keys,
        drop_remainder=True,
    )
    if api == "jax":
        import jax

        batches = loader.as_jax_iterator()
        block = jax.block_until_ready
    else:
        batches, block = iter(loader), lambda b: b
    first = block(next(batches))
    shapes = {key: list(value.shape) for key, value in _flat(first).items() if "observation" in key}
    samples, started = 0, time.perf_counter()
    for item in batches:
        block(item)
        samples += batch
        if time.perf_counter() - started >= seconds:
            break
    return {"samples": samples, "seconds": time.perf_counter() - started, "shapes": shapes}


def build_frame_cache(path: str, frame_cache: str, batch: int) -> dict[str, Any]:
    """The column cache with decoded frames built from scratch in ``frame_cache`` by one
    epoch (the fields of the cache arms): its seconds and bytes."""
    import shutil

    os.environ.update(RLDS_HUB_FRAME_CACHE="1", RLDS_HUB_COLUMN_CACHE=frame_cache)
    from rlds_hub import data

    shutil.rmtree(frame_cache, ignore_errors=True)
    started = time.perf_counter()
    steps = 0
    for item in data.steps(path, batch_size=batch, keys=CACHED_KEYS, shuffle=False):
        steps += len(item["action"])
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in Path(frame_cache).rglob("*") if f.is_file())
    return {"seconds": seconds, "steps": steps, "cache_bytes": size, "directory": frame_cache}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else key
        out.update(_flat(value, name) if isinstance(value, dict) else {name: value})
    return out


# ---- tf.data (the OXE / Octo path) -------------------------------------------------------------


def tf_data_loader(
    path: str, history: int, chunk: int, batch: int, shuffle_steps: int, seconds: float
) -> dict[str, Any]:
    """Samples/s of plain TFDS + tf.data as Octo reads OXE: frames left encoded while
    episodes are windowed and flattened, shuffled, then decoded in a parallel map."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    skip = tfds.decode.SkipDecoding()
    builder = tfds.builder_from_directory(path)
    episodes = builder.as_dataset(
        split="train",
        shuffle_files=True,
        decoders={"steps": {"observation": {"image": skip, "wrist_image": skip}}},
    )
    autotune = tf.data.AUTOTUNE

    def windows(episode: dict[str, Any]) -> tf.data.Dataset:
        # the episode's steps as tensors (dlimp / Octo do the same)
        steps = episode["steps"].batch(1 << 30).get_single_element()
        length = tf.shape(steps["action"])[0]
        t = tf.range(length)[:, None]
        past = t + tf.range(-history, 1)[None, :]  # [T, H + 1], oldest first
        ahead = t + tf.range(chunk)[None, :]  # [T, C]
        if not history:  # single steps: no history axis
            past = past[:, 0]
        if chunk == 1:  # one action: no chunk axis
            ahead = ahead[:, 0]
        out = {
            "observation": {
                key: tf.gather(value, tf.maximum(past, 0))
                for key, value in steps["observation"].items()
            },
            "observation_mask": past >= 0,
            "action": tf.gather(steps["action"], tf.minimum(ahead, length - 1)),
            "action_mask": ahead < length,
            "language_instruction": steps["language_instruction"],
            "reward": steps["reward"],
            "is_first": steps["is_first"],
            "is_last": steps["is_last"],
        }
        out["action"] *= tf.cast(out["action_mask"], tf.float32)[..., None]
        return tf.data.Dataset.from_tensor_slices(out)

    def decode(step: dict[str, Any]) -> dict[str, Any]:
        for key in ("image", "wrist_image"):
            frames = step["observation"][key]
            step["observation"][key] = (
                tf.map_fn(_decode_jpeg, frames, fn_output_signature=tf.uint8)
                if history
                else _decode_jpeg(frames)
            )
        return step

    def _decode_jpeg(blob: Any) -> Any:
        return tf.io.decode_jpeg(blob, channels=3, dct_method="INTEGER_FAST")

    dataset = (
        episodes.repeat()
        .interleave(windows, cycle_length=4, num_parallel_calls=autotune, deterministic=False)
        .shuffle(shuffle_steps, seed=0)
        .map(decode, num_parallel_calls=autotune, deterministic=False)
        .batch(batch, drop_remainder=True, num_parallel_calls=autotune)
        .prefetch(autotune)
    )
    batches = dataset.as_numpy_iterator()
    first = next(batches)
    shapes = {key: list(value.shape) for key, value in first["observation"].items()}
    samples, started = 0, time.perf_counter()
    for _ in batches:
        samples += batch
        if time.perf_counter() - started >= seconds:
            break
    return {"samples": samples, "seconds": time.perf_counter() - started, "shapes": shapes}


# ---- LeRobot -------------------------------------------------------------------------------------


def lerobot_python() -> str:
    """LeRobot's interpreter: ``$RLDS_HUB_LEROBOT_PYTHON`` or the repository's venv."""
    configured = os.environ.get(LEROBOT_PYTHON_ENV)
    python = configured or str(harness.REPO_ROOT / ".venv-lerobot" / "bin" / "python")
    if not Path(python).exists():
        raise SystemExit(
            f"LeRobot's interpreter {python} does not exist: create .venv-lerobot (make "
            f"install) or set ${LEROBOT_PYTHON_ENV}, or run with --no-lerobot"
        )
    return python


def lerobot(command: str, **options: Any) -> dict[str, Any]:
    """benchmarks/lerobot_frames.py run with LeRobot's interpreter; its JSON result."""
    import subprocess

    script = harness.PACKAGE_DIR / "lerobot_frames.py"
    argv = [lerobot_python(), str(script), command]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": f"lerobot_frames.py {command} failed:\n{done.stderr[-3000:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the run --------------------------------------------------------------------------------------


def _workload(args: argparse.Namespace) -> dict[str, Any]:
    """The stores of ``--stores`` (PNG by rlds_hub's writer, JPEG by TFDS's builder), each
    written once under ``--data`` and reused when complete."""
    from rlds_hub.testing.cameras import CameraWorkload, write_camera_datasets

    workload = CameraWorkload(
        episodes=args.episodes, steps=args.steps, height=args.height, width=args.width
    )
    root = Path(args.data) / f"cameras_{args.episodes}x{args.steps}x{args.height}x{args.width}"
    stores: dict[str, Any] = {}
    for store in args.stores:
        target = root / store
        done = target / "complete.json"
        if not done.exists():
            partial = root / f"{store}.partial"
            for stale in (partial, target):
                if stale.exists():
                    import shutil

                    shutil.rmtree(stale)
            print(f"writing the {store} store ({workload.frames} frames) in {target}", flush=True)
            written = write_camera_datasets(
                partial, workload, png=store == "png", jpeg=store == "jpeg"
            )
            os.replace(partial, target)
            path = (written.png or written.jpeg or "").replace(str(partial), str(target))
            frame_bytes = written.png_frame_bytes if store == "png" else written.jpeg_frame_bytes
            info = {"path": path, "frame_bytes": frame_bytes, "seconds": written.seconds}
            done.write_text(json.dumps(info))
            print(f"  written in {written.seconds:.0f} s", flush=True)
        info = json.loads(done.read_text())
        stores[store] = info["path"]
        stores[f"{store}_frame_bytes"] = info["frame_bytes"]
    return stores


def _child(target: str, config: dict[str, Any], what: str) -> dict[str, Any]:
    print(f"  {what} ... ", end="", flush=True)
    result = harness.run_isolated(
        f"benchmarks.frames_throughput:{target}", config, sample_memory=True
    )
    result["config"] = config
    if "error" in result:
        print("FAILED", flush=True)
        print(result["error"][-2000:], file=sys.stderr)
        return result
    if "samples" in result:
        result["samples_per_s"] = result["samples"] / result["seconds"]
        print(f"{result['samples_per_s']:.0f} samples/s", end="", flush=True)
    elif "cache_bytes" in result:
        print(f"{result['seconds']:.1f} s, {result['cache_bytes'] / 1e9:.2f} GB", end="")
    else:
        print(f"{result['frames_per_s']:.0f} frames/s ({result['pool']})", end="", flush=True)
    print(f", peak {result['peak_tree_mib']:.0f} MiB, load {os.getloadavg()[0]:.2f}", flush=True)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": harness.machine(("numpy", "simplejpeg", "PIL", "tensorflow", "rlds_hub")),
        "load_at_start": harness.load_average(),
        "args": vars(args),
        "cameras": len(CAMERA_KEYS),
    }
    print(harness.machine_line(("numpy", "simplejpeg", "PIL", "tensorflow", "rlds_hub")))
    stores = _workload(args)
    report["stores"] = stores
    shapes = {"steps": (0, 1), "windows": (args.history, args.chunk)}
    builds = {}
    if args.frame_cache and "jpeg" in args.stores:  # once, before the rounds
        print("\nJPEG store: the decoded-frame cache, built from scratch", flush=True)
        builds["jpeg frame cache build"] = _child(
            "build_frame_cache",
            {"path": stores["jpeg"], "frame_cache": _cache_dir(args), "batch": args.batch},
            "frame cache build (one epoch)",
        )
    rounds: dict[str, list[dict[str, Any]]] = {}
    for number in range(args.rounds):  # interleaved: the machine's load changes
        if args.rounds > 1:
            print(f"\nround {number + 1} of {args.rounds}", flush=True)
        for name, result in _round(args, stores, shapes).items():
            rounds.setdefault(name, []).append(result)
    arms = {**builds, **{name: _median(results) for name, results in rounds.items()}}
    if args.lerobot_episodes:
        arms.update(_lerobot_arms(args, shapes))
    report["arms"] = arms
    report["load_at_end"] = harness.load_average()
    report["ratios"] = ratios(arms, len(CAMERA_KEYS))
    return report


def _cache_dir(args: argparse.Namespace) -> str:
    return str(Path(args.data) / "frame_cache")


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate, and every round's rate (``rounds``)."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return results[0]
    key = "samples_per_s" if "samples_per_s" in ok[0] else "frames_per_s"
    ordered = sorted(ok, key=lambda r: r[key])
    return {**ordered[(len(ordered) - 1) // 2], "rounds": [r[key] for r in ok]}


def _round(
    args: argparse.Namespace, stores: dict[str, Any], shapes: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    """One measurement of every arm but LeRobot's."""
    arms: dict[str, Any] = {}
    for store in args.stores:
        path = stores[store]
        print(f"\n{store.upper()} store: {path}", flush=True)
        arms[f"{store} ceiling"] = _child(
            "ceiling",
            {
                "path": path,
                "frames": args.ceiling_frames,
                "workers": args.workers,
                "seconds": args.seconds,
            },
            "ceiling",
        )
        if store == "jpeg":
            arms["jpeg copy ceiling"] = _child(
                "copy_ceiling",
                {
                    "path": path,
                    "frames": args.ceiling_frames,
                    "workers": args.workers,
                    "seconds": args.seconds,
                    "history": args.history,
                    "batch": args.batch,
                },
                "copy ceiling (windows of decoded frames)",
            )
        for kind, (history, chunk) in shapes.items():
            variants = [(api, "auto", "") for api in args.apis]
            if args.threads_arms:
                variants.append(("numpy", "0", " threads"))
            for api, decode, suffix in variants:
                arms[f"{store} rlds_hub {api} {kind}{suffix}"] = _child(
                    "rlds_hub_loader",
                    {
                        "path": path,
                        "api": api,
                        "history": history,
                        "chunk": chunk,
                        "batch": args.batch,
                        "shuffle_buffer": args.shuffle_buffer,
                        "seconds": args.seconds,
                        "decode": decode,
                    },
                    f"rlds_hub {api} {kind}{suffix}",
                )
            if args.frame_cache and store == "jpeg":
                arms[f"{store} rlds_hub numpy {kind} frame cache"] = _child(
                    "rlds_hub_loader",
                    {
                        "path": path,
                        "api": "numpy",
                        "history": history,
                        "chunk": chunk,
                        "batch": args.batch,
                        "shuffle_buffer": args.shuffle_buffer,
                        "seconds": args.seconds,
                        "frame_cache": _cache_dir(args),
                    },
                    f"rlds_hub numpy {kind}, frame cache",
                )
            if store == "jpeg" and args.tf_data:
                arms[f"jpeg tf.data {kind}"] = _child(
                    "tf_data_loader",
                    {
                        "path": path,
                        "history": history,
                        "chunk": chunk,
                        "batch": args.batch,
                        "shuffle_steps": args.shuffle_buffer * args.steps,
                        "seconds": args.seconds,
                    },
                    f"tf.data {kind}",
                )
    return arms


def _lerobot_arms(args: argparse.Namespace, shapes: dict[str, tuple[int, int]]) -> dict:
    arms = {}
    root = Path(args.data) / f"lerobot_{args.lerobot_episodes}x{args.steps}"
    for mode in ("video", "image"):
        target = root / mode
        print(f"\nLeRobot {mode}: {target}", flush=True)
        if not (target / "meta" / "info.json").exists():
            if target.exists():
                import shutil

                shutil.rmtree(target)
            print(f"  writing {args.lerobot_episodes} episodes with LeRobot ...", flush=True)
            written = lerobot(
                "write",
                root=target,
                mode=mode,
                episodes=args.lerobot_episodes,
                steps=args.steps,
                height=args.height,
                width=args.width,
            )
            if "error" in written:
                raise SystemExit(written["error"])
            (root / f"{mode}.json").write_text(json.dumps(written))
        for kind, (history, chunk) in shapes.items():
            arms[f"lerobot {mode} {kind}"] = _child(
                "lerobot_reader",
                {
                    "root": str(target),
                    "mode": mode,
                    "history": history,
                    "chunk": chunk,
                    "batch": args.batch,
                    "workers": args.workers,
                    "seconds": args.seconds,
                },
                f"lerobot {mode} {kind}",
            )
            written = root / f"{mode}.json"
            if written.exists():
                arms[f"lerobot {mode} {kind}"]["written"] = json.loads(written.read_text())
    return arms


def lerobot_reader(**options: Any) -> dict[str, Any]:
    """The LeRobot read arm (in a child, so its worker processes count in its peak memory)."""
    result = lerobot("read", **options)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def ratios(arms: dict[str, Any], cameras: int) -> dict[str, Any]:
    """Each target's figures: ours / the ceiling (decoded frames), ours / tf.data and ours /
    LeRobot (samples)."""

    def rate(name: str) -> float | None:
        arm = arms.get(name)
        return None if not arm or "error" in arm else arm.get("samples_per_s")

    out: dict[str, Any] = {}
    for store in ("jpeg", "png"):
        ceiling_arm = arms.get(f"{store} ceiling", {})
        ceiling_rate = ceiling_arm.get("frames_per_s")
        for kind in ("steps", "windows"):
            for arm in ("numpy", "jax", "numpy frame cache", "numpy threads"):
                api, _, rest = arm.partition(" ")
                variant = f"{kind} {rest}" if rest else kind
                ours = rate(f"{store} rlds_hub {api} {variant}")
                if ours is None or not ceiling_rate:
                    continue
                entry = {"decoded_frames_per_s": ours * cameras, "ceiling": ceiling_rate}
                entry["of_ceiling"] = ours * cameras / ceiling_rate
                config = arms[f"{store} rlds_hub {api} {variant}"].get("config", {})
                size = 1 + int(config.get("history", 0))
                copy = arms.get(f"{store} copy ceiling", {}).get("frames_per_s")
                if copy and size > 1:  # windows: each decoded frame copied into ``size``
                    entry["delivered_frames_per_s"] = ours * cameras * size
                    entry["copy_ceiling"] = copy
                    entry["of_copy_ceiling"] = ours * cameras * size / copy
                    combined = 1 / (1 / ceiling_rate + size / copy)  # decoded frames/s
                    entry["combined_ceiling"] = combined
                    entry["of_combined_ceiling"] = ours * cameras / combined
                mine = arms[f"{store} rlds_hub {api} {variant}"].get("rounds")
                paired = ceiling_arm.get("rounds")
                if mine and paired and len(mine) == len(paired):  # round by round
                    entry["of_ceiling_rounds"] = [
                        m * cameras / c for m, c in zip(mine, paired, strict=True)
                    ]
                peer = rate(f"jpeg tf.data {kind}") if store == "jpeg" else None
                if peer:
                    entry["x_tf_data"] = ours / peer
                    theirs = arms[f"jpeg tf.data {kind}"].get("rounds")
                    if mine and theirs and len(mine) == len(theirs):
                        entry["x_tf_data_rounds"] = [
                            m / t for m, t in zip(mine, theirs, strict=True)
                        ]
                lerobot_rates = [
                    r for r in (rate(f"lerobot video {kind}"), rate(f"lerobot image {kind}")) if r
                ]
                if lerobot_rates:
                    entry["x_lerobot_fastest"] = ours / max(lerobot_rates)
                out[f"{store} {api} {variant}"] = entry
    return out


def print_tables(report: dict[str, Any]) -> None:
    """The arms' figures, then each target's ratios (Markdown tables)."""
    cameras = report["cameras"]
    rows = []
    for name, arm in report["arms"].items():
        if "error" in arm:
            rows.append((name, "failed", "", "", ""))
        elif "cache_bytes" in arm:
            built = f"built in {arm['seconds']:.1f} s, {arm['cache_bytes'] / 1e9:.2f} GB"
            rows.append((name, built, "", "", f"{arm['peak_tree_mib']:.0f}"))
        elif "windows_per_s" in arm:  # the copy ceiling: frames copied into windows
            copied = harness.si(arm["frames_per_s"])
            rows.append((name, "", "", copied, f"{arm['peak_tree_mib']:.0f}"))
        elif "frames_per_s" in arm:
            rows.append(
                (name, "", harness.si(arm["frames_per_s"]), "", f"{arm['peak_tree_mib']:.0f}")
            )
        else:
            rate = arm["samples_per_s"]
            shown = cameras * (1 + int(arm["config"].get("history", 0)))
            decoded = harness.si(rate * cameras) if "rlds_hub" in name else ""
            rows.append(
                (
                    name,
                    harness.si(rate),
                    decoded,
                    harness.si(rate * shown),
                    f"{arm['peak_tree_mib']:.0f}",
                )
            )
    print()
    header = ("arm", "samples/s", "decoded frames/s", "frames delivered/s", "peak MiB")
    print(harness.table(header, rows))
    print()
    ratio_rows = [
        (
            name,
            harness.si(entry["decoded_frames_per_s"]),
            harness.si(entry["ceiling"]),
            f"{entry['of_ceiling']:.2f}",
            f"{entry['of_copy_ceiling']:.2f}" if "of_copy_ceiling" in entry else "",
            f"{entry['of_combined_ceiling']:.2f}" if "of_combined_ceiling" in entry else "",
            f"{entry['x_tf_data']:.2f}" if "x_tf_data" in entry else "",
            f"{entry['x_lerobot_fastest']:.2f}" if "x_lerobot_fastest" in entry else "",
        )
        for name, entry in report["ratios"].items()
    ]
    header = (
        "rlds_hub",
        "decoded frames/s",
        "ceiling",
        "of ceiling",
        "delivered / copy ceiling",
        "of combined ceiling",
        "x tf.data",
        "x LeRobot",
    )
    print(harness.table(header, ratio_rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--history", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--shuffle-buffer", type=int, default=4, help="episodes")
    parser.add_argument("--seconds", type=float, default=30.0, help="per arm")
    parser.add_argument("--ceiling-frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved; medians reported")
    parser.add_argument("--workers", type=int, default=cores())
    parser.add_argument("--apis", nargs="+", default=["numpy", "jax"], choices=["numpy", "jax"])
    parser.add_argument("--no-tf-data", dest="tf_data", action="store_false")
    parser.add_argument("--stores", nargs="+", default=["jpeg", "png"], choices=["jpeg", "png"])
    parser.add_argument(
        "--frame-cache",
        action="store_true",
        help="also the JPEG store through the column cache with decoded frames (built first)",
    )
    parser.add_argument(
        "--threads-arms",
        action="store_true",
        help="also the NumPy arms with frames decoded by threads instead of worker processes",
    )
    parser.add_argument("--lerobot-episodes", type=int, default=10, help="0: no LeRobot arms")
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "rlds_frames_bench"))
    parser.add_argument("--out", default="frames_throughput.json")
    args = parser.parse_args(argv)
    report = run(args)
    print_tables(report)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
