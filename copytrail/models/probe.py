"""`copytrail probe`: has a model memorized a work? Windows slide over the work's text (a 50-token
prefix and the 50-token suffix that follows, as in Cooper et al. 2025); per work it reports

- the share of windows whose suffix probability p_z = prod p(token) passes a threshold (0.5),
  and the distribution of p_z;
- the greedy exact-extraction rate (greedy decoding from the prefix gives the suffix exactly) and
  the longest verbatim run, in words, that greedy decoding produced;
- a membership score, Min-K%++ (Zhang et al. 2024): per token, (log p(x) - mean) / std over the
  vocabulary, averaged over the lowest k% of the window's tokens;

and the same for control works the lineage says the model never read, so a reader sees the gap.
The report is JSON and HTML; a `probed` event records the model hash, parameters and report hash.
Windows are scored in batches; results per text are cached in the output folder, so an
interrupted probe of a long list resumes where it stopped.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from copytrail.audit.browse import stored_text
from copytrail.audit.works import find_work
from copytrail.build.trace import trace_model
from copytrail.catalog.queries import find_copy
from copytrail.catalog.schema import copies, corpora, corpus_docs, matches, works, works_lists
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import append_event
from copytrail.models import loading

MAX_WINDOWS = 2000


def _subjects(ctx: Context, work: str | None, list_name: str | None, copy: str | int | None,
              corpus: str | None, sample: int, seed: int) -> list[dict[str, Any]]:  # fmt: skip
    with read_connection(ctx.db) as conn:
        if work is not None:
            w = find_work(conn, work, list_name)
            return [{"kind": "work", "label": f"{w['list']}:{w['work_id']}", "title": w["title"],
                     "text_sha256": w.get("text_sha256"), "work_pk": w["id"]}]  # fmt: skip
        if copy is not None:
            c = find_copy(conn, copy)
            return [{"kind": "copy", "label": f"copy {c['id']}", "title": c["title"],
                     "text_sha256": c["text_sha256"], "copy_id": c["id"]}]  # fmt: skip
        if corpus is None:
            raise InvalidInput("probe --work ID --list L, --copy ID, or --corpus C --sample N")
        cid = conn.execute(select(corpora.c.id).where(corpora.c.name == corpus)).scalar()
        if cid is None:
            raise NotFound(f"no corpus {corpus!r}")
        rows = conn.execute(
            select(copies.c.id, copies.c.title, copies.c.text_sha256)
            .join(corpus_docs, corpus_docs.c.copy_id == copies.c.id)
            .where(corpus_docs.c.corpus_id == cid, corpus_docs.c.fate == "included")
            .order_by(copies.c.id)
        ).all()
    picked = random.Random(seed).sample(rows, min(sample, len(rows)))
    return [{"kind": "copy", "label": f"copy {r.id}", "title": r.title,
             "text_sha256": r.text_sha256, "copy_id": r.id} for r in sorted(picked)]  # fmt: skip


def _controls(ctx: Context, model_name: str | None, subjects: list[dict[str, Any]], n: int,
              seed: int) -> list[dict[str, Any]]:  # fmt: skip
    """Texts the model never read, by its recorded reads: other works of the same list whose
    copies it never saw, else library copies it never saw."""
    seen: set[int] = set()
    if model_name:
        try:
            seen = {c["copy_id"] for c in trace_model(ctx, model_name)["copies_read"]}
        except NotFound:
            seen = set()
    taken = {s.get("text_sha256") for s in subjects}
    out: list[dict[str, Any]] = []
    with read_connection(ctx.db) as conn:
        work_pks = [s["work_pk"] for s in subjects if s["kind"] == "work"]
        if work_pks:
            list_id = conn.execute(
                select(works.c.list_id).where(works.c.id == work_pks[0])
            ).scalar()
            for w in conn.execute(
                select(works, works_lists.c.name.label("list"))
                .join(works_lists)
                .where(works.c.list_id == list_id, works.c.text_sha256.is_not(None))
                .order_by(works.c.id)
            ):
                matched = {
                    r.copy_id for r in conn.execute(
                        select(matches.c.copy_id).where(matches.c.work_pk == w.id)
                    )
                }  # fmt: skip
                if w.text_sha256 not in taken and not matched & seen:
                    out.append({"kind": "work", "label": f"{w.list}:{w.work_id}",
                                "title": w.title, "text_sha256": w.text_sha256})  # fmt: skip
        if len(out) < n:
            rows = conn.execute(
                select(copies.c.id, copies.c.title, copies.c.text_sha256)
                .where(copies.c.status == "ok", copies.c.text_sha256.is_not(None))
                .order_by(copies.c.id)
                .limit(5000)
            ).all()
            rest = [r for r in rows if r.id not in seen and r.text_sha256 not in taken]
            for r in random.Random(seed).sample(rest, min(n - len(out), len(rest))):
                out.append({"kind": "copy", "label": f"copy {r.id}", "title": r.title,
                            "text_sha256": r.text_sha256})  # fmt: skip
    unique: dict[str, dict[str, Any]] = {}
    for c in out:
        unique.setdefault(c["text_sha256"], c)
    return list(unique.values())[:n]


def score_text(model: Any, tok: Any, text: str, prefix: int, suffix: int, stride: int,
               batch: int, greedy: int, k: float,
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The probe's figures for one text."""
    import torch

    ids = tok(text, add_special_tokens=False).input_ids
    span = prefix + suffix
    starts = list(range(0, max(0, len(ids) - span + 1), stride))[:MAX_WINDOWS]
    if not starts:
        return {"windows": 0, "tokens": len(ids)}
    log_pz: list[float] = []
    mkpp: list[float] = []
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            part = starts[i : i + batch]
            x = torch.tensor([ids[s : s + span] for s in part])
            logits = model(input_ids=x).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            target = x[:, 1:]
            tok_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            log_pz += tok_lp[:, prefix - 1 :].sum(dim=1).tolist()
            probs = logp.exp()
            mu = (probs * logp).sum(-1)
            sigma = ((probs * logp.pow(2)).sum(-1) - mu.pow(2)).clamp_min(1e-12).sqrt()
            z = (tok_lp - mu) / sigma
            n_low = max(1, int(z.shape[1] * k))
            mkpp += z.sort(dim=1).values[:, :n_low].mean(dim=1).tolist()
            if progress:
                progress(len(part))
    picks: list[int] = []
    if greedy > 0:  # the likeliest windows, and others spread over the text
        picks = sorted(range(len(starts)), key=lambda j: -log_pz[j])[: max(1, greedy // 2)]
        step = max(1, len(starts) // max(1, greedy - len(picks)))
        picks = sorted(set(picks) | set(range(0, len(starts), step)))[:greedy]
    extractions = []
    with torch.no_grad():
        for j in picks:
            s = starts[j]
            x = torch.tensor([ids[s : s + prefix]])
            out = model.generate(x, max_new_tokens=suffix, do_sample=False,
                                 pad_token_id=tok.eos_token_id or 0)  # fmt: skip
            gen = out[0, prefix:].tolist()
            truth = ids[s + prefix : s + span]
            gen_words = tok.decode(gen).split()
            src_words = tok.decode(ids[s + prefix : s + span + suffix]).split()
            m = difflib.SequenceMatcher(None, gen_words, src_words, autojunk=False)
            run = m.find_longest_match(0, len(gen_words), 0, len(src_words)).size
            extractions.append(
                {"window": j, "exact": gen == truth, "run_words": run, "log_pz": log_pz[j],
                 "prefix": tok.decode(ids[s : s + prefix]), "generated": tok.decode(gen),
                 "source": tok.decode(truth)}
            )  # fmt: skip
    pz = sorted(log_pz)
    q = lambda f: pz[min(len(pz) - 1, int(f * len(pz)))]  # noqa: E731
    return {
        "tokens": len(ids),
        "windows": len(starts),
        "log_pz": {"p10": q(0.1), "p50": q(0.5), "p90": q(0.9), "max": pz[-1]},
        "min_k_pp": sum(mkpp) / len(mkpp),
        "greedy_windows": len(extractions),
        "greedy_exact_rate": (
            sum(e["exact"] for e in extractions) / len(extractions) if extractions else None
        ),
        "longest_run_words": max((e["run_words"] for e in extractions), default=None),
        "strongest": sorted(extractions, key=lambda e: -e["run_words"])[:3],
        "_log_pz": log_pz,
    }


def probe(
    ctx: Context,
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    work: str | None = None,
    list_name: str | None = None,
    copy: str | int | None = None,
    corpus: str | None = None,
    sample: int = 5,
    prefix: int = 50,
    suffix: int = 50,
    stride: int = 50,
    threshold: float = 0.5,
    controls: int = 3,
    batch: int = 16,
    greedy: int = 16,
    k: float = 0.2,
    seed: int = 0,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> dict[str, Any]:
    import math

    if not (1 <= prefix <= 2048 and 1 <= suffix <= 2048 and stride >= 1 and 0 < threshold <= 1):
        raise InvalidInput("prefix and suffix 1..2048 tokens, stride >= 1, 0 < threshold <= 1")
    model, tok = loading.load(model_path)
    model_sha = loading.model_sha256(model_path)
    run_file = Path(model_path) / "copytrail-run.json"
    model_name = json.loads(run_file.read_text())["model"] if run_file.exists() else None
    subjects = _subjects(ctx, work, list_name, copy, corpus, sample, seed)
    ctrl = _controls(ctx, model_name, subjects, controls, seed)
    params = {"prefix": prefix, "suffix": suffix, "stride": stride, "threshold": threshold,
              "greedy": greedy, "k": k, "seed": seed}  # fmt: skip
    key = hashlib.sha256(json.dumps([model_sha, params], sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(out)
    cache = folder / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    results = []
    for role, group in (("probed", subjects), ("control", ctrl)):
        for s in group:
            text = stored_text(ctx.store, s.get("text_sha256"))
            if text is None:
                results.append({**s, "role": role, "error": "no text in the store"})
                continue
            cached = cache / f"{s['text_sha256']}-{key}.json"
            if cached.exists():  # resumable: a text already probed with these parameters
                r = json.loads(cached.read_text())
            else:
                phase = f"probing {s['label']}"
                tick = None
                if progress:
                    progress(phase, 0, None)
                    tick = lambda n, phase=phase: progress(phase, n, None)  # noqa: E731
                r = score_text(model, tok, text, prefix, suffix, stride, batch, greedy, k, tick)
                cached.write_text(json.dumps(r))
            lp = r.pop("_log_pz", [])
            if lp:
                r["pz_share"] = sum(v >= math.log(threshold) for v in lp) / len(lp)
                r["pz_histogram"] = _histogram(lp)
            results.append({**s, "role": role, **r})
    report = {
        "model": model_name,
        "model_path": str(model_path),
        "model_sha256": model_sha,
        "params": params,
        "results": results,
        "gap": _gap(results),
    }
    body = json.dumps(report, indent=2, ensure_ascii=False, default=str).encode()
    (folder / "probe.json").write_bytes(body)
    (folder / "report.html").write_text(_html(report), encoding="utf-8")
    report_sha = hashlib.sha256(body).hexdigest()
    seq = append_event(
        ctx.db,
        ctx.actor,
        "probed",
        {"model": model_name or str(model_path)},
        {"model_sha256": model_sha, "params": params, "report_sha256": report_sha,
         "probed": [s["label"] for s in subjects], "controls": [c["label"] for c in ctrl]},
    )  # fmt: skip
    return {**report, "report_sha256": report_sha, "event_seq": seq, "out": str(folder)}


def _histogram(log_pz: list[float]) -> dict[str, int]:
    bins = {"<1e-6": 0, "1e-6..1e-3": 0, "1e-3..0.1": 0, "0.1..0.5": 0, ">=0.5": 0}
    import math

    for v in log_pz:
        p = math.exp(v)
        key = ("<1e-6" if p < 1e-6 else "1e-6..1e-3" if p < 1e-3 else "1e-3..0.1" if p < 0.1
               else "0.1..0.5" if p < 0.5 else ">=0.5")  # fmt: skip
        bins[key] += 1
    return bins


def _gap(results: list[dict[str, Any]]) -> dict[str, Any]:
    def best(role: str, key: str) -> float | None:
        vals = [r[key] for r in results if r["role"] == role and key in r]
        return max(vals) if vals else None

    out = {}
    for key in ("pz_share", "greedy_exact_rate", "longest_run_words", "min_k_pp"):
        probed, control = best("probed", key), best("control", key)
        gap = None if probed is None or control is None else probed - control
        out[key] = {"probed": probed, "control_max": control, "gap": gap}
    return out


def _html(report: dict[str, Any]) -> str:
    e = html.escape
    rows, passages = [], []
    for r in report["results"]:
        share = r.get("pz_share")
        width = int(300 * share) if share is not None else 0
        title = e(str(r.get("title") or ""))
        shown = share if share is not None else "—"
        rows.append(
            f"<tr><td>{e(r['role'])}</td><td>{e(r['label'])}</td><td>{title}</td>"
            f"<td><svg width='310' height='14' role='img' aria-label='{shown}'>"
            f"<rect width='{width}' height='14' fill='#1f5fbf'></rect></svg> {shown}</td>"
            f"<td>{r.get('greedy_exact_rate', '—')}</td><td>{r.get('longest_run_words', '—')}</td>"
            f"<td>{round(r['min_k_pp'], 3) if 'min_k_pp' in r else '—'}</td></tr>"
        )
        for s in r.get("strongest", [])[:2]:
            passages.append(
                f"<h3>{e(r['label'])}: {s['run_words']} words verbatim</h3><div class='two'>"
                f"<blockquote><b>model</b><br>{e(s['generated'])}</blockquote>"
                f"<blockquote><b>source</b><br>{e(s['source'])}</blockquote></div>"
            )
    gap = e(json.dumps(report["gap"], indent=1))
    return (
        "<!doctype html><meta charset='utf-8'><title>copytrail probe</title><style>"
        "body{font:15px system-ui;max-width:1100px;margin:auto;padding:16px}"
        "td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}"
        ".two{display:grid;grid-template-columns:1fr 1fr;gap:12px}"
        "blockquote{background:#f4f6f8;margin:0;padding:8px;white-space:pre-wrap}</style>"
        f"<h1>Memorization probe of {e(str(report['model'] or report['model_path']))}</h1>"
        f"<p>model SHA-256 <code>{e(report['model_sha256'])}</code>; parameters "
        f"<code>{e(json.dumps(report['params']))}</code></p>"
        "<table><tr><th>role</th><th>text</th><th>title</th><th>share p_z &ge; threshold</th>"
        "<th>greedy exact</th><th>longest run (words)</th><th>Min-K%++</th></tr>"
        + "".join(rows)
        + f"</table><h2>Gap to controls</h2><pre>{gap}</pre>"
        "<h2>Strongest extractions</h2>" + "".join(passages)
    )
