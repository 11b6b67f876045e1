"""Exact and near-duplicate removal with a keep order: of each group of copies holding the same
(or nearly the same) text, the copy whose source kind ranks first is kept (a purchased scan
before a shadow-library download), ties going to the oldest copy id.

Exact: the same normalised text (fingerprint `norm_sha256`). Near: MinHash LSH band collisions
from the fingerprint store, confirmed when the share of equal signature values (the estimated
Jaccard similarity of word 5-gram sets) reaches the policy's threshold. Groups are closed under
both relations (union-find), as in datatrove's MinHash clustering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from copytrail.fingerprint.hashing import NUM_PERM
from copytrail.fingerprint.store import FingerprintStore


@dataclass
class Candidate:
    copy_id: int
    text_sha256: str
    rank: int  # position of the copy's source kind in the keep order


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def duplicates(
    fps: FingerprintStore,
    cands: list[Candidate],
    exact: bool,
    near: bool,
    threshold: float,
    text_bytes: int | None = None,
) -> dict[int, tuple[str, int]]:
    """copy id -> (rule, kept copy id) for every candidate that is a duplicate of a kept one."""
    if not cands or not (exact or near):
        return {}
    shas = sorted({c.text_sha256 for c in cands})
    fps.ensure(shas, text_bytes=text_bytes)
    pairs: list[tuple[str, str]] = []
    with fps.joins() as db:
        fps.attach(db)
        db.register("scope_arrow", pa.table({"text_sha256": shas}))
        rows = db.execute(
            "SELECT t.text_sha256, t.norm_sha256, t.minhash FROM texts t "
            "SEMI JOIN scope_arrow s ON s.text_sha256 = t.text_sha256"
        ).fetchall()
        if near:
            db.execute(
                "CREATE TABLE scoped AS SELECT text_sha256, band, key FROM bands "
                "WHERE text_sha256 IN (SELECT text_sha256 FROM scope_arrow)"
            )
            pairs = db.execute(
                "SELECT DISTINCT a.text_sha256, b.text_sha256 FROM scoped a JOIN scoped b "
                "ON a.band = b.band AND a.key = b.key AND a.text_sha256 < b.text_sha256"
            ).fetchall()
    norm = {r[0]: r[1] for r in rows}
    sig = {r[0]: np.frombuffer(r[2], dtype=np.uint32) for r in rows}
    uf = _UnionFind()
    by_text: dict[str, list[Candidate]] = {}
    for c in cands:
        by_text.setdefault(c.text_sha256, []).append(c)
    # The same text held by several copies is always an exact duplicate.
    groups: dict[str, str] = {}
    if exact:
        for sha in shas:
            key = norm.get(sha, sha)
            if key in groups:
                uf.union(groups[key], sha)
            else:
                groups[key] = sha
    if near:
        for a, b in sorted(pairs):
            if (
                a in sig
                and b in sig
                and uf.find(a) != uf.find(b)
                and float(np.mean(sig[a] == sig[b])) >= threshold - 0.5 / NUM_PERM
            ):
                uf.union(a, b)
    clusters: dict[str, list[Candidate]] = {}
    for c in cands:
        clusters.setdefault(uf.find(c.text_sha256), []).append(c)
    out: dict[int, tuple[str, int]] = {}
    for members in clusters.values():
        if len(members) < 2:
            continue
        keep = min(members, key=lambda c: (c.rank, c.copy_id))
        for c in members:
            if c is keep:
                continue
            same = norm.get(c.text_sha256, c.text_sha256) == norm.get(
                keep.text_sha256, keep.text_sha256
            )
            out[c.copy_id] = ("duplicate:exact" if same else "duplicate:near", keep.copy_id)
    return out
