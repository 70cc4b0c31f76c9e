"""``rlds_hub.validate``: broken datasets are reported with the exact problem and location.

Every dataset here is tiny (a few episodes of a handful of steps), recorded with the Recorder
or written deliberately wrong with ``DatasetWriter`` + ``ExampleEncoder``, then damaged on
disk the way real datasets get damaged (flipped bits, cut files, edited metadata).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from dm_env import specs

from rlds_hub.format.encode import ExampleEncoder
from rlds_hub.format.features import episode_features
from rlds_hub.inspection.validate import Problem, format_report, validate
from rlds_hub.storage import shards
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.writer import DatasetWriter
from rlds_hub.testing import RandomSpecEnv, record

NAME = "ds"
# Episode i has LENGTHS[i % 2] transitions (so LENGTHS[i % 2] + 1 steps) and terminates when
# i is even. With 2 episodes per shard, 5 episodes make shards of 2, 2 and 1 episodes.
LENGTHS = (3, 4)
NUM_EPISODES = 5
STEPS = [LENGTHS[i % 2] + 1 for i in range(NUM_EPISODES)]  # [4, 5, 4, 5, 4]


def shard_name(index: int) -> str:
    return f"{NAME}-train.tfrecord-{index:05d}"


def _record(path: Path) -> Path:
    env = RandomSpecEnv(
        {"position": specs.Array((2,), np.float64), "flag": specs.Array((), np.bool_)},
        episode_lengths=LENGTHS,
        terminate=(True, False),
        seed=0,
    )
    record(env, path, episodes=NUM_EPISODES, name=NAME, max_episodes_per_shard=2)
    return path


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory) -> Path:
    return _record(tmp_path_factory.mktemp("pristine") / "dataset")


@pytest.fixture
def dataset(_pristine, tmp_path) -> Path:
    """A fresh copy of the recorded dataset, free to damage."""
    path = tmp_path / "dataset"
    shutil.copytree(_pristine, path)
    return path


def _record_offsets(path: Path) -> list[int]:
    return [offset for offset, _ in shards.iter_tfrecord(path)]


def _only(problems: list[Problem], **fields: str) -> Problem:
    matches = [p for p in problems if all(getattr(p, k) == v for k, v in fields.items())]
    assert len(matches) == 1, f"expected one problem with {fields}, got {problems}"
    return matches[0]


# ---- a clean dataset -----------------------------------------------------------------------


def test_clean_dataset_is_ok_and_counts_every_episode_and_step(dataset):
    assert sorted(p.name for p in dataset.glob(f"{NAME}-train.tfrecord-*")) == [
        shard_name(0),
        shard_name(1),
        shard_name(2),
    ]
    progress: list[int] = []
    report = validate(dataset, progress=progress.append)
    assert report.ok
    assert report.problems == []
    assert report.episodes == NUM_EPISODES
    assert report.steps == sum(STEPS) == 22  # N transitions -> N + 1 steps
    assert sum(progress) == NUM_EPISODES
    text = format_report(report)
    assert text.splitlines()[-1].startswith("OK: ")
    assert text.splitlines()[-2].startswith("layout: rlds (")
    assert "5 episodes, 22 steps checked; 0 errors, 0 warnings" in text


def test_unknown_split_is_a_dataset_error(dataset):
    with pytest.raises(DatasetError, match="no split 'test'"):
        validate(dataset, splits=["test"])


# ---- damaged shards ------------------------------------------------------------------------


def test_flipped_byte_in_record_data_is_a_crc_error_naming_the_shard(dataset):
    shard = dataset / shard_name(1)
    offsets = _record_offsets(shard)
    assert len(offsets) == 2
    data = bytearray(shard.read_bytes())
    data[offsets[1] + 12 + 5] ^= 0x01  # inside the second record's data
    shard.write_bytes(bytes(data))

    report = validate(dataset)
    assert not report.ok
    where = f"train/{shard_name(1)}"
    crc = next(p for p in report.errors if "CRC" in p.message)
    assert crc.where == where
    assert "CRC mismatch" in crc.message
    assert f"corrupt record data at byte {offsets[1]}" in crc.message
    assert "after 1 readable episodes" in crc.message
    _only(report.errors, where=where, message="holds 1 episodes but dataset_info.json lists 2")
    assert report.warnings == []
    # The first record of the damaged shard and the other shards are still checked.
    assert report.episodes == NUM_EPISODES - 1
    assert report.steps == sum(STEPS) - STEPS[3]
    text = format_report(report)
    assert "CRC mismatch" in text
    assert text.splitlines()[-1].startswith("FAILED: ")


def test_flipped_byte_in_record_length_is_a_crc_error(dataset):
    shard = dataset / shard_name(0)
    data = bytearray(shard.read_bytes())
    data[0] ^= 0x01  # the first record's length field
    shard.write_bytes(bytes(data))

    report = validate(dataset)
    where = f"train/{shard_name(0)}"
    crc = next(p for p in report.errors if "CRC" in p.message)
    assert crc.where == where
    assert "corrupt record length at byte 0 (record 0, CRC mismatch)" in crc.message
    assert "after 0 readable episodes" in crc.message
    _only(report.errors, where=where, message="holds 0 episodes but dataset_info.json lists 2")
    assert report.episodes == NUM_EPISODES - 2


def test_truncated_shard_is_reported_as_truncated(dataset):
    shard = dataset / shard_name(1)
    offsets = _record_offsets(shard)
    data = shard.read_bytes()
    shard.write_bytes(data[: offsets[1] + 30])  # the second record is cut short

    report = validate(dataset)
    assert not report.ok
    where = f"train/{shard_name(1)}"
    truncated = next(p for p in report.errors if "truncated" in p.message)
    assert truncated.where == where
    assert truncated.severity == "error"
    assert f"truncated record at byte {offsets[1]}" in truncated.message
    assert "after 1 readable episodes" in truncated.message
    _only(report.errors, where=where, message="holds 1 episodes but dataset_info.json lists 2")
    assert report.episodes == NUM_EPISODES - 1
    assert report.steps == sum(STEPS) - STEPS[3]
    assert "truncated" in format_report(report)


def test_shard_cut_inside_a_record_header_is_truncated(dataset):
    shard = dataset / shard_name(2)
    shard.write_bytes(shard.read_bytes()[:7])

    report = validate(dataset)
    problem = next(p for p in report.errors if "truncated" in p.message)
    assert problem.where == f"train/{shard_name(2)}"
    assert "truncated record header at byte 0" in problem.message
    assert report.episodes == 4  # everything before the damage
    assert report.steps == sum(STEPS[:4])


def test_episodes_after_a_damaged_shard_keep_their_numbers(dataset):
    shard = dataset / shard_name(1)
    offsets = _record_offsets(shard)
    shard.write_bytes(shard.read_bytes()[: offsets[1] + 30])

    report = validate(dataset)
    assert {p.where for p in report.problems} == {f"train/{shard_name(1)}"}
    assert len(report.errors) == 2


def test_shard_holding_fewer_episodes_than_dataset_info_lists(dataset):
    info_path = dataset / "dataset_info.json"
    info = json.loads(info_path.read_text())
    (split,) = info["splits"]
    assert split["shardLengths"] == ["2", "2", "1"]
    split["shardLengths"][2] = "3"
    info_path.write_text(json.dumps(info, separators=(",", ":")))

    report = validate(dataset)
    assert not report.ok
    problem = _only(report.errors, where=f"train/{shard_name(2)}")
    assert problem.message == "holds 1 episodes but dataset_info.json lists 3"
    # episodes.jsonl has rows for the 5 real episodes, the metadata claims 7.
    warning = _only(report.warnings, where="train")
    assert warning.message == "episodes.jsonl has 5 rows for 7 episodes"
    assert report.episodes == NUM_EPISODES
    assert "holds 1 episodes but dataset_info.json lists 3" in format_report(report)


def test_shard_holding_more_episodes_than_dataset_info_lists(dataset):
    info_path = dataset / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["splits"][0]["shardLengths"][1] = "1"
    info_path.write_text(json.dumps(info, separators=(",", ":")))

    report = validate(dataset)
    problem = next(p for p in report.errors if p.where == f"train/{shard_name(1)}")
    assert problem.message == "holds 2 episodes but dataset_info.json lists 1"


def test_missing_shard_file(dataset):
    (dataset / shard_name(1)).unlink()

    report = validate(dataset)
    assert not report.ok
    assert report.errors == [Problem("error", f"train/{shard_name(1)}", "shard file is missing")]
    # The episodes of shards 0 and 2 are checked, and the episode of shard 2 keeps its number
    # (its index row matches, so no index error).
    assert report.episodes == NUM_EPISODES - 2
    assert report.steps == sum(STEPS) - STEPS[2] - STEPS[3]
    assert "shard file is missing" in format_report(report)


# ---- episodes.jsonl ------------------------------------------------------------------------


def _edit_index_row(path: Path, episode: int, **changes) -> None:
    index = path / "episodes.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    assert [r["episode"] for r in rows] == list(range(NUM_EPISODES))
    rows[episode].update(changes)
    index.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_index_row_with_wrong_num_steps_is_an_error(dataset):
    _edit_index_row(dataset, 3, num_steps=99)

    report = validate(dataset)
    assert not report.ok
    (problem,) = report.problems
    assert problem.severity == "error"
    assert problem.where == f"train episode 3 ({shard_name(1)}, record 1)"
    assert problem.message == f"episodes.jsonl says 99 steps, the episode has {STEPS[3]}"
    assert "episodes.jsonl says 99 steps" in format_report(report)


def test_index_row_with_wrong_return_is_an_error(dataset):
    _edit_index_row(dataset, 4, **{"return": 12345.5})

    report = validate(dataset)
    (problem,) = report.problems
    assert problem.severity == "error"
    assert problem.where == f"train episode 4 ({shard_name(2)}, record 0)"
    assert problem.message.startswith("episodes.jsonl says return 12345.5, the rewards sum to ")


def test_index_with_too_few_rows_is_a_warning(dataset):
    index = dataset / "episodes.jsonl"
    lines = index.read_text().splitlines(keepends=True)
    index.write_text("".join(lines[:3]))

    report = validate(dataset)
    assert report.ok
    assert report.problems == [
        Problem("warning", "train", "episodes.jsonl has 3 rows for 5 episodes")
    ]


# ---- RLDS contract violations, written deliberately ----------------------------------------

OBSERVATION_SPEC = specs.Array((2,), np.float32)
ACTION_SPEC = specs.Array((1,), np.float32)
REWARD_SPEC = specs.Array((), np.float64)
DISCOUNT_SPEC = specs.Array((), np.float64)


def _clean_episode(n: int, *, terminal: bool) -> dict[str, np.ndarray]:
    """A contract-abiding episode of ``n`` steps (``n - 1`` transitions), as flat columns."""
    rng = np.random.default_rng(n)
    reward = np.arange(1, n + 1, dtype=np.float64)
    reward[-1] = 0
    discount = np.ones(n, np.float64)
    discount[-1] = 0
    if terminal:
        discount[-2] = 0
    action = rng.standard_normal((n, 1)).astype(np.float32)
    action[-1] = 0
    return {
        "steps/observation": rng.standard_normal((n, 2)).astype(np.float32),
        "steps/action": action,
        "steps/reward": reward,
        "steps/discount": discount,
        "steps/is_first": np.arange(n) == 0,
        "steps/is_last": np.arange(n) == n - 1,
        "steps/is_terminal": (np.arange(n) == n - 1) & terminal,
    }


def _broken(name: str) -> dict[str, np.ndarray]:
    episode = _clean_episode(6, terminal=True)
    if name == "clean":
        pass
    elif name == "is_first false on step 0":
        episode["steps/is_first"][0] = False
    elif name == "is_first on a middle step":
        episode["steps/is_first"][2] = True
    elif name == "is_last missing":
        episode["steps/is_last"][5] = False
    elif name == "is_last on a middle step":
        episode["steps/is_last"][3] = True
    elif name == "is_terminal early":
        episode["steps/is_terminal"][3] = True
    elif name == "last action not zero":
        episode["steps/action"][5] = 0.5
    elif name == "last reward not zero":
        episode["steps/reward"][5] = 7.0
    elif name == "terminal, final discount 1":
        episode["steps/discount"][4] = 1.0
    elif name == "nan reward":
        episode["steps/reward"][1] = np.nan
    elif name == "short observation":
        episode["steps/observation"] = episode["steps/observation"][:5]
    else:
        raise AssertionError(name)
    return episode


# (name, severity, message) for each deliberately broken episode, in writing order.
CASES = [
    ("clean", None, None),
    ("is_first false on step 0", "error", "step 0: is_first is false on the first step"),
    (
        "is_first on a middle step",
        "error",
        "step 2: is_first is true on a step that is not the first (1 such steps)",
    ),
    ("is_last missing", "error", "step 5: is_last is false on the last step"),
    (
        "is_last on a middle step",
        "error",
        "step 3: is_last is true on a step that is not the last (1 such steps)",
    ),
    ("is_terminal early", "error", "step 3: is_terminal is true before the last step"),
    ("last action not zero", "warning", "step 5 (last): action is not zero-filled"),
    ("last reward not zero", "warning", "step 5 (last): reward is not zero-filled"),
    (
        "terminal, final discount 1",
        "warning",
        "step 4: terminal episode, but the final transition's discount is not 0",
    ),
    ("nan reward", "warning", "has non-finite rewards"),
    ("short observation", "error", "steps/observation has 10 values, expected 12 (2 per step)"),
]
EPISODES_PER_SHARD = 4


@pytest.fixture(scope="module")
def contract_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract") / "broken"
    features = episode_features(
        observation_spec=OBSERVATION_SPEC,
        action_spec=ACTION_SPEC,
        reward_spec=REWARD_SPEC,
        discount_spec=DISCOUNT_SPEC,
    )
    encoder = ExampleEncoder(features)
    with DatasetWriter(path, name="broken", max_episodes_per_shard=EPISODES_PER_SHARD) as writer:
        writer.set_features(features)
        for name, _, _ in CASES:
            episode = _broken(name)
            writer.append(encoder.encode(episode), {"num_steps": len(episode["steps/is_first"])})
    return validate(path)


@pytest.mark.parametrize(("index", "case"), list(enumerate(CASES)), ids=[c[0] for c in CASES])
def test_contract_violation_is_reported_at_its_episode_and_step(contract_report, index, case):
    _, severity, message = case
    shard = f"broken-train.tfrecord-{index // EPISODES_PER_SHARD:05d}"
    where = f"train episode {index} ({shard}, record {index % EPISODES_PER_SHARD})"
    found = [p for p in contract_report.problems if p.where == where]
    if severity is None:
        assert found == []
        return
    assert found == [Problem(severity, where, message)]
    assert str(found[0]) in format_report(contract_report)


def test_contract_report_totals(contract_report):
    report = contract_report
    assert not report.ok
    assert len(report.problems) == len(CASES) - 1
    assert len(report.errors) == sum(1 for _, s, _ in CASES if s == "error")
    assert len(report.warnings) == sum(1 for _, s, _ in CASES if s == "warning")
    assert report.episodes == len(CASES)  # every episode was decoded and checked
    assert report.steps == 6 * len(CASES)
    text = format_report(report)
    assert text.splitlines()[-1].endswith(
        f"{report.episodes} episodes, {report.steps} steps checked; "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings"
    )
    for _, _, message in CASES[1:]:
        assert message in text


def test_short_field_is_reported_when_other_episodes_follow_in_its_batch(tmp_path):
    features = episode_features(
        observation_spec=OBSERVATION_SPEC,
        action_spec=ACTION_SPEC,
        reward_spec=REWARD_SPEC,
        discount_spec=DISCOUNT_SPEC,
    )
    encoder = ExampleEncoder(features)
    with DatasetWriter(tmp_path / "short", name="short") as writer:
        writer.set_features(features)
        short = _clean_episode(6, terminal=True)
        short["steps/reward"] = short["steps/reward"][:5]
        writer.append(encoder.encode(short), {"num_steps": 6})
        for _ in range(2):
            writer.append(encoder.encode(_clean_episode(6, terminal=True)), {"num_steps": 6})
    report = validate(tmp_path / "short")
    assert report.problems == [
        Problem(
            "error",
            "train episode 0 (short-train.tfrecord-00000, record 0)",
            "steps/reward has 5 values, expected 6 (1 per step)",
        )
    ]


def test_warnings_alone_leave_the_dataset_ok(tmp_path):
    features = episode_features(
        observation_spec=OBSERVATION_SPEC,
        action_spec=ACTION_SPEC,
        reward_spec=REWARD_SPEC,
        discount_spec=DISCOUNT_SPEC,
    )
    encoder = ExampleEncoder(features)
    with DatasetWriter(tmp_path / "warn", name="warn") as writer:
        writer.set_features(features)
        writer.append(encoder.encode(_broken("nan reward")), {"num_steps": 6})
    report = validate(tmp_path / "warn")
    assert report.ok
    assert [p.severity for p in report.problems] == ["warning"]
    assert format_report(report).splitlines()[-1].startswith("OK: ")


def test_format_report_limits_the_problems_listed(contract_report):
    text = format_report(contract_report, limit=3)
    lines = text.splitlines()
    assert len(lines) == 6  # 3 problems, the rest counted, the layout, the verdict
    assert lines[3] == f"... and {len(contract_report.problems) - 3} more problems"


# ---- not an RLDS dataset -------------------------------------------------------------------


def test_tfds_dataset_without_steps_is_not_rlds(dataset):
    plain = tfds.features.FeaturesDict({"x": tfds.features.Tensor(shape=(2,), dtype=np.float32)})
    (dataset / "features.json").write_text(json.dumps(plain.to_json()))

    with pytest.raises(DatasetError, match="not RLDS"):
        open_dataset(dataset)
    with pytest.raises(DatasetError, match="not RLDS"):
        validate(dataset)


def test_missing_path_and_directory_without_dataset_info(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="not an RLDS dataset directory"):
        open_dataset(tmp_path)
