"""One episode row filter (issue 16, item 2): the readers (``select_episodes``) and the
Beam filter keep the same episodes for the same filter and raise the same errors."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub.beam.selection import EpisodeFilter
from rlds_hub.storage import query
from rlds_hub.storage.filters import RowFilter

returns = st.one_of(
    st.none(), st.just(math.nan), st.floats(-5, 5, allow_nan=False), st.integers(-5, 5)
)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "num_steps": st.integers(1, 12),
            "return": returns,
            "terminated": st.booleans(),
            "metadata": st.fixed_dictionaries({"operator": st.sampled_from(["alice", "bob"])}),
        }
    ),
    max_size=20,
)
bounds = st.one_of(st.none(), st.integers(0, 12))
return_bounds = st.one_of(st.none(), st.floats(-5, 5, allow_nan=False))


def readers_keep(monkeypatch, table, **filters):
    """``select_episodes`` over ``table``, as the loaders call it."""
    monkeypatch.setattr(query, "as_dataset", lambda source, *a, **k: source)
    monkeypatch.setattr(query, "table_plan", lambda dataset: type("P", (), {"reward_key": "r"}))
    monkeypatch.setattr(query, "episode_table", lambda dataset, split, episodes: table)
    return query.select_episodes(object(), "train", **filters)


@settings(max_examples=200, deadline=None)
@given(
    table=rows,
    lengths=st.tuples(bounds, bounds).map(lambda t: _ordered(t)),
    totals=st.tuples(return_bounds, return_bounds).map(lambda t: _ordered(t)),
    terminated=st.one_of(st.none(), st.booleans()),
    operator=st.one_of(st.none(), st.sampled_from(["alice", "bob"])),
)
def test_the_beam_filter_and_the_readers_keep_the_same_episodes(
    table, lengths, totals, terminated, operator
):
    table = [dict(row, episode=i) for i, row in enumerate(table)]
    filters = {
        "min_length": lengths[0],
        "max_length": lengths[1],
        "min_return": totals[0],
        "max_return": totals[1],
        "terminated": terminated,
    }
    where = None if operator is None else (lambda row: row["metadata"]["operator"] == operator)
    with pytest.MonkeyPatch.context() as monkeypatch:
        read = readers_keep(monkeypatch, table, where=where, **filters)
    beam = EpisodeFilter(filters=filters, where=where)
    assert [row["episode"] for row in table if beam("train", row)] == read
    by_metadata = EpisodeFilter(
        filters=filters, metadata=None if operator is None else {"operator": operator}
    )
    assert [row["episode"] for row in table if by_metadata("train", row)] == read


def _ordered(pair):
    low, high = pair
    if low is not None and high is not None and low > high:
        return high, low
    return low, high


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"min_length": 5, "max_length": 2}, r"min_length \(5\) is greater than max_length \(2\)"),
        ({"min_return": 1.0, "max_return": 0.0}, r"min_return \(1.0\) is greater than"),
        ({"min_length": "five"}, "length bounds must be numbers, got 'five'"),
        ({"terminated": "yes"}, "terminated must be True, False or None, got 'yes'"),
    ],
)
def test_bad_filters_raise_the_same_error_everywhere(monkeypatch, filters, message):
    with pytest.raises(ValueError, match=message):
        readers_keep(monkeypatch, [], **filters)
    with pytest.raises(ValueError, match=message):
        EpisodeFilter(filters=filters)


def test_unknown_filters_and_a_failing_predicate_raise_the_same_errors(monkeypatch):
    with pytest.raises(TypeError, match=r"unknown filter 'min_lenght'.*'min_length'"):
        EpisodeFilter(filters={"min_lenght": 3})
    with pytest.raises(ValueError, match="where must be a callable taking an episode row"):
        EpisodeFilter(where=3)
    with pytest.raises(ValueError, match="where must be a callable taking an episode row"):
        readers_keep(monkeypatch, [], where=3)

    def boom(row):
        raise KeyError("score")

    table = [{"episode": 4, "num_steps": 3, "return": 1.0, "terminated": True}]
    expected = r"where raised KeyError on episode 4 of split 'train': 'score'"
    with pytest.raises(ValueError, match=expected):
        readers_keep(monkeypatch, table, where=boom)
    with pytest.raises(ValueError, match=expected):
        EpisodeFilter(where=boom)("train", table[0])


def test_the_row_filter_is_one_value():
    keep = RowFilter.from_filters({"min_length": 3, "max_return": None}, metadata={"a": 1})
    assert keep == RowFilter(min_length=3, metadata={"a": 1})
    assert keep.bounds() == {"min_length": 3}
    assert not keep.bounds_return
    assert keep.matches({"episode": 0, "num_steps": 3, "metadata": {"a": 1.0}}, "train")
    assert not keep.matches({"episode": 0, "num_steps": 3, "metadata": {"a": 2}}, "train")
