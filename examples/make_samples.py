"""Build the demo's inputs from the Gutenberg books shipped in examples/gutenberg.

They stand for what a model builder really receives: a Books3-like JSON Lines dump from a shadow
library, a publisher's delivery of EPUBs and PDFs in a zip with a nested tar, and a few damaged
files. Usage: python examples/make_samples.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from copytrail import samples

HERE = Path(__file__).parent / "gutenberg"


def book(rel: str, encoding: str = "utf-8") -> str:
    return samples.gutenberg_body((HERE / rel).read_text(encoding=encoding))


def main(out: Path) -> None:
    alice = book("11/11-0.txt")
    metamorphosis = book("5200/5200.txt")
    verwandlung = book("22367/22367-8.txt", "latin-1")

    # A Books3-style dump: one record per book, title/author metadata, the text in "text".
    records = [
        {"title": "Alice's Adventures in Wonderland", "author": "Lewis Carroll", "text": alice},
        {
            "title": "Metamorphosis",
            "author": "Franz Kafka",
            "isbn": "0553213695",
            "text": metamorphosis,
        },
        {"title": "Die Verwandlung", "author": "Franz Kafka", "text": verwandlung},
        {"title": "an excerpt", "text": metamorphosis[5000:9000]},
        {"title": "broken record: no text field", "body": "the dump had a schema change"},
    ]
    data = samples.make_jsonl(records, compress="gzip")
    # A damaged line, as real dumps have: the record is kept as an unreadable copy.
    samples.write(
        out / "books3-sample.jsonl.gz",
        data
        + samples.make_jsonl([], "gzip")
        + __import__("gzip").compress(b'{"title": "cut off\n', mtime=0),
    )

    # A publisher delivery: EPUB and PDF editions, zipped, with a nested tar of an HTML edition.
    epub = samples.make_epub(
        "Metamorphosis", ["Franz Kafka"], metamorphosis.split("\nII\n", 1), isbn="978-0-553-21369-0"
    )
    pdf = samples.make_pdf(
        [samples.wrap_lines(alice[i : i + 3000]) for i in range(0, 30000, 3000)],
        title="Alice's Adventures in Wonderland",
        author="Lewis Carroll",
    )
    nested = samples.make_tar({"html/5200-h.htm": (HERE / "5200/5200-h.htm").read_bytes()}, gz=True)
    delivery = samples.make_zip(
        {
            "epub/metamorphosis.epub": epub,
            "pdf/alice-first-chapters.pdf": pdf,
            "html-edition.tar.gz": nested,
            "../../etc/passwd-attempt.txt": b"an archive member trying to escape its folder\n",
        }
    )
    samples.write(out / "publisher" / "delivery-2025-03.zip", delivery)
    samples.write(out / "publisher" / "truncated.pdf", pdf[: len(pdf) // 3])
    samples.write(
        out / "publisher" / "drm-protected.epub",
        samples.make_epub("Locked", ["Someone"], ["secret"], encrypt_content=True),
    )

    # Two model replies for the guard: one quotes 70 words of Metamorphosis (its line breaks and
    # case changed), one paraphrases.
    quoted = " ".join(metamorphosis.split()[1200:1270])
    samples.write(
        out / "model-output-quoting.txt",
        (
            "Sure! Here is how the story goes on, word for word:\n\n"
            + "\n".join(samples.wrap_lines(quoted.upper(), 50))
            + "\n\nI hope this helps with your essay.\n"
        ).encode(),
    )
    samples.write(
        out / "model-output-paraphrase.txt",
        b"In Kafka's story a travelling salesman wakes up transformed into an insect and "
        b"worries mostly about missing his train and losing his job.\n",
    )
    # Scans of print books the company bought (a purchased-scan source): the scanner's text
    # with the book's title page. examples/purchases.csv and examples/scans.csv go with them.
    for name, title, author, text in (
        ("alice-scan.txt", "Alice's Adventures in Wonderland", "Lewis Carroll", alice),
        ("metamorphosis-scan.txt", "Metamorphosis", "Franz Kafka", metamorphosis),
        ("verwandlung-scan.txt", "Die Verwandlung", "Franz Kafka", verwandlung),
    ):
        samples.write(
            out / "scans" / name,
            f"Title: {title}\nAuthor: {author}\n\n[scanned 2025-05, 300 dpi]\n\n{text}".encode(),
        )
    print(f"demo inputs written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/demo-input"))
