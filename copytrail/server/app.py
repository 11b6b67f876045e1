"""The HTTP API: a thin FastAPI shell over Library. Every route needs an API key whose role
grants the right; handlers only translate between HTTP and Library calls."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from copytrail import __version__
from copytrail.errors import (
    Cancelled,
    Conflict,
    CopytrailError,
    InvalidInput,
    LimitExceeded,
    NotFound,
)
from copytrail.guard.budget import Budget
from copytrail.server.keys import ROLES
from copytrail.server.limits import BodyLimit

log = logging.getLogger("copytrail.server")
RIGHTS = {
    "check": "run checks",
    "read": "read the ledger",
    "text": "read the text of copies",
    "admin": "manage the service",
}
MAX_TEXT_CHARS = 200_000  # per check request or stream piece
MAX_STREAM_CHARS = 2_000_000  # per stream: a generation longer than this is not a chat reply
# Below 8 words a "verbatim reproduction" is a common phrase, and the work to find every place
# holding a 1- or 2-word run grows with the index, not the text.
MIN_WORDS_FLOOR = 8
MAX_MIN_WORDS = 100_000
CHECK_SECONDS = 10.0  # time budget of one check request or one stream message
DISCONNECT_POLL = 0.05  # seconds between looks at whether an HTTP client is still there
LogSize = Annotated[int, Query(ge=1, le=1 << 62)]  # a tree size or event number


def _utf8(value: str | None) -> str | None:
    """Refuse strings that cannot be written as UTF-8 (lone surrogates from JSON escapes)."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError("text holds an unpaired surrogate (\\ud800-\\udfff)") from e
    return value


class CheckRequest(BaseModel):
    text: str = Field(max_length=MAX_TEXT_CHARS, description="The text to check (model output).")
    guard: str | None = Field(
        None, max_length=100, description="Guard index; the server's default if omitted."
    )
    min_words: int = Field(
        50, ge=MIN_WORDS_FLOOR, le=MAX_MIN_WORDS, description="Shortest run reported, in words."
    )
    evidence: bool = Field(
        True,
        description="List the copies, works and character offsets of each place; false gives "
        "only text SHA-256 and word offsets (fastest).",
    )

    include_boilerplate: bool = Field(
        False,
        description="Also list spans that lie in boilerplate (licences, notices, passages many "
        "indexed texts share), apart from `spans`; they never set `flagged`.",
    )

    _text_is_utf8 = field_validator("text", "guard")(_utf8)


class Holder(BaseModel):
    id: int
    dataset: str
    title: str | None = None
    path: str | None = None


class WorkRef(BaseModel):
    list: str
    id: str
    title: str | None = None


class Source(BaseModel):
    text_sha256: str
    word: int = Field(description="Word index of the run in the indexed text.")
    start: int | None = Field(None, description="Character offset of the run in the indexed text.")
    end: int | None = None
    copies: list[Holder] = []
    more_copies: bool = False
    works: list[WorkRef] = []


class Span(BaseModel):
    start: int = Field(description="Character offset in the checked text.")
    end: int
    words: int
    occurrences: int = Field(description="Times the run occurs in the index.")
    excerpt: str | None = None
    sources: list[Source]


class BoilerplateSpan(Span):
    boilerplate: bool = True
    which: list[str] = Field(description="The boilerplate passages the span holds.")


class CheckResponse(BaseModel):
    guard: str
    min_words: int
    flagged: bool = Field(description="True when a span of min_words or more was found.")
    final: bool
    words: int
    new_spans: int
    spans: list[Span]
    boilerplate: list[BoilerplateSpan] | None = None
    longest: list[Span] | None = None
    elapsed_ms: float


def _error_status(e: CopytrailError) -> int:
    if isinstance(e, NotFound):
        return 404
    if isinstance(e, Conflict):
        return 409
    if isinstance(e, InvalidInput | LimitExceeded):
        return 422
    if isinstance(e, Cancelled):
        return 499  # client closed the request (nginx's code); nobody reads it
    return 400


def api_key_of(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key a request carries: the X-API-Key header, else an `Authorization: Bearer`
    token. Keys are taken from headers only (HTTP and WebSocket alike), never from the URL,
    where they would end up in logs and browser history. An empty header counts as absent."""
    key = (x_api_key or "").strip()
    if not key and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    return key or None


def create_app_from_env() -> FastAPI:
    """For `serve --workers N`: each worker process opens the library itself."""
    import os

    from copytrail.library import Library

    lib = Library.open(os.environ["COPYTRAIL_LIBRARY"], db=os.environ.get("COPYTRAIL_DB"))
    return create_app(
        lib,
        default_guard=os.environ.get("COPYTRAIL_SERVE_GUARD") or None,
        max_body=int(os.environ.get("COPYTRAIL_SERVE_MAX_BODY", "1000000")),
    )


def create_app(
    lib: Any = None, default_guard: str | None = None, max_body: int = 1_000_000
) -> FastAPI:
    """The app over one open Library (None only to render the OpenAPI spec)."""
    app = FastAPI(
        title="copytrail",
        version=__version__,
        description="Chain of custody for LLM training data: verbatim check, excerpt search, "
        "ledger reads. Send an API key in `X-API-Key` (or `Authorization: Bearer KEY`). "
        "Streaming check: WebSocket `/v1/check/stream` (not describable in OpenAPI): send "
        '`{"guard": G, "min_words": N, "evidence": true, "include_boilerplate": false}`, then '
        '`{"text": PIECE}` messages, '
        'then `{"end": true}`; '
        "each message is answered with a CheckResponse. Roles: checker (check), auditor "
        "(check, read the ledger and search snippets), admin (everything, copy text too).",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, e: RequestValidationError) -> JSONResponse:
        # Never echo the input: it may be huge, hostile, or not representable as JSON (1e999).
        detail = [
            {"loc": [str(x) for x in err.get("loc", ())], "msg": str(err.get("msg", "invalid"))}
            for err in e.errors()[:20]
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(CopytrailError)
    async def _copytrail_error(_req: Request, e: CopytrailError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=_error_status(e))

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, e: Exception) -> JSONResponse:
        # The route and the frames, not the exception's message: it may quote the input.
        frames = "".join(traceback.format_tb(e.__traceback__))
        log.error("%s on %s %s\n%s", type(e).__name__, req.method, req.url.path[:200], frames)
        return JSONResponse({"detail": f"internal error: {type(e).__name__}"}, status_code=500)

    def caller(
        x_api_key: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        key = api_key_of(x_api_key, authorization)
        if not key:
            raise HTTPException(401, "an API key is required (header X-API-Key)")
        who = lib.authenticate(key)
        if who is None:
            raise HTTPException(401, "unknown or revoked API key")
        return who

    def needs(right: str) -> Any:
        # A default, not Annotated: the annotation would name a local, which FastAPI cannot
        # resolve under postponed annotations.
        def check_right(who: dict = Depends(caller)) -> dict[str, Any]:  # noqa: B008
            if right not in ROLES.get(who["role"], ()):
                raise HTTPException(403, f"role {who['role']!r} may not {RIGHTS[right]}")
            return who

        return Depends(check_right)

    def guard_name(requested: str | None) -> str:
        name = requested or default_guard
        if not name:
            raise HTTPException(422, "say which guard index to use (field 'guard')")
        return name

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness: answers without a key and reveals nothing about the library."""
        return {"status": "ok", "version": __version__}

    @app.post("/v1/check", response_model=CheckResponse, tags=["guard"])
    async def check(
        req: CheckRequest, request: Request, _who: dict = needs("check")
    ) -> dict[str, Any]:
        """Spans of the text that reproduce indexed text verbatim for min_words words or more.
        A check has a time and work budget (422 when it would pass it) and stops when the
        client disconnects."""
        cancel = threading.Event()
        budget = Budget(seconds=CHECK_SECONDS, cancel=cancel)
        work = asyncio.ensure_future(
            run_in_threadpool(
                lib.check,
                req.text,
                guard_name(req.guard),
                req.min_words,
                req.evidence,
                budget,
                req.include_boilerplate,
            )
        )
        while not work.done():
            await asyncio.wait({work}, timeout=DISCONNECT_POLL)
            if not work.done() and await request.is_disconnected():
                cancel.set()  # the worker thread stops at its next budget check
        return work.result()

    @app.websocket("/v1/check/stream")
    async def check_stream(ws: WebSocket) -> None:
        """Streaming check. Send {"guard": G, "min_words": N} first (both optional), then
        {"text": PIECE} messages and finally {"end": true}; each gets a CheckResponse."""
        key = api_key_of(ws.headers.get("x-api-key"), ws.headers.get("authorization"))
        who = await run_in_threadpool(lib.authenticate, key) if key else None
        if who is None or "check" not in ROLES.get(who["role"], ()):
            status = 401 if who is None else 403
            detail = "unknown or revoked API key" if key else "an API key is required"
            if who is not None:
                detail = f"role {who['role']!r} may not {RIGHTS['check']}"
            try:  # an HTTP answer to the handshake, as for every other route
                await ws.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
            except RuntimeError:  # a server without the denial-response extension
                await ws.close(code=4000 + status)
            return
        await ws.accept()
        try:
            await _stream(ws)
        except WebSocketDisconnect:
            return

    def _stream_settings(msg: dict[str, Any]) -> tuple[str, int, bool, bool]:
        """The first message's guard, min_words and evidence, checked as for POST /v1/check."""
        guard = msg.get("guard")
        if guard is not None and (not isinstance(guard, str) or len(guard) > 100):
            raise InvalidInput("'guard' must be a guard name (at most 100 characters)")
        min_words = msg.get("min_words", 50)
        if (
            not isinstance(min_words, int)
            or isinstance(min_words, bool)
            or not MIN_WORDS_FLOOR <= min_words <= MAX_MIN_WORDS
        ):
            raise InvalidInput(
                f"'min_words' must be a whole number from {MIN_WORDS_FLOOR} to {MAX_MIN_WORDS}"
            )
        return (
            guard_name(guard),
            min_words,
            bool(msg.get("evidence", True)),
            bool(msg.get("include_boilerplate", False)),
        )

    async def _stream(ws: WebSocket) -> None:
        session = None
        received = 0
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            raw = frame.get("text")
            if raw is None:
                await ws.send_json({"error": "send JSON text frames, not binary ones"})
                continue
            try:
                msg = orjson.loads(raw)
                if not isinstance(msg, dict):
                    raise ValueError("a message must be a JSON object")
            except ValueError as e:
                await ws.send_json({"error": f"malformed message: {e}"})
                continue
            try:
                if session is None:
                    guard, min_words, evidence, boilerplate = _stream_settings(msg)
                    budget = Budget(seconds=CHECK_SECONDS)
                    session = await run_in_threadpool(
                        lib.check_stream, guard, min_words, evidence, budget, boilerplate
                    )
                    if "text" not in msg and not msg.get("end"):
                        await ws.send_json({"ready": True, "guard": session.index.name})
                        continue
                piece = msg.get("text", "")
                if not isinstance(piece, str) or len(piece) > MAX_TEXT_CHARS:
                    await ws.send_json(
                        {"error": f"'text' must be a string of at most {MAX_TEXT_CHARS} characters"}
                    )
                    continue
                received += len(piece)
                if received > MAX_STREAM_CHARS:
                    await ws.send_json({"error": "stream too long", "limit": MAX_STREAM_CHARS})
                    await ws.close(code=1009)
                    return
                _utf8(piece)
                # Checks run off the event loop: one costly message must not stall the server.
                answer = await run_in_threadpool(session.feed, piece) if piece else None
                if msg.get("end"):
                    await ws.send_json(await run_in_threadpool(session.finish))
                    await ws.close()
                    return
                await ws.send_json(answer if answer is not None else {"error": "empty piece"})
            except HTTPException as e:
                await ws.send_json({"error": e.detail})
            except LimitExceeded as e:
                await ws.send_json({"error": str(e)})
                await ws.close(code=1008)  # the session's matching state is spent
                return
            except (CopytrailError, ValueError, TypeError) as e:
                await ws.send_json({"error": str(e)})

    @app.get("/v1/search", tags=["guard"])
    def search(
        q: Annotated[str, Query(min_length=1, max_length=10_000, description="Exact phrase.")],
        dataset: Annotated[list[str] | None, Query()] = None,
        guard: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        _who: dict = needs("read"),
    ) -> dict[str, Any]:
        """Every copy holding the exact phrase, with counts and snippets."""
        return lib.search(q, dataset, guard, limit)

    @app.get("/v1/guards", tags=["guard"])
    def guards(_who: dict = needs("read")) -> list[dict[str, Any]]:
        return lib.guards()

    @app.get("/v1/works/{work_id}", tags=["ledger"])
    def work(
        work_id: str,
        list_name: Annotated[str | None, Query(alias="list")] = None,
        _who: dict = needs("read"),
    ) -> dict[str, Any]:
        """A work of a works list, with the matches audits recorded for it."""
        return lib.work(work_id, list_name)

    @app.get("/v1/copies/{copy_ref}", tags=["ledger"])
    def copy(copy_ref: str, _who: dict = needs("read")) -> dict[str, Any]:
        """A copy's record and events (never its text)."""
        return lib.copy(copy_ref)

    @app.get("/v1/copies/{copy_ref}/text", tags=["ledger"])
    def copy_text(
        copy_ref: str,
        reason: Annotated[str, Query(min_length=1, max_length=2000)],
        who: dict = needs("text"),
    ) -> dict[str, Any]:
        """The full extracted text of a copy (admin only). `reason` is required: the disclosure
        is recorded in the ledger (who, which copy, when, why) before the text is sent."""
        return lib.copy_text(copy_ref, reason, who=f"api-key:{who['name']}", channel="api")

    @app.get("/v1/stats", tags=["ledger"])
    def stats(_who: dict = needs("read")) -> dict[str, Any]:
        return lib.stats()

    @app.get("/v1/keys", tags=["admin"])
    def keys(_who: dict = needs("admin")) -> list[dict[str, Any]]:
        return lib.keys()

    # ---- the log's public face: hashes and signatures only, so no key is needed ------------
    @app.get("/v1/log/checkpoint", tags=["log"], response_class=PlainTextResponse)
    def log_checkpoint() -> str:
        """The latest signed checkpoint (C2SP tlog-checkpoint), with witness cosignatures."""
        return lib.published_checkpoint()

    @app.get("/v1/log/consistency", tags=["log"])
    def log_consistency(old: LogSize, new: LogSize | None = None) -> dict[str, Any]:
        """RFC 9162 consistency proof from tree size `old` to `new` (default: the latest)."""
        return lib.consistency(old, new)

    @app.get("/v1/log/inclusion", tags=["log"])
    def log_inclusion(seq: LogSize, checkpoint: LogSize | None = None) -> dict[str, Any]:
        """RFC 9162 inclusion proof of event `seq` in a checkpointed tree."""
        return lib.prove(seq, checkpoint)

    @app.get("/v1/log/key", tags=["log"])
    def log_key() -> dict[str, Any]:
        """The log's verifier key and its history (creations, rotations, witnesses)."""
        ident = lib.signing_identity()
        ident.pop("key_file", None)
        ident.pop("key_file_present", None)
        return ident

    if lib is not None:
        from copytrail.console.routes import mount

        mount(app, lib, default_guard)
    app.add_middleware(BodyLimit, max_body=max_body)
    return app
