"""Build benchmark (not a test): ingest the shared Gutenberg books, train a tokenizer, build a
corpus under a policy and print MB/s per core for each stage (filters, dedup, tokenize, write),
then, in the same run, datatrove's DocumentTokenizer on the same texts with the same tokenizer.

    .venv/bin/python bench/build.py [--vocab 32000] [--work /tmp/copytrail-bench-build]
Needs `pip install -e '.[bench]'` for datatrove.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

from copytrail import Library
from copytrail.engine.local import LocalEngine

SHARED = Path(
    os.environ.get(
        "COPYTRAIL_SHARED_CORPUS", Path(__file__).resolve().parents[2] / "shared/corpus/gutenberg"
    )
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/copytrail-bench-build"))
    ap.add_argument("--vocab", type=int, default=32_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not (SHARED / "MANIFEST.csv").exists():
        sys.exit(f"shared corpus not found at {SHARED} (set COPYTRAIL_SHARED_CORPUS)")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    files = []
    with open(SHARED / "MANIFEST.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["kind"] in ("main_txt", "old_txt"):
                files.append(str(SHARED / row["file"]))
    lib = Library.init(args.work / "lib", executor=LocalEngine(args.workers, inline_bytes=0))
    lib.add_source("pg", kind="public-domain", license="Public domain in the USA")
    t0 = time.perf_counter()
    lib.ingest(files, source="pg", dataset="pg@1")
    print(f"ingest (setup): {len(files)} files in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    tok = lib.train_tokenizer(["pg@1"], args.vocab, args.work / "tokenizer.json")
    print(f"tokenizer train: vocab {tok['vocab_size']} in {time.perf_counter() - t0:.1f} s")
    policy = args.work / "policy.toml"
    policy.write_text('datasets = ["pg@1"]\ntokenizer = "tokenizer.json"\n')
    t0 = time.perf_counter()
    r = lib.build("bench", policy)
    wall = time.perf_counter() - t0
    read_mb = r["text_bytes_read"] / 1e6
    inc_mb = r["text_bytes_included"] / 1e6
    print(
        f"copytrail build: {r['considered']} copies, {r['documents']} included, "
        f"{r['tokens']:,} tokens, {wall:.1f} s wall; excluded {r['excluded_by_rule']}"
    )
    for stage, secs in r["timings"].items():
        mb = inc_mb if stage in ("tokenize", "write") else read_mb
        rate = f"{mb / secs:8.1f} MB/s" if secs > 0 else "       -"
        print(f"  {stage:12s} {secs:7.2f} s  {rate}  (over {mb:.0f} MB)")
    ours = r["timings"]["tokenize"] + r["timings"]["write"]
    print(f"  tokenize+write: {inc_mb / ours:.1f} MB/s (encode_batch uses the cores it finds)")

    # datatrove: the same included texts, the same tokenizer, one task, no shuffling.
    try:
        from datatrove.executor import LocalPipelineExecutor
        from datatrove.pipeline.readers import JsonlReader
        from datatrove.pipeline.tokens import DocumentTokenizer
    except ImportError:
        print("datatrove not installed: pip install -e '.[bench]'")
        return
    import pyarrow.parquet as pq

    lineage = pq.read_table(Path(r["path"]) / "lineage.parquet").to_pylist()
    data = args.work / "dt-in"
    data.mkdir()
    with open(data / "docs.jsonl", "w", encoding="utf-8") as f:
        for row in lineage:
            text = lib.store.get(row["text_sha256"]).decode("utf-8")
            f.write(json.dumps({"text": text, "id": str(row["copy_id"])}) + "\n")
    pipeline = [
        JsonlReader(str(data)),
        DocumentTokenizer(
            output_folder=str(args.work / "dt-out"),
            tokenizer_name_or_path=str(args.work / "tokenizer.json"),
            eos_token="<|endoftext|>",
            shuffle_documents=False,
        ),
    ]
    t0 = time.perf_counter()
    LocalPipelineExecutor(
        pipeline, tasks=1, workers=1, logging_dir=str(args.work / "dt-logs")
    ).run()
    dt = time.perf_counter() - t0
    print(f"datatrove JsonlReader -> DocumentTokenizer: {dt:.1f} s, {inc_mb / dt:.1f} MB/s")
    print(f"ratio copytrail tokenize+write / datatrove: {dt / ours:.2f}x")
    lib.close()


if __name__ == "__main__":
    main()
