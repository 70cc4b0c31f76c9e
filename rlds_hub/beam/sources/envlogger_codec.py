"""A faster decoder of envlogger's step records, value for value what ``envlogger.Reader``
returns.

envlogger's reader decodes every step with ``envlogger.converters.codec.decode``, which tries
each of a datum's fifteen value fields in Python; that is two thirds of a conversion's time.
Here the step's ``storage_pb2.Data`` is parsed by protobuf (C) and each datum's one set field is
found with ``ListFields()``; anything unusual (several fields set, big ints) is handed to
envlogger's own ``codec.decode_datum``. Reading the serialized steps uses the Riegeli reader
behind ``envlogger.Reader`` (``reader._backend``); :func:`episode_steps` returns None when
that is not available (another backend or envlogger version), and callers then use the
public ``reader.episodes[i]``. The convert tests compare both paths with the public reader.
"""

from __future__ import annotations

from typing import Any

import dm_env
import numpy as np

_SCALAR = -438  # envlogger's codec marks scalars with this one-dimension shape
_LISTS = {
    "float_values": np.float32,
    "double_values": np.float64,
    "int32_values": np.int32,
    "int64_values": np.int64,
    "uint32_values": np.uint32,
    "uint64_values": np.uint64,
}
_BUFFERS = {
    "float_values_buffer": (">f4", np.float32),
    "int8_values": (">i1", np.int8),
    "int16_values": (">i2", np.int16),
    "uint8_values": (">u1", np.uint8),
    "uint16_values": (">u2", np.uint16),
}


def decode_datum(datum: Any) -> Any:
    fields = datum.values.ListFields()
    if len(fields) != 1:
        from envlogger.converters import codec

        return codec.decode_datum(datum)
    descriptor, values = fields[0]
    name = descriptor.name
    shape = [dim.size for dim in datum.shape.dim]
    scalar = len(shape) == 1 and shape[0] == _SCALAR
    dtype = _LISTS.get(name)
    if dtype is not None:
        if scalar:
            return dtype(values[0])
        return np.array(values, dtype=dtype).reshape(shape)
    packed = _BUFFERS.get(name)
    if packed is not None:
        array = np.frombuffer(values, dtype=packed[0]).astype(packed[1])
        return array[0] if scalar else array.reshape(shape)
    if name == "bool_values":
        if scalar:
            return bool(values[0])
        return np.array(values, dtype=bool).reshape(shape)
    if name in ("string_values", "bytes_values"):
        if scalar:
            return values[0]
        return np.array(list(values), dtype=object).reshape(shape)
    from envlogger.converters import codec

    return codec.decode_datum(datum)


def decode(data: Any) -> Any:
    """``codec.decode`` of one ``storage_pb2.Data``."""
    kind = data.WhichOneof("value")
    if kind == "datum":
        return decode_datum(data.datum)
    if kind == "array":
        return [decode(x) for x in data.array.values]
    if kind == "tuple":
        return tuple(decode(x) for x in data.tuple.values)
    if kind == "dict":
        out: dict[Any, Any] = {k: decode(x) for k, x in data.dict.values.items()}
        out.update(
            {decode(t.tuple.values[0]): decode(t.tuple.values[1]) for t in data.dict.kvs.values}
        )
        return out
    return None


class StepData(tuple):
    """(timestep, action, custom_data), like ``envlogger.step_data.StepData``."""

    __slots__ = ()

    @property
    def timestep(self) -> dm_env.TimeStep:
        return self[0]

    @property
    def action(self) -> Any:
        return self[1]

    @property
    def custom_data(self) -> Any:
        return self[2]


def episode_steps(reader: Any, index: int) -> list[StepData] | None:
    """The steps of episode ``index`` of an ``envlogger.Reader``, or None when its Riegeli
    backend is not reachable (then use ``reader.episodes[index]``)."""
    backend = getattr(reader, "_backend", None)
    riegeli = getattr(backend, "_reader", None)
    info_of = getattr(backend, "_get_nth_episode_info", None)
    if riegeli is None or info_of is None or not hasattr(riegeli, "serialized_step"):
        return None
    from envlogger.proto import storage_pb2

    info = info_of(index)
    steps = []
    parse = storage_pb2.Data.FromString
    for i in range(info.start, info.start + info.num_steps):
        serialized = riegeli.serialized_step(i)
        if serialized is None:
            raise ValueError(f"step {i - info.start} of the episode is missing from the log")
        value = decode(parse(serialized))
        head = value[0]
        timestep = dm_env.TimeStep(dm_env.StepType(head[0]), head[1], head[2], head[3])
        steps.append(StepData((timestep, value[1], value[2])))
    return steps
