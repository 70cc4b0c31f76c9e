"""``rlds_hub.data.episodes`` and ``rlds_hub.data.stats``: the episode table, episode
selection and dataset statistics, each checked against numpy on the data read back with
plain TFDS.

Datasets are recorded from a small deterministic environment (nested dict observations, a
large-offset feature, an image and a string, scalar float64 rewards, episodes of different
lengths, some terminated) with step and episode metadata. Every check runs on both ways of
building the episode table: from ``episodes.jsonl`` ("index") and from the records after
deleting it ("computed").
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.inspection.stats import format_statistics, statistics
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.episodes import episode_table
from rlds_hub.storage.query import select_episodes
from rlds_hub.testing import CounterEnv, read_episodes_with_tfds, record

LENGTHS = (3, 5, 1, 4, 2)  # transitions of episode i: LENGTHS[i % 5]
TERMINATE = (True, False, False, True)
OPERATORS = ("alice", "bob", "carol")
NUM_EPISODES = 9
OFFSET = 1e6


def scripted_env(nonfinite: bool = False) -> CounterEnv:
    """Deterministic episodes; with ``nonfinite``, NaN and infinite values in known places."""
    rng = np.random.default_rng(7)

    def observation(e: int, t: int) -> dict:
        observation = {
            "position": rng.normal(size=2) * 3.0 + np.array([1.0, -2.0]),
            "joints": {
                "angle": rng.normal(size=3).astype(np.float32),
                "count": np.int32(rng.integers(-5, 10)),
            },
            "offset": OFFSET + 1e-3 * rng.normal(),
            "camera": rng.integers(0, 255, (4, 4, 3), dtype=np.uint8),
            "label": f"e{e}t{t}",
        }
        if nonfinite:
            position = observation["position"]
            if (e + t) % 4 == 0:
                position[0] = np.nan
            if (e + t) % 5 == 1:
                position[1] = np.inf if t % 2 else -np.inf
            if (e, t) == (2, 1):
                observation["joints"]["angle"][2] = -np.inf
            observation["broken"] = np.array([rng.normal(), np.nan])
        return observation

    def reward(e: int, t: int) -> float:
        if nonfinite and (e, t) == (1, 2):
            rng.normal()  # drawn all the same: the values that follow stay as they were
            return math.nan
        return float(rng.normal() + e)

    spec = {
        "position": specs.Array((2,), np.float64),
        "joints": {
            "angle": specs.Array((3,), np.float32),
            "count": specs.Array((), np.int32),
        },
        "offset": specs.Array((), np.float64),
        "camera": specs.Array((4, 4, 3), np.uint8),
        "label": specs.StringArray(()),
    }
    if nonfinite:
        spec["broken"] = specs.Array((2,), np.float64)
    env = CounterEnv(
        LENGTHS,
        terminate=TERMINATE,
        observation=observation,
        observation_spec=spec,
        reward=reward,
        action_spec=specs.Array((2,), np.float32),
    )
    env.nonfinite = nonfinite
    return env


def _step_metadata(timestep, action, env):
    return {"speed": np.float32(0.0 if action is None else action[0])}


def _episode_metadata(timestep, action, env):
    e = env.episode
    score = math.nan if env.nonfinite and e == 4 else float(e) / 2
    return {"operator": OPERATORS[e % 3], "score": score, "info": {"ok": e % 2 == 0}}


def _record(path: Path, nonfinite: bool = False) -> Path:
    env = scripted_env(nonfinite)
    record(
        env,
        path,
        episodes=NUM_EPISODES,
        policy=lambda timestep: np.array(
            [(env.t + 1) * 0.5 - env.episode, 1.0 + env.episode], np.float32
        ),
        max_episodes_per_shard=3,
        step_fn=_step_metadata,
        episode_fn=_episode_metadata,
    )
    return path


def _without_index(path: Path, dest: Path) -> Path:
    shutil.copytree(path, dest)
    (dest / "episodes.jsonl").unlink()
    assert open_dataset(dest).episode_rows("train") is None
    return dest


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data_stats")
    paths = {"index": _record(root / "finite"), "nonfinite": _record(root / "nonfinite", True)}
    paths["computed"] = _without_index(paths["index"], root / "finite_computed")
    paths["nonfinite_computed"] = _without_index(paths["nonfinite"], root / "nonfinite_computed")
    return paths


@pytest.fixture(scope="module")
def data(recorded) -> list[dict]:
    return read_episodes_with_tfds(str(recorded["index"]))


@pytest.fixture(scope="module")
def nonfinite_data(recorded) -> list[dict]:
    return read_episodes_with_tfds(str(recorded["nonfinite"]))


@pytest.fixture(params=["index", "computed"])
def path(request, recorded) -> Path:
    return recorded[request.param]


# ---- references computed with numpy on what plain TFDS reads -------------------------------


def _get(step: dict, key: str):
    for part in key.split("/"):
        step = step[part]
    return step


def _column(episodes: list[dict], key: str) -> np.ndarray:
    """All values of a step leaf (observations: every step; others: not the last step)."""
    every_step = key.startswith("observation")
    parts = [
        np.stack([_get(step, key) for step in (e["steps"] if every_step else e["steps"][:-1])])
        for e in episodes
        if len(e["steps"]) > (0 if every_step else 1)
    ]
    return np.concatenate(parts)


def _expected_rows(episodes: list[dict]) -> list[dict]:
    rows = []
    for i, episode in enumerate(episodes):
        steps = episode["steps"]
        rewards = np.array([step["reward"] for step in steps[:-1]], np.float64)
        rows.append(
            {
                "episode": i,
                "num_steps": len(steps),
                "num_transitions": len(steps) - 1,
                "return": float(np.sum(rewards)),
                "terminated": bool(steps[-1]["is_terminal"]),
                "metadata": {
                    "operator": episode["operator"].decode(),
                    "score": float(episode["score"]),
                    "info/ok": bool(episode["info"]["ok"]),
                },
            }
        )
    return rows


def _assert_rows_equal(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        a, e = dict(a), dict(e)
        np.testing.assert_allclose(a.pop("return"), e.pop("return"), rtol=1e-12)
        a_meta, e_meta = a.pop("metadata"), e.pop("metadata")
        assert a == e
        assert a_meta.keys() == e_meta.keys()
        for key, value in e_meta.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(a_meta[key])
            else:
                assert a_meta[key] == value and type(a_meta[key]) is type(value), key


def _as_float(value) -> np.ndarray:
    """JSON lists (None for "no value") as a float array (NaN for None)."""
    array = np.array(value, dtype=object)
    array[array == None] = np.nan  # noqa: E711 (elementwise)
    return array.astype(np.float64)


def _check_feature(stats: dict, values: np.ndarray) -> None:
    """``stats`` of one feature against numpy over ``values`` [steps, *shape]."""
    x = values.astype(np.float64)
    finite = np.isfinite(x)
    assert stats["count"] == len(values)
    assert stats["nan_count"] == int(np.isnan(x).sum())
    assert stats["inf_count"] == int(np.isinf(x).sum())
    assert stats["shape"] == list(values.shape[1:])
    masked = np.where(finite, x, np.nan)
    with warnings.catch_warnings():  # all-NaN slices: numpy warns, the stats say None
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = {
            "mean": np.nanmean(masked, axis=0),
            "std": np.nanstd(masked, axis=0),
            "min": np.nanmin(masked, axis=0),
            "max": np.nanmax(masked, axis=0),
        }
    for name, reference in expected.items():
        np.testing.assert_allclose(
            _as_float(stats[name]),
            reference,
            rtol=1e-10,
            atol=0,
            equal_nan=True,
            err_msg=name,
        )


def _check_distribution(stats: dict, values: np.ndarray) -> None:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    assert stats["count"] == finite.size
    assert stats["nan_count"] == int(np.isnan(values).sum())
    assert stats["inf_count"] == int(np.isinf(values).sum())
    expected = {
        "mean": finite.mean(),
        "std": finite.std(),
        "min": finite.min(),
        "max": finite.max(),
        **{f"p{q}": np.percentile(finite, q) for q in (5, 25, 50, 75, 95)},
    }
    for name, reference in expected.items():
        assert stats[name] == pytest.approx(reference, rel=1e-12, abs=1e-12), name
    counts, edges = np.histogram(finite, bins=20)
    assert stats["histogram"]["counts"] == counts.tolist()
    np.testing.assert_allclose(stats["histogram"]["edges"], edges, rtol=1e-12)


NUMERIC_FEATURES = (
    "observation/position",
    "observation/joints/angle",
    "observation/joints/count",
    "observation/offset",
    "action",
    "reward",
    "discount",
    "speed",
)


# ---- episode table -------------------------------------------------------------------------


def test_episode_table_matches_the_recorded_data(path, data):
    _assert_rows_equal(episode_table(path), _expected_rows(data))


def test_index_and_computed_tables_are_the_same(recorded):
    for finite in ("", "nonfinite_"):
        index = episode_table(recorded[f"{finite}index" if not finite else "nonfinite"])
        computed = episode_table(recorded[f"{finite}computed"], batch_episodes=2)
        _assert_rows_equal(computed, index)
    nonfinite = episode_table(recorded["nonfinite"])
    assert math.isnan(nonfinite[1]["return"]) and math.isnan(nonfinite[4]["metadata"]["score"])


def test_episode_table_of_some_episodes(path, data):
    expected = _expected_rows(data)
    rows = episode_table(path, episodes=[7, 2, 2, 4])
    _assert_rows_equal(rows, [expected[i] for i in (2, 4, 7)])


def test_an_opened_dataset_is_accepted_everywhere(recorded):
    dataset = open_dataset(recorded["computed"])
    assert episode_table(dataset) == episode_table(recorded["computed"])
    assert select_episodes(dataset, min_length=4) == select_episodes(
        recorded["computed"], min_length=4
    )
    assert statistics(dataset, keys=["reward"]) == statistics(recorded["computed"], keys=["reward"])


# ---- select_episodes -----------------------------------------------------------------------


FILTERS = [
    {"min_length": 4},
    {"max_length": 3},
    {"min_length": 3, "max_length": 4},
    {"min_return": 2.0},
    {"max_return": 2.0},
    {"terminated": True},
    {"terminated": False},
    {"where": lambda e: e["metadata"]["operator"] == "alice"},
    {"where": lambda e: e["metadata"]["info/ok"] and e["num_transitions"] > 1},
    {"episodes": range(2, 6)},
    {"episodes": slice(None, None, 3)},
    {"episodes": [8, 0, 3, 3]},
    {
        "min_length": 3,
        "terminated": False,
        "where": lambda e: e["metadata"]["score"] >= 1,
        "episodes": slice(1, None),
    },
    {"min_return": 0.0, "max_return": 6.0, "max_length": 5},
]


def _passes(row: dict, filters: dict) -> bool:
    checks = {
        "min_length": lambda v: row["num_steps"] >= v,
        "max_length": lambda v: row["num_steps"] <= v,
        "min_return": lambda v: row["return"] >= v,
        "max_return": lambda v: row["return"] <= v,
        "terminated": lambda v: row["terminated"] == v,
        "where": lambda v: bool(v(row)),
        "episodes": lambda v: (
            row["episode"] in list(range(NUM_EPISODES))[v]
            if isinstance(v, slice)
            else row["episode"] in v
        ),
    }
    return all(checks[name](value) for name, value in filters.items())


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "+".join(f))
def test_select_episodes(path, data, filters):
    rows = _expected_rows(data)
    expected = [row["episode"] for row in rows if _passes(row, filters)]
    assert select_episodes(path, **filters) == expected
    assert 0 < len(expected) < NUM_EPISODES or "episodes" in filters  # the filter matters


def test_where_is_called_only_on_the_restricted_episodes(path):
    seen = []
    select_episodes(path, episodes=range(3, 5), where=lambda e: seen.append(e["episode"]))
    assert seen == [3, 4]


def test_select_episodes_errors(path, tmp_path):
    with pytest.raises(ValueError, match=r"min_length \(5\) is greater than max_length \(2\)"):
        select_episodes(path, min_length=5, max_length=2)
    with pytest.raises(ValueError, match="min_return"):
        select_episodes(path, min_return=1.0, max_return=-1.0)

    def fails_on_bob(row):
        return {"alice": True, "carol": False}[row["metadata"]["operator"]]

    with pytest.raises(ValueError, match=r"where raised KeyError on episode 1 .*'bob'"):
        select_episodes(path, where=fails_on_bob)
    with pytest.raises(DatasetError, match="no split 'test'"):
        select_episodes(path, "test")
    with pytest.raises(DatasetError, match="out of range"):
        select_episodes(path, episodes=[0, NUM_EPISODES])
    with pytest.raises(DatasetError, match="not an RLDS dataset directory"):
        select_episodes(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        episode_table(tmp_path / "missing")


# ---- statistics ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_episodes", [1, 256])
def test_statistics_match_numpy(path, data, batch_episodes):
    stats = statistics(path, batch_episodes=batch_episodes)
    json.dumps(stats, allow_nan=False)  # strict JSON
    assert stats["num_episodes"] == NUM_EPISODES
    assert stats["num_steps"] == sum(len(e["steps"]) for e in data)
    assert stats["num_transitions"] == stats["num_steps"] - NUM_EPISODES
    assert sorted(stats["features"]) == sorted(NUMERIC_FEATURES)
    for key in NUMERIC_FEATURES:
        _check_feature(stats["features"][key], _column(data, key))
        assert stats["features"][key]["last_step_excluded"] == (not key.startswith("observation"))
    assert stats["features"]["observation/joints/count"]["min"] == int(
        _column(data, "observation/joints/count").min()
    )
    assert stats["skipped"] == {
        "is_first": "RLDS flag",
        "is_last": "RLDS flag",
        "is_terminal": "RLDS flag",
        "observation/camera": "image",
        "observation/label": "string",
    }
    rows = _expected_rows(data)
    _check_distribution(stats["lengths"], [row["num_steps"] for row in rows])
    _check_distribution(stats["returns"], [row["return"] for row in rows])


def test_large_offset_keeps_its_small_spread(recorded, data):
    """1e6 + noise of std 1e-3: E[x^2] - E[x]^2 in float64 would lose every digit."""
    values = _column(data, "observation/offset")
    assert np.mean(values**2) - np.mean(values) ** 2 != pytest.approx(np.var(values), rel=1e-3)
    for batch_episodes in (1, 2, 256):
        stats = statistics(
            recorded["index"], keys=["observation/offset"], batch_episodes=batch_episodes
        )["features"]["observation/offset"]
        assert stats["std"] == pytest.approx(np.std(values), rel=1e-9)
        assert stats["mean"] == pytest.approx(np.mean(values), rel=1e-15)


def test_non_finite_values_are_counted_and_left_out(recorded, nonfinite_data):
    for name in ("nonfinite", "nonfinite_computed"):
        stats = statistics(recorded[name], batch_episodes=2)
        json.dumps(stats, allow_nan=False)
        features = stats["features"]
        for key in (*NUMERIC_FEATURES, "observation/broken"):
            _check_feature(features[key], _column(nonfinite_data, key))
        assert features["observation/position"]["nan_count"] > 0
        assert features["observation/position"]["inf_count"] > 0
        assert features["observation/joints/angle"]["inf_count"] == 1
        assert features["reward"]["nan_count"] == 1
        broken = features["observation/broken"]
        assert broken["nan_count"] == stats["num_steps"]
        assert broken["mean"][1] is None and broken["std"][1] is None
        assert broken["min"][1] is None and broken["max"][1] is None
        returns = [row["return"] for row in _expected_rows(nonfinite_data)]
        assert sum(math.isnan(r) for r in returns) == 1
        _check_distribution(stats["returns"], returns)


def test_statistics_of_some_features_and_episodes(path, data):
    chosen = select_episodes(path, where=lambda e: e["metadata"]["operator"] != "bob")
    done = []
    stats = statistics(
        path,
        episodes=chosen,
        keys=["observation/joints", "reward"],
        progress=done.append,
        batch_episodes=2,
    )
    subset = [data[i] for i in chosen]
    assert sorted(stats["features"]) == [
        "observation/joints/angle",
        "observation/joints/count",
        "reward",
    ]
    assert stats["skipped"] == {}
    for key in stats["features"]:
        _check_feature(stats["features"][key], _column(subset, key))
    assert stats["num_episodes"] == len(chosen)
    assert chosen == [0, 2, 3, 5, 6, 8] and done == [2, 4, 6]
    _check_distribution(stats["returns"], [r["return"] for r in _expected_rows(subset)])
    with pytest.raises(ValueError, match="no step feature 'observation/nothing'"):
        statistics(path, keys=["observation/nothing"])


def test_only_the_shards_of_the_chosen_episodes_are_read(recorded, data, monkeypatch):
    from rlds_hub.storage import shards

    read = []
    original = shards.read_records
    monkeypatch.setattr(
        shards,
        "read_records",
        lambda path, fmt, **kw: read.append(os.path.basename(path)) or original(path, fmt, **kw),
    )
    stats = statistics(recorded["computed"], episodes=[7, 8], keys=["reward"])
    assert read == ["finite-train.tfrecord-00002"]  # 3 episodes per shard
    _check_feature(stats["features"]["reward"], _column(data[7:], "reward"))
    assert [row["episode"] for row in episode_table(recorded["computed"], episodes=[1])] == [1]
    assert len(read) == 2


def test_statistics_errors(recorded, tmp_path):
    with pytest.raises(DatasetError, match="no split 'validation'"):
        statistics(recorded["index"], "validation")
    with pytest.raises(DatasetError, match="not an RLDS dataset directory"):
        statistics(tmp_path)


def test_format_statistics(recorded):
    stats = statistics(recorded["nonfinite"])
    text = format_statistics(stats)
    assert f"{NUM_EPISODES} episodes, {stats['num_steps']} steps" in text
    for name in (*NUMERIC_FEATURES, "length (steps)", "return"):
        assert name in text
    assert "is_first, is_last, is_terminal (RLDS flag)" in text
    assert "observation/camera (image)" in text
    assert "nan" in text and "…" not in text.split("observation/position")[0]


def test_a_vector_reward_has_no_returns(tmp_path):
    from rlds_hub.testing import RandomSpecEnv

    env = RandomSpecEnv(
        {"x": specs.Array((), np.float32)},
        reward_spec=specs.Array((2,), np.float32),
        episode_lengths=(2, 3),
    )
    record(env, tmp_path / "ds", episodes=2)
    computed = _without_index(tmp_path / "ds", tmp_path / "computed")
    for path in (tmp_path / "ds", computed):
        assert [row["return"] for row in episode_table(path)] == [None, None]
        with pytest.raises(ValueError, match="need a scalar numeric reward"):
            select_episodes(path, min_return=0.0)
        stats = statistics(path)
        assert stats["returns"] is None
        assert stats["features"]["reward"]["shape"] == [2]
        assert stats["features"]["reward"]["count"] == 5  # transitions (2 + 3), not the 7 steps
        json.dumps(stats, allow_nan=False)


def test_a_nan_return_is_stored_as_a_number_and_counted_by_info(recorded):
    from rlds_hub.inspection import format_summary, summarize

    lines = (recorded["nonfinite"] / "episodes.jsonl").read_text().splitlines()
    stored = [json.loads(line)["return"] for line in lines]
    assert all(isinstance(r, float) for r in stored)  # never the string "nan"
    assert sum(math.isnan(r) for r in stored) == 1
    assert any('"return":NaN' in line for line in lines)
    summary = summarize(recorded["nonfinite"])
    returns = summary["splits"]["train"]["return"]
    assert returns["nan_count"] == 1 and returns["count"] == NUM_EPISODES - 1
    assert "(1 NaN)" in format_summary(summary)
