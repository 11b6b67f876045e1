"""Ingest throughput on the shared Gutenberg corpus, side by side with datatrove.

    .venv/bin/python bench/ingest.py [--corpus ../shared/corpus/gutenberg] [--repeat 3]

Prints MB/s and MB/s per core for: plain text files, the same books as JSON Lines, the whole
mixed corpus (text, HTML, PDF), and datatrove reading the same JSON Lines and writing it back
(JsonlReader -> JsonlWriter, LocalPipelineExecutor). A benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from copytrail import Library  # noqa: E402
from copytrail.engine.local import LocalEngine, default_workers  # noqa: E402
from copytrail.ingest.decode import decode_bytes  # noqa: E402


def build_inputs(corpus: Path, work: Path, repeat: int, shards: int) -> dict[str, Path]:
    txt_dir = work / "txt"
    jsonl_dir = work / "jsonl"
    txt_dir.mkdir(parents=True)
    jsonl_dir.mkdir(parents=True)
    files = sorted(p for p in corpus.rglob("*.txt"))
    writers = [open(jsonl_dir / f"books-{i}.jsonl", "wb") for i in range(shards)]  # noqa: SIM115
    n = 0
    for r in range(repeat):
        for p in files:
            data = p.read_bytes()
            # Each repeat is a distinct copy (a different first line), as a dump of editions is.
            variant = f"[copy {r}]\n".encode() + data
            rel = f"r{r}/" + str(p.relative_to(corpus)).replace("/", "_")
            (txt_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (txt_dir / rel).write_bytes(variant)
            rec = {"id": rel, "title": p.stem, "text": decode_bytes(variant).text}
            writers[n % shards].write(orjson.dumps(rec) + b"\n")
            n += 1
    for w in writers:
        w.close()
    return {"txt": txt_dir, "jsonl": jsonl_dir, "mixed": corpus}


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def run_copytrail(inputs: Path, workers: int, work: Path, label: str) -> dict:
    libdir = work / f"lib-{label}-{workers}"
    shutil.rmtree(libdir, ignore_errors=True)
    lib = Library.init(libdir, executor=LocalEngine(workers, inline_bytes=0))
    lib.add_source("bench", kind="public-domain")
    t0 = time.perf_counter()
    s = lib.ingest([str(inputs)], source="bench", dataset=label)
    secs = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = lib.ingest([str(inputs)], source="bench", dataset=label)
    rerun = time.perf_counter() - t1
    lib.close()
    assert again.copies_added == 0
    return {
        "seconds": secs,
        "rerun_seconds": rerun,
        "copies": s.copies_added,
        "bytes": s.bytes,
        "unreadable": s.unreadable,
    }


def run_datatrove(jsonl_dir: Path, workers: int, work: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    out = work / f"dt-out-{workers}"
    logs = work / f"dt-logs-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    tasks = len(list(jsonl_dir.glob("*.jsonl")))
    ex = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(jsonl_dir), compression=None),
            JsonlWriter(str(out), compression=None),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=str(logs),
        skip_completed=False,
    )
    t0 = time.perf_counter()
    ex.run()
    return {"seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "gutenberg")
    ap.add_argument("--repeat", type=int, default=2, help="copies of each book (more data)")
    ap.add_argument("--runs", type=int, default=2, help="timed runs per measurement (median)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "ingest.json")
    args = ap.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found at {args.corpus}; pass --corpus")
    cores = default_workers()
    work = Path(tempfile.mkdtemp(prefix="ct-bench-"))
    try:
        inputs = build_inputs(args.corpus, work, args.repeat, shards=max(2, cores))
        sizes = {k: dir_bytes(v) for k, v in inputs.items()}
        print(
            f"machine: {cores} cores; inputs: "
            + ", ".join(f"{k} {sizes[k] / 1e6:.0f} MB" for k in inputs)
        )
        results = []
        for label in ("txt", "jsonl", "mixed"):
            for w in sorted({1, cores}):
                runs = [run_copytrail(inputs[label], w, work, label) for _ in range(args.runs)]
                secs = statistics.median(r["seconds"] for r in runs)
                mbps = sizes[label] / secs / 1e6
                results.append(
                    {
                        "tool": "copytrail",
                        "input": label,
                        "workers": w,
                        "seconds": round(secs, 3),
                        "MB/s": round(mbps, 1),
                        "MB/s per core": round(mbps / w, 1),
                        "rerun seconds": round(
                            statistics.median(r["rerun_seconds"] for r in runs), 3
                        ),
                        "copies": runs[0]["copies"],
                        "unreadable": runs[0]["unreadable"],
                    }
                )
                print(json.dumps(results[-1]))
        try:
            for w in sorted({1, cores}):
                secs = statistics.median(
                    run_datatrove(inputs["jsonl"], w, work)["seconds"] for _ in range(args.runs)
                )
                mbps = sizes["jsonl"] / secs / 1e6
                results.append(
                    {
                        "tool": "datatrove",
                        "input": "jsonl",
                        "workers": w,
                        "seconds": round(secs, 3),
                        "MB/s": round(mbps, 1),
                        "MB/s per core": round(mbps / w, 1),
                    }
                )
                print(json.dumps(results[-1]))
        except ImportError:
            print(
                "datatrove is not installed: `make bench` installs it (pip install -e '.[bench]')"
            )
        print()
        print(f"{'tool':10} {'input':6} {'workers':>7} {'seconds':>8} {'MB/s':>7} {'MB/s/core':>9}")
        for r in results:
            print(
                f"{r['tool']:10} {r['input']:6} {r['workers']:>7} {r['seconds']:>8} "
                f"{r['MB/s']:>7} {r['MB/s per core']:>9}"
            )
        ct = {(r["input"], r["workers"]): r for r in results if r["tool"] == "copytrail"}
        for r in results:
            if r["tool"] == "datatrove":
                mine = ct[("jsonl", r["workers"])]
                print(
                    f"jsonl, {r['workers']} worker(s): copytrail / datatrove throughput = "
                    f"{mine['MB/s'] / r['MB/s']:.2f}x"
                )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
