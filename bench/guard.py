"""Guard benchmark (not a test): index the shared Gutenberg books, repeated with variations to
reach 100+ million words, then measure `check` latency for 2,000-character inputs in-process and
through the HTTP API under concurrent load, and the index size per token. Side by side in the
same run: the same texts indexed by the `infini-gram` package (byte-level, no tokenizer) and the
same inputs asked of it (`attribute`: the maximal spans of the input found in the corpus, the
question OLMoTrace asks; and `count` of each input's first 50 words).

    .venv/bin/python bench/guard.py                      # full run (~100M words, ~20 min)
    .venv/bin/python bench/guard.py --target-words 5e6   # quick look
Needs `pip install -e '.[bench]'` for infini-gram (and transformers, which its indexer imports).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from copytrail import Library
from copytrail.engine.local import LocalEngine
from copytrail.fingerprint.normalize import tokens
from copytrail.guard.index import GuardIndex
from copytrail.guard.scope import guard_root

SHARED = Path(
    os.environ.get(
        "COPYTRAIL_SHARED_CORPUS", Path(__file__).resolve().parents[2] / "shared/corpus/gutenberg"
    )
)
QUERY_CHARS = 2000


def books(corpus: Path) -> list[tuple[str, str]]:
    out = []
    with open(corpus / "MANIFEST.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["kind"] in ("main_txt", "old_txt"):
                data = (corpus / row["file"]).read_bytes()
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError:
                    text = data.decode("cp1252", errors="replace")
                out.append((row["file"].replace("/", "_"), text))
    return out


def variant(text: str, seed: int) -> str:
    """The same book with about one word in 150 replaced: a different copy, mostly the same."""
    rng = random.Random(seed)
    parts = text.split(" ")
    for _ in range(len(parts) // 150):
        i = rng.randrange(len(parts))
        parts[i] = rng.choice(("fine", "grand", "little", "old", "very", "quite")) + str(seed)
    return " ".join(parts)


def write_corpus(work: Path, target_words: float) -> tuple[Path, int, int]:
    src = books(SHARED)
    base_words = sum(len(t.split()) for _n, t in src)
    rounds = max(1, int(np.ceil(target_words / base_words)))
    texts = work / "texts"
    if texts.exists():
        shutil.rmtree(texts)
    texts.mkdir(parents=True)
    total = 0
    for r in range(rounds):
        for name, text in src:
            body = text if r == 0 else variant(text, r)
            (texts / f"r{r}_{name}").write_text(body, encoding="utf-8")
            total += len(body.encode())
    return texts, rounds, total


def make_queries(lib: Library, n: int, seed: int = 5) -> dict[str, list[str]]:
    """2,000-character inputs: copied windows of indexed books (hit), new text with a 60-word
    passage inside (buried), and text of book words in random order (clean)."""
    rng = random.Random(seed)
    shas = sorted(GuardIndex.open(guard_root(lib.ctx) / "bench").texts())
    vocab: list[str] = []
    out: dict[str, list[str]] = {"hit": [], "buried": [], "clean": []}
    for i in range(n):
        text = lib.store.get(rng.choice(shas)).decode("utf-8")
        w, starts, _ends = tokens(text[:2_000_000])
        if len(w) < 2000:
            continue
        vocab.extend(rng.sample(w, 50))
        s = starts[rng.randrange(200, len(w) - 800)]
        kind = ("hit", "buried", "clean")[i % 3]
        if kind == "hit":
            out["hit"].append(text[s : s + QUERY_CHARS])
        elif kind == "buried":
            # 60 words as they stand, line breaks made spaces (a line-end hyphen stays joined)
            e = _ends[min(len(_ends) - 1, int(np.searchsorted(starts, s)) + 59)]
            passage = re.sub(r"(?<!-)\s+", " ", text[s:e].replace("\r\n", "\n"))
            filler = " ".join(rng.choice(vocab) for _ in range(330))
            half = (QUERY_CHARS - len(passage)) // 2
            out["buried"].append(filler[:half] + " " + passage + " " + filler[half : 2 * half])
        else:
            out["clean"].append(" ".join(rng.choice(vocab) for _ in range(400))[:QUERY_CHARS])
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


def summary(ms: list[float]) -> str:
    mean = statistics.mean(ms)
    return f"p50 {pct(ms, 50):7.2f} ms   p99 {pct(ms, 99):7.2f} ms   mean {mean:7.2f} ms"


def bench_in_process(lib: Library, queries: dict[str, list[str]], evidence: bool) -> None:
    """Latency of Library.check; with evidence, each place's copies, works and character
    offsets are looked up too (ledger queries, a text read from the store when not cached)."""
    lib.check("warm up", "bench")
    label = "with evidence" if evidence else "decision only"
    everything: list[float] = []
    for kind, qs in queries.items():
        ms = []
        flagged = 0
        for q in qs:
            t0 = time.perf_counter()
            r = lib.check(q, "bench", evidence=evidence)
            ms.append((time.perf_counter() - t0) * 1000)
            flagged += r["flagged"]
        everything += ms
        print(f"  in-process {label} {kind:7s} n={len(qs):4d} flagged {flagged:4d}  {summary(ms)}")
    print(
        f"  in-process {label} all     n={len(everything):4d}                {summary(everything)}"
    )


def bench_http(
    lib: Library, queries: list[str], threads: int, seconds: float, workers: int
) -> None:
    import httpx

    key = lib.add_key(f"bench-{time.time_ns()}", "checker")["key"]
    port = 18000 + os.getpid() % 1000
    cmd = [sys.executable, "-m", "copytrail.cli.main", "--library", str(lib.path), "serve"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--guard", "bench", "--workers", str(workers)],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        lat: list[float] = []
        errors = 0
        stop = time.monotonic() + seconds

        def worker(offset: int) -> None:
            nonlocal errors
            with httpx.Client(timeout=30, headers={"X-API-Key": key}) as c:
                i = offset
                while time.monotonic() < stop and i < offset + 20_000:
                    t0 = time.perf_counter()
                    r = c.post(url + "/v1/check", json={"text": queries[i % len(queries)]})
                    lat.append((time.perf_counter() - t0) * 1000)
                    errors += r.status_code != 200
                    i += 1

        ts = [threading.Thread(target=worker, args=(k * 97,)) for k in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        print(
            f"  HTTP {threads} clients, {workers} server processes, {len(lat)} requests in "
            f"{wall:.1f} s "
            f"({len(lat) / wall:.0f} req/s, {errors} errors)   {summary(lat)}"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def bench_infinigram(
    lib: Library, work: Path, queries: dict[str, list[str]], mem_gb: int, reuse: bool, limit: int
) -> None:
    try:
        from infini_gram.engine import InfiniGramEngine
    except ImportError:
        print("  infini-gram not installed: pip install -e '.[bench]'")
        return
    data = work / "ig-data"
    index = work / "ig-index"
    build = float("nan")
    if not (reuse and (index / "table.0").exists()):
        for d in (data, index):
            shutil.rmtree(d, ignore_errors=True)
        data.mkdir()
        # The very texts the guard indexed (extracted, line ends normalised), so a byte-level
        # index can match what copytrail matches.
        with open(data / "corpus.jsonl", "w", encoding="utf-8") as f:
            for sha in sorted(GuardIndex.open(guard_root(lib.ctx) / "bench").texts()):
                f.write(json.dumps({"text": lib.store.get(sha).decode("utf-8")}) + "\n")
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(data)]
        cmd += ["--save_dir", str(index), "--token_dtype", "u8", "--cpus", str(os.cpu_count())]
        cmd += ["--mem", str(mem_gb), "--shards", "1", "--ulimit", "4096"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"  infini-gram indexing failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
            return
        build = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in index.iterdir())
    n_tokens = (index / "tokenized.0").stat().st_size
    print(
        f"  infini-gram index: {n_tokens / 1e6:.0f}M byte tokens, {size / 1e9:.2f} GB, "
        f"{size / n_tokens:.2f} bytes/token, built in {build:.0f} s"
    )
    t0 = time.perf_counter()
    # Its U8 engine takes vocab_size as a byte, so 255 is the largest it accepts.
    engine = InfiniGramEngine(
        index_dir=str(index), eos_token_id=254, vocab_size=255, token_dtype="u8"
    )
    print(f"  infini-gram load {1000 * (time.perf_counter() - t0):.1f} ms")
    for kind, all_qs in queries.items():
        qs = all_qs[:limit]  # attribute takes long: a sample of the same inputs
        attr, cnt = [], []
        found = 0
        for q in qs:
            ids = list(q.encode("utf-8"))
            t0 = time.perf_counter()
            r = engine.attribute(
                input_ids=ids, delim_ids=[], min_len=250, max_cnt=10, enforce_bow=False
            )
            attr.append((time.perf_counter() - t0) * 1000)
            found += any(sp["length"] >= 250 for sp in r.get("spans", []))
            _w, _s, ends = tokens(q)
            first50 = q[: ends[min(49, len(ends) - 1)]].encode("utf-8")  # bytes as they are
            t0 = time.perf_counter()
            engine.count(input_ids=list(first50))
            cnt.append((time.perf_counter() - t0) * 1000)
        print(
            f"  infini-gram {kind:7s} attribute (spans >= 250 bytes; found {found:4d})  "
            + summary(attr)
        )
        print(f"  infini-gram {kind:7s} count(first 50 words)                {summary(cnt)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/copytrail-bench-guard"))
    ap.add_argument("--target-words", type=float, default=100e6)
    ap.add_argument("--queries", type=int, default=1500, help="2,000-character inputs (3 kinds)")
    ap.add_argument("--http-threads", type=int, default=8)
    ap.add_argument("--http-seconds", type=float, default=20)
    ap.add_argument("--mem-gb", type=int, default=16, help="memory infini-gram's indexer may use")
    ap.add_argument("--http-workers", type=int, default=2, help="copytrail serve --workers")
    ap.add_argument("--skip-infinigram", action="store_true")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument(
        "--infinigram-queries", type=int, default=100, help="inputs per kind asked of infini-gram"
    )
    ap.add_argument("--reuse", action="store_true", help="reuse --work's corpus and library")
    ap.add_argument("--no-build", action="store_true", help="with --reuse: keep the guard index")
    args = ap.parse_args()
    if not (SHARED / "MANIFEST.csv").exists():
        sys.exit(f"shared corpus not found at {SHARED} (set COPYTRAIL_SHARED_CORPUS)")
    if args.reuse and (args.work / "lib").exists():
        texts = args.work / "texts"
        nbytes = sum(p.stat().st_size for p in texts.iterdir())
        lib = Library.open(args.work / "lib")
        print(f"corpus and library reused from {args.work}: {nbytes / 1e6:.0f} MB of text")
    else:
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        texts, rounds, nbytes = write_corpus(args.work, args.target_words)
        print(f"corpus: {rounds} rounds of the shared books, {nbytes / 1e6:.0f} MB of text")
        lib = Library.init(args.work / "lib")
        lib.add_source("pg", kind="public-domain")
        t0 = time.perf_counter()
        lib.with_executor(LocalEngine(2, inline_bytes=0)).ingest(
            [str(texts)], source="pg", dataset="bench@1"
        )
        print(f"ingest (setup): {time.perf_counter() - t0:.0f} s")

    print("copytrail guard index:")
    t0 = time.perf_counter()
    info = lib.guard_index("bench", all_datasets=True, rebuild=not args.no_build)
    build = time.perf_counter() - t0
    print(
        f"  {info['tokens'] / 1e6:.1f}M words from {info['texts']} texts, "
        f"{info['bytes'] / 1e9:.2f} GB, {info['bytes_per_token']:.2f} bytes/word "
        f"({info['bytes'] / nbytes:.2f} bytes per byte of text), built in {build:.0f} s "
        f"({nbytes / build / 1e6:.1f} MB/s on 2 cores)"
    )
    t0 = time.perf_counter()
    GuardIndex.open(guard_root(lib.ctx) / "bench")
    print(f"  load {1000 * (time.perf_counter() - t0):.1f} ms (memory-mapped)")
    t0 = time.perf_counter()
    refreshed = lib.guard_index("bench")
    print(f"  refresh with nothing new: {time.perf_counter() - t0:.2f} s (+{refreshed['added']})")
    extra = args.work / "extra"
    shutil.rmtree(extra, ignore_errors=True)
    extra.mkdir()
    src = books(SHARED)[0][1]
    (extra / f"new-book-{time.time_ns()}.txt").write_text(
        variant(src, time.time_ns() % 100_000), encoding="utf-8"
    )
    lib.ingest([str(extra)], source="pg", dataset="bench@1")
    t0 = time.perf_counter()
    refreshed = lib.guard_index("bench")
    print(
        f"  refresh after ingesting one more book: {time.perf_counter() - t0:.2f} s "
        f"(+{refreshed['added']} text, now {refreshed['segments']} segments)"
    )

    t0 = time.perf_counter()
    warmed = lib.guard("bench").warm()
    print(
        f"  page cache warmed as `serve` does at start: {warmed / 1e9:.2f} GB in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    queries = make_queries(lib, args.queries)
    print("check latency, 2,000-character inputs:")
    bench_in_process(lib, queries, evidence=False)
    bench_in_process(lib, queries, evidence=True)
    all_queries = [q for qs in queries.values() for q in qs]
    if not args.skip_http:
        bench_http(lib, all_queries, args.http_threads, args.http_seconds, args.http_workers)
    if not args.skip_infinigram:
        print("infini-gram (same texts, byte-level):")
        bench_infinigram(lib, args.work, queries, args.mem_gb, args.reuse, args.infinigram_queries)
    lib.close()


if __name__ == "__main__":
    main()
