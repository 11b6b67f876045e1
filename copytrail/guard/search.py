"""Excerpt search: every copy holding an exact phrase, over one or more guard indexes."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from copytrail.catalog.queries import dataset_ids as resolve_dataset_ids
from copytrail.context import Context
from copytrail.errors import NotFound
from copytrail.fingerprint.normalize import token_spans
from copytrail.guard.evidence import Evidence
from copytrail.guard.scope import list_guards, open_guard
from copytrail.guard.segment import Segment

SNIPPET_CHARS = 80  # context either side of a search hit


def search(
    ctx: Context,
    phrase: str,
    dataset_refs: list[str] | None = None,
    guards: list[str] | None = None,
    limit: int = 100,
    snippets: int = 3,
) -> dict[str, Any]:
    """Every copy holding the exact phrase (normalised words), with counts and snippets."""
    names = guards or [g["name"] for g in list_guards(ctx)]
    if not names:
        raise NotFound(
            "no guard index to search; build one over the library first: "
            "copytrail guard index library --all"
        )
    dataset_ids = resolve_dataset_ids(ctx.db, dataset_refs)
    t0 = time.perf_counter()
    per_text: dict[str, tuple[Evidence, Segment, int, np.ndarray]] = {}
    n_words = len(token_spans(phrase)[0])
    for name in names:
        index = open_guard(ctx, name)
        ev = Evidence(ctx, index, dataset_ids)
        for seg_no, positions in index.phrase_positions(phrase):
            seg = index.segments[seg_no]
            docs = seg.doc_of(positions)
            for doc in np.unique(docs).tolist():
                sha = seg.doc_shas[doc]
                if sha not in per_text:
                    per_text[sha] = (ev, seg, doc, positions[docs == doc] - seg.doc_starts[doc])
    results = []
    total = texts = 0
    for sha, (ev, seg, doc, words) in sorted(per_text.items(), key=lambda kv: -len(kv[1][3])):
        holders = ev.holders(sha)
        if not holders["copies"] and (dataset_ids is not None or not holders["works"]):
            continue  # text outside the datasets asked about
        total += len(words)
        texts += 1
        if len(results) >= limit:
            continue
        text = ev.texts.get(sha)
        shown = []
        for w in words[:snippets].tolist():
            c0, c1 = ev.char_span(seg, doc, int(w), n_words)
            shown.append(
                {
                    "start": c0,
                    "end": c1,
                    "before": text[max(0, c0 - SNIPPET_CHARS) : c0],
                    "match": text[c0:c1],
                    "after": text[c1 : c1 + SNIPPET_CHARS],
                }
            )
        results.append(
            {"text_sha256": sha, "occurrences": len(words), "snippets": shown, **holders}
        )
    return {
        "phrase": phrase,
        "words": n_words,
        "guards": names,
        "datasets": dataset_refs or [],
        "texts": texts,
        "copies": sum(len(r["copies"]) for r in results),
        "occurrences": total,
        "results": results,
        "elapsed_ms": round((time.perf_counter() - t0) * 1000, 3),
    }
