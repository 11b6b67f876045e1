from __future__ import annotations

import hashlib
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copytrail.store.blobs import BlobStore


@pytest.fixture(params=["memory", "local", "s3"])
def store(request, tmp_path) -> BlobStore:
    """The same store suite on fsspec's memory, a local folder and S3 (moto's emulator)."""
    if request.param == "s3":
        return BlobStore(request.getfixturevalue("s3").new_prefix())
    url = (
        f"memory://store-{request.node.name}" if request.param == "memory" else str(tmp_path / "b")
    )
    return BlobStore(url)


def test_put_get_round_trip_and_content_address(store: BlobStore):
    data = b"The same bytes are stored once.\n" * 100
    sha, written = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest() and written
    assert store.put(data) == (sha, False)
    assert store.get(sha) == data
    assert store.check(sha) is None
    assert store.path(sha).endswith(f"/{sha[:2]}/{sha[2:4]}/{sha}.zst")
    assert list(store.iter_names()) == [sha]


def test_check_reports_missing_and_corrupt(store: BlobStore):
    assert store.check("0" * 64) == "missing"
    sha, _ = store.put(b"payload" * 50)
    with store.fs.open(store.path(sha), "wb") as f:
        f.write(store._cctx.compress(b"something else"))
    assert "not to its name" in store.check(sha)
    with store.fs.open(store.path(sha), "wb") as f:
        f.write(b"garbage, not zstd")
    assert "corrupt" in store.check(sha)


def test_remove_and_temporaries_are_not_blobs(store: BlobStore):
    sha, _ = store.put(b"x")
    store.fs.makedirs(f"{store.root}/ab/cd", exist_ok=True)
    store.fs.pipe(f"{store.root}/ab/cd/.tmp-123", b"half written")
    assert list(store.iter_names()) == [sha]
    assert len(list(store.iter_temporaries())) == 1
    assert store.remove(sha) and not store.exists(sha) and not store.remove(sha)


def test_store_pickles_for_worker_processes(tmp_path):
    s = BlobStore(str(tmp_path / "b"), level=5)
    s2 = pickle.loads(pickle.dumps(s))
    sha, _ = s2.put(b"from a worker")
    assert s.get(sha) == b"from a worker" and s2.level == 5


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=5000))
def test_any_bytes_round_trip(data):
    s = BlobStore("memory://prop-store")
    sha, _ = s.put(data)
    assert s.get(sha) == data and s.check(sha) is None
