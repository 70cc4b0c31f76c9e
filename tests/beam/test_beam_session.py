"""The write session every job uses: what a ``with WriteSession(...)`` block commits, and that
a block that fails — or ends without ``finish`` — leaves no staging directory and nothing at
the output."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from rlds_hub.beam import ReadEpisodes, Sharding, WriteSession
from rlds_hub.storage import open_dataset, select_splits
from rlds_hub.testing.beam_jobs import FAST, no_staging_left, record_nested


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("session") / "source"
    record_nested(path, episodes=4, lengths=(3, 5))
    return open_dataset(path)


def _write(source, output, keep=lambda episode: True):
    """The docs/pipelines.md snippet: the user's own pipeline inside a session."""
    with WriteSession(output) as session:
        with beam.Pipeline(options=PipelineOptions(FAST)) as p:
            _ = (
                p
                | ReadEpisodes(select_splits(source, "train"), sources_dir=session.sources)
                | beam.Filter(keep)
                | session.write(source.name, sharding=Sharding(num_shards=2))
            )
        return session.finish(
            name=source.name,
            features_json=source.features_json,
            metadata={**source.metadata},
            file_format="tfrecord",
        )


def test_the_session_commits_what_the_pipeline_wrote(source, tmp_path):
    output = tmp_path / "out"
    summary = _write(source, output)
    assert summary["splits"] == {"train": 4} and summary["path"] == str(output)
    assert open_dataset(output).splits["train"].num_episodes == 4
    assert no_staging_left(tmp_path)


def _fail(episode):
    raise RuntimeError("a worker failed")


def test_a_failing_pipeline_inside_the_session_leaves_nothing(source, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(Exception, match="a worker failed"):
        _write(source, output, keep=_fail)
    assert no_staging_left(tmp_path) and not output.exists()


def test_a_failing_finish_leaves_nothing(source, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(ValueError, match="selected no episodes"):
        _write(source, output, keep=lambda episode: False)
    assert no_staging_left(tmp_path) and not output.exists()


def test_a_session_that_ends_without_finish_leaves_nothing(tmp_path):
    output = tmp_path / "out"
    with WriteSession(output) as session:
        (session.path / "part").write_text("half done")
    assert no_staging_left(tmp_path) and not output.exists()
