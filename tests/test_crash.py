"""Kill a real ingest with SIGKILL at random moments: the library must always verify, and a re-run
must complete it with no duplicate and no missing copy. Two ingests at once must both succeed."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from copytrail import samples

from .conftest import EXAMPLES, run_cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")


def _make_inputs(root: Path, n_files: int, n_records: int, seed: int) -> int:
    """Many small distinct documents, a JSON Lines file and an archive; returns the item count."""
    rng = random.Random(seed)
    words = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8").split()
    for i in range(n_files):
        start = rng.randrange(len(words) - 3000)
        samples.write(
            root / "docs" / f"{i:04d}.txt",
            f"doc {seed}-{i}\n{' '.join(words[start : start + 3000])}\n".encode(),
        )
    recs = [
        {"id": i, "text": f"record {seed}-{i} " + " ".join(rng.choices(words, k=400))}
        for i in range(n_records)
    ]
    samples.write(root / "records.jsonl.zst", samples.make_jsonl(recs, "zstd"))
    members = {
        f"a/{i}.txt": f"member {seed}-{i} {' '.join(rng.choices(words, k=300))}".encode()
        for i in range(200)
    }
    samples.write(root / "bundle.tar.gz", samples.make_tar(members, gz=True))
    return n_files + n_records + len(members)


def _ingest_cmd(lib: Path, inputs: Path, dataset: str = "crash@1") -> list[str]:
    return [
        sys.executable,
        "-m",
        "copytrail.cli.main",
        "--library",
        str(lib),
        "ingest",
        str(inputs),
        "--source",
        "src",
        "--dataset",
        dataset,
        "--workers",
        "2",
        "--json",
    ]


def _copies(lib: Path, dataset: str) -> list[dict]:
    return json.loads(run_cli("ls", "copies", "--dataset", dataset, "--json", library=lib).stdout)


def _init(lib: Path, db_url: str | None) -> None:
    run_cli(*(["--db", db_url] if db_url else []), "init", library=lib)


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    """Kills and concurrent writers on SQLite and on PostgreSQL."""
    return any_db_url


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_completes(tmp_path: Path, db_url: str | None):
    lib = tmp_path / "lib"
    _init(lib, db_url)
    run_cli("source", "add", "src", "--kind", "web-crawl", library=lib)
    expected = _make_inputs(tmp_path / "in", n_files=600, n_records=3000, seed=1)
    # How long a whole ingest takes on this machine, so kills land inside it, fast or slow.
    calibration = tmp_path / "calibration"
    run_cli("init", library=calibration)
    run_cli("source", "add", "src", "--kind", "web-crawl", library=calibration)
    t0 = time.monotonic()
    subprocess.run(_ingest_cmd(calibration, tmp_path / "in"), capture_output=True, check=True)
    full = time.monotonic() - t0
    rng = random.Random(20261122)
    kills = 0
    for round_ in range(10):
        proc = subprocess.Popen(
            _ingest_cmd(lib, tmp_path / "in"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.05, 0.9) * full)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the ingest and its worker processes
            kills += 1
        proc.wait()
        v = run_cli("verify", "--json", library=lib, check=False)
        assert v.returncode == 0, f"round {round_}: verify failed after kill:\n{v.stdout}"
        if round_ % 3 == 2:
            run_cli("checkpoint", library=lib)
    assert kills >= 3, (
        f"only {kills} of 10 ingests were still running when killed ({full:.1f} s each)"
    )
    final = subprocess.run(
        _ingest_cmd(lib, tmp_path / "in"), capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr
    copies = _copies(lib, "crash@1")
    keys = [c["sha256"] for c in copies]
    assert len(keys) == len(set(keys)) == expected
    assert all(c["status"] == "ok" for c in copies)
    assert json.loads(run_cli("verify", "--json", library=lib).stdout)["ok"]
    again = json.loads(
        subprocess.run(
            _ingest_cmd(lib, tmp_path / "in"), capture_output=True, text=True, timeout=600
        ).stdout
    )
    assert again["copies_added"] == 0 and again["copies_existing"] == expected


@pytest.mark.slow
def test_two_ingests_at_once_into_one_library(tmp_path: Path, db_url: str | None):
    lib = tmp_path / "lib"
    _init(lib, db_url)
    run_cli("source", "add", "src", "--kind", "web-crawl", library=lib)
    n_a = _make_inputs(tmp_path / "a", n_files=150, n_records=800, seed=2)
    n_b = _make_inputs(tmp_path / "b", n_files=150, n_records=800, seed=3)
    procs = [
        subprocess.Popen(
            _ingest_cmd(lib, tmp_path / "a", "A"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
        subprocess.Popen(
            _ingest_cmd(lib, tmp_path / "b", "B"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
        # The same input into the same dataset as the first, at the same time: no duplicates.
        subprocess.Popen(
            _ingest_cmd(lib, tmp_path / "a", "A"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    a_results = [json.loads(outs[i][0]) for i in (0, 2)]
    assert sum(r["copies_added"] for r in a_results) == n_a
    assert len(_copies(lib, "A")) == n_a and len(_copies(lib, "B")) == n_b
    assert json.loads(run_cli("verify", "--json", library=lib).stdout)["ok"]
