"""The format core: features.json from specs equals TFDS's own, the plan compiled without
TFDS, and the one NumPy decoder reading exactly what plain TFDS reads (random specs of every
dtype, envlogger's TFDS datasets, Open X-Embodiment-style datasets written by TFDS)."""

import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from dm_env import specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlds_hub.format.decode import (
    NUM_STEPS,
    EpisodeDecoder,
    ParseError,
    float_values,
    int64_values,
    varint_values,
)
from rlds_hub.format.encode import varints
from rlds_hub.format.features import episode_features
from rlds_hub.format.plan import Plan, PlanError
from rlds_hub.storage import Selection, iter_episodes, iter_records, open_dataset
from rlds_hub.testing import (
    RandomSpecEnv,
    oxe_episode,
    random_value,
    read_episodes_with_tfds,
    record,
    stack_steps,
    write_oxe_dataset,
)

DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
]
leaf = st.one_of(
    st.builds(
        lambda d, s: specs.Array(s, d),
        st.sampled_from(DTYPES),
        st.sampled_from([(), (1,), (3,), (2, 2), (70,)]),
    ),
    st.builds(lambda s: specs.StringArray(s), st.sampled_from([(), (2,)])),
    st.just(specs.Array((5, 4, 3), np.uint8)),
    st.just(specs.Array((6, 4, 1), np.uint8)),
)
nested = st.dictionaries(st.sampled_from(["a", "b", "c"]), leaf, min_size=1, max_size=3)


def assert_episodes_equal_tfds(path: str) -> int:
    """Every episode as rlds_hub decodes it equals plain TFDS's, bit for bit; returns the
    number of episodes compared."""
    dataset = open_dataset(path)
    expected = read_episodes_with_tfds(path)
    ours = list(iter_episodes(Selection(dataset, "train")))
    assert len(ours) == len(expected)
    unmatched = list(expected)  # TFDS interleaves shard files: match episodes by content
    for mine in ours:
        match = next(
            (
                c
                for c in unmatched
                if _same(stack_steps(c["steps"]), mine["steps"]) and _same_meta(c, mine)
            ),
            None,
        )
        assert match is not None, f"episode {mine['__index__']} differs from TFDS's"
        unmatched.remove(match)
    return len(ours)


def _same(expected, actual) -> bool:
    if isinstance(expected, dict):
        return set(expected) == set(actual) and all(_same(expected[k], actual[k]) for k in expected)
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.dtype == object:
        return [bytes(x) for x in actual.ravel()] == list(expected.ravel())
    return (
        expected.dtype == actual.dtype
        and expected.shape == actual.shape
        and expected.tobytes() == actual.tobytes()
    )


def _same_meta(expected, actual) -> bool:
    return all(_same(expected[k], actual[k]) for k in expected if k != "steps")


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    observation_spec=nested,
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    seed=st.integers(0, 1000),
)
def test_numpy_decoder_equals_plain_tfds(observation_spec, lengths, seed):
    env = RandomSpecEnv(observation_spec, episode_lengths=lengths, seed=seed)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        record(
            env,
            tmp + "/ds",
            episodes=len(lengths),
            policy=lambda timestep: random_value(env.action_spec(), rng),
            episode_fn=lambda ts, a, e: {"n": np.int32(e._t)},
            max_episodes_per_shard=2,
        )
        assert assert_episodes_equal_tfds(tmp + "/ds") == len(lengths)
        dataset = open_dataset(tmp + "/ds")
        records = [r.data for r in iter_records(dataset, "train")]
        batch = EpisodeDecoder(dataset.plan).decode(records)
        assert list(batch[NUM_STEPS]) == [n + 1 for n in lengths]


def _tfds_features(observation_spec, action_spec, reward_spec, discount_spec):
    """The features as TFDS objects, built with TFDS's classes (the reference)."""

    def feature(spec):
        if isinstance(spec, dict):
            return tfds.features.FeaturesDict({k: feature(v) for k, v in spec.items()})
        if isinstance(spec, specs.StringArray):
            return tfds.features.Tensor(shape=spec.shape, dtype=np.str_)
        shape, dtype = spec.shape, np.dtype(spec.dtype)
        if dtype == np.uint8 and len(shape) == 3 and shape[-1] in (1, 3, 4):
            return tfds.features.Image(shape=shape, dtype=np.uint8, encoding_format="png")
        if (
            0 in shape
            or (dtype.kind in "fc" and dtype != np.float32)
            or (dtype.itemsize == 1 and dtype.kind in "iu" and int(np.prod(shape)) > 64)
        ):
            return tfds.features.Tensor(shape=shape, dtype=dtype, encoding="bytes")
        return tfds.features.Tensor(shape=shape, dtype=dtype)

    flag = tfds.features.Tensor(shape=(), dtype=np.bool_)
    return tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "observation": feature(observation_spec),
                    "action": feature(action_spec),
                    "reward": feature(reward_spec),
                    "discount": feature(discount_spec),
                    "is_first": flag,
                    "is_last": flag,
                    "is_terminal": flag,
                }
            )
        }
    )


@settings(max_examples=30, deadline=None)
@given(observation_spec=nested)
def test_features_json_equals_what_tfds_writes(observation_spec):
    action = specs.BoundedArray((2,), np.float32, -1, 1)
    reward, discount = specs.Array((), np.float64), specs.Array((), np.float64)
    ours = episode_features(
        observation_spec=observation_spec,
        action_spec=action,
        reward_spec=reward,
        discount_spec=discount,
    )
    reference = _tfds_features(observation_spec, action, reward, discount).to_json()
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(reference))
    rebuilt = tfds.features.FeatureConnector.from_json(ours)  # TFDS reads ours back
    assert rebuilt.to_json() == reference


def test_plan_reads_every_tfds_feature_type_it_supports():
    features = tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "image": tfds.features.Image(shape=(4, 4, 3), encoding_format="jpeg"),
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(num_classes=3),
                    "x": tfds.features.Scalar(dtype=np.float32),
                    "raw": tfds.features.Tensor(shape=(2,), dtype=np.float64, encoding="bytes"),
                    "names": tfds.features.Tensor(shape=(2,), dtype=np.str_),
                }
            ),
            "meta": tfds.features.FeaturesDict({"id": np.int64}),
        }
    )
    plan = Plan.from_features_json(features.to_json())
    kinds = {leaf.key: (leaf.kind, leaf.dtype.name, leaf.shape) for leaf in plan}
    assert kinds == {
        "meta/id": ("native", "int64", ()),
        "steps/image": ("image", "uint8", (4, 4, 3)),
        "steps/label": ("native", "int64", ()),
        "steps/names": ("string", "object", (2,)),
        "steps/raw": ("raw", "float64", (2,)),
        "steps/text": ("string", "object", ()),
        "steps/x": ("native", "float32", ()),
    }
    assert plan["steps/image"].image_format == "jpeg"
    assert set(kinds) == set(features.tf_example_spec)  # exactly TFDS's serialized keys


def test_unsupported_features_are_named():
    variable = tfds.features.FeaturesDict(
        {"steps": tfds.features.Dataset({"image": tfds.features.Image(shape=(None, None, 3))})}
    )
    with pytest.raises(PlanError, match="steps/image: variable shape"):
        Plan.from_features_json(variable.to_json())
    zlib = tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {"x": tfds.features.Tensor(shape=(2,), dtype=np.int8, encoding="zlib")}
            )
        }
    )
    (leaf,) = Plan.from_features_json(
        zlib.to_json()
    ).leaves  # read: tests/format/test_zlib_tensors.py
    assert (leaf.kind, leaf.compression) == ("raw", "zlib")
    lz4 = json.loads(json.dumps(zlib.to_json()).replace('"zlib"', '"lz4"'))
    with pytest.raises(PlanError, match="encoding 'lz4' is not supported"):
        Plan.from_features_json(lz4)
    with pytest.raises(PlanError, match="no 'steps'"):
        Plan.from_features_json(tfds.features.FeaturesDict({"x": np.int64}).to_json())


def test_unpacked_lists_and_multibyte_varints():
    values = np.array([0, 1, 127, 128, 300, -1, -(2**63), 2**63 - 1], np.int64)
    assert np.array_equal(varint_values(np.frombuffer(varints(values), np.uint8)), values)
    floats = np.array([1.5, -2.0, np.inf], np.float32)
    unpacked = b"".join(b"\x0d" + f.tobytes() for f in floats)
    assert np.array_equal(float_values(memoryview(unpacked)), floats)
    unpacked_ints = b"".join(b"\x08" + varints(np.array([v])) for v in [5, 300, -2])
    assert list(int64_values(memoryview(unpacked_ints))) == [5, 300, -2]


def test_truncated_record_is_a_clear_error(tmp_path):
    env = RandomSpecEnv({"x": specs.Array((3,), np.float32)}, episode_lengths=[4])
    record(env, tmp_path / "ds", episodes=1)
    dataset = open_dataset(tmp_path / "ds")
    (serialized,) = [r.data for r in iter_records(dataset, "train")]
    with pytest.raises(ParseError, match="truncated"):
        EpisodeDecoder(dataset.plan).decode([bytes(serialized)[:-10]])


def test_reads_datasets_written_by_envlogger(tmp_path):
    import envlogger
    from envlogger.backends import tfds_backend_writer

    env = RandomSpecEnv(specs.Array((3,), np.float32), episode_lengths=[3, 2])
    config = tfds.rlds.rlds_base.DatasetConfig(
        name="peer",
        observation_info=tfds.features.Tensor(shape=(3,), dtype=np.float32),
        action_info=tfds.features.Tensor(shape=(2,), dtype=np.float32),
        reward_info=np.float64,
        discount_info=np.float64,
    )
    writer = tfds_backend_writer.TFDSBackendWriter(
        data_directory=str(tmp_path), split_name="train", max_episodes_per_file=5, ds_config=config
    )
    logger = envlogger.EnvLogger(env, backend=writer)
    for _ in range(2):
        timestep = logger.reset()
        while not timestep.last():
            timestep = logger.step(np.zeros(2, np.float32))
    logger.close()
    assert assert_episodes_equal_tfds(str(tmp_path)) == 2
    episode = next(iter_episodes(open_dataset(tmp_path), "train"))
    assert episode["steps"]["reward"].dtype == np.float64


@pytest.fixture(scope="module")
def oxe_path(tmp_path_factory):
    rng = np.random.default_rng(3)
    episodes = [oxe_episode(i, 3 + i % 4, rng, image_size=48) for i in range(6)]
    return write_oxe_dataset(str(tmp_path_factory.mktemp("oxe")), episodes)


def test_oxe_dataset_written_by_tfds_decodes_exactly_jpeg_included(oxe_path):
    dataset = open_dataset(oxe_path)
    assert dataset.plan["steps/observation/image"].image_format == "jpeg"
    assert assert_episodes_equal_tfds(oxe_path) == 6  # every JPEG pixel, every string


def test_format_core_imports_and_decodes_without_tensorflow(oxe_path):
    code = (
        "import sys; sys.modules['tensorflow'] = None; "
        "sys.modules['tensorflow_datasets'] = None\n"
        "from rlds_hub.storage import open_dataset, iter_episodes\n"
        f"d = open_dataset({oxe_path!r})\n"
        "print(sum(len(e['steps']['is_first']) for e in iter_episodes(d, 'train')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == sum(3 + i % 4 for i in range(6))
