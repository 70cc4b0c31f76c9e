"""A Beam job reading its input from a bucket: reshard from moto's S3 server to a local
directory, every episode equal to the local original."""

import pytest

from rlds_hub import storage
from rlds_hub.testing import assert_bit_equal, nested_env, record

pytestmark = pytest.mark.slow  # a Beam pipeline (about 10 s)


def test_reshard_reads_its_input_from_the_bucket(s3, tmp_path):
    from rlds_hub.cli import main

    record(nested_env(), tmp_path / "local", episodes=5, max_episodes_per_shard=2, seed=4)
    url = s3.upload_directory(tmp_path / "local", "s3://beam-inputs/nested")
    output = tmp_path / "resharded"
    command = ["reshard", "--input", url, "--output", str(output), "--num-shards", "1"]
    assert main([*command, "--direct_running_mode", "in_memory", "--quiet"]) in (0, None)
    resharded = storage.open_dataset(output)
    assert resharded.split("train").shard_lengths == (5,)
    expected = storage.iter_episodes(storage.open_dataset(tmp_path / "local"), "train")
    for a, b in zip(expected, storage.iter_episodes(resharded, "train"), strict=True):
        assert_bit_equal(a, b)
