"""CLI for the guard: `guard index|ls`, `check`, `search`, `key add|ls|revoke|identity`,
`serve`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from copytrail.cli.options import JsonOpt
from copytrail.cli.render import emit_json, err, human_bytes, out, safe, table
from copytrail.errors import InvalidInput

CHECK_FLAGGED_EXIT = 3  # a span passed the threshold: lets `check` gate a pipeline
GuardOpt = Annotated[str, typer.Option("--guard", "-g", help="Guard index to check against.")]
MinWordsOpt = Annotated[
    int,
    typer.Option("--min-words", "-n", min=1, help="Shortest verbatim run reported, in words."),
]


def register(app: typer.Typer, open_lib: Callable[[], Any]) -> None:
    guard_app = typer.Typer(help="Indexes of protected text for `check`.", no_args_is_help=True)
    app.add_typer(guard_app, name="guard")
    key_app = typer.Typer(help="API keys for `copytrail serve`.", no_args_is_help=True)
    app.add_typer(key_app, name="key")
    boiler_app = typer.Typer(
        help="Boilerplate: passages that are never evidence (audit, build) and never flagged "
        "(guard).",
        no_args_is_help=True,
    )
    app.add_typer(boiler_app, name="boilerplate")

    @boiler_app.command("ls")
    def boilerplate_ls(json_out: JsonOpt = False) -> None:
        """The boilerplate set: passages copytrail ships and passages declared here."""
        with open_lib() as lib:
            rows = lib.boilerplate()
        if json_out:
            emit_json(rows)
            return
        table(
            "boilerplate",
            ["name", "origin", "words", "declared", "by"],
            [[b["name"], b["origin"], b["words"], b.get("created"), b.get("actor")] for b in rows],
        )

    @boiler_app.command("add")
    def boilerplate_add(
        file: Annotated[Path, typer.Argument(help="A text file holding the passage.")],
        name: Annotated[str | None, typer.Option(help="Its name (default: the file's).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Declare a passage boilerplate for this library (recorded as an event). Audits use it
        at once; refresh guard indexes (`copytrail guard index NAME`) to mark it there."""
        with open_lib() as lib:
            r = lib.add_boilerplate(file, name)
        if json_out:
            emit_json(r)
            return
        out.print(
            f"boilerplate [bold]{safe(r['name'])}[/]: {r['words']} words, event {r['event_seq']}; "
            "refresh guard indexes to mark it"
        )

    @guard_app.command("index")
    def guard_index(
        name: str,
        works_list: Annotated[
            list[str] | None,
            typer.Option("--list", help="Index the reference texts of a works list."),
        ] = None,
        dataset: Annotated[
            list[str] | None,
            typer.Option("--dataset", "-d", help="Index the copies of a dataset (repeatable)."),
        ] = None,
        all_datasets: Annotated[
            bool, typer.Option("--all", help="Index every dataset, now and after each refresh.")
        ] = False,
        rebuild: Annotated[
            bool, typer.Option("--rebuild", help="Build from scratch instead of refreshing.")
        ] = False,
        boilerplate_texts: Annotated[
            int | None,
            typer.Option(
                "--boilerplate-texts",
                min=1,
                help="A passage in more indexed texts than this is boilerplate, never flagged "
                "(default 20; kept by later refreshes).",
            ),
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Build or refresh a guard index. Run again with just NAME after an ingest or deletion:
        new texts are added, deleted ones removed. Boilerplate (the shared set, see `copytrail
        boilerplate ls`, and passages many indexed texts hold) is marked, never flagged."""
        from copytrail.cli.progress import RichPhaseProgress

        with open_lib() as lib, RichPhaseProgress("", in_bytes=True) as progress:
            r = lib.guard_index(
                name, works_list, dataset, all_datasets, rebuild, progress, boilerplate_texts
            )
        if json_out:
            emit_json(r)
            return
        out.print(
            f"guard [bold]{safe(r['name'])}[/]: {r['texts']} texts, {r['tokens']:,} words in "
            f"{r['segments']} segment(s), {human_bytes(r['bytes'])} "
            f"({r['bytes_per_token']} bytes/word); +{r['added']} -{r['removed']} texts "
            f"in {r['seconds']:.1f} s, event {r['event_seq']}"
        )
        if r["reused_segments"]:
            out.print(f"  took up {r['reused_segments']} segment(s) an interrupted run finished")

    @guard_app.command("ls")
    def guard_ls(json_out: JsonOpt = False) -> None:
        """Guard indexes of this library."""
        with open_lib() as lib:
            rows = lib.guards()
        if json_out:
            emit_json(rows)
            return
        table(
            "guard indexes",
            ["name", "scope", "texts", "words", "bytes", "bytes/word", "updated"],
            [
                [
                    g["name"],
                    _scope_label(g["scope"]),
                    g["texts"],
                    f"{g['tokens']:,}",
                    human_bytes(g["bytes"]),
                    g["bytes_per_token"],
                    g["updated"],
                ]
                for g in rows
            ],
        )

    @app.command()
    def check(
        file: Annotated[str, typer.Argument(help="Text file to check, or - for standard input.")],
        guard: GuardOpt,
        min_words: MinWordsOpt = 50,
        stream: Annotated[
            bool,
            typer.Option(
                "--stream",
                help="Read the input as it arrives and answer per line; stop at the first span.",
            ),
        ] = False,
        evidence: Annotated[
            bool,
            typer.Option(
                "--evidence/--no-evidence",
                help="Name the copies and works and give character offsets in them.",
            ),
        ] = True,
        include_boilerplate: Annotated[
            bool,
            typer.Option(
                "--include-boilerplate",
                help="Also list spans lying in boilerplate (licences, notices); never flagged.",
            ),
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Find every span of the input that reproduces indexed text verbatim (normalised for
        case, whitespace and punctuation). Exit 0 when clean, 3 when a span passes --min-words.
        Boilerplate is never flagged; a span bordering it is trimmed to the protected part."""
        with open_lib() as lib:
            if stream:
                r = _check_stream(
                    lib, file, guard, min_words, evidence, json_out, include_boilerplate
                )
            else:
                r = lib.check(
                    _read_input(file),
                    guard,
                    min_words,
                    evidence,
                    include_boilerplate=include_boilerplate,
                )
                _print_check(r, json_out)
        raise typer.Exit(CHECK_FLAGGED_EXIT if r["flagged"] else 0)

    @app.command()
    def search(
        phrase: Annotated[str, typer.Argument(help="The exact words to look for.")],
        dataset: Annotated[
            list[str] | None,
            typer.Option("--dataset", "-d", help="Only copies in this dataset (repeatable)."),
        ] = None,
        guard: Annotated[
            list[str] | None,
            typer.Option("--guard", "-g", help="Search only this guard index (repeatable)."),
        ] = None,
        limit: Annotated[int, typer.Option(min=1, help="Texts listed at most.")] = 100,
        json_out: JsonOpt = False,
    ) -> None:
        """Every copy holding the exact phrase, with counts and snippets."""
        with open_lib() as lib:
            r = lib.search(phrase, dataset, guard, limit)
        if json_out:
            emit_json(r)
            return
        out.print(
            f"[bold]{r['occurrences']}[/] occurrences of a {r['words']}-word phrase in "
            f"{r['texts']} texts ({len(r['results'])} listed, {r['copies']} copies), "
            f"{r['elapsed_ms']:.1f} ms"
        )
        for res in r["results"]:
            holders = ", ".join(f"#{c['id']} {c['dataset']}" for c in res["copies"]) or "-"
            works = ", ".join(f"{w['list']}:{w['id']}" for w in res["works"])
            out.print(
                f"\n[bold]{res['occurrences']}×[/] text {res['text_sha256'][:12]} "
                f"copies {safe(holders)}" + (f" works {safe(works)}" if works else "")
            )
            for s in res["snippets"]:
                out.print(
                    f"  …{safe(_flat(s['before']))}[reverse]{safe(_flat(s['match']))}[/]"
                    f"{safe(_flat(s['after']))}…",
                    markup=True,
                )

    @key_app.command("identity")
    def key_identity(
        create: Annotated[
            bool, typer.Option("--create", help="Give the log an Ed25519 signing key.")
        ] = False,
        rotate: Annotated[
            bool, typer.Option("--rotate", help="Replace the key (the old one endorses it).")
        ] = False,
        origin: Annotated[
            str | None,
            typer.Option(
                "--origin", help="The log's name in its checkpoints, e.g. example.com/books."
            ),
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """The log's signing identity: the verifier key others pin to check its checkpoints.
        The private key stays in a file outside the ledger ($COPYTRAIL_SIGNING_KEY)."""
        with open_lib() as lib:
            ident = lib.signing_identity(create, rotate, origin)
        if json_out:
            emit_json(ident)
            return
        out.print(f"origin     {safe(ident['origin'])}")
        out.print(f"vkey       {safe(ident['vkey'])}")
        present = "" if ident["key_file_present"] else "  [red](missing)[/]"
        out.print(f"key file   {safe(ident['key_file'])}{present}")
        for h in ident["history"]:
            what = h.get("witness_vkey") or h.get("vkey")
            out.print(f"  event {h['event_seq']} {safe(h['action'])} {safe(what)}")

    @key_app.command("add")
    def key_add(
        name: str,
        role: Annotated[str, typer.Option("--role", help="checker, auditor or admin.")],
        json_out: JsonOpt = False,
    ) -> None:
        """Make an API key. It is printed once; only its hash is kept."""
        with open_lib() as lib:
            k = lib.add_key(name, role)
        if json_out:
            emit_json(k)
            return
        out.print(f"key [bold]{safe(k['name'])}[/] ({safe(k['role'])}): {safe(k['key'])}")
        err.print("store it now: it cannot be shown again")

    @key_app.command("ls")
    def key_ls(json_out: JsonOpt = False) -> None:
        """API keys (names, roles, prefixes; never the keys)."""
        with open_lib() as lib:
            rows = lib.keys()
        if json_out:
            emit_json(rows)
            return
        table(
            "API keys",
            ["name", "role", "prefix", "created", "revoked"],
            [[k["name"], k["role"], k["prefix"], k["created"], k["revoked"]] for k in rows],
        )

    @key_app.command("revoke")
    def key_revoke(name: str, json_out: JsonOpt = False) -> None:
        """Revoke an API key; requests with it get 401 from then on."""
        with open_lib() as lib:
            k = lib.revoke_key(name)
        if json_out:
            emit_json(k)
        else:
            out.print(f"key [bold]{safe(k['name'])}[/] revoked at {safe(k['revoked'])}")

    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
        guard: Annotated[
            str | None, typer.Option("--guard", "-g", help="Default guard index for checks.")
        ] = None,
        max_body: Annotated[
            int, typer.Option("--max-body", help="Largest request body accepted, in bytes.")
        ] = 1_000_000,
        workers: Annotated[
            int,
            typer.Option(
                min=1, help="Server processes; they share the memory-mapped index (page cache)."
            ),
        ] = 1,
        openapi: Annotated[
            bool, typer.Option("--openapi", help="Print the OpenAPI spec as JSON and exit.")
        ] = False,
    ) -> None:
        """Serve the HTTP API (FastAPI + uvicorn). Every request needs an API key."""
        from copytrail.server.app import create_app

        if openapi:
            emit_json(create_app().openapi())
            return
        import uvicorn

        lib = open_lib()
        if guard:
            read = lib.guard(guard).warm()  # fail early on a missing index; fill the page cache
            err.print(f"guard {safe(guard)}: {human_bytes(read)} of index read into the page cache")
        if not lib.keys():
            err.print(
                "[yellow]no API keys yet[/]: every request will get 401; make one with "
                "`copytrail key add NAME --role checker`"
            )
        if workers > 1:
            import os

            os.environ.update(
                COPYTRAIL_LIBRARY=str(lib.path),
                COPYTRAIL_SERVE_GUARD=guard or "",
                COPYTRAIL_SERVE_MAX_BODY=str(max_body),
            )
            if lib.db_url:
                os.environ["COPYTRAIL_DB"] = lib.db_url
            lib.close()
            uvicorn.run(
                "copytrail.server.app:create_app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
            )
            return
        uvicorn.run(
            create_app(lib, default_guard=guard, max_body=max_body),
            host=host,
            port=port,
            log_level="warning",
        )


def _scope_label(scope: dict[str, Any]) -> str:
    parts = [f"list {x}" for x in scope.get("lists", [])]
    parts += ["all datasets"] if scope.get("all") else [f"{d}" for d in scope.get("datasets", [])]
    return ", ".join(parts)


def _flat(s: str) -> str:
    import re

    from rich.markup import escape

    return escape(re.sub(r"\s+", " ", s))


def _read_input(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise InvalidInput(
            f"cannot read {file}: {e.strerror}; give a text file or - for stdin"
        ) from e


def _check_stream(
    lib: Any,
    file: str,
    guard: str,
    min_words: int,
    evidence: bool,
    json_out: bool,
    include_boilerplate: bool = False,
) -> dict:
    """Feed the input line by line as it arrives; print an answer when a span appears."""
    session = lib.check_stream(guard, min_words, evidence, include_boilerplate=include_boilerplate)
    src = sys.stdin if file == "-" else open(file, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        for line in src:
            r = session.feed(line)
            if r["flagged"]:
                break
        else:
            r = session.finish()
    finally:
        if src is not sys.stdin:
            src.close()
    _print_check(r, json_out)
    return r


def _print_check(r: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(r)
        return

    def src_label(s: dict[str, Any]) -> str:
        works = ", ".join(f"{w['list']}:{w['id']}" for w in s.get("works", []))
        copies = ", ".join(f"#{c['id']}" for c in s.get("copies", [])[:3])
        where = f"{s['start']}:{s['end']}" if "start" in s else f"word {s['word']}"
        return f"{works or copies or s['text_sha256'][:12]} [{where}]"

    def rows(spans: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [
                sp["words"],
                f"{sp['start']}:{sp['end']}",
                sp["occurrences"],
                "; ".join(src_label(s) for s in sp["sources"]),
                sp.get("excerpt", ""),
            ]
            for sp in spans
        ]

    cols = ["words", "input chars", "found", "where: work or copy, chars", "excerpt"]
    if r.get("boilerplate"):
        table(
            f"{len(r['boilerplate'])} span(s) in boilerplate (not flagged)",
            ["which", *cols],
            [
                ["; ".join(b["which"]), *row]
                for b, row in zip(r["boilerplate"], rows(r["boilerplate"]), strict=True)
            ],
        )
    if r["flagged"]:
        table(
            f"{len(r['spans'])} verbatim span(s) of {r['min_words']}+ words", cols, rows(r["spans"])
        )
        out.print(f"[red]flagged[/] ({r['elapsed_ms']:.1f} ms)")
    else:
        if r.get("longest"):
            table("longest shorter runs", cols, rows(r["longest"]))
        out.print(f"[green]clean[/]: no run of {r['min_words']}+ words ({r['elapsed_ms']:.1f} ms)")
