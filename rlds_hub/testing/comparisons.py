"""Reading a dataset back with plain TFDS and comparing what was read with what was produced,
bit for bit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def read_episodes_with_tfds(path: str, split: str = "train") -> list[list[dict[str, Any]]]:
    """Every episode of ``split`` as a list of numpy step dicts, read with plain TFDS only."""
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(path)
    episodes = []
    for episode in builder.as_dataset(split=split, shuffle_files=False):
        steps = list(episode["steps"].as_numpy_iterator())
        metadata = {k: _numpy(v) for k, v in episode.items() if k != "steps"}
        episodes.append({"steps": steps, **metadata})
    return episodes


def _numpy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _numpy(v) for k, v in value.items()}
    return value.numpy()


def assert_bit_equal(expected: Any, actual: Any, path: str = "") -> None:
    """Asserts ``actual`` (as read back) holds exactly the bits of ``expected`` (as produced).

    Tuples are compared against the ``{"0": ..., "1": ...}`` dicts TFDS returns for them;
    ``str`` values against their UTF-8 bytes.
    """
    if isinstance(expected, Mapping):
        assert isinstance(actual, Mapping), f"{path}: expected a dict, got {type(actual)}"
        assert set(map(str, expected)) == set(actual), f"{path}: keys {set(actual)}"
        for key, value in expected.items():
            assert_bit_equal(value, actual[str(key)], f"{path}/{key}")
        return
    if isinstance(expected, tuple):
        assert isinstance(actual, Mapping), f"{path}: expected a tuple-dict, got {type(actual)}"
        for i, value in enumerate(expected):
            assert_bit_equal(value, actual[str(i)], f"{path}/{i}")
        return
    if isinstance(expected, (str, bytes)) or (
        isinstance(expected, np.ndarray) and expected.dtype == object
    ):
        flat_expected = np.asarray(expected, dtype=object).ravel()
        flat_actual = np.asarray(actual, dtype=object).ravel()
        assert flat_expected.shape == flat_actual.shape, f"{path}: shape"
        for e, a in zip(flat_expected, flat_actual, strict=True):
            e_bytes = e.encode() if isinstance(e, str) else bytes(e)
            assert e_bytes == a, f"{path}: {e!r} != {a!r}"
        return
    expected_array = np.asarray(expected)
    actual_array = np.asarray(actual)
    assert expected_array.dtype == actual_array.dtype, (
        f"{path}: dtype {actual_array.dtype} != {expected_array.dtype}"
    )
    assert expected_array.shape == actual_array.shape, (
        f"{path}: shape {actual_array.shape} != {expected_array.shape}"
    )
    assert expected_array.tobytes() == actual_array.tobytes(), (
        f"{path}: bits differ: {actual_array!r} != {expected_array!r}"
    )


def stack_steps(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A list of (nested) step dicts as one dict of arrays stacked over steps."""
    first = steps[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, Mapping):
            out[key] = stack_steps([s[key] for s in steps])
        elif isinstance(value, bytes) or np.asarray(value).dtype.kind in "OSU":
            rows = [np.asarray(s[key], dtype=object) for s in steps]
            out[key] = (
                np.stack(rows)
                if rows[0].ndim
                else np.array([s[key] for s in steps] + [None], dtype=object)[:-1]
            )
        else:
            out[key] = np.stack([np.asarray(s[key]) for s in steps])
    return out
