"""How non-finite numbers travel: JSON has no NaN or infinity, so every NaN, +inf and -inf in
a response (and in the index's JSON columns) is the string "NaN", "Infinity" or "-Infinity".

Those are the spellings ``Number()`` in JavaScript and ``float()`` in Python parse back, and
the OpenAPI schema declares such fields as ``number | "NaN" | "Infinity" | "-Infinity"``
(:data:`FloatValue`), so the schema stays true and clients lose nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

NAN = "NaN"
INFINITY = "Infinity"
NEG_INFINITY = "-Infinity"
NonFinite = Literal["NaN", "Infinity", "-Infinity"]
FloatValue = Annotated[
    float | NonFinite,
    Field(description='a number; NaN and infinities as "NaN", "Infinity", "-Infinity"'),
]


def float_value(value: float) -> float | str:
    """``value``, or its string spelling if it is not finite."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return NAN
    return INFINITY if value > 0 else NEG_INFINITY


def finite_json(value: Any) -> Any:
    """A copy of JSON-like data with every non-finite float spelled as a string, numpy
    scalars and arrays as Python values, tuples as lists and bytes as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else float_value(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if hasattr(value, "tolist"):
        return finite_json(value.tolist())
    return str(value)
