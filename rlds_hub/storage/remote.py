"""Object stores as files: ``s3://``, ``gs://`` and ``http(s)://`` through fsspec (s3fs,
gcsfs, aiohttp), shaped for reading datasets.

One :class:`ObjectStore` per scheme and configuration (endpoint, credentials) does what the
reader needs and nothing more, each operation one HTTP request: :meth:`~ObjectStore.stat`
(size and ETag / generation), :meth:`~ObjectStore.read` (the whole object or a byte range,
optionally pinned to an ETag so an object replaced meanwhile is an error, never mixed data),
:meth:`~ObjectStore.listdir`. Requests are counted per store (:attr:`ObjectStore.requests`);
network errors and 5xx answers are retried with exponential backoff, then reported naming the
object and the byte range. Credentials come from the provider's usual places (environment,
config files, instance metadata) and appear in no message: URLs are shown without user info.

The clients are the ``remote`` extra (``pip install 'rlds_hub[remote]'``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import random
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from rlds_hub.extras import require
from rlds_hub.storage.dataset_files import DatasetError

T = TypeVar("T")

SCHEMES = ("s3", "gs", "gcs", "http", "https")
ATTEMPTS = 5  # per request, the first included
BACKOFF_S = 0.1  # before the second attempt; doubled for each further one
CONCURRENCY = 16  # parallel requests of one read_many call


class RemoteError(DatasetError):
    """An object store refused or failed a request (the message names the object)."""


class RemoteAccessError(RemoteError):
    """No credentials, or credentials without permission (403)."""


class RemoteReadError(RemoteError):
    """A request that failed on every attempt (network errors, 5xx): names object and range."""


class ObjectChangedError(RemoteError):
    """An object replaced while it was being read (its ETag / generation changed)."""


class _Retryable(Exception):
    """A failure worth another attempt."""


@dataclasses.dataclass(frozen=True)
class ObjectStat:
    """An object's size in bytes and its version tag (ETag, or a GCS generation)."""

    size: int
    etag: str | None


@dataclasses.dataclass
class RequestCounter:
    """Requests an :class:`ObjectStore` sent, by kind (``head``, ``get``, ``range``, ``list``;
    retries included), and the body bytes received."""

    by_kind: Counter = dataclasses.field(default_factory=Counter)
    bytes: int = 0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def add(self, kind: str, received: int = 0) -> None:
        with self._lock:
            self.by_kind[kind] += 1
            self.bytes += received

    def received(self, size: int) -> None:
        with self._lock:
            self.bytes += size

    def reset(self) -> None:
        with self._lock:
            self.by_kind.clear()
            self.bytes = 0


def is_remote(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def redact(url: str) -> str:
    """``url`` without user info (``https://user:secret@host/x`` -> ``https://host/x``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _byte_range(start: int | None, end: int | None) -> str:
    if start is None:
        return "the whole object"
    return f"bytes {start}-{end - 1}" if end is not None else f"bytes {start}-"


class ObjectStore:
    """One fsspec filesystem of a scheme, with counted, retried, version-pinned requests."""

    scheme: str

    def __init__(self, filesystem: Any) -> None:
        self.fs = filesystem
        self.requests = RequestCounter()

    # --- the operations (each one request, plus retries) -------------------------------
    def stat(self, url: str) -> ObjectStat:
        """Size and ETag of the object ``url``.

        Raises:
          FileNotFoundError: no such object. RemoteError: see :meth:`read`.
        """
        return self._run(url, None, None, "head", lambda: self._stat(url))

    def read(
        self,
        url: str,
        start: int | None = None,
        end: int | None = None,
        *,
        etag: str | None = None,
    ) -> tuple[bytes, str | None]:
        """Bytes ``[start, end)`` of ``url`` (the whole object if ``start`` is None) in one
        GET, and the object's ETag. With ``etag``, the read is of that version only.

        Raises:
          FileNotFoundError: no such object.
          ObjectChangedError: the object's ETag is no longer ``etag``.
          RemoteAccessError: no credentials, or access denied (403).
          RemoteReadError: every attempt failed; names the object and the byte range.
        """
        kind = "get" if start is None else "range"
        return self._run(url, start, end, kind, lambda: self._read(url, start, end, etag))

    def read_many(
        self,
        requests: Sequence[tuple[str, int | None, int | None, str | None]],
        *,
        missing_ok: bool = False,
    ) -> list[tuple[bytes, str | None] | None]:
        """:meth:`read` of each ``(url, start, end, etag)``, up to :data:`CONCURRENCY` at a
        time (one round trip of latency for many ranges), results in order; with
        ``missing_ok``, None for a missing object instead of FileNotFoundError."""

        async def gather() -> list[tuple[bytes, str | None] | None]:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(url: str, start: int | None, end: int | None, etag: str | None):
                async with gate:
                    kind = "get" if start is None else "range"
                    try:
                        return await self._attempts(
                            url, start, end, kind, lambda: self._read(url, start, end, etag)
                        )
                    except FileNotFoundError:
                        if missing_ok:
                            return None
                        raise

            return await asyncio.gather(*(one(*r) for r in requests))

        return self._sync(gather())

    def listdir(self, url: str) -> list[str]:
        """Names directly under the "directory" ``url`` (sorted).

        Raises:
          FileNotFoundError: nothing is under ``url``. RemoteError: see :meth:`read`.
        """
        return sorted(set(self._run(url, None, None, "list", lambda: self._listdir(url))))

    listing_has_sizes = False  # True: _list_sizes answers from the listing alone

    def list_sizes(self, url: str) -> dict[str, int]:
        """``{name: size}`` of the objects directly under ``url`` (sub-prefixes left out), from
        the listing where it gives sizes (S3: one request per 1000 objects), else the listing
        and one HEAD per object (each counted).

        Raises:
          FileNotFoundError: nothing is under ``url``, or the server lists nothing.
        """
        if self.listing_has_sizes:
            return self._run(url, None, None, "list", lambda: self._list_sizes(url))
        sizes = {}
        for name in self.listdir(url):
            if name.endswith("/"):
                continue
            try:
                sizes[name] = self.stat(f"{url.rstrip('/')}/{name}").size
            except FileNotFoundError:
                continue  # a sub-prefix, not an object
        return sizes

    async def _list_sizes(self, url: str) -> dict[str, int]:
        raise NotImplementedError

    def exists(self, url: str) -> bool:
        try:
            self.stat(url)
            return True
        except FileNotFoundError:
            return self.isdir(url)

    def isdir(self, url: str) -> bool:
        try:
            return bool(self.listdir(url))
        except FileNotFoundError:
            return False

    # --- what each scheme implements (coroutines on fsspec's loop) ---------------------
    async def _stat(self, url: str) -> ObjectStat:
        raise NotImplementedError

    async def _read(
        self, url: str, start: int | None, end: int | None, etag: str | None
    ) -> tuple[bytes, str | None]:
        raise NotImplementedError

    async def _listdir(self, url: str) -> list[str]:
        raise NotImplementedError

    # --- retries and errors -------------------------------------------------------------
    def _sync(self, coroutine: Awaitable[T]) -> T:
        from fsspec.asyn import sync

        return sync(self.fs.loop, lambda: coroutine)

    def _run(
        self,
        url: str,
        start: int | None,
        end: int | None,
        kind: str,
        attempt: Callable[[], Awaitable[T]],
    ) -> T:
        return self._sync(self._attempts(url, start, end, kind, attempt))

    async def _attempts(
        self,
        url: str,
        start: int | None,
        end: int | None,
        kind: str,
        attempt: Callable[[], Awaitable[T]],
    ) -> T:
        last: BaseException | None = None
        for number in range(ATTEMPTS):
            if number:
                delay = BACKOFF_S * 2 ** (number - 1)
                await asyncio.sleep(delay * (0.5 + random.random()))
            self.requests.add(kind)
            try:
                result = await attempt()
            except _Retryable as e:
                last = e.__cause__ or e
                continue
            if isinstance(result, tuple) and result and isinstance(result[0], bytes):
                self.requests.received(len(result[0]))
            return result
        raise RemoteReadError(
            f"{redact(url)}: {_byte_range(start, end)} could not be read: {ATTEMPTS} attempts "
            f"failed, the last with {type(last).__name__}: {last}. Check the network and the "
            "server, then run again"
        ) from last


class S3Store(ObjectStore):
    """``s3://bucket/key`` through s3fs's aiobotocore client (``AWS_ENDPOINT_URL`` for other
    S3-compatible servers; ``RLDS_HUB_S3_ANON=1`` for public buckets without credentials)."""

    scheme = "s3"
    listing_has_sizes = True

    @staticmethod
    def _split(url: str) -> tuple[str, str]:
        bucket, _, key = url.split("://", 1)[1].partition("/")
        return bucket, key

    async def _call(self, url: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        try:
            client = await self.fs.set_session()
            return await getattr(client, method)(**kwargs)
        except NoCredentialsError:
            raise RemoteAccessError(
                f"{redact(url)}: no S3 credentials found. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE with ~/.aws/credentials); for a public "
                "bucket set RLDS_HUB_S3_ANON=1"
            ) from None
        except ClientError as e:
            raise _s3_error(url, e) from None
        except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, OSError) as e:
            raise _Retryable() from e
        except TimeoutError as e:
            raise _Retryable() from e
        except Exception as e:
            if type(e).__module__.startswith("aiohttp"):
                raise _Retryable() from e
            raise

    async def _stat(self, url: str) -> ObjectStat:
        bucket, key = self._split(url)
        response = await self._call(url, "head_object", Bucket=bucket, Key=key)
        return ObjectStat(int(response["ContentLength"]), response.get("ETag"))

    async def _read(
        self, url: str, start: int | None, end: int | None, etag: str | None
    ) -> tuple[bytes, str | None]:
        bucket, key = self._split(url)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start is not None:
            kwargs["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        if etag is not None:
            kwargs["IfMatch"] = etag
        response = await self._call(url, "get_object", **kwargs)
        try:
            async with response["Body"] as body:
                data = await body.read()
        except Exception as e:  # a connection lost mid-body
            raise _Retryable() from e
        _check_length(url, start, end, data, int(response.get("ContentLength", len(data))))
        found = response.get("ETag")
        _check_etag(url, etag, found)
        return data, found

    async def _listdir(self, url: str) -> list[str]:
        return list(await self._listing(url, with_prefixes=True))

    async def _list_sizes(self, url: str) -> dict[str, int]:
        return {k: v for k, v in (await self._listing(url, with_prefixes=False)).items()}

    async def _listing(self, url: str, *, with_prefixes: bool) -> dict[str, int]:
        """``{name: size}`` under ``url`` (sub-prefixes with size -1 if ``with_prefixes``)."""
        bucket, key = self._split(url)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        names: dict[str, int] = {}
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            response = await self._call(url, "list_objects_v2", **kwargs)
            for entry in response.get("Contents", []):
                names[entry["Key"][len(prefix) :]] = int(entry["Size"])
            if with_prefixes:
                for entry in response.get("CommonPrefixes", []):
                    names.setdefault(entry["Prefix"][len(prefix) :].rstrip("/"), -1)
            token = response.get("NextContinuationToken")
            if not token:
                break
        names.pop("", None)
        if not names and with_prefixes:
            raise FileNotFoundError(f"{redact(url)}: nothing under this prefix")
        return names


def _s3_error(url: str, error: Any) -> Exception:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    bucket = url.split("://", 1)[1].partition("/")[0]
    if code == "NoSuchBucket":
        return RemoteError(
            f"{redact(url)}: the bucket {bucket!r} does not exist; check the bucket name (and "
            "AWS_ENDPOINT_URL for an S3-compatible server)"
        )
    if code in ("NoSuchKey", "404", "NotFound"):
        return FileNotFoundError(f"{redact(url)}: no such object")
    if code in ("PreconditionFailed", "412"):
        return ObjectChangedError(_changed_message(url))
    if status == 403 or code in (
        "AccessDenied",
        "403",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    ):
        return RemoteAccessError(
            f"{redact(url)}: access denied (HTTP 403, {code}): the credentials in use may not "
            "read it; check AWS_ACCESS_KEY_ID / AWS_PROFILE and the bucket's policy"
        )
    if (status is not None and int(status) >= 500) or code in ("SlowDown", "InternalError"):
        return _Retryable(f"HTTP {status} {code}")
    return RemoteError(f"{redact(url)}: the S3 server refused the request ({code}: {error})")


def _changed_message(url: str) -> str:
    return (
        f"{redact(url)} changed while being read (its ETag is no longer the one its other "
        "parts were read with); nothing of the new version was mixed in. The dataset was "
        "rewritten meanwhile: open it again"
    )


def _check_etag(url: str, expected: str | None, found: str | None) -> None:
    if expected is not None and found is not None and found != expected:
        raise ObjectChangedError(_changed_message(url))


def _check_length(url: str, start: int | None, end: int | None, data: bytes, length: int) -> None:
    if len(data) != length:  # a body cut short: the connection was lost
        raise _Retryable(f"{len(data)} of {length} bytes received")
    if start is not None and end is not None and len(data) != end - start:
        raise RemoteError(
            f"{redact(url)}: {_byte_range(start, end)} asked, {len(data)} bytes received (the "
            "object is shorter than its listing says): the object may have been truncated"
        )


class HTTPStore(ObjectStore):
    """``http(s)://`` objects on any server with range requests (a public bucket's HTTPS URL,
    nginx, ...); directories are listed from the server's HTML index where it has one."""

    scheme = "https"

    async def _request(
        self, method: str, url: str, headers: dict[str, str]
    ) -> tuple[int, Any, bytes]:
        import aiohttp

        try:
            session = await self.fs.set_session()
            async with session.request(method, url, headers=headers, allow_redirects=True) as r:
                body = await r.read() if method == "GET" else b""
                return r.status, r.headers, body
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise _Retryable() from e

    def _raise_for(self, url: str, status: int) -> None:
        if status == 404:
            raise FileNotFoundError(f"{redact(url)}: no such object (HTTP 404)")
        if status in (401, 403):
            raise RemoteAccessError(
                f"{redact(url)}: access denied (HTTP {status}); the server refuses to serve it "
                "to these credentials"
            )
        if status == 412:
            raise ObjectChangedError(_changed_message(url))
        if status >= 500 or status == 429:
            raise _Retryable(f"HTTP {status}")
        if status >= 400:
            raise RemoteError(f"{redact(url)}: the server answered HTTP {status}")

    async def _stat(self, url: str) -> ObjectStat:
        status, headers, _ = await self._request("HEAD", url, {"Accept-Encoding": "identity"})
        self._raise_for(url, status)
        if "Content-Length" not in headers:
            raise RemoteError(f"{redact(url)}: the server sent no Content-Length")
        return ObjectStat(int(headers["Content-Length"]), headers.get("ETag"))

    async def _read(
        self, url: str, start: int | None, end: int | None, etag: str | None
    ) -> tuple[bytes, str | None]:
        headers = {"Accept-Encoding": "identity"}
        if start is not None:
            headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        if etag is not None:
            headers["If-Match"] = etag
        status, response, body = await self._request("GET", url, headers)
        self._raise_for(url, status)
        if start is not None and status != 206:
            raise RemoteError(
                f"{redact(url)}: the server ignored the byte range (HTTP {status}, not 206); "
                "serve the dataset from a server with range requests"
            )
        _check_length(url, start, end, body, int(response.get("Content-Length", len(body))))
        found = response.get("ETag")
        _check_etag(url, etag, found)
        return body, found

    async def _listdir(self, url: str) -> list[str]:
        base = url.rstrip("/") + "/"
        status, _, body = await self._request("GET", base, {})
        if status in (403, 404):  # servers without listings answer either for a "directory"
            raise FileNotFoundError(f"{redact(url)}: no directory listing here (HTTP {status})")
        self._raise_for(base, status)
        names = []
        for link in re.findall(r'href="([^"]+)"', body.decode("utf-8", "replace")):
            target = urllib.parse.urljoin(base, link)
            if target.startswith(base) and target != base:
                name = urllib.parse.unquote(target[len(base) :].rstrip("/"))
                if name and "/" not in name and "?" not in name:
                    names.append(name)
        if not names:
            raise FileNotFoundError(f"{redact(url)}: no directory listing here")
        return names

    def isdir(self, url: str) -> bool:
        try:
            return bool(self.listdir(url))
        except (FileNotFoundError, RemoteError):
            return False


class GCSStore(ObjectStore):
    """``gs://bucket/key`` through gcsfs (credentials: GOOGLE_APPLICATION_CREDENTIALS,
    gcloud's defaults, or the metadata server; ``STORAGE_EMULATOR_HOST`` for emulators)."""

    scheme = "gs"

    async def _guard(self, url: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except FileNotFoundError:
            raise
        except PermissionError as e:
            raise RemoteAccessError(f"{redact(url)}: access denied ({e})") from None
        except (TimeoutError, OSError) as e:
            raise _Retryable() from e

    async def _stat(self, url: str) -> ObjectStat:
        info = await self._guard(url, self.fs._info(url))
        if info.get("type") == "directory":
            raise FileNotFoundError(f"{redact(url)}: a prefix, not an object")
        return ObjectStat(int(info["size"]), str(info.get("generation") or info.get("etag")))

    async def _read(
        self, url: str, start: int | None, end: int | None, etag: str | None
    ) -> tuple[bytes, str | None]:
        data = await self._guard(url, self.fs._cat_file(url, start=start, end=end))
        if etag is not None:  # gcsfs reads no generation back: compare after the read
            found = (await self._stat(url)).etag
            _check_etag(url, etag, found)
            return data, found
        return data, None

    async def _listdir(self, url: str) -> list[str]:
        entries = await self._guard(url, self.fs._ls(url, detail=False))
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]
        if not names:
            raise FileNotFoundError(f"{redact(url)}: nothing under this prefix")
        return names


_STORES: dict[tuple[str, str], ObjectStore] = {}
_LOCK = threading.Lock()
_CONFIG_VARIABLES = {
    "s3": (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "RLDS_HUB_S3_ANON",
    ),
    "gs": ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"),
    "https": (),
}


def scheme_of(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise DatasetError(
            f"{redact(url)}: the scheme {scheme!r}:// is not supported; use a local path, "
            "s3://, gs:// or https://"
        )
    return {"gcs": "gs", "http": "https"}[scheme] if scheme in ("gcs", "http") else scheme


def store(url: str) -> ObjectStore:
    """The :class:`ObjectStore` of ``url``'s scheme under the current configuration (one per
    endpoint and credentials, so changing the environment reaches a new client)."""
    scheme = scheme_of(url)
    settings = "\0".join(os.environ.get(v, "") for v in _CONFIG_VARIABLES[scheme])
    key = (scheme, hashlib.sha256(settings.encode()).hexdigest())
    with _LOCK:
        found = _STORES.get(key)
        if found is None:
            found = _STORES[key] = _new_store(scheme)
    return found


def _new_store(scheme: str) -> ObjectStore:
    if scheme == "s3":
        s3fs = require("s3fs", "remote")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return S3Store(
            s3fs.S3FileSystem(
                anon=os.environ.get("RLDS_HUB_S3_ANON") == "1",
                endpoint_url=endpoint or None,
                skip_instance_cache=True,
                config_kwargs={
                    "retries": {"max_attempts": 1, "mode": "standard"},
                    "max_pool_connections": 64,
                    "connect_timeout": 10,
                    "read_timeout": 60,
                },
            )
        )
    if scheme == "gs":
        gcsfs = require("gcsfs", "remote")
        return GCSStore(gcsfs.GCSFileSystem(skip_instance_cache=True, retries=1))
    require("aiohttp", "remote")
    http = require("fsspec.implementations.http", "remote")
    return HTTPStore(http.HTTPFileSystem(skip_instance_cache=True))


def all_stores() -> list[ObjectStore]:
    """Every store this process has used (for request counts)."""
    with _LOCK:
        return list(_STORES.values())


def total_requests() -> int:
    return sum(s.requests.total for s in all_stores())


def reset_counts() -> None:
    for s in all_stores():
        s.requests.reset()
