"""The REST API's read endpoints against the core's own answers, on an SQLite and on a
PostgreSQL index: datasets, search, episodes with filters and ordering, step slices in
every format, frames and animations, and the errors a client can provoke."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from rlds_hub.format.plan import flatten
from rlds_hub.inspection import saved_statistics, summarize
from rlds_hub.inspection.info import describe_features
from rlds_hub.storage import episode_table, open_dataset, read_episode, select_episodes
from rlds_hub.storage.checksums import file_checksum
from rlds_hub.testing import FRAME
from rlds_hub.testing.service import app_client, strict_json
from rlds_hub.testing.service_data import dataset_root

NAMES = {"point_mass", "frames", "oxe:oxe_like:1.0.0"}
API = "/api/v1"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('index')}/index.sqlite3"
    else:
        url = request.getfixturevalue("postgres").new_database()
    with app_client([dataset_root()], url) as test_client:
        yield test_client


def dataset_path(client, name):
    return str(dataset_root() / client.get(f"{API}/datasets/{name}").json()["path"])


def all_episodes(client, name, **params):
    items, offset = [], 0
    while True:
        page = client.get(
            f"{API}/datasets/{name}/episodes", params={**params, "limit": 4, "offset": offset}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        offset += 4
        if offset >= body["total"]:
            assert len(items) == body["total"]
            return items


def spelled(value):
    """A core number as the API spells it."""
    if value is None or not isinstance(value, float) or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# ---- datasets ----------------------------------------------------------------------------


def test_list_returns_every_dataset_with_the_counts_rlds_hub_info_gives(client):
    body = client.get(f"{API}/datasets").json()
    assert body["total"] == 3 and {d["name"] for d in body["items"]} == NAMES
    for item in body["items"]:
        summary = summarize(dataset_root() / item["path"])
        assert item["num_episodes"] == sum(s["episodes"] for s in summary["splits"].values())
        assert item["num_steps"] == sum(s["steps"] for s in summary["splits"].values())
        for split, entry in summary["splits"].items():
            assert item["splits"][split]["steps"] == entry["steps"]
            assert item["splits"][split]["terminated"] == entry["terminated"]
        assert item["status"] == "ok"


def test_search_matches_names_and_metadata_with_every_word(client):
    def names(q):
        return [d["name"] for d in client.get(f"{API}/datasets", params={"q": q}).json()["items"]]

    assert names("point") == ["point_mass"]
    assert names("ROBOTICS") == ["point_mass"]  # user metadata, case-insensitive
    assert names("expert point_mass-easy") == ["point_mass"]
    assert names("expert frames") == []
    assert names("oxe_like") == ["oxe:oxe_like:1.0.0"]
    assert names("100%_") == []  # LIKE wildcards are escaped


def test_dataset_detail_holds_features_statistics_checksums_and_provenance(client):
    detail = client.get(f"{API}/datasets/point_mass").json()
    dataset = open_dataset(dataset_root() / detail["path"])
    leaves = []

    def walk(nodes):
        for node in nodes:
            if node["children"] is None:
                leaves.append(node["key"])
            else:
                walk(node["children"])

    walk(detail["features"]["steps"])
    assert leaves == [entry["key"] for entry in describe_features(dataset.plan)["steps"]]
    assert detail["statistics"] == saved_statistics(dataset)["splits"]
    assert detail["provenance"]["statistics"] == "statistics.json"
    assert detail["provenance"]["env_name"] == "dm_control/point_mass-easy"
    assert detail["metadata"]["user"] == {"team": "robotics", "purpose": "service tests"}
    assert detail["episode_fields"] == {"operator": "text", "score": "number", "success": "bool"}
    shards = detail["checksums"]["shards"]
    for split in dataset.splits.values():
        for path, _ in split.nonempty_shards:
            assert shards[path.rsplit("/", 1)[1]] == file_checksum(path)
    frames = client.get(f"{API}/datasets/frames").json()
    assert frames["provenance"]["statistics"] == "computed"
    assert frames["statistics"]["train"]["returns"]["nan_count"] == 1
    assert frames["statistics"]["train"]["returns"]["inf_count"] == 1
    assert frames["image_fields"] == ["observation/image"]
    oxe = client.get(f"{API}/datasets/oxe:oxe_like:1.0.0").json()
    assert oxe["layout"] == "oxe"
    assert oxe["image_fields"] == ["observation/image", "observation/wrist_image"]
    assert oxe["episode_fields"] == {"episode_id": "number", "file_path": "text", "success": "bool"}


# ---- episodes ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NAMES))
def test_episodes_equal_the_core_episode_table(client, name):
    path = dataset_path(client, name)
    expected = []
    for split in sorted(open_dataset(path).splits):
        for row in episode_table(path, split):
            expected.append(
                {
                    "split": split,
                    "index": row["episode"],
                    "length": row["num_steps"],
                    "num_transitions": row["num_transitions"],
                    "return": spelled(row["return"]),
                    "is_terminal": row["terminated"],
                    "metadata": {k: spelled(v) for k, v in row["metadata"].items()} or None,
                }
            )
    assert all_episodes(client, name) == expected
    one = client.get(f"{API}/datasets/{name}/episodes/1").json()
    assert {k: one[k] for k in expected[0]} == next(
        e for e in expected if e["split"] == "train" and e["index"] == 1
    )


def test_non_finite_returns_are_strings_in_valid_json(client):
    response = client.get(f"{API}/datasets/frames/episodes", params={"order_by": "-return"})
    body = strict_json(response.text)
    returns = [item["return"] for item in body["items"]]
    assert returns[0] == "Infinity" and returns[-1] == "NaN"
    finite = returns[1:-1]
    assert finite == sorted(finite, reverse=True)


@pytest.mark.parametrize(
    "filters",
    [
        {"min_return": 3.5},
        {"max_return": 3.5},
        {"min_return": 2, "max_return": 9},
        {"min_length": 6, "max_length": 8},
        {"terminated": True},
        {"terminated": False},
        {"min_return": -1e9, "terminated": True, "max_length": 9},
    ],
)
def test_filters_select_what_the_core_selects(client, filters):
    path = dataset_path(client, "frames")
    expected = select_episodes(path, "train", **filters)
    params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()}
    got = all_episodes(client, "frames", split="train", **params)
    assert [e["index"] for e in got] == expected


@pytest.mark.parametrize(
    "conditions,predicate",
    [
        (["operator=alice"], lambda m: m["operator"] == "alice"),
        (
            ["operator!=alice", "score>=1.5"],
            lambda m: m["operator"] != "alice" and m["score"] >= 1.5,
        ),
        (["success=true"], lambda m: m["success"]),
        (["score<2", "success=false"], lambda m: m["score"] < 2 and not m["success"]),
        (["score>4.5"], lambda m: m["score"] > 4.5),
    ],
)
def test_metadata_conditions_select_matching_episodes(client, conditions, predicate):
    path = dataset_path(client, "point_mass")
    for split in ("train", "test"):
        expected = [r["episode"] for r in episode_table(path, split) if predicate(r["metadata"])]
        got = all_episodes(client, "point_mass", split=split, meta=conditions)
        assert [e["index"] for e in got] == expected


def test_nested_episode_metadata_filters_on_oxe(client):
    rows = episode_table(dataset_path(client, "oxe:oxe_like:1.0.0"), "train")
    expected = [
        r["episode"] for r in rows if r["metadata"]["success"] and r["metadata"]["episode_id"] >= 2
    ]
    got = all_episodes(client, "oxe:oxe_like:1.0.0", meta=["success=true", "episode_id>=2"])
    assert [e["index"] for e in got] == expected and expected


@pytest.mark.parametrize("order_by", ["length", "-length", "return", "-return", "-index"])
def test_ordering_is_total_and_stable(client, order_by):
    items = all_episodes(client, "point_mass", order_by=order_by)
    key = order_by.lstrip("-")
    descending = order_by.startswith("-")
    values = [((e[key],) if key != "index" else ()) + (e["split"], e["index"]) for e in items]
    assert values == sorted(values, reverse=descending)
    assert len({(e["split"], e["index"]) for e in items}) == 12


def test_totals_count_filtered_episodes_on_every_page(client):
    first = client.get(
        f"{API}/datasets/point_mass/episodes", params={"meta": "operator=bob", "limit": 2}
    ).json()
    later = client.get(
        f"{API}/datasets/point_mass/episodes",
        params={"meta": "operator=bob", "limit": 2, "offset": 4},
    ).json()
    assert first["total"] == later["total"] == 6
    beyond = client.get(f"{API}/datasets/point_mass/episodes", params={"offset": 1000}).json()
    assert beyond == {"items": [], "total": 12, "limit": 50, "offset": 1000}


# ---- steps -------------------------------------------------------------------------------


def test_json_steps_equal_the_decoded_episode(client):
    path = dataset_path(client, "point_mass")
    episode = flatten(read_episode(open_dataset(path), "test", 1))
    body = client.get(
        f"{API}/datasets/point_mass/episodes/1/steps",
        params={"split": "test", "start": 3, "stop": 9},
    ).json()
    assert (body["start"], body["stop"], body["length"], body["truncated"]) == (3, 9, 31, False)
    for name, values in body["fields"].items():
        expected = episode["steps/" + name][3:9]
        assert np.array_equal(np.asarray(values, dtype=expected.dtype), expected), name
        assert body["shapes"][name] == list(expected.shape[1:])


def test_json_steps_spell_non_finite_rewards(client):
    body = strict_json(
        client.get(f"{API}/datasets/frames/episodes/0/steps", params={"fields": "reward"}).text
    )
    assert body["fields"]["reward"][1] == "NaN"
    assert list(body["fields"]) == ["reward"]


@pytest.mark.parametrize("name,index", [("oxe:oxe_like:1.0.0", 3), ("frames", 1)])
def test_arrow_and_npz_slices_are_bit_exact(client, name, index):
    path = dataset_path(client, name)
    episode = flatten(read_episode(open_dataset(path), "train", index))
    url = f"{API}/datasets/{name}/episodes/{index}/steps"
    arrow = client.get(url, params={"format": "arrow", "start": 1})
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(arrow.content).read_all()
    description = json.loads(table.schema.metadata[b"rlds_hub"])
    assert description["start"] == 1 and description["stop"] == description["length"]
    npz = np.load(io.BytesIO(client.get(url, params={"format": "npz", "start": 1}).content))
    assert set(table.column_names) == set(npz.files) - {"__rlds_hub__"}
    for column in table.column_names:
        expected = episode["steps/" + column][1:]
        chunk = table.column(column).combine_chunks()
        if expected.dtype == object:
            assert chunk.to_pylist() == [v.decode() for v in expected]
            assert npz[column].tolist() == list(expected)
            continue
        got = (
            chunk.to_numpy_ndarray() if expected.ndim > 1 else chunk.to_numpy(zero_copy_only=False)
        )
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), column
        assert npz[column].tobytes() == expected.tobytes(), column


def test_json_slices_are_cut_at_the_limit_unless_stop_asks_for_more(tmp_path):
    with app_client([dataset_root()], f"sqlite:///{tmp_path}/i.sqlite3", max_json_steps=5) as small:
        cut = small.get(f"{API}/datasets/point_mass/episodes/0/steps").json()
        assert (cut["start"], cut["stop"], cut["truncated"]) == (0, 5, True)
        assert len(cut["fields"]["reward"]) == 5
        refused = small.get(f"{API}/datasets/point_mass/episodes/0/steps", params={"stop": 20})
        assert refused.status_code == 413
        assert "format=arrow" in refused.json()["error"]["message"]
        bulk = small.get(
            f"{API}/datasets/point_mass/episodes/0/steps", params={"stop": 20, "format": "npz"}
        )
        assert bulk.status_code == 200


# ---- media -------------------------------------------------------------------------------


def test_frames_are_the_image_observation_of_that_step(client):
    for step in (0, 4, -1):
        response = client.get(f"{API}/datasets/frames/episodes/1/frames/{step}")
        assert response.headers["content-type"] == "image/png"
        pixels = np.asarray(Image.open(io.BytesIO(response.content)))
        t = step % 10
        assert pixels.shape == (FRAME, FRAME, 3)
        assert (pixels[..., 0] == t * 10).all() and (pixels[..., 1] == 40).all()
        assert pixels[: t + 1, :, 2].min() == 255


def test_animation_and_filmstrip_hold_every_chosen_frame(client):
    url = f"{API}/datasets/frames/episodes/1"
    apng = Image.open(io.BytesIO(client.get(url + "/animation").content))
    assert apng.n_frames == 10
    apng.seek(7)
    assert (np.asarray(apng.convert("RGB"))[..., 0] == 70).all()  # lossless
    gif = Image.open(
        io.BytesIO(client.get(url + "/animation", params={"format": "gif", "every": 3}).content)
    )
    assert gif.n_frames == 4
    webp = client.get(url + "/animation", params={"format": "webp", "stop": 4})
    assert webp.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(webp.content)).n_frames == 4
    strip = Image.open(io.BytesIO(client.get(url + "/filmstrip", params={"columns": 4}).content))
    assert strip.size == (4 * FRAME, 3 * FRAME)
    oxe = client.get(
        f"{API}/datasets/oxe:oxe_like:1.0.0/episodes/2/frames/1",
        params={"field": "observation/wrist_image"},
    )
    assert Image.open(io.BytesIO(oxe.content)).size == (8, 8)


# ---- client mistakes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,params,status,code",
    [
        ("/datasets/nope", {}, 404, "dataset_not_found"),
        ("/datasets/nope/episodes", {}, 404, "dataset_not_found"),
        ("/datasets/frames/episodes/99", {}, 404, "episode_not_found"),
        ("/datasets/frames/episodes/0", {"split": "validation"}, 404, "split_not_found"),
        ("/datasets/point_mass/episodes/0/steps", {"split": "valid"}, 404, "split_not_found"),
        ("/datasets/frames/episodes", {"limit": -1}, 422, "invalid_request"),
        ("/datasets/frames/episodes", {"limit": 10**9}, 422, "invalid_request"),
        ("/datasets/frames/episodes", {"offset": -5}, 422, "invalid_request"),
        ("/datasets/frames/episodes", {"offset": 10**30}, 422, "invalid_request"),
        ("/datasets", {"limit": "many"}, 422, "invalid_request"),
        ("/datasets/frames/episodes", {"min_return": 5, "max_return": 1}, 400, "reversed_range"),
        (
            "/datasets/frames/episodes",
            {"order_by": "return; DROP TABLE episodes"},
            422,
            "invalid_request",
        ),
        ("/datasets/frames/episodes", {"order_by": "metadata"}, 422, "invalid_request"),
        ("/datasets/point_mass/episodes", {"meta": "nosuch=1"}, 400, "bad_filter"),
        ("/datasets/point_mass/episodes", {"meta": "score>=lots"}, 400, "bad_filter"),
        ("/datasets/point_mass/episodes", {"meta": "score"}, 422, "invalid_request"),
        ("/datasets/point_mass/episodes", {"meta": "success=maybe"}, 400, "bad_filter"),
        ("/datasets/frames/episodes/1/steps", {"start": 6, "stop": 2}, 400, "bad_slice"),
        ("/datasets/frames/episodes/1/steps", {"start": 11}, 400, "bad_slice"),
        ("/datasets/frames/episodes/1/steps", {"stop": -20}, 400, "bad_slice"),
        ("/datasets/frames/episodes/1/steps", {"fields": "observation/nope"}, 400, "bad_slice"),
        ("/datasets/frames/episodes/1/steps", {"fields": "observation"}, 400, "bad_slice"),
        ("/datasets/frames/episodes/1/steps", {"format": "csv"}, 422, "invalid_request"),
        ("/datasets/frames/episodes/1/frames/10", {}, 404, "step_not_found"),
        (
            "/datasets/frames/episodes/1/frames/0",
            {"field": "observation/position"},
            404,
            "not_an_image",
        ),
        ("/datasets/point_mass/episodes/1/animation", {}, 404, "no_images"),
        ("/datasets/frames/episodes/1/animation", {"start": 5, "stop": 5}, 400, "bad_slice"),
        ("/api/v2/everything", {}, 404, "not_found"),
    ],
)
def test_client_mistakes_get_a_4xx_with_the_error_shape(client, url, params, status, code):
    response = client.get(url if url.startswith("/api/v2") else API + url, params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


@pytest.mark.parametrize(
    "condition",
    [
        "operator=alice' OR '1'='1",
        'operator=x"; DROP TABLE episodes; --',
        "operator=%",
        "operator=_",
        "operator=alice) OR (1=1",
    ],
)
def test_injection_attempts_are_plain_values(client, condition):
    response = client.get(f"{API}/datasets/point_mass/episodes", params={"meta": condition})
    assert response.status_code == 200 and response.json()["total"] == 0
    assert client.get(f"{API}/datasets/point_mass/episodes").json()["total"] == 12


@pytest.mark.parametrize("direct_offset", [0, 2000])
@pytest.mark.parametrize(
    "params",
    [
        {"order_by": "-return"},
        {"order_by": "length", "meta": "operator=bob"},
        {"order_by": "return", "min_return": 0.001},
        {"order_by": "-index", "meta": "success=false"},
    ],
)
def test_pages_of_repeated_and_deep_lists_match_the_core(
    client, monkeypatch, params, direct_offset
):
    from rlds_hub.server.index import queries

    monkeypatch.setattr(queries, "DIRECT_OFFSET", direct_offset)
    service = client.app_state.service
    service.pages.discard(lambda key: True)  # nothing answered from earlier tests
    monkeypatch.setattr(service, "results", queries.ResultSets(2**20))
    path = dataset_path(client, "point_mass")
    rows = [(split, r) for split in ("test", "train") for r in episode_table(path, split)]
    if "meta" in params:
        field, value = params["meta"].split("=")
        rows = [(s, r) for s, r in rows if str(r["metadata"][field]).lower() == value]
    if "min_return" in params:
        rows = [(s, r) for s, r in rows if r["return"] >= params["min_return"]]
    key = params["order_by"].lstrip("-")
    column = {"index": "episode", "length": "num_steps", "return": "return"}[key]
    expected = sorted(((r[column],) if key != "index" else ()) + (s, r["episode"]) for s, r in rows)
    if params["order_by"].startswith("-"):
        expected.reverse()
    got = all_episodes(client, "point_mass", **params)
    assert [
        ((e[key],) if key != "index" else ()) + (e["split"], e["index"]) for e in got
    ] == expected and expected
