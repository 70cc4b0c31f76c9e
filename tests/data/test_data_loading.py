"""rlds_hub.data: load(), the fast transition/window loaders and the in-memory sampler."""

import time

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from dm_env import specs
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub import data
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.testing import CounterEnv, record
from rlds_hub.transforms import episode_transitions, episode_windows, transition_indices

LENGTHS = [5, 1, 9, 3, 7, 4, 2, 6]  # transitions per episode
TERMINATE = [True, False, False, True, False, True, False, False]


def _ident(episode, t):
    ident = 1000.0 * episode + t
    return {"id": np.array([ident], np.float64), "x": np.full(3, ident, np.float32)}


def step_env():
    """Observations encode (episode, step) so every transition can be identified."""
    return CounterEnv(
        LENGTHS,
        terminate=TERMINATE,
        observation=_ident,
        observation_spec={"id": specs.Array((1,), np.float64), "x": specs.Array((3,), np.float32)},
        reward=lambda episode, t: 0.5 * t + episode,
        discount=0.9,
        action_spec=specs.Array((2,), np.int32),
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "steps"
    env = step_env()
    record(
        env,
        path,
        episodes=len(LENGTHS),
        policy=lambda timestep: np.array([env.t, env.episode], np.int32),
        max_episodes_per_shard=3,
        step_fn=_step_fn,
        episode_fn=lambda ts, a, e: {"operator": "alice" if e.episode % 2 else "bob"},
    )
    return str(path)


def _step_fn(timestep, action, env):
    return None if action is None else {"tag": np.int64(env.t)}


def _plain_episodes(path):
    builder = tfds.builder_from_directory(path)
    return [
        {k: v for k, v in _batch_steps(e["steps"]).items()}
        for e in builder.as_dataset(split="train", shuffle_files=False)
    ]


def _batch_steps(steps):
    return next(iter(steps.batch(100000)))


def _reference_transitions(path, n_step=1, gamma=1.0):
    rows = []
    for steps in _plain_episodes(path):
        t = episode_transitions(steps, n_step=n_step, gamma=gamma)
        for i in range(len(t["reward"])):
            rows.append(
                (
                    float(t["observation"]["id"][i][0]),
                    float(t["next_observation"]["id"][i][0]),
                    float(t["reward"][i]),
                    float(t["discount"][i]),
                )
            )
    return sorted(rows)


def _loader_rows(batches):
    rows = []
    for b in batches:
        for i in range(len(b["reward"])):
            rows.append(
                (
                    float(b["observation"]["id"][i][0]),
                    float(b["next_observation"]["id"][i][0]),
                    float(b["reward"][i]),
                    float(b["discount"][i]),
                )
            )
    return rows


# ---- load() ------------------------------------------------------------------------------


def test_load_matches_plain_tfds_and_selects(dataset, monkeypatch, tmp_path):
    episodes = list(data.load(dataset))
    assert len(episodes) == len(LENGTHS)
    first_ids = [int(next(iter(e["steps"]))["observation"]["id"][0]) for e in episodes]
    assert first_ids == [1000 * i for i in range(len(LENGTHS))]
    sliced = [
        int(next(iter(e["steps"]))["observation"]["id"][0])
        for e in data.load(dataset, split="train[2:4]")
    ]
    assert sliced == [2000, 3000]
    picked = [
        int(next(iter(e["steps"]))["observation"]["id"][0])
        for e in data.load(dataset, episodes=[6, 1, 2])
    ]
    assert picked == [1000, 2000, 6000]
    alice = [
        e["operator"].numpy()
        for e in data.load(dataset, where=lambda row: row["metadata"]["operator"] == "alice")
    ]
    assert alice == [b"alice"] * 4
    long = list(data.load(dataset, min_length=7))  # num_steps >= 7
    assert len(long) == sum(n + 1 >= 7 for n in LENGTHS)
    # a bare name resolves through $RLDS_HUB_DATA_DIR
    monkeypatch.setenv(data.loading.DATA_DIR_ENV, str(tmp_path))
    (tmp_path / "mine").symlink_to(dataset)
    assert data.resolve("mine").endswith("mine")
    assert len(list(data.load("mine", episodes=range(2)))) == 2


def test_load_errors(dataset, tmp_path):
    with pytest.raises(DatasetError, match="no dataset 'nope'"):
        data.load("nope")
    with pytest.raises(DatasetError, match="has no split 'test'"):
        data.load(dataset, split="test")
    with pytest.raises(DatasetError, match="out of range"):
        data.load(dataset, episodes=[99])
    with pytest.raises(DatasetError, match="not an RLDS dataset"):
        data.load(str(tmp_path))


# ---- transitions() -----------------------------------------------------------------------


@pytest.mark.parametrize(("n_step", "gamma"), [(1, 1.0), (3, 0.9)])
def test_transitions_match_the_per_episode_kernel(dataset, n_step, gamma):
    loader = data.transitions(
        dataset,
        n_step=n_step,
        gamma=gamma,
        batch_size=7,
        seed=3,
        episodes_per_chunk=2,
        shuffle_buffer=4,
    )
    rows = sorted(_loader_rows(loader))
    expected = _reference_transitions(dataset, n_step, gamma)
    assert len(rows) == sum(LENGTHS)  # each transition exactly once
    assert [r[:2] for r in rows] == [r[:2] for r in expected]  # ids: exact
    np.testing.assert_allclose([r[2:] for r in rows], [r[2:] for r in expected], rtol=1e-12)
    # no transition from a last step or across episodes
    assert all(nxt // 1000 == obs // 1000 and nxt > obs for obs, nxt, _, _ in rows)


def test_transition_batches_shapes_dtypes_and_extra_keys(dataset):
    batch = next(iter(data.transitions(dataset, batch_size=4, extra_keys=["tag", "is_first"])))
    assert set(batch) == {
        "observation",
        "action",
        "reward",
        "discount",
        "next_observation",
        "tag",
        "is_first",
    }
    assert batch["observation"]["x"].shape == (4, 3)
    assert batch["observation"]["x"].dtype == np.float32
    assert batch["action"].dtype == np.int32 and batch["reward"].dtype == np.float64
    ids = batch["observation"]["id"][:, 0]
    assert np.array_equal(batch["tag"], ids % 1000 + 1)  # step metadata of the action's step


def test_shuffling_is_deterministic_and_covers_every_item(dataset):
    def run(seed, **kw):
        return [
            tuple(b["observation"]["id"][:, 0])
            for b in data.transitions(dataset, batch_size=5, seed=seed, episodes_per_chunk=2, **kw)
        ]

    assert run(1) == run(1)
    assert run(1) != run(2)
    ordered = [i for b in run(0, shuffle=False) for i in b]
    assert ordered == sorted(ordered)
    two = data.transitions(dataset, batch_size=5, num_epochs=2, drop_remainder=True)
    sizes = [len(b["reward"]) for b in two]
    assert set(sizes) == {5} and sum(sizes) == 2 * sum(LENGTHS) // 5 * 5


def test_selection_reads_only_the_selected_episodes(dataset):
    rows = _loader_rows(data.transitions(dataset, episodes=[0, 2, 7], batch_size=64))
    assert {obs // 1000 for obs, *_ in rows} == {0, 2, 7}
    assert len(rows) == LENGTHS[0] + LENGTHS[2] + LENGTHS[7]


def test_loader_errors(dataset):
    with pytest.raises(ValueError, match="n_step"):
        data.transitions(dataset, n_step=0)
    with pytest.raises(ValueError, match="gamma"):
        data.transitions(dataset, gamma=1.5)
    with pytest.raises(ValueError, match=r"no field\(s\) \['nope'\]"):
        data.transitions(dataset, extra_keys=["nope"])
    with pytest.raises(ValueError, match="size"):
        data.windows(dataset, size=0)
    with pytest.raises(ValueError, match="batch_size"):
        data.transitions(dataset, batch_size=0)


# ---- windows() ---------------------------------------------------------------------------


@pytest.mark.parametrize("pad", [True, False])
def test_windows_match_the_per_episode_kernel(dataset, pad):
    loader = data.windows(
        dataset,
        size=4,
        shift=2,
        pad=pad,
        batch_size=3,
        seed=0,
        episodes_per_chunk=3,
        keys=["observation", "is_last"],
    )
    got = sorted(tuple(map(float, w)) for b in loader for w in b["observation"]["id"][..., 0])
    expected = []
    for steps in _plain_episodes(dataset):
        w = episode_windows(steps, size=4, shift=2, pad=pad)
        expected += [tuple(map(float, row)) for row in w["observation"]["id"][..., 0].numpy()]
    assert got == sorted(expected)
    batch = next(iter(loader))
    assert batch["mask"].dtype == bool and batch["observation"]["x"].shape[1:] == (4, 3)


# ---- other outputs -----------------------------------------------------------------------


def test_tf_dataset_and_jax_iterator(dataset):
    loader = data.transitions(dataset, batch_size=8, seed=0)
    numpy_batches = list(loader)
    tf_batches = list(loader.as_tf_dataset().as_numpy_iterator())
    assert len(tf_batches) == len(numpy_batches)
    assert np.array_equal(tf_batches[0]["reward"], numpy_batches[0]["reward"])
    jax_batches = list(loader.as_jax_iterator(prefetch=2))
    assert isinstance(jax_batches[0]["reward"], jax.Array)
    assert np.array_equal(np.asarray(jax_batches[-1]["reward"]), numpy_batches[-1]["reward"])


def test_in_memory_sampler(dataset):
    sampler = data.InMemorySampler.from_dataset(dataset, n_step=2, gamma=0.5)
    assert sampler.size == sum(LENGTHS)
    batch = sampler.sample(jax.random.PRNGKey(0), 32)
    assert batch["observation"]["x"].shape == (32, 3)
    known = {row[0] for row in _reference_transitions(dataset, 2, 0.5)}
    assert {float(i) for i in np.asarray(batch["observation"]["id"][:, 0])} <= known
    many = sampler.sample_many(jax.random.PRNGKey(1), 5, 16)
    assert many["reward"].shape == (5, 16)
    with pytest.raises(ValueError, match="strings"):
        data.InMemorySampler.from_arrays({"s": np.array(["a", "b"])})


# ---- the segmented kernel equals the per-episode one -------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 8), min_size=1, max_size=5),
    n_step=st.integers(1, 4),
    gamma=st.floats(0, 1),
    seed=st.integers(0, 1000),
)
def test_transition_indices_over_concatenated_episodes(lengths, n_step, gamma, seed):
    rng = np.random.default_rng(seed)
    total = sum(lengths)
    rewards = rng.standard_normal(total)
    discounts = rng.uniform(0, 1, total)
    terminal = np.zeros(total, bool)
    ends = np.cumsum(lengths)
    terminal[ends - 1] = rng.integers(0, 2, len(lengths)).astype(bool)
    found = transition_indices(tf.constant(lengths), rewards, discounts, terminal, n_step, gamma)
    start = 0
    offset = 0
    for length in lengths:
        part = transition_indices(
            tf.constant([length]),
            rewards[start : start + length],
            discounts[start : start + length],
            terminal[start : start + length],
            n_step,
            gamma,
        )
        count = len(part["source"])
        for key in ("source", "next"):
            np.testing.assert_array_equal(found[key][offset : offset + count], part[key] + start)
        for key in ("reward", "discount"):
            np.testing.assert_allclose(found[key][offset : offset + count], part[key], rtol=1e-12)
        start += length
        offset += count
    assert offset == len(found["source"])


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 8), min_size=1, max_size=5),
    n_step=st.integers(1, 4),
    gamma=st.floats(0, 1),
    size=st.integers(1, 5),
    shift=st.integers(1, 3),
    pad=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_numpy_and_tensorflow_index_kernels_agree(lengths, n_step, gamma, size, shift, pad, seed):
    from rlds_hub.data import indices
    from rlds_hub.transforms import window_indices

    rng = np.random.default_rng(seed)
    total = sum(lengths)
    rewards, discounts = rng.standard_normal(total), rng.uniform(0, 1, total)
    terminal = rng.integers(0, 2, total).astype(bool)
    ours = indices.transition_indices(lengths, rewards, discounts, terminal, n_step, gamma)
    theirs = transition_indices(tf.constant(lengths), rewards, discounts, terminal, n_step, gamma)
    for key in ("source", "next"):
        np.testing.assert_array_equal(ours[key], theirs[key].numpy())
    for key in ("reward", "discount"):
        np.testing.assert_allclose(ours[key], theirs[key].numpy(), rtol=1e-12, atol=1e-300)
    ours = indices.window_indices(lengths, size, shift, pad)
    theirs = window_indices(tf.constant(lengths), size, shift, pad)
    for key in ("index", "mask"):
        np.testing.assert_array_equal(ours[key], theirs[key].numpy())


# ---- mixing ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_episodes(tmp_path_factory):
    path = tmp_path_factory.mktemp("mix") / "mix"
    # Episodes of 20 transitions whose observation is the episode's number.
    env = CounterEnv(
        (20,),
        terminate=(False,),
        observation=lambda episode, t: np.array([episode], np.int32),
        observation_spec=specs.Array((1,), np.int32),
        reward=lambda episode, t: 0.0,
        action_spec=specs.Array((), np.int32),
    )
    record(env, path, episodes=64, policy=np.int32(0), max_episodes_per_shard=16)
    return str(path)


def _episodes_per_batch(path, shuffle_buffer, episodes_per_chunk):
    loader = data.transitions(
        path,
        batch_size=64,
        shuffle_buffer=shuffle_buffer,
        episodes_per_chunk=episodes_per_chunk,
        seed=3,
        drop_remainder=True,
    )
    return [np.unique(b["observation"][:, 0]) for b in loader]


@pytest.mark.parametrize("shuffle_buffer", [8, 32])
def test_batches_mix_the_episodes_of_shuffle_buffer(many_episodes, shuffle_buffer):
    per_chunk = 8
    batches = _episodes_per_batch(many_episodes, shuffle_buffer, per_chunk)
    open_chunks = shuffle_buffer // per_chunk
    # The chunks (groups of 8 episodes read together: shards hold 16) a batch draws from.
    chunks = [len({int(e) // per_chunk for e in episodes}) for episodes in batches]
    assert len(batches) == 64 * 20 // 64
    if open_chunks == 1:
        # one chunk open at a time: a batch spans at most the chunk and the next one
        assert max(chunks) <= 2 and np.median(chunks) == 1, chunks
    else:
        # while enough chunks are open, every batch takes items from each of them
        assert min(chunks[: len(batches) // 2]) >= open_chunks, chunks
        assert np.mean([len(e) for e in batches[:8]]) > 2 * per_chunk


# ---- selections combine; misuse gets a clear error -----------------------------------------


def test_load_combines_split_slices_with_filters(dataset):
    ids = [
        int(next(iter(e["steps"]))["observation"]["id"][0]) // 1000
        for e in data.load(dataset, split="train[:75%]", min_length=5)
    ]
    first_six = range(6)  # 75% of 8 episodes
    assert ids == [i for i in first_six if LENGTHS[i] + 1 >= 5]
    both = [
        int(next(iter(e["steps"]))["observation"]["id"][0]) // 1000
        for e in data.load(dataset, split="train[:2]+train[-2:]")
    ]
    assert both == [0, 1, 6, 7]
    batches = data.transitions(dataset, split="train[50%:]", terminated=True, batch_size=64)
    episodes = {int(b) // 1000 for batch in batches for b in batch["observation"]["id"][:, 0]}
    assert episodes == {i for i in range(4, 8) if TERMINATE[i]}
    with pytest.raises(DatasetError, match="no episode of 'train\\[:1\\]' passes"):
        data.load(dataset, split="train[:1]", min_length=100)


def test_negative_episode_indices_count_from_the_end(dataset):
    rows = _loader_rows(data.transitions(dataset, episodes=[-1], batch_size=64))
    assert {obs // 1000 for obs, *_ in rows} == {len(LENGTHS) - 1}
    with pytest.raises(DatasetError, match="out of range"):
        data.transitions(dataset, episodes=[-len(LENGTHS) - 1])


def test_api_misuse_names_what_to_pass(dataset):
    episodes = data.load(dataset)
    for call in (
        lambda: data.transitions(episodes),
        lambda: data.windows(episodes, size=2),
        lambda: data.InMemorySampler.from_dataset(episodes),
    ):
        with pytest.raises(TypeError, match=r"not a tf\.data\.Dataset.*rlds_hub\.transforms"):
            call()
    from rlds_hub import transforms

    with pytest.raises(TypeError, match=r"not on a path .*rlds_hub.load\("):
        transforms.transitions(dataset)
    with pytest.raises(TypeError, match=r"unknown filter 'min_retrun'\. Did you mean 'min_return'"):
        data.load(dataset, min_retrun=500)
    with pytest.raises(TypeError, match="unknown filter 'min_retrun'"):
        data.transitions(dataset, min_retrun=500)


def test_float64_on_jax_is_kept_with_x64_and_warned_without(dataset):
    loader = data.transitions(dataset, batch_size=8, shuffle=False)
    with pytest.warns(UserWarning, match=r"x64 mode is off.*observation/id \(float64\)"):
        first = next(loader.as_jax_iterator())
    assert first["observation"]["id"].dtype == np.float32
    with pytest.warns(UserWarning, match="x64 mode is off"):
        data.InMemorySampler.from_dataset(dataset)
    import subprocess
    import sys

    code = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "import numpy as np, warnings; warnings.simplefilter('error')\n"
        "from rlds_hub import data\n"
        f"loader = data.transitions({dataset!r}, batch_size=8, shuffle=False)\n"
        "numpy_batch = next(iter(loader)); jax_batch = next(loader.as_jax_iterator())\n"
        "assert jax_batch['observation']['id'].dtype == np.float64\n"
        "assert np.asarray(jax_batch['reward']).tobytes() == numpy_batch['reward'].tobytes()\n"
        f"s = data.InMemorySampler.from_dataset({dataset!r})\n"
        "assert s.items['observation']['id'].dtype == np.float64\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_corrupt_shard_through_load_names_the_file_and_byte(dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    shard = sorted(copy.glob("*.tfrecord-*"))[1]
    raw = bytearray(shard.read_bytes())
    raw[40] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(Exception, match=rf"{shard.name}: corrupt record data at byte 0"):
        list(data.load(str(copy)))
    with pytest.raises(DatasetError, match=rf"{shard.name}: corrupt record data at byte 0"):
        list(data.transitions(str(copy)))


def test_gathers_split_over_threads_give_the_same_items(many_episodes, monkeypatch):
    """Gathers over the size where they are split across two threads: same batches."""
    from rlds_hub.data import chunks

    def batches(kind):
        if kind == "windows":
            loader = data.windows(
                many_episodes, size=16, batch_size=64, seed=2, keys=["observation"]
            )
        else:
            loader = data.transitions(many_episodes, batch_size=64, seed=2)
        return [{k: np.copy(v) for k, v in b.items()} for b in loader]

    for kind in ("windows", "transitions"):
        reference = batches(kind)
        monkeypatch.setattr(chunks, "_PARALLEL_GATHER_BYTES", 0)
        split = batches(kind)
        monkeypatch.undo()
        assert len(split) == len(reference)
        for a, b in zip(reference, split, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                assert np.array_equal(a[key], b[key]), (kind, key)


def test_an_endless_loader_left_early_stops_its_threads_and_bounds_what_it_makes(
    many_episodes, monkeypatch
):
    import threading

    from rlds_hub.data import chunks

    made = []
    make_items = chunks.ChunkSource.make_items
    monkeypatch.setattr(
        chunks.ChunkSource,
        "make_items",
        lambda self, records, chunk, *ahead: (
            made.append(chunk) or make_items(self, records, chunk, *ahead)
        ),
    )
    earlier = set(threading.enumerate())
    # a chunk is the whole shuffle buffer: the 64 episodes, one epoch
    loader = data.transitions(
        many_episodes,
        batch_size=8,
        shuffle_buffer=64,
        episodes_per_chunk=8,
        num_epochs=None,
        seed=1,
    )
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    time.sleep(0.5)
    # made: the chunk being consumed and AHEAD_EPISODES more episodes (at least one chunk)
    assert 2 <= len(made) <= 1 + max(1, chunks.AHEAD_EPISODES // 64), made
    iterator.close()
    deadline = time.monotonic() + 5

    def ours():
        return [t.name for t in set(threading.enumerate()) - earlier if t.name.startswith("rlds-")]

    while ours():
        assert time.monotonic() < deadline, ours()
        time.sleep(0.05)
