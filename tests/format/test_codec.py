"""The fast episode encoder produces what TFDS's own serializer produces."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from dm_env import specs
from google.protobuf.internal import encoder as pb_encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub.format.encode import ExampleEncoder, varints
from rlds_hub.format.features import episode_features


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20))
def test_varints_match_protobuf(values):
    expected = b"".join(pb_encoder._VarintBytes(v & (2**64 - 1)) for v in values)
    assert varints(np.array(values, dtype=np.int64)) == expected


def _flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


@pytest.mark.parametrize("steps", [1, 7])
def test_same_example_as_tfds_serializer(steps):
    features = episode_features(
        observation_spec={
            "position": specs.Array((3,), np.float64),
            "count": specs.Array((2,), np.int32),
            "big": specs.Array((70,), np.uint8),
            "label": specs.StringArray((2,)),
            "flags": specs.Array((4,), np.bool_),
            "u64": specs.Array((), np.uint64),
        },
        action_spec=specs.BoundedArray((2,), np.float32, -1, 1),
        reward_spec=specs.Array((), np.float64),
        discount_spec=specs.Array((), np.float16),
        episode_metadata_spec={"name": specs.StringArray(()), "seed": specs.Array((), np.int64)},
    )
    rng = np.random.default_rng(steps)
    episode = {
        "steps": {
            "observation": {
                "position": rng.standard_normal((steps, 3)),
                "count": rng.integers(-(2**31), 2**31 - 1, (steps, 2), dtype=np.int32),
                "big": rng.integers(0, 256, (steps, 70), dtype=np.uint8),
                "label": np.array([["a", "bé"]] * steps, dtype=object),
                "flags": rng.integers(0, 2, (steps, 4)).astype(bool),
                "u64": np.full(steps, 2**64 - 5, np.uint64),
            },
            "action": rng.standard_normal((steps, 2)).astype(np.float32),
            "reward": rng.standard_normal(steps),
            "discount": np.ones(steps, np.float16),
            "is_first": np.arange(steps) == 0,
            "is_last": np.arange(steps) == steps - 1,
            "is_terminal": np.zeros(steps, bool),
        },
        "name": "hello",
        "seed": -7,
    }
    reference = tf.train.Example.FromString(
        tfds.features.FeatureConnector.from_json(features).serialize_example(episode)
    )
    ours = tf.train.Example.FromString(ExampleEncoder(features).encode(_flatten(episode)))
    assert dict(ours.features.feature) == dict(reference.features.feature)
    # Blocks (the recorder's buffers) encode like the whole column.
    flat = _flatten(episode)
    blocked = {k: [v[:1], v[1:]] if k.startswith("steps/") else v for k, v in flat.items()}
    assert ExampleEncoder(features).encode(blocked) == ExampleEncoder(features).encode(flat)
