"""Nothing outside a dataset directory is read: shard templates with ``..`` or absolute,
links out of the directory (shards, metadata files, the directory itself), special files
(``/dev/zero``, FIFOs) — in the core, for every consumer, and in the service."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from rlds_hub.storage import DatasetError, files, iter_episodes, open_dataset, read_record
from rlds_hub.storage.checksums import write_checksums
from rlds_hub.testing.service import app_client, auth
from rlds_hub.testing.service_data import copy_root, record_frames

TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_INDEX}"


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    return record_frames(tmp_path_factory.mktemp("recorded") / "frames")


@pytest.fixture
def dataset(frames, tmp_path) -> Path:
    """A writable copy of a small recorded dataset, with a sibling ``outside`` directory."""
    (tmp_path / "outside").mkdir()
    return Path(shutil.copytree(frames, tmp_path / "root" / "frames"))


def set_template(path: Path, template: str) -> None:
    info_path = path / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["splits"][0]["filepathTemplate"] = template
    info_path.write_text(json.dumps(info))


def shard_names(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path) if ".tfrecord-" in n)


def move_shards_outside(path: Path, outside: Path) -> None:
    for name in shard_names(path):
        shutil.move(path / name, outside / name)


# ---- templates ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_templates_out_of_the_directory_are_refused_naming_the_field(dataset, kind):
    outside = dataset.parent.parent / "outside"
    move_shards_outside(dataset, outside)
    template = f"../../outside/{TEMPLATE}" if kind == "dotdot" else f"{outside}/{TEMPLATE}"
    set_template(dataset, template)
    with pytest.raises(
        DatasetError,
        match=r"dataset_info.json: splits\[0\] \('train'\): "
        r"filepathTemplate .* (holds a '\.\.' component|is an absolute path)",
    ):
        open_dataset(dataset)


def test_a_dataset_name_with_dotdot_cannot_lead_out_either(dataset):
    info_path = dataset / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["name"] = "../../outside/frames"
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="filepathTemplate"):
        open_dataset(dataset)


# ---- links out of the directory -----------------------------------------------------------


def test_a_shard_linked_to_a_file_outside_is_refused_whether_or_not_it_exists(dataset):
    outside = dataset.parent.parent / "outside"
    first = shard_names(dataset)[0]
    shutil.move(dataset / first, outside / first)
    (dataset / first).symlink_to(outside / first)
    with pytest.raises(DatasetError, match="leads outside the dataset directory") as present:
        open_dataset(dataset)
    (outside / first).unlink()
    with pytest.raises(DatasetError, match="leads outside the dataset directory") as absent:
        open_dataset(dataset)
    assert str(present.value) == str(absent.value)  # nothing said about the target


def test_a_shard_linked_inside_the_directory_is_read(dataset):
    first = shard_names(dataset)[0]
    (dataset / first).rename(dataset / "real-shard")
    (dataset / first).symlink_to("real-shard")
    assert len(list(iter_episodes(open_dataset(dataset), "train"))) == 5


@pytest.mark.parametrize("name", ["features.json", "metadata.json", "episodes.jsonl"])
def test_metadata_files_linked_outside_are_refused(dataset, name):
    outside = dataset.parent.parent / "outside"
    shutil.move(dataset / name, outside / name)
    (dataset / name).symlink_to(outside / name)
    with pytest.raises(DatasetError, match="leads outside the dataset directory"):
        opened = open_dataset(dataset)
        opened.episode_index  # noqa: B018 (read on first use)


def test_a_shard_swapped_for_a_link_after_opening_is_refused_when_read(dataset):
    opened = open_dataset(dataset)
    outside = dataset.parent.parent / "outside"
    first = shard_names(dataset)[0]
    shutil.copy(dataset / first, outside / first)
    (dataset / first).unlink()
    (dataset / first).symlink_to(outside / first)
    with pytest.raises(DatasetError, match="leads outside the dataset directory"):
        read_record(opened, "train", 0)
    with pytest.raises(DatasetError, match="leads outside the dataset directory"):
        list(iter_episodes(opened, "train"))


def test_a_dataset_directory_swapped_for_a_link_after_opening_is_refused(dataset):
    opened = open_dataset(dataset)
    read_record(opened, "train", 0)
    outside = dataset.parent.parent / "outside" / "frames"
    shutil.move(dataset, outside)
    dataset.symlink_to(outside)
    with pytest.raises(DatasetError, match="leads outside the dataset directory"):
        read_record(opened, "train", 1)
    with pytest.raises(DatasetError, match=r"not inside .* once links are resolved"):
        open_dataset(dataset, within=os.path.realpath(dataset.parent))


def test_checksums_are_never_computed_of_files_outside(dataset):
    outside = dataset.parent.parent / "outside"
    (outside / "secret").write_bytes(b"x" * 100)
    first = shard_names(dataset)[0]
    (dataset / first).unlink()
    (dataset / first).symlink_to(outside / "secret")
    with pytest.raises(DatasetError, match="leads outside"):
        write_checksums(dataset)
    assert not (dataset / "checksums.json").exists()


# ---- special files ------------------------------------------------------------------------


def test_special_files_are_never_read(tmp_path):
    for read in (files.read_bytes, files.map_bytes):
        with pytest.raises(DatasetError, match="/dev/zero is a device, not a regular file"):
            read("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="is a FIFO, not a regular file"):
        files.read_bytes(fifo)  # returns at once: nothing blocks on a FIFO without writer


def test_files_are_read_up_to_their_size_only():
    # /proc files are regular files whose size is 0 however much they produce
    assert files.read_bytes("/proc/self/status") == b""
    assert files.map_bytes("/proc/self/status") == b""


def test_a_shard_linked_to_dev_zero_or_that_is_a_fifo_fails_at_once(dataset):
    first, second = shard_names(dataset)[:2]
    (dataset / first).unlink()
    (dataset / first).symlink_to("/dev/zero")
    with pytest.raises(DatasetError, match="leads outside"):
        open_dataset(dataset)
    (dataset / first).unlink()
    shutil.copy(dataset / second, dataset / first)
    opened = open_dataset(dataset)
    (dataset / second).unlink()
    os.mkfifo(dataset / second)
    errors: list[Exception] = []

    def read() -> None:
        try:
            list(iter_episodes(opened, "train"))
        except Exception as e:  # checked below
            errors.append(e)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "reading a FIFO shard blocked"
    assert len(errors) == 1 and "is a FIFO, not a regular file" in str(errors[0])
    with pytest.raises(DatasetError, match="is a FIFO, not a regular file"):
        open_dataset(dataset)


# ---- the service --------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path) -> Path:
    """A copy of the served test root, with crafted datasets beside the good ones and the
    real data they aim at outside the root."""
    root = copy_root(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    # a template leading out of the root
    evil = Path(shutil.copytree(root / "frames", root / "template"))
    move_shards_outside(evil, outside)
    set_template(evil, f"../../outside/{TEMPLATE.replace('{DATASET}', 'frames')}")
    # an absolute template at any file: nothing about it may be published
    absolute = Path(shutil.copytree(root / "frames", root / "absolute"))
    set_template(absolute, "/etc/hostname")
    # a shard that is a link to a file outside
    linked = Path(shutil.copytree(root / "frames", root / "linked"))
    first = shard_names(linked)[0]
    shutil.move(linked / first, outside / first)
    (linked / first).symlink_to(outside / first)
    # a shard that is a link to /dev/zero
    zero = Path(shutil.copytree(root / "frames", root / "zero"))
    first = shard_names(zero)[0]
    (zero / first).unlink()
    (zero / first).symlink_to("/dev/zero")
    # a dataset that will be swapped for a link to an outside copy
    shutil.copytree(root / "frames", outside / "swapped")
    return root


def steps_url(name: str) -> str:
    return f"/api/v1/datasets/{name}/episodes/0/steps"


@pytest.mark.parametrize("name", ["template", "absolute", "linked", "zero"])
def test_the_service_serves_nothing_from_outside_the_root(served, tmp_path, name):
    with app_client([served], f"sqlite:///{tmp_path}/index.sqlite3") as client:
        detail = client.get(f"/api/v1/datasets/{name}")
        assert detail.status_code == 200
        body = detail.json()
        assert body["status"] == "error"
        assert body["checksums"] in ({}, None) or not body["checksums"].get("shards")
        error = body["error"]
        assert "leads outside the dataset directory" in error or "filepathTemplate" in error, error
        assert "hostname" not in json.dumps(body.get("splits"))
        steps = client.get(steps_url(name))
        assert steps.status_code == 409, steps.text
        assert steps.json()["error"]["code"] == "dataset_unreadable"
        assert client.get(steps_url("frames")).status_code == 200  # the rest is served


def test_a_directory_swapped_for_a_link_out_of_the_root_is_refused_and_dropped(served, tmp_path):
    with app_client([served], f"sqlite:///{tmp_path}/index.sqlite3") as client:
        assert client.get(steps_url("frames")).status_code == 200
        shutil.rmtree(served / "frames")
        (served / "frames").symlink_to(tmp_path / "outside" / "swapped")
        # the dataset opened before the swap: its shards are checked when opened
        steps = client.get("/api/v1/datasets/frames/episodes/1/steps")
        assert steps.status_code == 409, steps.text
        assert "leads outside the dataset directory" in steps.json()["error"]["message"]
        # opened afresh: the directory itself is checked
        client.app_state.service.reader.datasets.discard(lambda key: True)
        steps = client.get("/api/v1/datasets/frames/episodes/2/steps")
        assert steps.status_code == 409, steps.text
        assert client.post("/api/v1/scan", headers=auth()).status_code == 200
        assert client.get("/api/v1/datasets/frames").status_code == 404
        assert client.get(steps_url("frames")).status_code == 404


def test_saved_statistics_linked_outside_are_refused(dataset):
    from rlds_hub.inspection import saved_statistics

    outside = dataset.parent.parent / "outside"
    (outside / "statistics.json").write_text(json.dumps({"splits": {"train": {"secret": 1}}}))
    (dataset / "statistics.json").symlink_to(outside / "statistics.json")
    with pytest.raises(DatasetError, match="leads outside the dataset directory"):
        saved_statistics(open_dataset(dataset))
    with pytest.raises(DatasetError, match="leads outside the dataset directory"):
        saved_statistics(dataset)


def test_a_stray_link_out_of_the_directory_is_not_measured(dataset):
    from rlds_hub.inspection import summarize

    outside = dataset.parent.parent / "outside"
    (outside / "big").write_bytes(b"x" * 123_456)
    (dataset / "frames-train.tfrecord-00099").symlink_to(outside / "big")
    stray = summarize(open_dataset(dataset), count_steps=False)["unlisted_files"]
    assert stray["count"] == 1 and stray["bytes"] < 1000


def test_a_shard_swapped_for_an_identical_looking_link_is_rechecked_by_the_scan(served, tmp_path):
    from rlds_hub.server.index import database
    from rlds_hub.server.index.indexer import Indexer

    engine = database.make_engine(f"sqlite:///{tmp_path}/index.sqlite3")
    database.migrate(engine)
    try:
        indexer = Indexer(engine, [served.resolve()], compute_statistics=False)
        assert {o.name: o.action for o in indexer.scan().outcomes}["frames"] == "indexed"
        first = shard_names(served / "frames")[0]
        copy = tmp_path / "outside" / first
        shutil.copy2(served / "frames" / first, copy)  # same size and modification time
        (served / "frames" / first).unlink()
        (served / "frames" / first).symlink_to(copy)
        outcome = {o.name: o for o in indexer.scan().outcomes}["frames"]
        assert outcome.action == "failed"
        assert "leads outside the dataset directory" in outcome.error
    finally:
        engine.dispose()
