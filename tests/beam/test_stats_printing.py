"""The stats command prints through one function (inspection.stats.print_statistics) on all
three of its paths: the core ``rlds-hub stats``, ``rlds-hub stats --runner ...`` and
``python -m pipelines.stats``."""

from __future__ import annotations

import json

import pytest

from rlds_hub.inspection.stats import print_statistics
from rlds_hub.testing import CounterEnv, record
from rlds_hub.testing.beam_jobs import FAST


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("printing") / "counting"
    record(CounterEnv(), path, episodes=3)
    return path


def _table_head(text: str) -> str:
    """The first line of the table (split, episodes, steps, transitions)."""
    return text.splitlines()[0]


def test_print_statistics_prints_json_or_tables_then_the_saved_path(capsys):
    results = [{"split": "train", "num_episodes": 1, "num_steps": 2, "num_transitions": 1}]
    print_statistics(results, as_json=True)
    assert json.loads(capsys.readouterr().out) == results[0]  # one split: one object
    print_statistics(results * 2, as_json=True, saved="d/statistics.json")
    out = capsys.readouterr().out
    assert out.rstrip().endswith("saved d/statistics.json")
    assert json.loads(out[: out.rindex("saved")]) == results * 2
    print_statistics(results)
    assert capsys.readouterr().out.startswith("split train: 1 episodes, 2 steps, 1 transitions")


@pytest.mark.slow
def test_every_stats_path_prints_the_same_table_and_the_saved_line(dataset, capsys):
    from pipelines import main as pipelines_main
    from rlds_hub.cli import main

    assert main(["stats", str(dataset), "--save", "--quiet"]) == 0
    core = capsys.readouterr().out
    assert "saved" not in core  # --quiet keeps the saved line off
    assert main(["stats", str(dataset), "--save"]) == 0
    core = capsys.readouterr().out
    assert core.rstrip().endswith(f"saved {dataset / 'statistics.json'}")
    assert main(["stats", str(dataset), "--runner", "DirectRunner", "--save", "--quiet"]) == 0
    on_beam = capsys.readouterr().out
    assert pipelines_main("stats", ["--input", str(dataset), "--quiet", *FAST]) == 0
    module = capsys.readouterr().out
    assert _table_head(core) == _table_head(on_beam) == _table_head(module)
    assert module.rstrip().endswith(f"saved {dataset / 'statistics.json'}")
    assert pipelines_main("stats", ["--input", str(dataset), "--json", *FAST]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "train"  # JSON only, no saved line
