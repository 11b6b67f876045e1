"""Engines benchmark (not a test): the Ray executor against the local engine, and a PostgreSQL
ledger against SQLite, side by side in one run on the same generated records.

    .venv/bin/python bench/engines.py --records 20000 --books 100

Each configuration makes its own library and runs, as `copytrail` processes, the ledger-heavy
stages: ingest of the records and of the whole books, then `verify` (every blob re-hashed by the
executor). A first `verify` of the empty library measures what the engine costs before any work
(Ray's cluster start-up), and the ratios are printed with and without it. Printed per stage: wall
and CPU seconds, records (or MB) per wall second and per core, peak memory of the process tree, and
the ratio of each configuration's wall time to the local engine on SQLite. Ray starts a local
cluster inside each command (a few seconds, counted: that is what a user running `--engine ray` on
one machine pays); its raylet and object store run in processes of their own, so CPU seconds may
leave some of Ray's out. The PostgreSQL server is started here (tests/services.py) and runs outside
the measured process tree, like a real one.
Nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from scale import CT, SHARED, run_measured  # noqa: E402
from scale_data import generate  # noqa: E402

from tests.services import PostgresServer  # noqa: E402

CONFIGS = (("local", "sqlite"), ("ray", "sqlite"), ("local", "postgresql"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--books", type=int, default=100)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/copytrail-bench-engines"))
    args = ap.parse_args()
    if not (SHARED / "MANIFEST.csv").exists():
        sys.exit(f"shared corpus not found at {SHARED} (set COPYTRAIL_SHARED_CORPUS)")
    inputs = generate(SHARED, args.work / "inputs", args.records, args.books, 10)
    pg = PostgresServer().start()
    env = {**os.environ, "COLUMNS": "200", "RAY_AUTH_MODE": "disabled"}
    rows: dict[tuple[str, str, str], dict] = {}
    try:
        for engine, database in CONFIGS:
            if database == "postgresql" and not pg.ok:
                print(f"skipping PostgreSQL: {pg.reason}")
                continue
            lib = args.work / f"lib-{engine}-{database}"
            shutil.rmtree(lib, ignore_errors=True)
            base = [*CT, "--library", str(lib), "--engine", engine]
            db = ["--db", pg.new_database()] if database == "postgresql" else []
            subprocess.run([*CT, "--library", str(lib), *db, "init"], check=True,
                           capture_output=True)
            for name, kind in (("web", "web-crawl"), ("books", "shadow-library")):
                subprocess.run([*base, "source", "add", name, "--kind", kind], check=True,
                               capture_output=True)
            work = str(args.workers)
            stages = {
                # on the empty library: what the engine costs before any work (Ray's start-up)
                "start-up": ([*base, "verify", "--workers", work, "--json"], 1, "runs"),
                "ingest records": ([*base, "ingest", str(inputs.records_dir), "--source", "web",
                                    "--dataset", "web@1", "--workers", work, "--json"],
                                   args.records, "records"),
                "ingest books": ([*base, "ingest", str(inputs.books_file), "--source", "books",
                                  "--dataset", "books@1", "--workers", work, "--json"],
                                 inputs.books_bytes / 1e6, "MB"),
                "verify": ([*base, "verify", "--workers", work, "--json"],
                           args.records + args.books, "copies"),
            }
            for stage, (cmd, units, unit) in stages.items():
                r = run_measured(cmd, env)
                r.update(units=units, unit=unit)
                rows[(stage, engine, database)] = r
                print(f"  {stage:<15} {engine:<6} {database:<11} {r['wall_s']:>8.1f} s wall "
                      f"{r['cpu_s']:>8.1f} s cpu {units / r['wall_s']:>10.1f} {unit}/s "
                      f"{units / max(r['cpu_s'], 1e-9):>10.1f} {unit}/core-s "
                      f"peak {r['peak_mb']:>6} MB rc {r['rc']}", flush=True)
    finally:
        pg.stop()
    print("\nwall time against the local engine on SQLite (lower is faster); in brackets, with "
          "each configuration's start-up taken out:")
    for (stage, engine, database), r in rows.items():
        base_r = rows.get((stage, "local", "sqlite"))
        if stage == "start-up" or not base_r or (engine, database) == ("local", "sqlite"):
            continue
        extra = rows[("start-up", engine, database)]["wall_s"] - rows[
            ("start-up", "local", "sqlite")]["wall_s"]
        print(f"  {stage:<15} {engine}+{database:<11} {r['wall_s'] / base_r['wall_s']:.2f}x "
              f"({(r['wall_s'] - extra) / base_r['wall_s']:.2f}x)")


if __name__ == "__main__":
    main()
