from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from copytrail import Library
from copytrail.engine.local import LocalEngine

from .services import PostgresServer, S3Server

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "gutenberg"
SHARED = Path(
    os.environ.get("COPYTRAIL_SHARED_CORPUS", REPO.parent / "shared" / "corpus" / "gutenberg")
)


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    """Fingerprint kernels compiled before any test runs, so no test's deadline pays for it."""
    from copytrail.fingerprint import kernels

    kernels.warm()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared Gutenberg corpus; tests that need it skip with a reason where it is absent."""
    if not (SHARED / "MANIFEST.csv").exists():
        pytest.skip(f"shared Gutenberg corpus not found at {SHARED} (set COPYTRAIL_SHARED_CORPUS)")
    return SHARED


def pooled(lib: Library, workers: int = 2) -> Library:
    """The same library with its work spread over `workers` processes whatever the input size
    (as `--workers N` does), so tests exercise the pool, not the inline path."""
    return lib.with_executor(LocalEngine(workers, inline_bytes=0))


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """One PostgreSQL cluster for the session (see tests/services.py)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """One S3 emulator for the session (see tests/services.py)."""
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    if not s3_server.ok:
        pytest.skip(f"S3 tests need the emulator: {s3_server.reason}")
    return s3_server


@pytest.fixture
def db_url() -> str | None:
    """The ledger of the `lib` fixture: None is the default SQLite file in the library folder.
    A module whose tests must hold on every database overrides it with `any_db_url`."""
    return None


DATABASES = ["sqlite", "postgresql"]


def fresh_db_url(request: pytest.FixtureRequest, database: str) -> str | None:
    """A new, empty ledger database of the kind named (None: SQLite in the library folder)."""
    if database == "sqlite":
        return None
    server = request.getfixturevalue("postgres")
    if not server.ok:
        pytest.skip(f"PostgreSQL tests need a server: {server.reason}")
    return server.new_database()


@pytest.fixture(params=DATABASES)
def any_db_url(request: pytest.FixtureRequest) -> str | None:
    """Each test once on SQLite and once on a fresh PostgreSQL database."""
    return fresh_db_url(request, request.param)


def raw_sql(lib: Library, sql: str, params: dict | None = None) -> list[tuple]:
    """Run SQL on the ledger behind copytrail's back (a tamperer would), on either database."""
    from sqlalchemy import text

    with lib.engine.connect() as conn, conn.begin():
        # without parameters the SQL goes as it is (`text` would read ':4' in a literal as one)
        result = conn.execute(text(sql), params) if params else conn.exec_driver_sql(sql)
        return [tuple(r) for r in result] if result.returns_rows else []


@pytest.fixture
def lib(tmp_path: Path, db_url: str | None) -> Library:
    lib = Library.init(tmp_path / "lib", db=db_url)
    lib.add_source("pg", kind="public-domain", license="Public domain in the USA")
    yield lib
    lib.close()


@pytest.fixture
def mem_lib(tmp_path: Path, request: pytest.FixtureRequest) -> Library:
    """SQLite ledger on disk, blobs in fsspec's memory:// filesystem."""
    lib = Library.init(tmp_path / "memlib", store=f"memory://ct-{request.node.name}/blobs")
    lib.add_source("pg", kind="public-domain")
    yield lib
    lib.close()


def run_cli(
    *args: str,
    library: Path | None = None,
    check: bool = True,
    timeout: float = 120,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run the real `copytrail` command in a child process."""
    cmd = [sys.executable, "-m", "copytrail.cli.main"]
    if library is not None:
        cmd += ["--library", str(library)]
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and p.returncode != 0:
        raise AssertionError(
            f"copytrail {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
        )
    return p
