"""TFDS ``ClassLabel`` features: how many classes, and their names.

``features.json`` holds a ClassLabel's ``num_classes``; TFDS writes its names (when it has
them) next to it, one per line, in ``<key with '/' as '-'>.labels.txt`` (e.g.
``steps-action.labels.txt`` for the step field ``action``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rlds_hub.storage import files
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.dataset_files import DatasetError

LABELS_SUFFIX = ".labels.txt"
_CONTENT_KEYS = ("featuresDict", "sequence", "classLabel")


def class_labels(dataset: RLDSDataset) -> dict[str, dict[str, Any]]:
    """``{flattened key: {"num_classes": int | None, "names": [str] | None}}`` for every
    ClassLabel feature (keys as in the plan: ``steps/action``, ``task``)."""
    found: dict[str, dict[str, Any]] = {}
    for key, content in _class_label_nodes(dataset.features_json, ""):
        count = content.get("numClasses", content.get("num_classes"))
        found[key] = {
            "num_classes": int(count) if count not in (None, "") else None,
            "names": _names(dataset, key),
        }
    return found


def _class_label_nodes(node: Any, key: str):
    """(key, content) of each ClassLabel node below ``node``, in any of TFDS's layouts."""
    if not isinstance(node, Mapping):
        return
    class_name = str(node.get("pythonClassName") or node.get("type") or "").rsplit(".", 1)[-1]
    if "content" in node:
        content = node["content"]
        if isinstance(content, str):
            try:
                content = json.loads(content) if content else {}
            except ValueError:
                return
    else:
        content = next((node[k] for k in _CONTENT_KEYS if k in node), node)
    if not isinstance(content, Mapping):
        return
    if class_name == "ClassLabel":
        yield key, content
    elif isinstance(content.get("features"), Mapping):  # FeaturesDict (or the root)
        for child, value in content["features"].items():
            yield from _class_label_nodes(value, f"{key}/{child}" if key else child)
    elif "feature" in content:  # Dataset / Sequence: the same key
        yield from _class_label_nodes(content["feature"], key)


def _names(dataset: RLDSDataset, key: str) -> list[str] | None:
    path = files.join(dataset.path, key.replace("/", "-") + LABELS_SUFFIX)
    if not files.exists(path):
        return None
    try:
        text = files.read_text(path, within=dataset.real_path)
    except (OSError, UnicodeDecodeError, DatasetError):
        return None
    return [line.strip() for line in text.split("\n") if line.strip()]


def describe(label: Mapping[str, Any], limit: int = 10) -> str:
    """``3 classes: left, right, stay`` (the first ``limit`` names, then how many more)."""
    count = label.get("num_classes")
    names = label.get("names")
    text = f"{count} classes" if count is not None else "classes"
    if names:
        shown = ", ".join(names[:limit])
        more = len(names) - limit
        text += f": {shown}" + (f", ... ({more} more)" if more > 0 else "")
    else:
        text += " (no names)"
    return text
