"""Inputs for bench/scale.py, generated from the shared Gutenberg corpus (deterministic by seed).

- Web-style records (~4 KB of text each, JSON Lines shards): running text drawn from the words of
  the books that are not listed; one record in three holds a 150-450 word verbatim excerpt of a
  listed book at a random place.
- Whole-book records: variants of every shared book (main and older editions): a new first line,
  and in turn re-wrapped lines, a changed chapter heading, dropped paragraphs.
- The works list: the listed books (CSV with their reference texts).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import zstandard

from copytrail.samples import gutenberg_body

RECORD_WORDS = 680  # about 4 KB of English text
SHARDS = 8  # JSON Lines files of records (so two workers of any tool have files to share)


@dataclass
class Inputs:
    records_dir: Path  # JSON Lines shards of web records
    books_file: Path  # JSON Lines of whole books
    works_csv: Path
    records: int
    books: int
    listed: int
    records_bytes: int  # uncompressed JSON Lines
    records_zst_bytes: int  # the same records as one .jsonl.zst (level 3)
    books_bytes: int
    books_zst_bytes: int
    text_bytes: int  # text fields only


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def load_books(corpus: Path) -> list[dict]:
    with open(corpus / "MANIFEST.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] in ("main_txt", "old_txt")]
    out = []
    for r in sorted(rows, key=lambda r: r["file"]):
        text = _decode((corpus / r["file"]).read_bytes())
        out.append({**r, "text": text, "body": gutenberg_body(text)})
    return out


def _variant(book: dict, v: int, rng: random.Random) -> str:
    body = book["body"]
    head = f"{book['title']} (copy {v}, scanned edition)\n\n"
    kind = v % 4
    if kind == 1:  # re-wrapped at another width
        width = rng.choice((60, 72, 90))
        out, line = [], ""
        for w in body.split():
            if len(line) + len(w) + 1 > width:
                out.append(line)
                line = w
            else:
                line = f"{line} {w}" if line else w
        body = "\n".join([*out, line])
    elif kind == 2:  # paragraphs dropped (an abridged copy)
        paras = body.split("\n\n")
        body = "\n\n".join(p for i, p in enumerate(paras) if i % 9 != rng.randrange(9))
    elif kind == 3:  # headings renamed
        body = body.replace("CHAPTER", "Chapter").replace("Chapter", "Part")
    return head + body


def generate(
    corpus: Path, out: Path, n_records: int, n_books: int, n_listed: int, seed: int = 11
) -> Inputs:
    """Write the inputs under `out` (reused when already there for the same sizes)."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / f"inputs-{n_records}-{n_books}-{n_listed}-{seed}-{SHARDS}.json"
    if stamp.exists():
        d = orjson.loads(stamp.read_bytes())
        return Inputs(**{k: Path(v) if k.endswith(("_dir", "_file", "_csv")) else v
                         for k, v in d.items()})
    books = load_books(corpus)
    mains = [b for b in books if b["kind"] == "main_txt"]
    listed = mains[:n_listed]
    unlisted = mains[n_listed:] or mains
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)

    works_csv = out / "works.csv"
    refs = out / "refs"
    refs.mkdir(exist_ok=True)
    with open(works_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["work_id", "title", "authors", "isbn", "asin", "text"])
        for b in listed:
            (refs / f"{b['pgid']}.txt").write_text(b["text"], encoding="utf-8")
            w.writerow([f"PG{b['pgid']}", b["title"], b["author"], "", "", f"refs/{b['pgid']}.txt"])

    vocab = np.array(" ".join(b["body"] for b in unlisted).split(), dtype=object)
    listed_words = [b["body"].split() for b in listed]
    records_dir = out / "records"
    records_dir.mkdir(exist_ok=True)
    cctx = zstandard.ZstdCompressor(level=3)
    records_bytes = text_bytes = 0
    zst_path = out / "records.jsonl.zst"
    with open(zst_path, "wb") as zf, cctx.stream_writer(zf) as zw:
        shard = None
        per_shard = max(1, -(-n_records // SHARDS))
        for i in range(n_records):
            if i % per_shard == 0:
                if shard:
                    shard.close()
                shard = open(records_dir / f"web-{i // per_shard:04d}.jsonl", "wb")  # noqa: SIM115
            filler = vocab[nrng.integers(0, len(vocab), RECORD_WORDS)]
            if i % 3 == 0 and listed_words:
                ws = listed_words[rng.randrange(len(listed_words))]
                n = rng.randrange(150, 450)
                at = rng.randrange(max(1, len(ws) - n))
                cut = rng.randrange(RECORD_WORDS - n)
                text = " ".join(
                    [*filler[:cut], *ws[at : at + n], *filler[cut : RECORD_WORDS - n]]
                )
            else:
                text = " ".join(filler)
            line = orjson.dumps(
                {"id": f"web-{i}", "url": f"https://example.org/{i}", "text": text}
            ) + b"\n"
            shard.write(line)
            zw.write(line)
            records_bytes += len(line)
            text_bytes += len(text)
        if shard:
            shard.close()

    books_file = out / "books.jsonl"
    books_bytes = 0
    bzst = out / "books.jsonl.zst"
    with open(books_file, "wb") as bf, open(bzst, "wb") as zf, cctx.stream_writer(zf) as zw:
        for i in range(n_books):
            b = books[i % len(books)]
            text = _variant(b, i // len(books), rng)
            line = orjson.dumps({"id": f"book-{i}", "title": b["title"], "author": b["author"],
                                 "text": text}) + b"\n"
            bf.write(line)
            zw.write(line)
            books_bytes += len(line)
    inputs = Inputs(
        records_dir=records_dir,
        books_file=books_file,
        works_csv=works_csv,
        records=n_records,
        books=n_books,
        listed=len(listed),
        records_bytes=records_bytes,
        records_zst_bytes=zst_path.stat().st_size,
        books_bytes=books_bytes,
        books_zst_bytes=bzst.stat().st_size,
        text_bytes=text_bytes,
    )
    stamp.write_bytes(orjson.dumps({k: str(v) if isinstance(v, Path) else v
                                    for k, v in inputs.__dict__.items()}))
    return inputs
