"""The leaf kinds are one vocabulary (format.plan.LeafKind) that compares equal to the strings
rlds_hub has always used, and the compiled plan is made of its members."""

from __future__ import annotations

import json
import pickle

from rlds_hub.format.features import (
    dataset_json,
    dict_json,
    image_json,
    tensor_json,
    top_level_json,
)
from rlds_hub.format.plan import LeafKind, Plan


def test_the_kinds_are_the_strings_they_always_were():
    assert [str(kind) for kind in LeafKind] == ["native", "raw", "string", "image"]
    assert LeafKind.RAW == "raw" and {"raw": 1}[LeafKind.RAW] == 1
    assert json.dumps({"kind": LeafKind.IMAGE}) == '{"kind": "image"}'
    assert pickle.loads(pickle.dumps(LeafKind.STRING)) is LeafKind.STRING


def test_the_plan_is_made_of_leaf_kinds():
    features = top_level_json(
        {
            "steps": dataset_json(
                dict_json(
                    {
                        "x": tensor_json((2,), "float32"),
                        "exact": tensor_json((2,), "float64", encoding="bytes"),
                        "label": tensor_json((), "string"),
                        "frame": image_json((4, 4, 3)),
                    }
                )
            )
        }
    )
    kinds = {leaf.name: leaf.kind for leaf in Plan.from_features_json(features)}
    assert kinds == {"x": "native", "exact": "raw", "label": "string", "frame": "image"}
    assert all(type(kind) is LeafKind for kind in kinds.values())
