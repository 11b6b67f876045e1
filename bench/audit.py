"""Audit speed and scale on libraries built from the shared Gutenberg corpus, with near-duplicate
detection side by side against datasketch (MinHashLSH) and datatrove (MinHash pipeline).

    .venv/bin/python bench/audit.py [--sizes 4000 12000 32000] [--works 2000] [--compare-size 12000]

Every main text is cut into 1,000-word chunks. A chunk is a work (the first --works chunks are
listed); each chunk gives four library copies: a clean copy with a new first line, a copy with
1% OCR-like character noise, a re-wrapped and hyphenated copy, and a 300-word excerpt inside
another chunk. Near-duplicate truth: a listed chunk and its first three variants. A benchmark,
not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from copytrail import Library  # noqa: E402
from copytrail.engine.local import LocalEngine, default_workers  # noqa: E402
from copytrail.fingerprint.normalize import words  # noqa: E402
from copytrail.samples import gutenberg_body  # noqa: E402

CHUNK_WORDS = 1000


def chunks_from_corpus(corpus: Path) -> list[str]:
    out = []
    with open(corpus / "MANIFEST.csv", encoding="utf-8") as f:
        files = [r["file"] for r in csv.DictReader(f) if r["kind"] == "main_txt"]
    for rel in sorted(files):
        data = (corpus / rel).read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
        ws = gutenberg_body(text).split()
        for i in range(0, len(ws) - CHUNK_WORDS, CHUNK_WORDS):
            chunk = " ".join(ws[i : i + CHUNK_WORDS])
            # Licence text left inside a book's body is boilerplate, not a work: copytrail
            # rightly refuses it as evidence, so it must not be counted as a work to find.
            if "Project Gutenberg" not in chunk:
                out.append(chunk)
    return out


def noise(text: str, rng: random.Random) -> str:
    swaps = {"e": "c", "l": "1", "o": "0", "m": "rn", "h": "b"}
    return "".join(swaps[c] if c in swaps and rng.random() < 0.01 else c for c in text)


def rewrap(text: str) -> str:
    out, line = [], ""
    for w in text.split():
        if len(line) + len(w) > 60 and len(w) > 7:
            out.append(f"{line} {w[:3]}-")
            line = w[3:]
        elif len(line) + len(w) > 60:
            out.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*out, line])


def variants(chunks: list[str], n_chunks: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n_chunks):
        c = chunks[i]
        host = chunks[(i * 7919 + 13) % len(chunks)].split()
        ws = c.split()
        docs += [
            {"id": f"clean-{i}", "chunk": i, "kind": "clean", "text": f"Copy {i} of a chunk.\n{c}"},
            {"id": f"ocr-{i}", "chunk": i, "kind": "ocr", "text": noise(c, rng)},
            {"id": f"wrap-{i}", "chunk": i, "kind": "wrap", "text": rewrap(c)},
            {
                "id": f"part-{i}",
                "chunk": i,
                "kind": "part",
                # 400 host words: under half the host chunk, so not a near-duplicate of it.
                "text": " ".join(host[:200] + ws[300:600] + host[200:400]),
            },
        ]
    return docs


def peak_rss_mb() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(me, kids) / 1024


def truth_pairs(docs: list[dict], n_works: int) -> set[tuple[int, str]]:
    return {
        (d["chunk"], d["id"])
        for d in docs
        if d["chunk"] < n_works and d["kind"] in ("clean", "ocr", "wrap")
    }


def run_copytrail(
    work: Path, chunks: list[str], docs: list[dict], n_works: int, workers: int
) -> dict:
    libdir = work / "lib"
    shutil.rmtree(libdir, ignore_errors=True)
    lib = Library.init(libdir, executor=LocalEngine(workers, inline_bytes=0))
    lib.add_source("bench", kind="web-crawl")
    jsonl = work / "library.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    t0 = time.perf_counter()
    lib.ingest([str(jsonl)], source="bench", dataset="bench")
    t_ingest = time.perf_counter() - t0
    refs = work / "refs"
    refs.mkdir(exist_ok=True)
    with open(work / "works.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["work_id", "title", "authors", "isbn", "asin", "text"])
        for i in range(n_works):
            (refs / f"{i}.txt").write_text(chunks[i], encoding="utf-8")
            w.writerow([f"C{i}", f"Chunk {i}", "", "", "", f"refs/{i}.txt"])
    lib.import_works(work / "works.csv", "bench")
    shas = {c["text_sha256"] for c in lib.copies()} | {w["text_sha256"] for w in lib.works("bench")}
    text_bytes = (
        sum(lib.store.get(s).__len__() for s in list(shas)[:200]) / min(200, len(shas)) * len(shas)
    )
    t0 = time.perf_counter()
    lib.fingerprints.ensure(shas)
    t_fp = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = lib.audit("bench", work / "out")
    t_audit = time.perf_counter() - t0
    found = set()
    id_of = {c["id"]: c["path"] for c in lib.copies()}
    rec_ids = {}
    for c in lib.copies():
        rec_ids[c["id"]] = c["extra"].get("record_id")
    for line in (work / "out" / "matches.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m["method"] in ("exact", "near_duplicate"):
            found.add((int(m["work_id"][1:]), rec_ids[m["copy_id"]]))
    lib.close()
    del id_of
    return {
        "ingest_s": t_ingest,
        "fingerprint_s": t_fp,
        "audit_s": t_audit,
        "text_mb": text_bytes / 1e6,
        "found": found,
        "works_found": summary["works_found"],
        "stats": summary["stats"],
    }


def run_datasketch(chunks: list[str], docs: list[dict], n_works: int) -> dict:
    from datasketch import MinHash, MinHashLSH

    def sig(text: str) -> MinHash:
        ws = words(text)
        m = MinHash(num_perm=128)
        m.update_batch([b" ".join(ws[i : i + 5]) for i in range(max(1, len(ws) - 4))])
        return m

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    for d in docs:
        lsh.insert(d["id"], sig(d["text"]))
    found = set()
    for i in range(n_works):
        for key in lsh.query(sig(chunks[i])):
            found.add((i, key))
    return {"seconds": time.perf_counter() - t0, "found": found}


def run_datatrove(
    work: Path, chunks: list[str], docs: list[dict], n_works: int, workers: int
) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader

    base = work / "datatrove"
    shutil.rmtree(base, ignore_errors=True)
    (base / "in").mkdir(parents=True)
    rows = [{"id": f"work-{i}", "text": chunks[i]} for i in range(n_works)] + [
        {"id": d["id"], "text": d["text"]} for d in docs
    ]
    (base / "in" / "all.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    cfg = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8)
    t0 = time.perf_counter()
    LocalPipelineExecutor(
        [JsonlReader(str(base / "in")), MinhashDedupSignature(str(base / "sigs"), config=cfg)],
        tasks=1,
        workers=1,
        logging_dir=str(base / "l1"),
        skip_completed=False,
    ).run()
    LocalPipelineExecutor(
        [MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=cfg)],
        tasks=cfg.num_buckets,
        workers=workers,
        logging_dir=str(base / "l2"),
        skip_completed=False,
    ).run()
    LocalPipelineExecutor(
        [
            MinhashDedupCluster(
                str(base / "buckets"), str(base / "clusters"), config=cfg, save_cluster_id=True
            )
        ],
        tasks=1,
        workers=1,
        logging_dir=str(base / "l3"),
        skip_completed=False,
    ).run()
    secs = time.perf_counter() - t0
    cluster_of: dict[int, int] = {}
    for f in (base / "clusters").glob("*.clusters"):
        data = f.read_bytes()
        for doc, cid in struct.iter_unpack("<2I", data):
            cluster_of[doc] = cid
    members: dict[int, list[int]] = {}
    for doc, cid in cluster_of.items():
        members.setdefault(cid, []).append(doc)
    found = set()
    for ids in members.values():
        ws = [d for d in ids if d < n_works]
        cs = [d - n_works for d in ids if d >= n_works]
        found |= {(w, docs[c]["id"]) for w in ws for c in cs}
    return {"seconds": secs, "found": found}


def score(found: set, truth: set) -> dict:
    tp = len(found & truth)
    return {
        "recall": round(tp / len(truth), 4) if truth else 1.0,
        "precision": round(tp / len(found), 4) if found else 1.0,
        "pairs": len(found),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "gutenberg")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 12000, 32000], help="copies")
    ap.add_argument("--works", type=int, default=2000)
    ap.add_argument("--compare-size", type=int, default=12000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "audit.json")
    args = ap.parse_args()
    workers = default_workers()
    chunks = chunks_from_corpus(args.corpus)
    print(f"{len(chunks)} chunks of {CHUNK_WORDS} words; {workers} cores")
    results = []
    for size in args.sizes:
        n_chunks = min(size // 4, len(chunks))
        n_works = min(args.works, n_chunks)
        docs = variants(chunks, n_chunks)
        work = Path(tempfile.mkdtemp(prefix="ct-audit-"))
        try:
            ct = run_copytrail(work, chunks, docs, n_works, workers)
            truth = truth_pairs(docs, n_works)
            row = {
                "copies": len(docs),
                "works": n_works,
                "text_MB": round(ct["text_mb"], 1),
                "ingest_s": round(ct["ingest_s"], 1),
                "fingerprint_s": round(ct["fingerprint_s"], 1),
                "fingerprint_MB_s_per_core": round(
                    ct["text_mb"] / ct["fingerprint_s"] / workers, 2
                ),
                "audit_s": round(ct["audit_s"], 1),
                "ms_per_copy": round(1000 * (ct["fingerprint_s"] + ct["audit_s"]) / len(docs), 2),
                "peak_rss_MB": round(peak_rss_mb()),
                "copytrail": score(ct["found"], truth),
                "stats": ct["stats"],
            }
            if size == args.compare_size:
                ds = run_datasketch(chunks, docs, n_works)
                dt = run_datatrove(work, chunks, docs, n_works, workers)
                mine = ct["fingerprint_s"] + ct["audit_s"]
                row["datasketch"] = {
                    "seconds": round(ds["seconds"], 1),
                    **score(ds["found"], truth),
                }
                row["datatrove"] = {"seconds": round(dt["seconds"], 1), **score(dt["found"], truth)}
                row["copytrail_seconds"] = round(mine, 1)
                row["speedup_vs_datasketch"] = round(ds["seconds"] / mine, 2)
                row["speedup_vs_datatrove"] = round(dt["seconds"] / mine, 2)
            results.append(row)
            print(json.dumps(row))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"{'copies':>7} {'works':>6} {'text MB':>8} {'fp s':>6} {'fp MB/s/core':>12} "
        f"{'audit s':>8} "
        f"{'ms/copy':>8} {'peak MB':>8} {'recall':>7} {'precision':>9}"
    )
    for r in results:
        print(
            f"{r['copies']:>7} {r['works']:>6} {r['text_MB']:>8} {r['fingerprint_s']:>6} "
            f"{r['fingerprint_MB_s_per_core']:>12} {r['audit_s']:>8} {r['ms_per_copy']:>8} "
            f"{r['peak_rss_MB']:>8} {r['copytrail']['recall']:>7} {r['copytrail']['precision']:>9}"
        )
        if "datasketch" in r:
            for tool in ("datasketch", "datatrove"):
                t = r[tool]
                print(
                    f"   {tool:>10}: {t['seconds']} s, recall {t['recall']}, "
                    f"precision {t['precision']}"
                )
            print(
                f"   copytrail (fingerprint + whole audit): {r['copytrail_seconds']} s; speed-up "
                f"{r['speedup_vs_datasketch']}x vs datasketch, "
                f"{r['speedup_vs_datatrove']}x vs datatrove"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
