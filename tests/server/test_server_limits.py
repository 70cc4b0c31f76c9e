"""What the service does when its index fails or a client asks for too much: a damaged index
is a 503 ``index_unavailable`` (never a 500, never SQL text) and /readyz says so; expensive
episode queries have a statement timeout, a condition limit and their own thread pool; bulk
slices stream under a global byte budget; search finds the names it shows; animation
speeds are bounded."""

from __future__ import annotations

import concurrent.futures
import io
import os
import sqlite3
import threading
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from rlds_hub.cli import main as cli_main
from rlds_hub.server.index import database, queries
from rlds_hub.server.reading import media, steps
from rlds_hub.testing import FRAME
from rlds_hub.testing.postgres import postgres_server
from rlds_hub.testing.service import app_client
from rlds_hub.testing.service_data import dataset_root

API = "/api/v1"
SQL_WORDS = ("SELECT", "INSERT", "FROM ", "[SQL", "WHERE")


def no_sql(text: str) -> bool:
    return not any(word in text for word in SQL_WORDS)


def _engines(service):
    return [e for e in (service.engine, getattr(service, "query_engine", None)) if e is not None]


def _damage_sqlite_table(service, path, table: str) -> None:
    """Overwrites the root pages of ``table`` and of its indexes with garbage (the file's
    header and the other tables stay intact), then drops pooled connections and their
    page caches."""
    with service.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar()
        pages = [
            row[0]
            for row in connection.exec_driver_sql(
                "SELECT rootpage FROM sqlite_master WHERE tbl_name = ? AND rootpage > 0", (table,)
            )
        ]
    for engine in _engines(service):
        engine.dispose()
    with open(path, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(b"\xa5" * page_size)


# ---- item 9: a damaged index -------------------------------------------------------------


def test_a_damaged_sqlite_index_is_503_and_readyz_queries_it(tmp_path):
    index = tmp_path / "index.sqlite3"
    with app_client([dataset_root()], f"sqlite:///{index}", state_seconds=0) as client:
        assert client.get("/readyz").status_code == 200
        _damage_sqlite_table(client.app_state.service, index, "episodes")

        answer = client.get(f"{API}/datasets/point_mass/episodes", params={"min_length": 2})
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "index_unavailable"
        assert "malformed" in error["message"] and no_sql(error["message"])

        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        problems = " ".join(ready.json()["problems"])
        assert "malformed" in problems and no_sql(problems)

        reindex = client.post(
            f"{API}/datasets/point_mass/reindex",
            params={"force": True},
            headers={"Authorization": "Bearer s3cret-token"},
        )
        assert reindex.status_code == 503 and no_sql(reindex.text), reindex.text
        assert reindex.json()["error"]["code"] == "index_unavailable"


def test_a_damaged_postgresql_index_is_503_and_readyz_queries_it(postgres, monkeypatch):
    url = postgres.new_database()
    with app_client([dataset_root()], url, state_seconds=0) as client:
        assert client.get("/readyz").status_code == 200
        with client.app_state.service.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE episode_values RENAME TO gone")
        answer = client.get(
            f"{API}/datasets/point_mass/episodes", params={"meta": "operator=alice"}
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "index_unavailable"
        assert no_sql(answer.json()["error"]["message"])
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert no_sql(" ".join(ready.json()["problems"]))
        with client.app_state.service.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE gone RENAME TO episode_values")
        assert "a request met a database error" in client.get("/readyz").text
        monkeypatch.setattr(database, "FAILURE_MEMORY_SECONDS", 0.0)  # ... a while ago
        assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_index_file_at_start_up_says_to_delete_it(tmp_path, capsys, damage):
    index = tmp_path / "index.sqlite3"
    url = f"sqlite:///{index}"
    if damage == "garbage":
        index.write_bytes(os.urandom(4096) * 3)
    else:
        assert (
            cli_main(["index", "--root", str(dataset_root()), "--database-url", url, "--quiet"])
            == 0
        )
        with sqlite3.connect(index) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with open(index, "r+b") as f:
            f.truncate(os.path.getsize(index) * 2 // 3)
        capsys.readouterr()
    for command in (["index"], ["serve", "--no-scan", "--port", "0"]):
        arguments = ["--root", str(dataset_root()), "--database-url", url, "--quiet"]
        assert cli_main([*command, *arguments]) == 2
        message = capsys.readouterr().err
        assert "Traceback" not in message and no_sql(message)
        assert str(index) in message and "delete" in message and "rebuil" in message

    os.unlink(index)  # what the message says to do
    assert cli_main(["index", "--root", str(dataset_root()), "--database-url", url, "--quiet"]) == 0


# ---- item 23: search finds the names it shows --------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('index')}/index.sqlite3"
    else:
        url = postgres_server().new_database()
    with app_client([dataset_root()], url) as test_client:
        yield test_client


def test_search_finds_datasets_by_the_names_it_shows(client):
    def names(q):
        answer = client.get(f"{API}/datasets", params={"q": q})
        assert answer.status_code == 200, answer.text
        return [d["name"] for d in answer.json()["items"]]

    oxe = "oxe:oxe_like:1.0.0"  # the directory oxe/oxe_like/1.0.0 under the root
    assert names("oxe") == [oxe]
    assert names("oxe:oxe_like") == [oxe]
    assert names(oxe) == [oxe]
    assert names("OXE:OXE_LIKE:1.0.0") == [oxe]
    assert names("oxe_like:1.0") == [oxe]
    assert names("oxe frames") == []  # every word must match
    assert names("oxe:frames") == []
    assert names("oxe%") == [] and names("o_e") == []  # LIKE wildcards stay literal


# ---- item 7: animation speeds ------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["gif", "webp", "apng"])
def test_animation_fps_is_bounded_and_the_bound_encodes(client, image_format):
    url = f"{API}/datasets/frames/episodes/1/animation"
    for fps in (0.0015, 0.000001, 1e-10, 0.09):
        refused = client.get(url, params={"format": image_format, "fps": fps})
        assert refused.status_code == 422, (fps, refused.text)
        assert "0.1" in refused.json()["error"]["message"]
    slowest = client.get(url, params={"format": image_format, "fps": 0.1, "stop": 3})
    assert slowest.status_code == 200, slowest.text
    frames = Image.open(io.BytesIO(slowest.content))
    frames.load()
    assert frames.n_frames == 3 and frames.info["duration"] == 10_000  # ms


@pytest.mark.parametrize("image_format", ["gif", "webp", "apng"])
def test_an_encoder_refusing_the_frames_is_a_client_error(image_format):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(media.MediaError) as refused:
        media.animation(frames, 1e-10, image_format)
    assert refused.value.status == 422 and image_format in str(refused.value)


# ---- item 11: the cost of a query is bounded ---------------------------------------------

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def test_a_filter_with_more_conditions_than_the_limit_is_refused_naming_it(client):
    limit = queries.MAX_CONDITIONS
    url = f"{API}/datasets/point_mass/episodes"
    fine = client.get(url, params={"meta": ["operator=alice"] * limit})
    assert fine.status_code == 200, fine.text
    refused = client.get(url, params={"meta": ["operator=alice"] * (limit + 1)})
    assert refused.status_code == 422, refused.text
    assert f"at most {limit}" in refused.json()["error"]["message"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_query_running_past_the_statement_timeout_is_stopped(tmp_path, monkeypatch, backend):
    url = (
        f"sqlite:///{tmp_path}/index.sqlite3"
        if backend == "sqlite"
        else postgres_server().new_database()
    )
    with app_client([dataset_root()], url, query_timeout=0.3) as client:
        service = client.app_state.service
        with service.query_engine.connect() as connection, pytest.raises(Exception) as stopped:
            connection.exec_driver_sql(ENDLESS).all()
        assert database.is_timeout(stopped.value), stopped.value

        def endless(connection, *args, **kwargs):
            connection.exec_driver_sql(ENDLESS).all()

        monkeypatch.setattr(queries, "list_episodes", endless)
        answer = client.get(f"{API}/datasets/point_mass/episodes", params={"min_length": 1})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "query_timeout"
        assert answer.headers["retry-after"]
        assert client.get("/readyz").status_code == 200  # a slow query is no broken index
        with service.engine.connect() as connection:  # indexing has no statement timeout
            assert (
                connection.exec_driver_sql(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                    "WHERE x < 3000000) SELECT count(*) FROM c"
                ).scalar()
                == 3_000_000
            )


def test_details_are_answered_while_the_query_pool_is_saturated(tmp_path, monkeypatch):
    """Filtered episode queries that hold every query thread leave details (and cached
    pages) served; one more filtered query waits for a query thread, not a worker."""
    threads = 2
    entered = threading.Semaphore(0)
    release = threading.Event()
    original = queries.list_episodes

    def blocking(*args, **kwargs):
        entered.release()
        assert release.wait(60)
        return original(*args, **kwargs)

    with app_client(
        [dataset_root()],
        f"sqlite:///{tmp_path}/index.sqlite3",
        worker_threads=threads,
        query_threads=threads,
        state_seconds=0,
    ) as client:
        monkeypatch.setattr(queries, "list_episodes", blocking)
        url = f"{API}/datasets/point_mass/episodes"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            filtered = [
                pool.submit(client.get, url, params={"min_length": i}) for i in range(threads)
            ]
            for _ in range(threads):
                assert entered.acquire(timeout=60), "the filtered queries never started"
            one_more = pool.submit(client.get, url, params={"min_length": 99})
            try:
                detail = pool.submit(client.get, f"{API}/datasets/frames").result(timeout=60)
                episode = pool.submit(client.get, f"{API}/datasets/frames/episodes/1").result(
                    timeout=60
                )
                assert detail.status_code == 200 and episode.status_code == 200
                assert not entered.acquire(blocking=False), "a query ran past the pool"
                assert not any(f.done() for f in [*filtered, one_more])
            finally:
                release.set()
            assert all(f.result(timeout=60).status_code == 200 for f in [*filtered, one_more])


def test_filtered_queries_beyond_the_queue_get_503_busy(tmp_path, monkeypatch):
    entered = threading.Semaphore(0)
    release = threading.Event()
    original = queries.list_episodes

    def blocking(*args, **kwargs):
        entered.release()
        assert release.wait(60)
        return original(*args, **kwargs)

    with app_client(
        [dataset_root()],
        f"sqlite:///{tmp_path}/index.sqlite3",
        query_threads=1,
        query_queue=1,
        state_seconds=0,
    ) as client:
        monkeypatch.setattr(queries, "list_episodes", blocking)
        url = f"{API}/datasets/point_mass/episodes"
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            running = pool.submit(client.get, url, params={"min_length": 1})
            assert entered.acquire(timeout=60)
            waiting = pool.submit(client.get, url, params={"min_length": 2})
            service = client.app_state.service
            deadline = threading.Event()
            for _ in range(600):  # until the second one is queued (no time asserted)
                if service.query_pool.pending == 2:
                    break
                deadline.wait(0.05)
            try:
                busy = client.get(url, params={"min_length": 3})
                assert busy.status_code == 503, busy.text
                assert busy.json()["error"]["code"] == "busy" and busy.headers["retry-after"]
            finally:
                release.set()
            assert running.result(timeout=60).status_code == 200
            assert waiting.result(timeout=60).status_code == 200


# ---- item 12: bulk slices stream under a byte budget --------------------------------------


def _frames_leaves_and_arrays(steps_count: int):
    from rlds_hub.storage import open_dataset

    plan = open_dataset(dataset_root() / "frames").plan
    leaves = steps.step_leaves(plan, None, allow_images=True)
    rng = np.random.default_rng(0)
    arrays = {
        leaf.key: rng.integers(0, 255, (steps_count, *leaf.shape)).astype(leaf.dtype)
        for leaf in leaves
    }
    return leaves, arrays


@pytest.mark.parametrize("image_format", ["arrow", "npz"])
def test_bulk_encodings_stream_in_chunks_without_a_copy_of_the_slice(image_format):
    count = 24_000  # 24 x 24 x 3 frames and the other fields: about 42 MB
    leaves, arrays = _frames_leaves_and_arrays(count)
    size = steps.slice_bytes(arrays, leaves, 0, count)
    assert size > 40 * 2**20
    chunk = 2**20
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        sent = 0
        for piece in steps.stream(
            image_format, arrays, leaves, {"dataset": "x"}, 0, count, chunk_bytes=chunk
        ):
            assert len(piece) <= 2 * chunk
            sent += len(piece)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert sent > 0.95 * size and peak < 8 * chunk, (sent, peak)  # never all at once

    body = b"".join(
        steps.stream(
            image_format, arrays, leaves, {"dataset": "x"}, 5, 1005, chunk_bytes=64 * 2**10
        )
    )
    if image_format == "arrow":
        table = pa.ipc.open_stream(body).read_all()
        assert table.num_rows == 1000 and len(table.to_batches()) > 1
        read = {name: table.column(name) for name in table.column_names}
        for leaf in leaves:
            column = read[leaf.name]
            values = column.combine_chunks().to_numpy_ndarray() if leaf.shape else column.to_numpy()
            assert np.array_equal(values, arrays[leaf.key][5:1005]), leaf.name
    else:
        archive = np.load(io.BytesIO(body), allow_pickle=False)
        for leaf in leaves:
            assert np.array_equal(archive[leaf.name], arrays[leaf.key][5:1005]), leaf.name
        assert '"start": 5' in str(archive["__rlds_hub__"])


def test_bulk_slices_stream_and_wait_for_the_byte_budget(tmp_path):
    with app_client(
        [dataset_root()], f"sqlite:///{tmp_path}/index.sqlite3", bulk_wait_seconds=0
    ) as client:
        budget = client.app_state.service.bulk_budget
        url = f"{API}/datasets/frames/episodes/1/steps"
        first = client.get(url, params={"format": "arrow"})
        assert first.status_code == 200 and "content-length" not in first.headers  # streamed
        assert pa.ipc.open_stream(first.content).read_all().num_rows == 10  # 9 + 1 steps
        one = budget.peak
        assert budget.in_use == 0 and one > 10 * FRAME * FRAME * 3  # it held the frames

        held = budget.try_reserve(budget.capacity)  # another slice holds the whole budget
        busy = client.get(url, params={"format": "npz"})
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"]["code"] == "busy" and busy.headers["retry-after"]
        budget.release(held)

        budget.capacity, budget.peak = one * 3 // 2, 0  # room for one slice at a time
        client.app_state.service.settings.bulk_wait_seconds = 60
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda f: client.get(url, params={"format": f}), ["arrow", "npz"] * 6)
            )
        assert [a.status_code for a in answers] == [200] * 12
        assert budget.peak <= budget.capacity and budget.in_use == 0


def test_a_slice_whose_client_goes_away_gives_its_bytes_back(tmp_path):
    import anyio

    with app_client([dataset_root()], f"sqlite:///{tmp_path}/index.sqlite3") as client:
        budget = client.app_state.service.bulk_budget
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"{API}/datasets/frames/episodes/1/steps",
            "raw_path": b"",
            "query_string": b"format=npz",
            "root_path": "",
            "headers": [],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        reserved_while_sending = []

        async def receive():
            await anyio.sleep(3600)

        async def send(message):
            if message["type"] == "http.response.body":
                reserved_while_sending.append(budget.in_use)
                raise OSError("the client went away")

        async def request():
            with pytest.raises(Exception):  # noqa: B017 - whatever the server makes of it
                await client.app(scope, receive, send)

        anyio.run(request)
        assert reserved_while_sending and reserved_while_sending[0] > 0
        assert budget.in_use == 0


@pytest.mark.parametrize("what", ["animation", "filmstrip"])
def test_animations_and_filmstrips_hold_their_frames_bytes_from_the_budget(tmp_path, what):
    with app_client(
        [dataset_root()], f"sqlite:///{tmp_path}/index.sqlite3", bulk_wait_seconds=0
    ) as client:
        budget = client.app_state.service.bulk_budget
        url = f"{API}/datasets/frames/episodes/1/{what}"
        held = budget.try_reserve(budget.capacity)
        busy = client.get(url)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy", busy.text
        budget.release(held)
        budget.peak = 0
        assert client.get(url).status_code == 200
        assert budget.peak >= 10 * FRAME * FRAME * 3 and budget.in_use == 0
