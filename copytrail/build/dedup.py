"""Exact and near-duplicate removal with a keep order: of each group of copies holding the same
(or nearly the same) text, the copy whose source kind ranks first is kept (a purchased scan
before a shadow-library download), ties going to the oldest copy id.

Exact: the same normalised text (fingerprint `norm_sha256`). Near: MinHash LSH band collisions
from the fingerprint store, confirmed when the share of equal signature values (the estimated
Jaccard similarity of word 5-gram sets) reaches the policy's threshold. Groups are closed under
both relations (union-find), as in datatrove's MinHash clustering.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from copytrail.fingerprint.hashing import NUM_PERM


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
    db: Any, survivors: str, exact: bool, near: bool, threshold: float
) -> dict[int, tuple[str, int]]:
    """copy id -> (rule, kept copy id) for every copy of the DuckDB table `survivors`
    (copy_id, text_sha256, rank) that duplicates a kept one. The fingerprint views must be
    attached to `db` (FingerprintStore.attach) with every survivor's text fingerprinted.

    Only texts that have a duplicate come into memory: texts sharing a normalised form,
    texts whose LSH bands collide, and texts held by several copies. The rest of the corpus
    stays in DuckDB, which spills past its memory bound."""
    if not (exact or near):
        return {}
    # The joins run on the fingerprints' integer text keys; digests come back through `texts`.
    db.execute(f"""
        CREATE TEMP TABLE dd_texts AS SELECT t.text_key FROM texts t
        SEMI JOIN {survivors} s ON s.text_sha256 = t.text_sha256
    """)
    # Texts whose normalised form another text shares: exact duplicates of each other.
    same_norm: list[tuple[str, str]] = []
    if exact:
        same_norm = db.execute("""
            SELECT t.text_sha256, t.norm_sha256 FROM texts t
            SEMI JOIN dd_texts s ON s.text_key = t.text_key
            QUALIFY count(*) OVER (PARTITION BY t.norm_sha256) > 1
        """).fetchall()
    pairs: list[tuple[str, str]] = []
    if near:
        db.execute("""
            CREATE TEMP TABLE dd_bands AS SELECT b.text_key, b.band, b.key FROM bands b
            SEMI JOIN dd_texts s ON s.text_key = b.text_key
        """)
        # Each pair once, the smaller digest first, as the union below takes them.
        pairs = db.execute("""
            SELECT least(ta.text_sha256, tb.text_sha256), greatest(ta.text_sha256, tb.text_sha256)
            FROM (
                SELECT DISTINCT a.text_key, b.text_key FROM dd_bands a JOIN dd_bands b
                ON a.band = b.band AND a.key = b.key AND a.text_key < b.text_key
            ) p (a, b)
            JOIN texts ta ON ta.text_key = p.a JOIN texts tb ON tb.text_key = p.b
        """).fetchall()
    involved = sorted({t for p in pairs for t in p} | {t for t, _n in same_norm})
    db.register("dd_involved", pa.table({"text_sha256": pa.array(involved, pa.string())}))
    norm: dict[str, str] = {}
    sig: dict[str, np.ndarray] = {}
    for sha, n, mh in db.execute("""
        SELECT t.text_sha256, t.norm_sha256, t.minhash FROM texts t
        SEMI JOIN dd_involved i ON i.text_sha256 = t.text_sha256
    """).fetchall():
        norm[sha] = n
        sig[sha] = np.frombuffer(mh, dtype=np.uint32)
    uf = _UnionFind()
    if exact:
        first: dict[str, str] = {}
        for sha, n in sorted(same_norm):
            if n in first:
                uf.union(first[n], sha)
            else:
                first[n] = sha
    if near:
        for a, b in sorted(pairs):
            if (
                a in sig
                and b in sig
                and uf.find(a) != uf.find(b)
                and float(np.mean(sig[a] == sig[b])) >= threshold - 0.5 / NUM_PERM
            ):
                uf.union(a, b)
    # The copies that can be duplicates: of a text joined to another, or of a text held twice.
    roots = {t: uf.find(t) for t in list(uf.parent)}
    size = Counter(roots.values())
    grouped = sorted(t for t, r in roots.items() if size[r] > 1)
    db.register("dd_grouped", pa.table({"text_sha256": pa.array(grouped, pa.string())}))
    members = db.execute(f"""
        SELECT copy_id, text_sha256, rank FROM {survivors}
        WHERE text_sha256 IN (SELECT text_sha256 FROM dd_grouped)
           OR text_sha256 IN (
               SELECT text_sha256 FROM {survivors} GROUP BY 1 HAVING count(*) > 1
           )
    """).fetchall()
    clusters: dict[str, list[Candidate]] = {}
    for cid, sha, rank in members:
        clusters.setdefault(uf.find(sha), []).append(Candidate(cid, sha, rank))
    out: dict[int, tuple[str, int]] = {}
    for group in clusters.values():
        if len(group) < 2:
            continue
        keep = min(group, key=lambda c: (c.rank, c.copy_id))
        for c in group:
            if c is keep:
                continue
            same = norm.get(c.text_sha256, c.text_sha256) == norm.get(
                keep.text_sha256, keep.text_sha256
            )
            out[c.copy_id] = ("duplicate:exact" if same else "duplicate:near", keep.copy_id)
    return out
