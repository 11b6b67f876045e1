"""Alignment: one maximal span per verbatim excerpt, and a cost set by the excerpt, not the work."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from copytrail.audit.align import Tokenized, align
from copytrail.samples import gutenberg_body


def _words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    return [rng.choice(vocab) for _ in range(n)]


def test_a_phrase_the_work_repeats_does_not_split_the_excerpt():
    # The work says the same 40-word passage three times; an excerpt holding one of them
    # has no unique seed there, and used to come out as two spans around it.
    refrain = _words(40, 1)
    body = _words(3000, 2)
    work_words = body[:500] + refrain + body[500:1400] + refrain + body[1400:2600] + refrain
    excerpt = work_words[1000:2700]
    work = Tokenized.of(" ".join(work_words))
    copy = Tokenized.of("an unrelated opening line " + " ".join(excerpt) + " then other text")
    al = align(work, copy)
    assert [(s.work_start, s.work_end) for s in al.spans] == [(1000, 2700)]
    assert al.spans[0].copy_start == 4


def test_spans_still_bridge_small_differences():
    work_words = _words(2000, 3)
    noisy = list(work_words[200:1200])
    for i in range(50, 1000, 97):
        noisy[i] = "ocrerror"
    al = align(Tokenized.of(" ".join(work_words)), Tokenized.of(" ".join(noisy)))
    assert len(al.spans) == 1 and al.spans[0].words == 1000


def test_the_work_is_indexed_once_for_all_copies():
    work = Tokenized.of(" ".join(_words(50_000, 4)))
    first = work.unique_kgrams()
    align(work, Tokenized.of(" ".join(_words(300, 5))))
    assert work.unique_kgrams() is first  # not rebuilt per copy
    assert np.all(np.diff(first[0].astype(np.float64)) > 0)


def test_every_2500_word_excerpt_of_a_tale_of_two_cities_is_one_span(corpus: Path):
    text = gutenberg_body((corpus / "98" / "98-0.txt").read_text(encoding="utf-8-sig"))
    work = Tokenized.of(text)
    ws = text.split()
    for start in range(48_000, 56_000, 500):  # the old aligner split 16 windows, most here
        excerpt = " ".join(ws[start : start + 2500])
        al = align(work, Tokenized.of("Some unrelated words to start. " + excerpt + " The end."))
        assert len(al.spans) == 1, (start, [s.words for s in al.spans])
        assert al.spans[0].words >= 2500
