"""Productions for discovery: every copy responsive to a request (the copies an audit matched to
a works list or to given works, or every copy of given datasets), numbered Bates-style, with a
manifest (CSV and JSON), a Concordance load file review platforms import, and the texts when
asked. The production is a `produced` event naming the request, the requester and the manifest
hash; texts handed over are a `disclosed` event first.

    OUT/manifest.csv, manifest.json    one row per produced copy: Bates number, hashes, dataset,
                                       source, source kind, path, title, evidence
    OUT/loadfile.dat                   Concordance DAT: fields delimited by DC4 (0x14), quoted
                                       with þ (U+00FE), UTF-8 with BOM, CRLF lines
    OUT/TEXT/<BATES>.txt               the extracted texts (--with-text)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from copytrail.audit.browse import copies_of_works
from copytrail.audit.works import find_work
from copytrail.catalog import disclose
from copytrail.catalog.queries import copy_context, dataset_ids
from copytrail.catalog.schema import copies
from copytrail.context import Context
from copytrail.errors import InvalidInput
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import append_event

FIELDS = [
    "BEGBATES", "ENDBATES", "COPYID", "SHA256", "TEXTSHA256", "DATASET", "SOURCE",
    "SOURCEKIND", "PATH", "TITLE", "STATUS", "EVIDENCE", "TEXTPATH",
]  # fmt: skip
DC4, THORN, NEWLINE_MARK = "\x14", "\u00fe", "\u00ae"
_REQUEST = re.compile(r"^[\w .,:;()/#&'-]{1,200}$")
_CHUNK = 500


def _prefix(request: str) -> str:
    letters = re.sub(r"[^A-Za-z0-9]", "", request).upper()[:6]
    return letters or "CT"


def produce(
    ctx: Context,
    request: str,
    out: str | os.PathLike,
    list_name: str | None = None,
    work_ids: list[str] | None = None,
    datasets: list[str] | None = None,
    with_text: bool = False,
    requester: str | None = None,
) -> dict[str, Any]:
    if not _REQUEST.match(request or ""):
        raise InvalidInput(
            "name the request in 1-200 letters, digits, spaces and .,:;()/#&'- "
            "(e.g. 'RFP 12: datasets containing Class Works')"
        )
    if sum(bool(x) for x in (list_name and not work_ids, work_ids, datasets)) != 1:
        raise InvalidInput(
            "say what is responsive: --list L, --work ID (with --list), or --dataset D"
        )
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise InvalidInput(f"{folder} is not empty: a production goes to a new folder")
    who = requester or ctx.actor
    evidence, ids, scope = _responsive(ctx, list_name, work_ids, datasets)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = _prefix(request)
    rows = list(_rows(ctx, ids, evidence, prefix))
    disclosure = None
    if with_text:
        texts = [r for r in rows if r["_text_sha256"] and r["STATUS"] == "ok"]
        if texts:
            disclosure = disclose.record(
                ctx.db, who, [r["COPYID"] for r in texts], f"production: {request}", "produce",
                request=request,
            )  # fmt: skip
            (folder / "TEXT").mkdir()
            for r in texts:
                try:
                    data = ctx.store.get(r["_text_sha256"])
                except FileNotFoundError:
                    continue
                name = f"TEXT/{r['BEGBATES']}.txt"
                (folder / name).write_bytes(data)
                r["TEXTPATH"] = name
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    manifest = {
        "request": request,
        "requester": who,
        "scope": scope,
        "items": len(public),
        "with_text": with_text,
        "bates": [public[0]["BEGBATES"], public[-1]["ENDBATES"]] if public else None,
        "disclosure_event": disclosure,
        "copies": public,
    }
    body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    (folder / "manifest.json").write_bytes(body)
    (folder / "manifest.csv").write_text(_csv(public), encoding="utf-8")
    (folder / "loadfile.dat").write_bytes(_dat(public))
    manifest_sha = hashlib.sha256(body).hexdigest()
    seq = append_event(
        ctx.db,
        who,
        "produced",
        {"request": request},
        {
            "artifact": "production",
            "requester": who,
            "scope": scope,
            "items": len(public),
            "with_text": with_text,
            "manifest_sha256": manifest_sha,
            "path": str(folder.resolve()),
        },
    )
    return {
        "request": request,
        "out": str(folder),
        "items": len(public),
        "bates": manifest["bates"],
        "with_text": with_text,
        "texts": sum(1 for r in public if r["TEXTPATH"]),
        "manifest_sha256": manifest_sha,
        "event_seq": seq,
    }


def _responsive(
    ctx: Context, list_name: str | None, work_ids: list[str] | None, datasets: list[str] | None
) -> tuple[dict[int, list[str]], list[int], dict[str, Any]]:
    evidence: dict[int, list[str]] = {}
    if datasets:
        dids = dataset_ids(ctx.db, datasets) or []
        with read_connection(ctx.db) as conn:
            ids = [
                r.id
                for r in conn.execute(
                    select(copies.c.id).where(copies.c.dataset_id.in_(dids)).order_by(copies.c.id)
                )
            ]
        return evidence, ids, {"datasets": datasets}
    if work_ids and not list_name:
        with read_connection(ctx.db) as conn:
            lists = {find_work(conn, w, None)["list"] for w in work_ids}
        if len(lists) != 1:
            raise InvalidInput("the works are in several lists; add --list NAME")
        list_name = lists.pop()
    for m in copies_of_works(ctx.db, str(list_name), work_ids):
        cov = f" {m['coverage']:.0%}" if m["coverage"] is not None else ""
        note = f"{m['work_id']} ({m['method']}{cov}, audit {m['audit_id']})"
        if note not in evidence.setdefault(m["copy_id"], []):
            evidence[m["copy_id"]].append(note)
    scope: dict[str, Any] = {"works_list": list_name}
    if work_ids:
        scope["works"] = work_ids
    return evidence, sorted(evidence), scope


def _rows(
    ctx: Context, ids: list[int], evidence: dict[int, list[str]], prefix: str
) -> Iterator[dict[str, Any]]:
    n = 0
    for i in range(0, len(ids), _CHUNK):
        part = ids[i : i + _CHUNK]
        with read_connection(ctx.db) as conn:
            context = copy_context(conn, part)
            extra = {
                r.id: r
                for r in conn.execute(
                    select(copies.c.id, copies.c.title, copies.c.status).where(
                        copies.c.id.in_(part)
                    )
                )
            }
        for cid in part:
            n += 1
            c, e = context.get(cid, {}), extra.get(cid)
            bates = f"{prefix}{n:07d}"
            yield {
                "BEGBATES": bates,
                "ENDBATES": bates,
                "COPYID": cid,
                "SHA256": c.get("copy_sha256") or "",
                "TEXTSHA256": c.get("text_sha256") or "",
                "DATASET": c.get("dataset", ""),
                "SOURCE": c.get("source", ""),
                "SOURCEKIND": c.get("source_kind", ""),
                "PATH": c.get("path", ""),
                "TITLE": (e.title if e else None) or "",
                "STATUS": e.status if e else "",
                "EVIDENCE": "; ".join(evidence.get(cid, [])),
                "TEXTPATH": "",
                "_text_sha256": c.get("text_sha256"),
            }


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow({k: _no_formula(str(r[k])) for k in FIELDS})
    return buf.getvalue()


def _no_formula(value: str) -> str:
    """A cell a spreadsheet would run as a formula is quoted as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _dat_value(value: Any) -> str:
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\n", NEWLINE_MARK)
    return THORN + text.replace(THORN, "").replace(DC4, "") + THORN


def _dat(rows: list[dict[str, Any]]) -> bytes:
    lines = [DC4.join(_dat_value(f) for f in FIELDS)]
    lines += [DC4.join(_dat_value(r[f]) for f in FIELDS) for r in rows]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")
