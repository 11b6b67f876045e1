"""Audit outputs: works.csv, matches.jsonl, summary.json and a self-contained report.html."""

from __future__ import annotations

import csv
import hashlib
import html
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

from copytrail.store.blobs import BlobStore

WORK_COLUMNS = [
    "work_id",
    "title",
    "status",
    "copies",
    "datasets",
    "source_kinds",
    "best_method",
    "max_coverage",
    "longest_span_words",
]
METHODS = ["exact", "near_duplicate", "partial", "isbn", "asin", "metadata"]
MAX_EXCERPTS = 400  # side-by-side excerpts in the HTML page; matches.jsonl has every span
EXCERPT_CHARS = 700


def _atomic_write(path: Path, data: bytes) -> str:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def work_rows(works: list[dict], matches: list[dict]) -> list[dict[str, Any]]:
    by_work: dict[str, list[dict]] = defaultdict(list)
    for m in matches:
        by_work[m["work_id"]].append(m)
    rows = []
    for w in works:
        ms = by_work.get(w["work_id"], [])
        covs = [m["coverage"] for m in ms if m["coverage"] is not None]
        rows.append(
            {
                "work_id": w["work_id"],
                "title": w["title"] or "",
                "status": "found" if ms else "not_found",
                "copies": len({m["copy_id"] for m in ms}),
                "datasets": ";".join(sorted({m["dataset"] for m in ms})),
                "source_kinds": ";".join(sorted({m["source_kind"] for m in ms})),
                "best_method": min((m["method"] for m in ms), key=METHODS.index) if ms else "",
                "max_coverage": round(max(covs), 4) if covs else "",
                "longest_span_words": max((m["longest_span_words"] or 0 for m in ms), default=0)
                if ms
                else "",
            }
        )
    return rows


def summarize(works: list[dict], matches: list[dict], header: dict[str, Any]) -> dict[str, Any]:
    per_ds: dict[str, set[str]] = defaultdict(set)
    per_kind: dict[str, set[str]] = defaultdict(set)
    per_ds_method: dict[str, Counter] = defaultdict(Counter)
    best: dict[tuple[str, str], str] = {}
    for m in matches:
        per_ds[m["dataset"]].add(m["work_id"])
        per_kind[m["source_kind"]].add(m["work_id"])
        k = (m["dataset"], m["work_id"])
        if k not in best or METHODS.index(m["method"]) < METHODS.index(best[k]):
            best[k] = m["method"]
    for (ds, _w), method in best.items():
        per_ds_method[ds][method] += 1
    found = {m["work_id"] for m in matches}
    return {
        **header,
        "works": len(works),
        "works_found": len(found),
        "works_not_found": len(works) - len(found),
        "matches": len(matches),
        "by_dataset": {
            ds: {"works_present": len(ws), "by_best_method": dict(per_ds_method[ds])}
            for ds, ws in sorted(per_ds.items())
        },
        "by_source_kind": {k: {"works_present": len(ws)} for k, ws in sorted(per_kind.items())},
    }


def _bar_chart(counts: dict[str, int], total: int) -> str:
    width, bar_h = 420, 18
    rows = [(m, counts.get(m, 0)) for m in METHODS if counts.get(m)]
    h = bar_h * max(len(rows), 1) + 8
    parts = [f'<svg width="{width + 170}" height="{h}" role="img">']
    for i, (method, n) in enumerate(rows):
        w = int(width * n / max(total, 1))
        y = i * bar_h + 4
        parts.append(
            f'<text x="0" y="{y + 13}" font-size="12">{method}</text>'
            f'<rect x="110" y="{y}" width="{max(w, 1)}" height="{bar_h - 4}" fill="#4a6fa5"/>'
            f'<text x="{115 + w}" y="{y + 13}" font-size="12">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _excerpt(text: str, start: int, end: int) -> str:
    if end - start > EXCERPT_CHARS:
        end = start + EXCERPT_CHARS
        return html.escape(text[start:end]) + " …"
    return html.escape(text[start:end])


def render_html(
    summary: dict,
    rows: list[dict],
    matches: list[dict],
    store: BlobStore,
    work_texts: dict[str, str | None],
) -> str:
    e = html.escape
    css = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;width:100%;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left;vertical-align:top}th{background:#eee}"
        ".found{color:#0a6b2d;font-weight:600}.not_found{color:#888}.pair{display:flex;gap:1em}"
        ".pair div{flex:1;background:#f7f7f7;padding:.6em;white-space:pre-wrap;font-family:Georgia,"
        "serif;font-size:13px;border:1px solid #ddd}.meta{color:#555;font-size:12px}"
    )
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>copytrail audit: "
        f"{e(summary['works_list'])}</title><style>{css}</style></head><body>"
    ]
    out.append(f"<h1>Audit of works list “{e(summary['works_list'])}”</h1>")
    out.append(
        f"<p class='meta'>Run {e(summary['time'])} by {e(summary['actor'])}; datasets: "
        f"{e(', '.join(summary['datasets']) or 'all')}; minimum excerpt "
        f"{summary['min_words']} words; audit #{summary.get('audit_id', '')}, "
        f"ledger event {summary.get('event_seq', '')}.</p>"
    )
    out.append(
        f"<p><b>{summary['works_found']}</b> of {summary['works']} listed works found "
        f"in the audited data ({summary['matches']} work–copy matches).</p>"
    )
    out.append("<h2>By dataset</h2>")
    for ds, d in summary["by_dataset"].items():
        out.append(f"<h3>{e(ds)}: {d['works_present']} works present</h3>")
        out.append(_bar_chart(d["by_best_method"], summary["works"]))
    out.append("<h2>By source kind</h2><table><tr><th>source kind</th><th>works present</th></tr>")
    for k, d in summary["by_source_kind"].items():
        out.append(f"<tr><td>{e(k)}</td><td>{d['works_present']}</td></tr>")
    out.append(
        "</table><h2>Works</h2><table><tr>"
        + "".join(f"<th>{c}</th>" for c in WORK_COLUMNS)
        + "</tr>"
    )
    for r in rows:
        out.append(
            "<tr>"
            + "".join(
                f"<td class='{r['status']}'>{e(str(r[c]))}</td>"
                if c == "status"
                else f"<td>{e(str(r[c]))}</td>"
                for c in WORK_COLUMNS
            )
            + "</tr>"
        )
    out.append("</table><h2>Evidence</h2>")
    texts: dict[str, str] = {}

    def text(sha: str) -> str:
        if sha not in texts:
            texts[sha] = store.get(sha).decode("utf-8", errors="replace")
        return texts[sha]

    shown = 0
    for m in matches:
        out.append(
            f"<h3>{e(m['work_id'])} in copy {m['copy_id']} — {e(m['dataset'])} "
            f"({e(m['source_kind'])})</h3><p class='meta'>method {e(m['method'])} "
            f"({e(', '.join(m['methods']))}); coverage {m['coverage']}; longest span "
            f"{m['longest_span_words']} words; copy {e(m['path'])}, SHA-256 "
            f"{e(m['copy_sha256'] or '')}</p>"
        )
        wt = work_texts.get(m["work_id"])
        if m["spans"] and wt and m.get("text_sha256") and shown < MAX_EXCERPTS:
            s = max(m["spans"], key=lambda s: s["words"])
            out.append(
                f"<div class='pair'><div><b>work, chars {s['work_start']}–{s['work_end']}"
                f"</b>\n{_excerpt(text(wt), s['work_start'], s['work_end'])}</div><div><b>copy, "
                f"chars {s['copy_start']}–{s['copy_end']}</b>\n"
                f"{_excerpt(text(m['text_sha256']), s['copy_start'], s['copy_end'])}</div></div>"
            )
            shown += 1
    if shown >= MAX_EXCERPTS:
        out.append(
            f"<p>Excerpts shown for the first {MAX_EXCERPTS} matches; "
            "matches.jsonl lists every span.</p>"
        )
    out.append("</body></html>")
    return "".join(out)


def write_reports(
    out_dir: Path, works: list[dict], matches: list[dict], header: dict[str, Any], store: BlobStore
) -> tuple[dict[str, str], dict[str, Any], list[dict]]:
    """Write the four files; returns ({file: sha256}, summary, work rows)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = work_rows(works, matches)
    summary = summarize(works, matches, header)
    hashes: dict[str, str] = {}
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=WORK_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    hashes["works.csv"] = _atomic_write(out_dir / "works.csv", buf.getvalue().encode())
    public = [
        "work_id",
        "copy_id",
        "copy_sha256",
        "dataset",
        "source",
        "source_kind",
        "method",
        "methods",
        "score",
        "coverage",
        "longest_span_words",
        "spans",
        "path",
    ]
    lines = b"".join(orjson.dumps({k: m[k] for k in public}) + b"\n" for m in matches)
    hashes["matches.jsonl"] = _atomic_write(out_dir / "matches.jsonl", lines)
    hashes["summary.json"] = _atomic_write(
        out_dir / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2)
    )
    work_texts = {x["work_id"]: x.get("text_sha256") for x in works}
    page = render_html(summary, rows, matches, store, work_texts)
    hashes["report.html"] = _atomic_write(out_dir / "report.html", page.encode("utf-8"))
    return hashes, summary, rows
