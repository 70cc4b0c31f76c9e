"""Publishing a finished dataset at an object-store prefix (``s3://``, ``gs://``, any fsspec
file system), and recovering an interrupted publish.

Object stores have no rename, so the local commit (:mod:`rlds_hub.storage.publish`) cannot
be used. The commit markers are the files readers open a prefix through — the dataset's
``dataset_info.json``, an export's ``export.json`` (and a LeRobot export's ``meta/info.json``):
they are written last, and removed first when a dataset is replaced. For an output ``<parent>/<name>`` and a job ``<id>``:

1. when the job starts, its staging prefix ``<parent>/.tmp-<name>-<id>/`` gets an ``.owner``
   object (process, host, time); the job itself writes into a local directory;
2. the commit uploads every file of the finished local directory under the staging prefix
   and checks their sizes in a fresh listing;
3. the output is checked: empty, or (with ``overwrite``) exactly the objects (keys and
   ETags) it held when the job started; anything else is a conflict, and the result goes to
   ``<parent>/<name>-result-<id>/`` instead;
4. ``.ready`` is written in the staging prefix (the files, the target, the old markers'
   ETags): from here the commit is decided, and :func:`recover` finishes it;
5. the old markers are deleted (the output is now absent, never a mix), then the old objects
   the new dataset does not have, the staged files are copied to their final keys
   (server-side) and the markers last (rlds_hub's own marker last of all);
6. the staging prefix is deleted, ``.ready`` first.

A reader therefore sees, at every instant, the old dataset, no dataset, or the new one.
:func:`recover` (run before every job that writes the output, and by ``rlds-hub validate
--repair``) finishes a commit that has its ``.ready``, and deletes the staging prefixes of
dead jobs on this host; a staging prefix of a job on another host is reported, never
touched.

``RLDS_HUB_COMMIT_KILL_AT=<step>`` (``uploaded``, ``ready``, ``promoting``) makes the process
kill itself with SIGKILL at that step: the tests use it to crash a job mid-commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rlds_hub.extras import require
from rlds_hub.storage import dataset_files, publish

OWNER = ".owner"
READY = ".ready"
EXPORT_MARKER = "export.json"
# In the order they are written (the last is the one a commit is judged by).
MARKERS = ("meta/info.json", dataset_files.DATASET_INFO, EXPORT_MARKER)
# What makes a prefix an rlds_hub output (a dataset or an export).
OWN_MARKERS = (dataset_files.DATASET_INFO, EXPORT_MARKER)
KILL_AT = "RLDS_HUB_COMMIT_KILL_AT"
_KILL_STEPS = ("uploaded", "ready", "promoting")
# A local staging directory's working files: never uploaded.
_SKIP_TOP = (".owner", ".pieces", ".receipts", ".sources")
log = logging.getLogger("rlds_hub")


class RemoteOutputError(dataset_files.DatasetError):
    """An object-store output cannot be written (what is wrong and how to fix it)."""


class RemoteConflictError(RemoteOutputError):
    """Something else took the output while the job ran; the result is at ``kept``."""

    def __init__(self, message: str, kept: str):
        super().__init__(message)
        self.kept = kept


def local_staging(url: str) -> Path:
    """Where jobs writing the output ``url`` keep their local work until they upload it:
    ``rlds_hub-staging/<hash of the URL>`` in the temporary directory (``TMPDIR``)."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "rlds_hub-staging" / digest


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path in it (no trailing slash): a new
    instance, so the endpoint and credentials are those of the environment now."""
    fsspec = require("fsspec", "remote", "writing to object storage")
    try:
        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    except (ImportError, ValueError) as e:
        raise RemoteOutputError(f"{url}: no file system for this URL ({e})") from e
    return fs, path.rstrip("/")


def _url(fs: Any, path: str) -> str:
    return fs.unstrip_protocol(path)


def _tag(info: dict[str, Any]) -> str:
    """What identifies one version of an object: its ETag or generation (else size and
    time, for file systems without either)."""
    for key in ("ETag", "etag", "generation", "md5Hash"):
        if info.get(key):
            return f"{key}:{info[key]}".replace('"', "")
    stamp = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
    return f"size:{info.get('size')}:{stamp}"


def objects(fs: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """The objects under ``prefix/`` (a fresh listing): relative key -> fsspec info."""
    return _listing(fs, prefix)


def _listing(fs: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """The objects under ``prefix/`` (fresh, not cached): relative key -> info."""
    with contextlib.suppress(Exception):
        fs.invalidate_cache(prefix)
    try:
        found = fs.find(prefix, detail=True, withdirs=False)
    except FileNotFoundError:
        return {}
    base = prefix.rstrip("/") + "/"
    return {
        path[len(base) :]: info
        for path, info in found.items()
        if path.startswith(base) and info.get("type", "file") != "directory"
    }


def _checkpoint(step: str) -> None:
    """The test hook: SIGKILL this process at ``step`` if ``RLDS_HUB_COMMIT_KILL_AT`` names it."""
    if os.environ.get(KILL_AT) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _split_output(fs: Any, output: str) -> tuple[str, str]:
    parent, name = posixpath.split(output)
    if not name or parent in ("", "/"):
        raise RemoteOutputError(
            f"{_url(fs, output)}: an output needs a prefix inside a bucket "
            "(s3://bucket/datasets/name), not a bucket's root"
        )
    return parent, name


def staging_prefix(output: str, job_id: str) -> str:
    parent, name = posixpath.split(output.rstrip("/"))
    return posixpath.join(parent, f"{dataset_files.TMP_PREFIX}{name}-{job_id}")


class RemoteOutput:
    """One job's object-store output: checked and claimed when the job starts
    (:meth:`start`), committed from a finished local directory (:meth:`commit`)."""

    def __init__(self, url: str, *, overwrite: bool = False):
        self.fs, self.path = filesystem(url)
        self.parent, self.name = _split_output(self.fs, self.path)
        self.url = _url(self.fs, self.path)
        self.overwrite = overwrite
        self.expected: dict[str, str] | None = None
        self.job_id: str | None = None

    @property
    def staging(self) -> str:
        assert self.job_id is not None
        return staging_prefix(self.path, self.job_id)

    def start(self, job_id: str) -> list[str]:
        """Recovers interrupted commits to the output, checks it, and writes the job's owner
        object (which also proves the bucket is writable before the pipeline runs). Returns
        what recovery did.

        Raises:
          RemoteOutputError: the bucket is missing or not writable, or the output holds
            something the job must not replace.
        """
        bucket = self.path.lstrip("/").split("/", 1)[0]
        try:  # a listing first: it tells refused credentials (403) from a missing bucket
            _listing(self.fs, self.path)
            bucket_exists = self.fs.exists(self.path[: self.path.index(bucket) + len(bucket)])
        except PermissionError as e:
            raise RemoteOutputError(
                f"{self.url}: access was refused ({e}); check the credentials (the "
                "environment, the provider's config files) and the bucket's permissions"
            ) from e
        if not bucket_exists:
            raise RemoteOutputError(
                f"{self.url}: the bucket {bucket!r} does not exist; create it first or check "
                "the URL"
            )
        done = recover(self.url)
        current = _listing(self.fs, self.path)
        _check_output(self.url, current, self.overwrite)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isfile(self.path):
                raise RemoteOutputError(
                    f"{self.url} is an object, not a prefix; choose another output"
                )
        self.expected = {key: _tag(info) for key, info in current.items()}
        self.job_id = job_id
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        try:
            self.fs.pipe(posixpath.join(self.staging, OWNER), json.dumps(owner).encode())
        except PermissionError as e:
            raise RemoteOutputError(
                f"{self.url}: writing is not allowed with these credentials ({e}); check "
                "the bucket's permissions"
            ) from e
        return done

    def commit(self, local: str | os.PathLike) -> str:
        """Uploads the finished local directory ``local`` and publishes it at the output
        (module docstring). Returns the output URL.

        Raises:
          RemoteConflictError: something else took the output while the job ran; nothing
            was replaced, and the result is at ``error.kept``.
        """
        assert self.job_id is not None, "start() first"
        files = _local_files(Path(local))
        markers = [m for m in MARKERS if m in files]
        if not set(markers) & set(OWN_MARKERS):
            raise RemoteOutputError(
                f"{local} holds no {dataset_files.DATASET_INFO} or {EXPORT_MARKER}, so it is not a finished dataset; "
                "nothing was uploaded"
            )
        staging = self.staging
        names = sorted(files)
        self.fs.put(
            [os.fspath(files[n]) for n in names], [posixpath.join(staging, n) for n in names]
        )
        staged = _listing(self.fs, staging)
        for rel in names:
            want = files[rel].stat().st_size
            got = staged.get(rel, {}).get("size")
            if got != want:
                raise RemoteOutputError(
                    f"uploading {rel} to {_url(self.fs, staging)} gave {got} bytes of {want}; "
                    "nothing was published (run the job again)"
                )
        _checkpoint("uploaded")
        current = _listing(self.fs, self.path)
        conflict = _conflict(self.url, current, self.expected, self.overwrite)
        target = self.path
        if conflict:
            target = posixpath.join(self.parent, f"{self.name}-result-{self.job_id}")
        old_marker = {m: _tag(current[m]) for m in MARKERS if m in current}
        ready = {"files": names, "markers": markers, "target": target, "replaces": old_marker}
        self.fs.pipe(posixpath.join(staging, READY), json.dumps(ready).encode())
        _checkpoint("ready")
        _promote(self.fs, staging, ready)
        if conflict:
            kept = _url(self.fs, target)
            raise RemoteConflictError(
                f"{conflict}; nothing was replaced. The finished result is in {kept}: check "
                f"{self.url}, then copy the result where you want it",
                kept,
            )
        return self.url

    def abort(self) -> None:
        """Deletes the job's staging prefix (the output is untouched) — unless its commit was
        decided (``.ready`` written): then the prefix is what finishes it, and is kept."""
        if self.job_id is None:
            return
        staging = self.staging
        with contextlib.suppress(Exception):
            if self.fs.exists(posixpath.join(staging, READY)):
                log.warning(
                    "rlds_hub: the commit to %s was interrupted after it was decided; "
                    "`rlds-hub validate --repair %s` (or the next job writing it) finishes it",
                    self.url,
                    self.url,
                )
                return
        _remove_prefix(self.fs, staging)


def _local_files(local: Path) -> dict[str, Path]:
    """A finished local directory's files by relative key, without its working files."""
    out = {}
    for root, dirs, names in os.walk(local):
        rel_root = os.path.relpath(root, local)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d not in _SKIP_TOP]
        for name in names:
            rel = name if rel_root == "." else posixpath.join(*Path(rel_root).parts, name)
            if rel_root == "." and name in _SKIP_TOP:
                continue
            out[rel] = Path(root) / name
    return out


def _check_output(url: str, current: dict[str, Any], overwrite: bool) -> None:
    if not current:
        return
    holds = [m for m in OWN_MARKERS if m in current]
    if holds and overwrite:
        return
    if holds:
        raise RemoteOutputError(
            f"{url} already holds a dataset; pass --overwrite to replace it, or choose "
            "another output"
        )
    shown = ", ".join(sorted(current)[:5]) + (", ..." if len(current) > 5 else "")
    raise RemoteOutputError(
        f"{url} holds {len(current)} object(s) but no dataset ({shown}; no "
        f"{dataset_files.DATASET_INFO}, so perhaps an interrupted copy); a job writes only to "
        "an empty prefix or replaces a dataset with --overwrite: delete them or choose "
        "another output"
    )


def _conflict(
    url: str, current: dict[str, Any], expected: dict[str, str] | None, overwrite: bool
) -> str:
    """Why the output is not what the job may replace now ("" if it is)."""
    if not current:
        return ""
    if not overwrite or expected is None:
        return f"{url} ({len(current)} object(s)) appeared while the job ran"
    now = {key: _tag(info) for key, info in current.items()}
    changed = sorted(k for k in now if expected.get(k) != now[k])
    if not changed:
        return ""
    shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
    return (
        f"{shown} appeared or changed in {url} while the job ran (an overwrite replaces only "
        "the dataset that was there)"
    )


def _promote(fs: Any, staging: str, ready: dict[str, Any]) -> None:
    """Step 5 and 6 of the module docstring; repeatable (recovery runs it again)."""
    target, markers = ready["target"], ready["markers"]
    present = _listing(fs, target)
    old_markers = [posixpath.join(target, m) for m in MARKERS if m in present]
    if old_markers:
        fs.rm(old_markers)  # the output is absent from here until the new marker
    new = set(ready["files"])
    stale = [posixpath.join(target, k) for k in present if k not in new and k not in MARKERS]
    if stale:
        fs.rm(stale)
    body = [n for n in ready["files"] if n not in markers]
    if body:
        fs.copy(
            [posixpath.join(staging, n) for n in body], [posixpath.join(target, n) for n in body]
        )
    _checkpoint("promoting")
    for marker in markers:
        fs.copy(posixpath.join(staging, marker), posixpath.join(target, marker))
    fs.rm(posixpath.join(staging, READY))
    _remove_prefix(fs, staging)


def _remove_prefix(fs: Any, prefix: str) -> None:
    keys = [posixpath.join(prefix, k) for k in _listing(fs, prefix)]
    if keys:
        fs.rm(keys)
    with contextlib.suppress(OSError):
        fs.rm(prefix, recursive=True)  # directory entries, on file systems that have them
    with contextlib.suppress(Exception):
        fs.invalidate_cache(prefix)


def _owner_alive(fs: Any, staging: str) -> tuple[bool | None, str]:
    """Whether the job that owns ``staging`` lives (None: no owner object), and its host."""
    try:
        owner = json.loads(fs.cat(posixpath.join(staging, OWNER)))
    except (FileNotFoundError, ValueError):
        return None, ""
    host = str(owner.get("host", ""))
    if host != socket.gethostname():
        return True, host  # another machine's job: not ours to judge
    pid = int(owner.get("pid", 0))
    if pid <= 0:
        return False, host
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, host
    except PermissionError:
        return True, host
    return True, host


def _staging_prefixes(fs: Any, parent: str, name: str) -> Iterator[tuple[str, str]]:
    """The staging prefixes of jobs writing ``parent/name``: (prefix, job id)."""
    head = f"{dataset_files.TMP_PREFIX}{name}-"
    with contextlib.suppress(Exception):
        fs.invalidate_cache(parent)
    try:
        entries = fs.ls(parent, detail=False)
    except FileNotFoundError:
        return
    for entry in sorted(entries):
        base = posixpath.basename(entry.rstrip("/"))
        job_id = base[len(head) :]
        if (
            base.startswith(head)
            and len(job_id) == 12
            and all(c in "0123456789abcdef" for c in job_id)
        ):
            yield entry.rstrip("/"), job_id


def recover(
    url: str, *, alive: Callable[[Any, str], tuple[bool | None, str]] = _owner_alive
) -> list[str]:
    """Finishes the interrupted commits to the output ``url`` (those with a ``.ready``) and
    deletes the staging prefixes of dead jobs on this host; returns what it did (and which
    staging prefixes of other hosts' jobs it left), one line each."""
    fs, path = filesystem(url)
    parent, name = _split_output(fs, path)
    # The local work of dead jobs (on this host) writing this output.
    local = local_staging(_url(fs, path))
    done = [f"{line} (in {local})" for line in publish.recover(local / name)]
    for staging, _job_id in _staging_prefixes(fs, parent, name):
        shown = _url(fs, staging)
        if not _listing(fs, staging):  # an empty directory entry (file systems that have them)
            with contextlib.suppress(OSError):
                fs.rmdir(staging)
            continue
        try:
            ready = json.loads(fs.cat(posixpath.join(staging, READY)))
        except FileNotFoundError:
            ready = None
        if ready is not None:
            done.append(_finish(fs, staging, ready))
            continue
        living, host = alive(fs, staging)
        if living and host != socket.gethostname():
            done.append(
                f"left {shown}: the staging prefix of a job on host {host} (delete it once "
                "that job is gone)"
            )
            continue
        if living:
            continue
        finished = _published(fs, staging, path)
        _remove_prefix(fs, staging)
        done.append(
            f"removed {shown}, left by a commit that had completed"
            if finished
            else f"removed {shown}, the unfinished upload of a job that died"
        )
    return done


def _published(fs: Any, staging: str, output: str) -> bool:
    """Whether the output's marker is the one ``staging`` holds (its commit completed)."""
    for marker in OWN_MARKERS:
        with contextlib.suppress(FileNotFoundError):
            if fs.cat(posixpath.join(staging, marker)) == fs.cat(posixpath.join(output, marker)):
                return True
    return False


def _finish(fs: Any, staging: str, ready: dict[str, Any]) -> str:
    """Finishes one decided commit (its ``.ready`` is written); what it did, in a line."""
    target, marker = ready["target"], ready["markers"][-1]
    present = _listing(fs, target)
    if marker in present:
        ours = fs.cat(posixpath.join(staging, marker)) == fs.cat(posixpath.join(target, marker))
        if ours:  # killed while deleting the staging prefix: the commit is complete
            fs.rm(posixpath.join(staging, READY))
            _remove_prefix(fs, staging)
            return f"removed {_url(fs, staging)}, left by a commit that had completed"
        replaced = ready.get("replaces", {}).get(marker) == _tag(present[marker])
        if not replaced:  # another dataset arrived since: keep ours aside
            ready = {**ready, "target": f"{target}-result-{posixpath.basename(staging)[-12:]}"}
            _promote(fs, staging, ready)
            return (
                f"kept the finished result of an interrupted job in "
                f"{_url(fs, ready['target'])} ({_url(fs, target)} holds another dataset)"
            )
    _promote(fs, staging, ready)
    return f"completed an interrupted commit: the finished result is now at {_url(fs, target)}"
