"""The service against hostile or careless clients (issue 15): kept responses never outlive
the dataset they describe, NUL bytes, bodies before authentication, client paths, the schema
saying what is accepted, headers, and the start-up messages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rlds_hub.testing.service import app_client, auth
from rlds_hub.testing.service_data import dataset_root


def _sqlite(root: Path) -> str:
    return f"sqlite:///{root.parent / 'index.sqlite3'}"


# ---- 15: kept responses are keyed by something never reused --------------------------------


def test_a_new_dataset_is_never_shown_with_a_removed_ones_kept_answers(
    tmp_path: Path, database_url: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(dataset_root() / "frames", root / "dsA")
    with app_client([root], database_url) as client:
        detail = client.get("/api/v1/datasets/dsA").json()
        assert detail["name"] == "dsA" and detail["num_episodes"] == 5
        assert client.get("/api/v1/datasets/dsA/episodes").json()["total"] == 5
        assert client.delete("/api/v1/datasets/dsA", headers=auth()).status_code == 200
        shutil.copytree(dataset_root() / "oxe" / "oxe_like" / "1.0.0", root / "dsB")
        assert client.post("/api/v1/scan", headers=auth()).status_code == 200
        detail = client.get("/api/v1/datasets/dsB").json()
        assert detail["name"] == "dsB", detail["name"]
        assert detail["path"].endswith("dsB") and detail["num_episodes"] == 6
        assert client.get("/api/v1/datasets/dsB/episodes").json()["total"] == 6


def test_a_dataset_dropped_by_a_scan_leaves_nothing_to_its_successor(
    tmp_path: Path, database_url: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(dataset_root() / "frames", root / "dsA")
    with app_client([root], database_url) as client:
        assert client.get("/api/v1/datasets/dsA/episodes?min_length=0").json()["total"] == 5
        assert client.get("/api/v1/datasets/dsA/episodes?limit=2").json()["total"] == 5
        shutil.rmtree(root / "dsA")
        assert client.post("/api/v1/scan", headers=auth()).json()["removed"] == 1
        shutil.copytree(dataset_root() / "oxe" / "oxe_like" / "1.0.0", root / "dsB")
        assert client.post("/api/v1/scan", headers=auth()).json()["indexed"] == 1
        for query in ("min_length=0", "limit=2"):
            page = client.get(f"/api/v1/datasets/dsB/episodes?{query}").json()
            assert page["total"] == 6, (query, page["total"])


# ---- 6: NUL bytes in any text parameter ------------------------------------------------------


@pytest.fixture
def shared_client(tmp_path: Path, database_url: str):
    with app_client([dataset_root()], database_url) as client:
        yield client


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/datasets?q=%00",
        "/api/v1/datasets?q=frames%00",
        "/api/v1/datasets/point_mass/episodes?meta=operator=a%00b",
        "/api/v1/datasets/point_mass/episodes?split=train%00",
        "/api/v1/datasets/frames/episodes/1/steps?fields=reward%00",
        "/api/v1/datasets/fra%00mes",
        "/api/v1/datasets?%00=1",
    ],
)
def test_nul_bytes_in_the_url_are_refused_with_a_4xx(shared_client, url: str) -> None:
    response = shared_client.get(url)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "nul_character" and "NUL" in error["message"]
    # the connection and the service are fine afterwards
    assert shared_client.get("/api/v1/datasets?q=frames").json()["total"] == 1


def test_nul_bytes_in_a_json_body_are_refused(shared_client) -> None:
    for body in ({"path": "frames\u0000"}, {"path": "frames", "name": "a\u0000"}):
        response = shared_client.post("/api/v1/datasets", json=body, headers=auth())
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "nul_character"


# ---- 10: no body is read before the token is checked; bodies have a limit -------------------


def _asgi(
    app, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict[str, str], bytes, int]:
    """One request straight through the ASGI app: (status, headers, body, chunks the app
    read)."""
    import anyio

    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {
                "type": "http.request",
                "body": chunks[read - 1],
                "more_body": read < len(chunks),
            }
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, read)


@pytest.fixture
def bare_app(tmp_path: Path):
    """The app without its lifespan (nothing scanned): enough for what happens before a
    route runs."""
    from rlds_hub.server import Settings, create_app
    from rlds_hub.testing.service import TOKEN

    return create_app(
        Settings(
            roots=[dataset_root()],
            token=TOKEN,
            max_request_bytes=4096,
            database_url=f"sqlite:///{tmp_path / 'i.sqlite3'}",
        )
    )


@pytest.mark.parametrize(
    "headers,status", [({}, 401), (auth("wrong"), 403), ({"Authorization": "Basic x"}, 401)]
)
def test_writes_without_the_token_are_refused_before_the_body_is_read(
    bare_app, headers: dict[str, str], status: int
) -> None:
    chunks = [b"x" * 65536] * 64
    headers = {**headers, "content-type": "application/json", "content-length": str(65536 * 64)}
    for method, path in (
        ("POST", "/api/v1/datasets"),
        ("POST", "/api/v1/scan"),
        ("DELETE", "/api/v1/datasets/frames"),
    ):
        code, _, body, read = _asgi(bare_app, method, path, headers, chunks)
        assert code == status, body
        assert read == 0, f"{method} {path}: {read} chunks read before the {status}"


def test_bodies_over_the_limit_get_413_with_the_setting_to_change(bare_app) -> None:
    headers = {**auth(), "content-type": "application/json"}
    # announced too large: refused before reading
    code, _, body, read = _asgi(
        bare_app, "POST", "/api/v1/datasets", {**headers, "content-length": "5000"}, [b"x" * 5000]
    )
    assert (code, read) == (413, 0), body
    assert b"RLDS_HUB_SERVER_MAX_REQUEST_BYTES" in body
    # not announced (chunked): refused as soon as it passes the limit
    code, _, body, read = _asgi(bare_app, "POST", "/api/v1/datasets", headers, [b" " * 1024] * 64)
    assert code == 413 and read <= 5, (code, read, body)


# ---- 8: an OSError from a client's path is a 4xx ----------------------------------------------


@pytest.mark.parametrize(
    "path", ["a" * 4096, "x" * 300, "frames/" + "y" * 300 + "/z", "/" + "/".join(["d" * 200] * 20)]
)
def test_paths_the_system_cannot_take_are_a_4xx_that_says_why(shared_client, path: str) -> None:
    response = shared_client.post("/api/v1/datasets", json={"path": path}, headers=auth())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] in ("bad_path", "path_not_allowed"), error
    assert "too long" in error["message"].lower() or "not inside" in error["message"]


# ---- 14: what the schema says, headers, the token, split names -------------------------------


def test_a_405_lists_every_method_the_path_allows(shared_client) -> None:
    response = shared_client.options("/api/v1/datasets")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    response = shared_client.put("/api/v1/datasets/frames", headers=auth())
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}


def test_the_schema_refuses_what_the_routes_would_refuse(shared_client) -> None:
    schema = shared_client.get("/openapi.json").json()
    episodes = schema["paths"]["/api/v1/datasets/{name}/episodes"]["get"]["parameters"]
    meta = next(p for p in episodes if p["name"] == "meta")
    assert "pattern" in json.dumps(meta["schema"])
    for url in (
        "/api/v1/datasets/point_mass/episodes?meta=",
        "/api/v1/datasets/point_mass/episodes?meta=%3D1",
        "/api/v1/datasets/point_mass/episodes/1/frames/0?field=",
        "/api/v1/datasets/frames/episodes?split=",
        "/api/v1/datasets/frames/episodes?split=../train",
        "/api/v1/datasets/frames/episodes/1?split=tr%2Fain",
    ):
        response = shared_client.get(url)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["code"] == "invalid_request"


def test_docs_are_served_without_a_cdn(shared_client) -> None:
    for page in ("/docs", "/redoc"):
        html = shared_client.get(page).text
        assert "cdn." not in html and "https://" not in html, page
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', html):
            assert shared_client.get(asset).status_code == 200, asset


def test_the_viewer_and_the_api_send_protective_headers(shared_client) -> None:
    for url in ("/", "/static/app.js", "/api/v1/datasets", "/api/v1/datasets/frames"):
        response = shared_client.get(url)
        assert response.headers["x-content-type-options"] == "nosniff", url
    policy = shared_client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert (
        "script-src 'self'" in policy
        and "unsafe" not in policy.split("script-src")[1].split(";")[0]
    )


@pytest.mark.parametrize("token", [" ", "   ", "\t\n"])
def test_a_token_of_only_spaces_is_refused_at_start_up(token: str, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from rlds_hub.server import Settings

    with pytest.raises(ValidationError, match="only whitespace"):
        Settings(roots=[tmp_path], token=token)
    assert Settings(roots=[tmp_path], token="").token is None  # empty: no token, read-only


# ---- 24: the service's messages ----------------------------------------------------------------


def test_a_body_that_is_not_json_gets_a_message_that_says_so(shared_client) -> None:
    for body, content_type, expected in (
        (b"not json", "application/json", "not valid JSON"),
        (b'["frames"]', "application/json", "must be a JSON object"),
        (b"path=frames", "application/x-www-form-urlencoded", "must be a JSON object"),
    ):
        response = shared_client.post(
            "/api/v1/datasets", content=body, headers={**auth(), "content-type": content_type}
        )
        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert expected in message and "0: JSON decode error" not in message, message


def test_reads_show_paths_relative_to_the_root_never_the_servers_directories(shared_client) -> None:
    root = str(dataset_root())
    listing = shared_client.get("/api/v1/datasets")
    assert root not in listing.text
    paths = {item["name"]: item["path"] for item in listing.json()["items"]}
    assert paths == {
        "frames": "frames",
        "point_mass": "point_mass",
        "oxe:oxe_like:1.0.0": "oxe/oxe_like/1.0.0",
    }
    for name, path in paths.items():
        detail = shared_client.get(f"/api/v1/datasets/{name}")
        assert root not in detail.text, name
        assert detail.json()["path"] == path and detail.json()["root"] == 0


@pytest.mark.parametrize("split", ["a/b", "train/../../x", "", "tr\\ain"])
def test_a_crafted_split_name_is_refused_with_a_clear_error(tmp_path: Path, split: str) -> None:
    from rlds_hub.storage import DatasetError, open_dataset

    target = tmp_path / "frames"
    shutil.copytree(dataset_root() / "frames", target)
    info_path = target / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["splits"][0]["name"] = split
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="split name"):
        open_dataset(target)


def test_an_image_field_the_dataset_lacks_is_a_404_like_an_unknown_split(shared_client) -> None:
    for url, code in (
        ("/api/v1/datasets/point_mass/episodes/1/animation", "no_images"),
        ("/api/v1/datasets/point_mass/episodes/1/frames/0?field=x", "no_images"),
        ("/api/v1/datasets/frames/episodes/1/frames/0?field=observation/position", "not_an_image"),
    ):
        response = shared_client.get(url)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["error"]["code"] == code
