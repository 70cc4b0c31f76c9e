"""The index: Alembic migrations match the models on SQLite and PostgreSQL, unchanged
datasets are skipped without being opened, the episode table streams in chunks with
progress, concurrent indexers agree, and ``rlds-hub index`` reports what it did."""

from __future__ import annotations

import subprocess
import threading

import pytest
from sqlalchemy import func, inspect, select

from rlds_hub.server.index import database, facts
from rlds_hub.server.index import indexer as indexer_module
from rlds_hub.server.index.indexer import Indexer
from rlds_hub.server.index.models import Base, DatasetRow, EpisodeRow, EpisodeValueRow
from rlds_hub.testing.service import PYTHON, REPO
from rlds_hub.testing.service_data import copy_root, dataset_root


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/index.sqlite3"
    else:
        url = request.getfixturevalue("postgres").new_database()
    engine = database.make_engine(url)
    database.migrate(engine)
    yield engine
    engine.dispose()


def test_migrations_create_exactly_the_models_schema(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    assert database.current_revision(engine) == database.head_revision()
    database.check_ready(engine)
    database.migrate(engine)  # idempotent


def test_migrations_downgrade_and_upgrade_again(engine):
    from alembic import command

    with engine.connect() as connection:
        command.downgrade(database.alembic_config(connection), "base")
        connection.commit()
    assert "datasets" not in inspect(engine).get_table_names()
    with pytest.raises(database.IndexUnavailable, match="revision None"):
        database.check_ready(engine)
    database.migrate(engine)
    database.check_ready(engine)


def counts(engine):
    with engine.connect() as connection:
        return tuple(
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (DatasetRow, EpisodeRow, EpisodeValueRow)
        )


def test_unchanged_datasets_are_skipped_without_opening_them(engine, monkeypatch):
    indexer = Indexer(engine, [dataset_root()])
    first = indexer.scan()
    assert sorted(o.action for o in first.outcomes) == ["indexed"] * 3
    before = counts(engine)
    assert before == (3, 12 + 5 + 6, 12 * 3 + 6 * 3)

    def refuse(path):
        raise AssertionError(f"opened {path}")

    monkeypatch.setattr(indexer_module, "open_dataset", refuse)
    again = indexer.scan()
    assert [o.action for o in again.outcomes] == ["unchanged"] * 3
    assert counts(engine) == before


def test_the_episode_table_streams_in_chunks_with_progress(engine, monkeypatch, tmp_path):
    root = copy_root(tmp_path / "root")
    monkeypatch.setattr(facts, "CHUNK_EPISODES", 2)
    bars: list[tuple[str, list[int]]] = []

    class Bar:
        def __init__(self, description, total, unit):
            self.updates = [total]
            bars.append((description, self.updates))

        def update(self, n):
            self.updates.append(n)

        def close(self):
            pass

    indexer = Indexer(engine, [root], progress=Bar)
    report = indexer.scan()
    assert report.count("indexed") == 3
    episode_bars = sorted(updates for name, updates in bars if name == "episodes train")
    # frames (5), point_mass (10) and oxe (6; no episodes.jsonl: decoded 2 at a time)
    assert episode_bars == [[5, 2, 2, 1], [6, 2, 2, 2], [10, 2, 2, 2, 2, 2]]
    assert sorted(u[0] for name, u in bars if name == "statistics train") == [5, 6]
    for name, updates in bars:
        assert updates[0] == sum(updates[1:]), name
    with engine.connect() as connection:
        rows = connection.execute(select(EpisodeRow.__table__).order_by("split", "episode")).all()
    assert len(rows) == 23


def test_concurrent_indexers_write_each_dataset_once(engine):
    indexers = [Indexer(engine, [dataset_root()]) for _ in range(3)]
    reports = []
    threads = [threading.Thread(target=lambda i=i: reports.append(i.scan())) for i in indexers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = [o for report in reports for o in report.outcomes]
    assert {o.action for o in outcomes} <= {"indexed", "unchanged"}
    assert sum(o.action == "indexed" for o in outcomes) >= 3
    assert counts(engine) == (3, 23, 54)


@pytest.mark.slow
def test_rlds_hub_index_reports_and_fails_on_a_broken_dataset(tmp_path):
    root = copy_root(tmp_path / "root")
    url = f"sqlite:///{tmp_path}/index.sqlite3"
    command = [
        PYTHON,
        "-m",
        "rlds_hub.cli",
        "index",
        "--root",
        str(root),
        "--database-url",
        url,
        "--quiet",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 indexed, 0 unchanged, 0 failed, 0 removed" in done.stdout
    (root / "frames" / "features.json").unlink()
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1
    assert "0 indexed, 2 unchanged, 1 failed" in again.stdout
    assert "cannot index" in again.stderr and "features.json" in again.stderr
    bad = subprocess.run(
        [PYTHON, "-m", "rlds_hub.cli", "index", "--root", str(tmp_path / "nowhere")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "is not a directory" in bad.stderr
