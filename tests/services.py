"""Real servers the suite runs against, started from the project's own files: a PostgreSQL cluster
(Debian's packages, `initdb` and `pg_ctl` as the `postgres` user) and an S3 endpoint (moto's
server, an emulator: no real S3 server is installable from the package registries).

Each is started once per test session, on a free port of 127.0.0.1, in a temporary folder that is
removed afterwards. Where one cannot start (no packages, not root and not `postgres`), `reason`
says why and the tests that need it skip with that reason."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True)
        d = Path(out.stdout.strip())
        if (d / "initdb").exists():
            return d
    found_all = glob.glob("/usr/lib/postgresql/*/bin/initdb")  # Debian: not on PATH
    versions = sorted(found_all, key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


class PostgresServer:
    """A throw-away PostgreSQL cluster: trust authentication on 127.0.0.1 only, fsync off (tests
    never survive a power cut), one fresh database per `new_database()`."""

    def __init__(self) -> None:
        self.reason = ""
        self.dir: Path | None = None
        self.port = 0
        self._ids = itertools.count(1)
        self._as: list[str] = []

    def start(self) -> PostgresServer:
        bindir = _pg_bindir()
        if bindir is None:
            self.reason = "PostgreSQL is not installed (apt-get install -y postgresql)"
            return self
        try:
            import psycopg  # noqa: F401
        except ImportError:
            self.reason = "psycopg is not installed (pip install -e '.[postgres]')"
            return self
        if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
            if not shutil.which("runuser"):
                self.reason = "running as root without runuser to switch to the postgres user"
                return self
            self._as = ["runuser", "-u", "postgres", "--"]
        self._bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="copytrail-pg-"))
        if self._as:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        data = str(self.dir / "data")
        flags = ["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale", "C"]
        init = self._tool("initdb", "-D", data, *flags)
        if init.returncode != 0:
            self.reason = f"initdb failed: {init.stderr.strip()[-300:]}"
            return self
        opts = f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = self._tool(
            "pg_ctl", "-D", data, "-w", "-l", str(self.dir / "log"), "-o", opts, "start"
        )
        if started.returncode != 0:
            self.reason = f"pg_ctl start failed: {started.stderr.strip()[-300:]}"
        return self

    def _tool(self, name: str, *args: str) -> subprocess.CompletedProcess:
        """One of the server's programs, as the postgres user when we are root."""
        cmd = [*self._as, str(self._bindir / name), *args]
        return subprocess.run(cmd, capture_output=True, text=True)

    @property
    def ok(self) -> bool:
        return not self.reason and self.dir is not None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._ids)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.dir is None:
            return
        self._tool("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class S3Server:
    """moto's S3 server on 127.0.0.1 (an emulator of S3, not S3). Credentials and the endpoint
    go in the environment, where s3fs in this process and in worker processes finds them."""

    BUCKET = "copytrail-test"
    ENV = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "FSSPEC_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL",
    )

    def __init__(self) -> None:
        self.reason = ""
        self._server = None
        self._saved: dict[str, str | None] = {}
        self._ids = itertools.count(1)

    def start(self) -> S3Server:
        try:
            import boto3
            import s3fs  # noqa: F401
            from moto.server import ThreadedMotoServer
        except ImportError as e:
            self.reason = f"{e.name} is not installed (pip install -e '.[dev,s3]')"
            return self
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        values = ("testing", "testing", "us-east-1", self.endpoint, self.endpoint)
        for k, v in zip(self.ENV, values, strict=True):
            self._saved[k] = os.environ.get(k)
            os.environ[k] = v
        # Made with boto3: s3fs's bucket creation fails against moto in us-east-1.
        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=self.BUCKET)
        return self

    @property
    def ok(self) -> bool:
        return not self.reason and self._server is not None

    def new_prefix(self, name: str = "store") -> str:
        """A URL no other test uses."""
        return f"s3://{self.BUCKET}/{name}-{os.getpid()}-{next(self._ids)}"

    def objects(self, url: str) -> dict[str, bytes]:
        """Every object under `url` with its bytes, listed afresh (no cached listing)."""
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        root = url.removeprefix("s3://")
        return {p: fs.cat_file(p) for p in fs.find(root)}

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
