"""Episodes and step slices."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlds_hub.server.core.numbers import FloatValue


class EpisodeItem(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    split: str
    index: int = Field(description="position in the split")
    length: int = Field(description="RLDS steps (N + 1 for N transitions in the rlds layout)")
    num_transitions: int
    return_: FloatValue | None = Field(
        alias="return", description="sum of rewards; null when the reward is not a scalar"
    )
    is_terminal: bool = Field(description="terminated (true) or truncated (false)")
    metadata: dict[str, Any] | None = None


class EpisodeDetail(EpisodeItem):
    dataset: str
    layout: str | None = Field(
        default=None,
        description=(
            "rlds: the last step's action, reward and discount are zero-filled; oxe: every step "
            "is real"
        ),
    )
    step_fields: list[str] = Field(description="step leaves, for fields=")
    image_fields: list[str] = Field(description="step fields served as frames")


class StepsSlice(BaseModel):
    """Steps ``[start, stop)`` of an episode, column by column."""

    dataset: str
    split: str
    index: int
    length: int = Field(description="steps in the episode")
    start: int
    stop: int
    truncated: bool = Field(
        description="stop was not given and the slice was cut at the "
        "JSON limit; ask again from stop"
    )
    dtypes: dict[str, str]
    shapes: dict[str, list[int]]
    fields: dict[str, Any] = Field(
        description="per field, a list over steps of values shaped like the field; NaN and "
        'infinities as "NaN", "Infinity", "-Infinity"'
    )
