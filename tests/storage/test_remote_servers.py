"""The loopback servers of rlds_hub.testing.object_store: moto's S3 API and nginx with ranges."""

import urllib.request

import pytest

from rlds_hub.testing import object_store


def test_nginx_serves_byte_ranges_and_403(nginx_server, tmp_path):
    served = object_store.served_directory() / "ranges"
    served.mkdir(exist_ok=True)
    (served / "data.bin").write_bytes(bytes(range(100)))
    request = urllib.request.Request(
        nginx_server.url_of(served / "data.bin"), headers={"Range": "bytes=10-19"}
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 10-19/100"
        assert response.headers["ETag"]
        assert response.read() == bytes(range(10, 20))
    assert object_store.http_status(f"{nginx_server.url}/forbidden/data.bin") == 403


def test_upload_directory_to_the_s3_server(s3, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "sub" / "b.txt").write_bytes(b"beta")
    s3.upload_directory(tmp_path, "s3://uploads/prefix")
    client = s3.client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="uploads")["Contents"])
    assert keys == ["prefix/a.txt", "prefix/sub/b.txt"]
    body = client.get_object(Bucket="uploads", Key="prefix/sub/b.txt", Range="bytes=1-2")
    assert body["Body"].read() == b"et"


def test_upload_of_a_missing_directory_is_refused(s3, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        s3.upload_directory(tmp_path / "absent", "s3://uploads/absent")
