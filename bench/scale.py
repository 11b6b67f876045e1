"""Scale benchmark (not a test): copytrail at library sizes, stage by stage, beside datatrove and
the floor of per-record custody work, on inputs generated from the shared Gutenberg corpus.

    .venv/bin/python bench/scale.py --records 20000 100000 --books 100 500
    .venv/bin/python bench/scale.py --records 1000000 --books 2000 --stages ingest verify

For each size: web-style records (~4 KB, one in three holding an excerpt of a listed book) and
whole-book records (variants of the shared books) are generated (bench/scale_data.py), then each
stage runs as the user would run it, as its own `copytrail` process: ingest (records, then
books), fingerprint, audit, tokenizer + build, guard index, verify. Printed per stage: wall
seconds, CPU seconds (all processes), rate per core (per CPU second), peak memory (the whole
process tree, sampled), and the library's files and bytes on disk; then how each figure grows
from one size to the next. Beside the record ingest, in the same run and on the same records:
datatrove JsonlReader -> JsonlWriter (2 tasks) and a one-core loop doing only parse, SHA-256 and
zstd per record. Goals from the scale issue are marked met or not. Nothing asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import psutil
import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from scale_data import generate  # noqa: E402

SHARED = Path(
    os.environ.get("COPYTRAIL_SHARED_CORPUS", REPO.parent / "shared" / "corpus" / "gutenberg")
)
STAGES = ("ingest", "fingerprint", "audit", "build", "guard", "verify")
CT = [sys.executable, "-m", "copytrail.cli.main"]


class Sampler:
    """Peak resident memory of a process and all its descendants, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process(pid)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                rss = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += p.memory_info().rss
                self.peak = max(self.peak, rss)
            except psutil.Error:
                return
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_measured(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    cpu0, t0 = _child_cpu(), time.perf_counter()
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True
    )
    sampler = Sampler(p.pid)
    out, err = p.communicate()
    peak = sampler.stop()
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 3):  # 3: `check` found a span
        sys.stderr.write(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{err[-3000:]}\n")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(_child_cpu() - cpu0, 2),
        "peak_mb": round(peak / 2**20),
        "rc": p.returncode,
        "stdout": out,
    }


def disk(path: Path) -> tuple[int, int]:
    files = size = 0
    for p in path.rglob("*"):
        if p.is_file():
            files += 1
            size += p.stat().st_size
    return files, size


def ct(lib: Path, *args: str) -> list[str]:
    return [*CT, "--library", str(lib), *args]


def _json_of(stage: dict) -> dict:
    try:
        return json.loads(stage["stdout"])
    except (ValueError, TypeError):
        return {}


# ---- stages run inside their own process (python bench/scale.py --stage ...) ---------------


def stage_fingerprint(lib_path: str) -> None:
    from sqlalchemy import text

    from copytrail import Library
    from copytrail.engine import make_executor

    lib = Library.open(lib_path, executor=make_executor(os.environ.get("COPYTRAIL_ENGINE")))
    # The texts as the audit takes them (one query of digests): what is measured is
    # fingerprinting, not listing a million copies as dictionaries.
    with lib.ctx.db.connect() as conn:
        shas = set(conn.execute(text(
            "SELECT DISTINCT text_sha256 FROM copies WHERE text_sha256 IS NOT NULL")).scalars())
    t0 = time.perf_counter()
    lib.fingerprints.ensure(shas)
    print(json.dumps({"texts": len(shas), "seconds": round(time.perf_counter() - t0, 2)}))
    lib.close()


def stage_latency(lib_path: str, copy_id: int, work_id: str) -> None:
    """Median in-process latency (after one warm call) of the lookups a user makes most."""
    import statistics

    from copytrail import Library

    lib = Library.open(lib_path)
    calls = {
        "show": lambda: lib.copy(copy_id),
        "work (recorded matches)": lambda: lib.work(work_id, "listed"),
        "where (from the recorded audits)": lambda: lib.where(work_id, "listed"),
        "where --live (matched afresh)": lambda: lib.where(work_id, "listed", live=True),
    }
    out = {}
    for name, call in calls.items():
        call()
        times = []
        for _ in range(10 if "afresh" not in name else 2):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        out[name] = round(statistics.median(times) * 1000, 1)
    print(json.dumps(out))
    lib.close()


# ---- peers -----------------------------------------------------------------------------------


def floor_loop(records_dir: Path) -> dict:
    """The least any custody tool must do per record: parse, SHA-256, compress. One core."""
    cctx = zstandard.ZstdCompressor(level=1)
    t0 = time.process_time()
    n = 0
    for f in sorted(records_dir.glob("*.jsonl")):
        with open(f, "rb") as fh:
            for line in fh:
                rec = orjson.loads(line)
                hashlib.sha256(line).digest()
                cctx.compress(rec["text"].encode())
                n += 1
    cpu = time.process_time() - t0
    return {"records": n, "cpu_s": round(cpu, 2), "per_core": round(n / cpu)}


DATATROVE_SCRIPT = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
if __name__ == "__main__":  # datatrove's workers import this file again
    src, dst, logs = sys.argv[1:4]
    LocalPipelineExecutor(
        [JsonlReader(src, glob_pattern="*.jsonl"), JsonlWriter(dst, compression=None)],
        tasks=2, workers=2, logging_dir=logs, skip_completed=False,
    ).run()
"""


def datatrove_rw(records_dir: Path, work: Path, n: int) -> dict:
    try:
        import datatrove  # noqa: F401
    except ImportError:
        return {"skipped": "datatrove is not installed (pip install -e '.[bench]')"}
    out = work / "datatrove"
    shutil.rmtree(out, ignore_errors=True)
    script = work / "datatrove_rw.py"
    script.write_text(DATATROVE_SCRIPT)
    r = run_measured(
        [sys.executable, str(script), str(records_dir), str(out / "out"), str(out / "logs")]
    )
    r.pop("stdout")
    r["records"] = n
    # datatrove's workers are forked by a fork server that never waits for them, so their CPU
    # time does not reach this process's accounts: per core is the wall rate over 2 workers.
    r["per_wall_s"] = round(n / r["wall_s"])
    r["per_core"] = round(n / (r["wall_s"] * 2))
    return r


# ---- one size --------------------------------------------------------------------------------


def run_size(args: argparse.Namespace, n_records: int, n_books: int) -> dict:
    work = args.work / f"{n_records}-{n_books}"
    inputs = generate(SHARED, args.work / "inputs" / f"{n_records}-{n_books}", n_records,
                      n_books, args.listed)
    lib = work / "lib"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "COLUMNS": "200"}
    res: dict = {"records": n_records, "books": n_books, "inputs": inputs.__dict__.copy()}
    res["inputs"] = {k: str(v) if isinstance(v, Path) else v for k, v in res["inputs"].items()}
    subprocess.run(ct(lib, "init"), check=True, capture_output=True)
    subprocess.run(ct(lib, "source", "add", "web", "--kind", "web-crawl"), check=True,
                   capture_output=True)
    subprocess.run(ct(lib, "source", "add", "books", "--kind", "shadow-library"), check=True,
                   capture_output=True)
    stages = {}

    def record(name: str, r: dict, units: float, unit: str) -> None:
        files, size = disk(lib)
        r.update(files=files, disk_mb=round(size / 1e6, 1), units=units, unit=unit)
        r["per_core"] = round(units / r["cpu_s"], 1) if r["cpu_s"] else None
        r["per_wall_s"] = round(units / r["wall_s"], 1) if r["wall_s"] else None
        r.pop("stdout", None)
        stages[name] = r
        print(f"  {name:<16} {r['wall_s']:>8.1f} s wall {r['cpu_s']:>8.1f} s cpu "
              f"{r['per_core']:>10} {unit}/core-s  peak {r['peak_mb']:>6} MB  "
              f"{files:>6} files {r['disk_mb']:>9} MB", flush=True)

    if "ingest" in args.stages:
        r = run_measured(ct(lib, "ingest", str(inputs.records_dir), "--source", "web",
                            "--dataset", "web@1", "--json"), env)
        record("ingest_records", r, n_records, "records")
        store_files, store_bytes = disk(lib / "blobs")
        stages["ingest_records"].update(store_files=store_files, store_mb=store_bytes / 1e6)
        r = run_measured(ct(lib, "ingest", str(inputs.books_file), "--source", "books",
                            "--dataset", "books@1", "--json"), env)
        record("ingest_books", r, inputs.books_bytes / 1e6, "MB")
        res["floor"] = floor_loop(inputs.records_dir)
        res["datatrove"] = datatrove_rw(inputs.records_dir, work, n_records)
    if "fingerprint" in args.stages:
        r = run_measured([sys.executable, __file__, "--stage", "fingerprint", "--library",
                          str(lib)], env)
        text_mb = (inputs.text_bytes + inputs.books_bytes) / 1e6
        record("fingerprint", r, text_mb, "MB")
    if "audit" in args.stages:
        subprocess.run(ct(lib, "works", "import", str(inputs.works_csv), "--list", "listed"),
                       check=True, capture_output=True, cwd=inputs.works_csv.parent)
        r = run_measured(ct(lib, "audit", "--list", "listed", "--dataset", "web@1", "--out",
                            str(work / "audit-web"), "--json"), env)
        record("audit_records", r, n_records, "copies")
        r = run_measured(ct(lib, "audit", "--list", "listed", "--dataset", "books@1", "--out",
                            str(work / "audit-books"), "--json"), env)
        record("audit_books", r, inputs.books_bytes / 1e6, "MB")
    if "build" in args.stages:
        tok = work / "tok.json"
        subprocess.run(ct(lib, "tokenizer", "train", "--dataset", "books@1", "--vocab", "4000",
                          "--out", str(tok)), check=True, capture_output=True)
        policy = work / "policy.toml"
        policy.write_text(f'datasets = ["web@1", "books@1"]\ntokenizer = "{tok}"\n'
                          "shard_tokens = 50_000_000\n[filters]\nmin_words = 50\n")
        r = run_measured(ct(lib, "build", "c1", "--policy", str(policy), "--json"), env)
        text_mb = (inputs.text_bytes + inputs.books_bytes) / 1e6
        record("build", r, text_mb, "MB")
    if "guard" in args.stages:
        r = run_measured(ct(lib, "guard", "index", "g", "--dataset", "web@1", "--dataset",
                            "books@1", "--json"), env)
        record("guard_index", r, (inputs.text_bytes + inputs.books_bytes) / 1e6, "MB")
    if "verify" in args.stages:
        r = run_measured(ct(lib, "verify", "--json"), env)
        record("verify", r, n_records + n_books, "copies")
        stages["verify"]["ok"] = _json_of({"stdout": r.get("stdout", "")}).get("ok")
    if "audit" in args.stages and "verify" in args.stages:
        with open(inputs.works_csv, encoding="utf-8") as f:
            work_id = next(csv.DictReader(f))["work_id"]
        p = subprocess.run([sys.executable, __file__, "--stage", "latency", "--library",
                            str(lib), "--copy", str(n_records // 2), "--work-id", work_id],
                           capture_output=True, text=True)
        stages["latency_ms"] = _json_of({"stdout": p.stdout})
    res["stages"] = stages
    return res


def goals(r: dict) -> list[tuple[str, str, bool | None]]:
    s = r["stages"]
    out: list[tuple[str, str, bool | None]] = []
    ing = s.get("ingest_records")
    if ing:
        out.append(("records ingested per core-second >= 10,000", f"{ing['per_core']:.0f}",
                    ing["per_core"] >= 10_000))
        dt = r.get("datatrove", {})
        if dt.get("per_core"):
            out.append(("ingest >= half of datatrove read+write per core",
                        f"{ing['per_core'] / dt['per_core']:.2f}x datatrove",
                        ing["per_core"] >= dt["per_core"] / 2))
        zst = r["inputs"]["records_zst_bytes"] + r["inputs"]["books_zst_bytes"]
        lib_mb = s.get("ingest_books", ing)["disk_mb"]
        out.append(("library on disk <= 1.5x zstd of the input",
                    f"{lib_mb * 1e6 / zst:.2f}x", lib_mb * 1e6 <= 1.5 * zst))
        out.append(("store files <= 1 per 1,000 records",
                    f"{ing['store_files'] / max(1, r['records']) * 1000:.2f} per 1,000",
                    ing["store_files"] <= max(1, r["records"] / 1000)))
    fp = s.get("fingerprint")
    if fp:
        out.append(("fingerprinting >= 25 MB/s per core", f"{fp['per_core']:.1f}",
                    fp["per_core"] >= 25))
    ab = s.get("audit_books")
    if ab:
        out.append(("audit >= 10 MB/s per core on whole books", f"{ab['per_core']:.1f}",
                    ab["per_core"] >= 10))
    ar = s.get("audit_records")
    if ar:
        out.append(("audit >= 2,000 copies/s per core on web records", f"{ar['per_core']:.0f}",
                    ar["per_core"] >= 2000))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--books", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--listed", type=int, default=30, help="Listed books (the works list).")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--work", type=Path, default=Path("/tmp/copytrail-bench-scale"))
    ap.add_argument("--out", type=Path, help="Also write all figures as JSON here.")
    ap.add_argument("--engine", default="local",
                    help="Run every stage on this engine (local, ray, auto, ray://HOST:PORT); "
                    "bench/engines.py puts Ray beside the local engine in one run.")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--library", help=argparse.SUPPRESS)
    ap.add_argument("--copy", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work-id", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage == "fingerprint":
        return stage_fingerprint(args.library)
    if args.stage == "latency":
        return stage_latency(args.library, args.copy, args.work_id)
    if not (SHARED / "MANIFEST.csv").exists():
        sys.exit(f"shared corpus not found at {SHARED} (set COPYTRAIL_SHARED_CORPUS)")
    os.environ["COPYTRAIL_ENGINE"] = args.engine  # every stage's process runs on it
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if len(args.books) != len(args.records):
        args.books = (args.books * len(args.records))[: len(args.records)]
    results = []
    for n, b in zip(args.records, args.books, strict=True):
        print(f"\n== {n:,} records + {b:,} whole books ({os.cpu_count()} cores, "
              f"engine {args.engine}) ==", flush=True)
        r = run_size(args, n, b)
        results.append(r)
        if "floor" in r:
            ing = r["stages"]["ingest_records"]
            print(f"  floor loop (parse+sha256+zstd, 1 core): {r['floor']['per_core']:,} rec/s;"
                  f" copytrail is {ing['per_core'] / r['floor']['per_core']:.2f}x of it")
            dt = r["datatrove"]
            if dt.get("per_core"):
                print(f"  datatrove JsonlReader->JsonlWriter, 2 workers: {dt['per_core']:,} "
                      "rec/core-s "
                      f"({dt['per_wall_s']:,}/s wall, peak {dt['peak_mb']} MB); copytrail is "
                      f"{ing['per_core'] / dt['per_core']:.2f}x of it")
            else:
                print(f"  datatrove: {dt.get('skipped')}")
        for name, value, met in goals(r):
            mark = "met" if met else "NOT met"
            print(f"  goal: {name:<50} {value:>22}  {mark}")
        for name, ms in r["stages"].get("latency_ms", {}).items():
            print(f"  latency, in process: {name:<34} {ms:>10} ms")
    if len(results) > 1:
        print("\n== growth from size to size (ratio of the larger run to the smaller) ==")
        for a, b in zip(results, results[1:], strict=False):
            print(f"  {a['records']:,} -> {b['records']:,} records "
                  f"(x{b['records'] / a['records']:.1f})")
            for name, sa in a["stages"].items():
                sb = b["stages"].get(name)
                if not isinstance(sa, dict) or not sb:
                    continue
                print(f"    {name:<16} wall x{sb['wall_s'] / max(sa['wall_s'], 1e-9):.2f}  "
                      f"peak memory x{sb['peak_mb'] / max(sa['peak_mb'], 1):.2f}  "
                      f"files x{sb['files'] / max(sa['files'], 1):.2f}  "
                      f"disk x{sb['disk_mb'] / max(sa['disk_mb'], 1e-9):.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
