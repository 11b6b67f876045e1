"""Writes library-schema12.tar.gz: a small library with a recorded audit, made by copytrail at
schema 12 (before audits recorded the copies they covered). Run from a checkout of that version:
    python tests/vectors/make_schema12.py OUT_DIR
Texts are from Alice's Adventures in Wonderland (Project Gutenberg, public domain)."""

import sys
import tarfile
from pathlib import Path

from copytrail import Library

ALICE = Path(__file__).resolve().parents[2] / "examples" / "gutenberg" / "11" / "11-0.txt"

if __name__ == "__main__":
    out = Path(sys.argv[1])
    words = ALICE.read_text(encoding="utf-8").split()
    src = out / "src"
    (src / "copies").mkdir(parents=True)
    (src / "work.txt").write_text(" ".join(words[1000:4000]), encoding="utf-8")
    (src / "copies" / "whole.txt").write_text(" ".join(words[1000:4000]), encoding="utf-8")
    filler = "Tides, harbours and ledgers are the whole of this unrelated page. " * 30
    part = " ".join(words[2000:2400])
    (src / "copies" / "quoted.txt").write_text(f"{filler}\n{part}\n{filler}", encoding="utf-8")
    (src / "works.csv").write_text(
        "work_id,title,authors,isbn,asin,text\nW1,Alice,\"Carroll, Lewis\",,,work.txt\n",
        encoding="utf-8",
    )
    lib = Library.init(out / "lib12")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(src / "copies")], source="pg", dataset="pg@1")
    lib.import_works(src / "works.csv", "w")
    lib.audit("w", out / "report")
    lib.checkpoint()
    lib.close()
    with tarfile.open(out / "library-schema12.tar.gz", "w:gz") as t:
        t.add(out / "lib12", arcname="lib12")
