"""The console's pages: a thin shell over Library calls, like the API beside it. Each page names
the right it needs (the API's roles: checker, auditor, admin); forms are checked for the
session's CSRF token; errors are pages that say what to do next."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from copytrail.console import charts
from copytrail.console.auth import COOKIE, LOGIN_COOKIE, SESSION_SECONDS, Session, Sessions
from copytrail.errors import Conflict, CopytrailError, InvalidInput, LimitExceeded, NotFound
from copytrail.server.keys import ROLES

HERE = Path(__file__).parent
MAX_FORM_BYTES = 200_000
STATUS = {NotFound: 404, InvalidInput: 422, Conflict: 409, LimitExceeded: 413}


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def mount(app: FastAPI, lib: Any, default_guard: str | None = None) -> None:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson_pretty"] = lambda v: json.dumps(
        v, indent=2, ensure_ascii=False, default=str
    )
    sessions = Sessions(getattr(lib, "path", None))
    state: dict[str, Any] = {"verify": None}
    css = (HERE / "static" / "console.css").read_text(encoding="utf-8")

    def session_of(request: Request) -> Session | None:
        parsed = sessions.parse(request.cookies.get(COOKIE))
        if parsed is None:
            return None
        name, nonce = parsed
        key = next((k for k in list_keys() if k["name"] == name), None)
        if key is None or key["revoked"]:
            return None
        return Session(name, key["role"], nonce, sessions.csrf_for(nonce))

    def list_keys() -> list[dict[str, Any]]:
        return lib.keys()

    def may(session: Session | None, right: str) -> bool:
        return session is not None and right in ROLES.get(session.role, ())

    def render(request: Request, template: str, session: Session | None, status: int = 200,
               **values: Any) -> HTMLResponse:  # fmt: skip
        html = env.get_template(template).render(
            request=request, session=session, may=lambda r: may(session, r), **values
        )
        resp = HTMLResponse(html, status_code=status)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    def page(right: str | None) -> Callable:
        """Wrap a page: sign-in and right checked, Library errors shown as pages."""

        def wrap(fn: Callable) -> Callable:
            async def handler(request: Request) -> Response:
                session = session_of(request)
                if right is not None and session is None:
                    target = quote(
                        request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    )
                    return RedirectResponse(f"/console/login?next={target}", status_code=303)
                try:
                    if right is not None and not may(session, right):
                        raise Denied(403, f"the {session.role} role may not see this page")
                    return await fn(request, session)
                except Denied as e:
                    return render(request, "error.html", session, e.status, message=str(e))
                except CopytrailError as e:
                    code = next((c for t, c in STATUS.items() if isinstance(e, t)), 400)
                    return render(request, "error.html", session, code, message=str(e))

            handler.__name__ = fn.__name__
            return handler

        return wrap

    async def form(request: Request, session: Session | None, csrf: bool = True) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Denied(413, "the form is too large")
        try:
            fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), max_num_fields=50).items()}
        except (UnicodeDecodeError, ValueError):
            raise Denied(400, "the form could not be read") from None
        if csrf and (session is None or not sessions.check_csrf(session, fields.get("csrf"))):
            raise Denied(403, "the form's security token is missing or stale: reload the page")
        return fields

    def call(fn: Callable, *args: Any, **kw: Any) -> Any:
        return run_in_threadpool(fn, *args, **kw)

    # ---- static, sign-in -------------------------------------------------------------------
    @app.get("/console/static/console.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.get("/console/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        token = sessions.csrf_for("login:" + str(time.time_ns()))
        target = _safe_next(request.query_params.get("next"))
        resp = render(request, "login.html", None, next=target, login_token=token)
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/console")
        return resp

    @app.post("/console/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        try:
            fields = await form(request, None, csrf=False)
        except Denied as e:
            return render(request, "error.html", None, e.status, message=str(e))
        token = request.cookies.get(LOGIN_COOKIE)
        if not token or fields.get("login_token") != token:
            return render(request, "error.html", None, 403,
                          message="the sign-in form is stale: reload it and try again")  # fmt: skip
        who = await call(lib.authenticate, fields.get("key", "").strip())
        if who is None:
            return render(request, "login.html", None, 401, next=_safe_next(fields.get("next")),
                          login_token=token, error="unknown or revoked API key")  # fmt: skip
        resp = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
        resp.set_cookie(COOKIE, sessions.issue(who["name"]), max_age=SESSION_SECONDS,
                        httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/console")  # fmt: skip
        resp.delete_cookie(LOGIN_COOKIE, path="/console")
        return resp

    @app.post("/console/logout", include_in_schema=False)
    @page("check")
    async def logout(request: Request, session: Session) -> Response:
        await form(request, session)
        sessions.end(session.nonce)
        resp = RedirectResponse("/console/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/console")
        return resp

    # ---- finding -----------------------------------------------------------------------------
    @app.get("/console", include_in_schema=False)
    @page("check")
    async def home(request: Request, session: Session) -> Response:
        stats = await call(lib.stats) if may(session, "read") else None
        return render(request, "home.html", session, stats=stats)

    @app.get("/console/find", include_in_schema=False)
    @page("check")
    async def find(request: Request, session: Session) -> Response:
        q = request.query_params.get("q", "").strip()
        by = request.query_params.get("by", "title")
        found = passage = None
        if q and by == "passage":
            passage = await call(_passage, lib, q, may(session, "read"), default_guard)
        elif q:
            if not may(session, "read"):
                raise Denied(403, "the checker role finds works by pasted passage only")
            found = await call(lib.find, q, by)
        return render(request, "find.html", session, q=q, by=by, found=found, passage=passage)

    @app.get("/console/works/{list_name}/{work_id}", include_in_schema=False)
    @page("read")
    async def work(request: Request, session: Session) -> Response:
        p = request.path_params
        w = await call(lib.work_evidence, p["work_id"], p["list_name"])
        uses = {}
        for cid in sorted({m["copy_id"] for m in w["matches"]})[:50]:
            uses[cid] = await call(lib.uses, cid)
        holds = [h for h in await call(lib.holds, True)]
        return render(request, "work.html", session, w=w, uses=uses, holds=holds)

    @app.get("/console/copies/{copy_id}", include_in_schema=False)
    @page("read")
    async def copy(request: Request, session: Session) -> Response:
        c = await call(lib.copy, request.path_params["copy_id"])
        uses = await call(lib.uses, c["id"])
        return render(request, "copy.html", session, c=c, uses=uses)

    @app.get("/console/copies/{copy_id}/proof.json", include_in_schema=False)
    @page("read")
    async def proof(request: Request, session: Session) -> Response:
        c = await call(lib.copy, request.path_params["copy_id"])
        p = await call(lib.prove, c["event_seq"])
        return Response(
            json.dumps(p, indent=2) + "\n",
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="copy-{c["id"]}-proof.json"'},
        )

    @app.post("/console/copies/{copy_id}/text", include_in_schema=False)
    @page("text")
    async def copy_text(request: Request, session: Session) -> Response:
        fields = await form(request, session)
        r = await call(lib.copy_text, request.path_params["copy_id"], fields.get("reason", ""),
                       who=f"console:{session.key_name}", channel="console")  # fmt: skip
        return render(request, "text.html", session, r=r, reason=fields.get("reason"))

    # ---- what the library holds -------------------------------------------------------------
    @app.get("/console/datasets/{label}", include_in_schema=False)
    @page("read")
    async def dataset(request: Request, session: Session) -> Response:
        d = await call(lib.dataset, request.path_params["label"])
        return render(request, "dataset.html", session, d=d, chart=charts.bars)

    @app.get("/console/corpora/{name}", include_in_schema=False)
    @page("read")
    async def corpus(request: Request, session: Session) -> Response:
        c = await call(lib.corpus, request.path_params["name"])
        return render(request, "corpus.html", session, c=c, chart=charts.bars)

    @app.get("/console/models/{name}", include_in_schema=False)
    @page("read")
    async def model(request: Request, session: Session) -> Response:
        m = await call(lib.trace, model=request.path_params["name"])
        return render(request, "model.html", session, m=m, chart=charts.bars)

    @app.get("/console/audits", include_in_schema=False)
    @page("read")
    async def audits(request: Request, session: Session) -> Response:
        return render(request, "audits.html", session, audits=await call(lib.audit_list),
                      lists=await call(lib.works_lists))  # fmt: skip

    @app.get("/console/holds", include_in_schema=False)
    @page("read")
    async def holds(request: Request, session: Session) -> Response:
        return render(request, "holds.html", session, holds=await call(lib.holds))

    @app.get("/console/deletions", include_in_schema=False)
    @page("read")
    async def deletions(request: Request, session: Session) -> Response:
        return render(request, "deletions.html", session, deletions=await call(lib.deletion_list))

    @app.get("/console/log", include_in_schema=False)
    @page("read")
    async def log(request: Request, session: Session) -> Response:
        try:
            start = max(1, int(request.query_params.get("start", "1")))
        except ValueError:
            raise Denied(422, "start is an event number") from None
        events = await call(lambda: list(lib.events(start, 50)))
        stats = await call(lib.stats)
        return render(request, "log.html", session, events=events, start=start, stats=stats,
                      verified=state["verify"])  # fmt: skip

    @app.post("/console/log/verify", include_in_schema=False)
    @page("admin")
    async def run_verify(request: Request, session: Session) -> Response:
        await form(request, session)
        r = await call(lib.verify, True)
        state["verify"] = {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                           "by": session.key_name, **r.as_dict()}  # fmt: skip
        return RedirectResponse("/console/log", status_code=303)

    # ---- productions -------------------------------------------------------------------------
    @app.get("/console/produce", include_in_schema=False)
    @page("admin")
    async def produce_page(request: Request, session: Session) -> Response:
        return await produce_form(request, session, None)

    @app.post("/console/produce", include_in_schema=False)
    @page("admin")
    async def produce(request: Request, session: Session) -> Response:
        f = await form(request, session)
        scope = f.get("scope", "")
        kind, _, ref = scope.partition(":")
        out = lib.path / "productions" / f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        r = await call(
            lib.produce,
            f.get("request", ""),
            out,
            list_name=ref if kind == "list" else None,
            datasets=[ref] if kind == "dataset" else None,
            with_text=f.get("with_text") == "on",
            requester=f"console:{session.key_name}",
        )
        return await produce_form(request, session, r)

    async def produce_form(request: Request, session: Session, result: Any) -> Response:
        lists, datasets = await call(lib.works_lists), await call(lib.datasets)
        return render(request, "produce.html", session, result=result, lists=lists,
                      datasets=datasets)  # fmt: skip


def _safe_next(value: str | None) -> str:
    """Only a console path: never another site (an open redirect)."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


def _passage(lib: Any, text: str, can_read: bool, guard: str | None) -> dict[str, Any]:
    """A pasted passage: every copy holding it (search) for readers; for checkers, a verbatim
    check against the default guard (works and spans, no copy texts)."""
    words = len(text.split())
    if words < 8:
        raise InvalidInput("paste at least 8 words of the passage")
    if can_read:
        return {"kind": "search", **lib.search(text[:20_000], limit=25)}
    names = [g["name"] for g in lib.guards()]
    name = guard or (names[0] if names else None)
    if name is None:
        raise NotFound("no guard index to check against; an admin builds one with `guard index`")
    return {"kind": "check", **lib.check(text[:20_000], name, min_words=min(50, max(8, words)))}
