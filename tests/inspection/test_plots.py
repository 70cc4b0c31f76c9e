"""The returns/lengths picture: integer ticks, one centred bar per length when lengths are
equal, lengths labelled in RLDS steps, splits side by side, terminated and truncated
episodes marked apart, every session's environment and policy in the title."""

import numpy as np
import pytest

from rlds_hub.inspection.plots import episode_figure, plot_episodes
from rlds_hub.testing import record

ENV = "dm_control/cartpole-balance"


@pytest.fixture(scope="module")
def figure(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "cartpole"
    record(ENV, path, episodes=3, seed=0, policy="expert", split="train")
    record(ENV, path, episodes=2, seed=1, policy="random", split="test")
    fig = episode_figure(path)
    yield fig, path
    import matplotlib.pyplot as plt

    plt.close(fig)


def _integer_ticks(axis) -> bool:
    fig = axis.figure
    fig.canvas.draw()
    ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
    return bool(ticks) and all(float(t).is_integer() for t in ticks)


def test_ticks_are_whole_episodes_and_lengths(figure):
    fig, _ = figure
    returns, lengths = fig.axes
    assert _integer_ticks(returns) and _integer_ticks(lengths)
    assert "RLDS steps = transitions + 1" in lengths.get_xlabel()


def test_equal_lengths_give_one_centred_bar_per_split_side_by_side(figure):
    fig, _ = figure
    _, lengths = fig.axes
    bars = [p for p in lengths.patches if p.get_height() > 0]
    assert sorted(p.get_height() for p in bars) == [2, 3]  # test: 2 episodes, train: 3
    spans = sorted((p.get_x(), p.get_x() + p.get_width()) for p in bars)
    assert spans[0][1] <= spans[1][0]  # side by side, not overlapping
    centre = (spans[0][0] + spans[1][1]) / 2
    assert centre == pytest.approx(1001, abs=0.01)  # cartpole: 1000 transitions


def test_markers_tell_terminated_from_truncated_and_title_names_sessions(figure):
    fig, _ = figure
    returns, _ = fig.axes
    labels = [t.get_text() for t in returns.get_legend().get_texts()]
    assert any(label.startswith("train: truncated (3)") for label in labels), labels
    assert ENV in fig._suptitle.get_text() and "expert, random" in fig._suptitle.get_text()


def test_plot_writes_a_png(figure, tmp_path):
    _, path = figure
    out = tmp_path / "p.png"
    plot_episodes(path, out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert np.asarray(__import__("PIL.Image").Image.open(out)).std() > 0
