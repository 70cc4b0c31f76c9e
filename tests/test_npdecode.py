"""The NumPy episode decoder reads exactly what TensorFlow's parser reads."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
from dm_env import specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlds_hub.dataset import open_dataset
from rlds_hub.decode import EpisodeDecoder, compile_leaves, string_tensor
from rlds_hub.npdecode import (
    NUM_STEPS,
    NumpyEpisodeDecoder,
    ParseError,
    fields_from_leaves,
    float_values,
    int64_values,
    varint_values,
)
from rlds_hub.recorders import Recorder
from rlds_hub.storage.codec import varints
from rlds_hub.testing import RandomSpecEnv, random_value

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.uint32, np.uint64, np.bool_, np.complex64]
leaf = st.one_of(
    st.builds(lambda d, s: specs.Array(s, d), st.sampled_from(DTYPES),
              st.sampled_from([(), (1,), (3,), (2, 2), (70,)])),
    st.builds(lambda s: specs.StringArray(s), st.sampled_from([(), (2,)])),
    st.just(specs.Array((5, 4, 3), np.uint8)),
)
nested = st.dictionaries(st.sampled_from(["a", "b", "c"]), leaf, min_size=1, max_size=3)


def _both(path):
    dataset = open_dataset(path)
    leaves = compile_leaves(dataset.features)
    records = [r for _, _, r in dataset.iter_records("train")]
    tf_out = {k: v.numpy() for k, v in EpisodeDecoder(dataset.features).decode(
        string_tensor(records)).items()}
    np_out = NumpyEpisodeDecoder(fields_from_leaves(leaves)).decode(records)
    return tf_out, np_out


def _assert_same(tf_out, np_out):
    assert set(np_out) == set(tf_out)
    for key, expected in tf_out.items():
        actual = np_out[key]
        assert actual.shape == expected.shape, key
        if expected.dtype == object:
            assert [bytes(x) for x in actual.ravel()] == list(expected.ravel()), key
        else:
            assert actual.dtype == expected.dtype, key
            assert actual.tobytes() == expected.tobytes(), key


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observation_spec=nested, lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       seed=st.integers(0, 1000))
def test_numpy_decoder_equals_tensorflow(observation_spec, lengths, seed):
    env = RandomSpecEnv(observation_spec, episode_lengths=lengths, seed=seed)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        with Recorder(env, tmp + "/ds", episode_fn=lambda ts, a, e: {"n": np.int32(e._t)},
                      max_episodes_per_shard=2) as recorder:
            for _ in range(len(lengths)):
                timestep = recorder.reset()
                while not timestep.last():
                    timestep = recorder.step(random_value(env.action_spec(), rng))
        tf_out, np_out = _both(tmp + "/ds")
    _assert_same(tf_out, np_out)
    assert list(np_out[NUM_STEPS]) == [n + 1 for n in lengths]


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
    with Recorder(env, tmp_path / "ds") as recorder:
        timestep = recorder.reset()
        while not timestep.last():
            timestep = recorder.step(np.zeros(2, np.float32))
    dataset = open_dataset(tmp_path / "ds")
    (record,) = [r for _, _, r in dataset.iter_records("train")]
    decoder = NumpyEpisodeDecoder(fields_from_leaves(compile_leaves(dataset.features)))
    with pytest.raises(ParseError, match="truncated"):
        decoder.decode([bytes(record)[:-10]])


def test_reads_datasets_written_by_envlogger(tmp_path):
    import envlogger
    import tensorflow_datasets as tfds
    from envlogger.backends import tfds_backend_writer

    env = RandomSpecEnv(specs.Array((3,), np.float32), episode_lengths=[3, 2])
    config = tfds.rlds.rlds_base.DatasetConfig(
        name="peer", observation_info=tfds.features.Tensor(shape=(3,), dtype=np.float32),
        action_info=tfds.features.Tensor(shape=(2,), dtype=np.float32),
        reward_info=np.float64, discount_info=np.float64)
    writer = tfds_backend_writer.TFDSBackendWriter(
        data_directory=str(tmp_path), split_name="train", max_episodes_per_file=5,
        ds_config=config)
    logger = envlogger.EnvLogger(env, backend=writer)
    for _ in range(2):
        timestep = logger.reset()
        while not timestep.last():
            timestep = logger.step(np.zeros(2, np.float32))
    logger.close()
    tf_out, np_out = _both(str(tmp_path))
    _assert_same(tf_out, np_out)
    assert tf.as_dtype(np_out["steps/reward"].dtype) == tf.float64
