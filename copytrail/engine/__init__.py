"""How work is spread. Steps hand the engine a function and tasks; they never manage processes."""

from __future__ import annotations

from typing import Any

ENGINE_HELP = (
    "Where heavy work runs: local (processes on this machine, the default), ray (a local Ray "
    "cluster), auto (the Ray cluster this machine is part of) or ray://HOST:PORT."
)


def make_executor(spec: str | None, workers: int | None = None) -> Any:
    """The executor a `--engine` value names, or None for the library's default (the local
    engine, small work inline). `workers` given: that many, used whatever the input size."""
    from copytrail.errors import InvalidInput

    inline = {"inline_bytes": 0} if workers else {}
    if spec in (None, "", "local"):
        from copytrail.engine.local import LocalEngine

        return LocalEngine(workers, **inline) if workers else None
    if spec == "ray" or spec == "auto" or spec.startswith("ray://"):
        from copytrail.engine.ray import RayEngine

        return RayEngine(None if spec == "ray" else spec, workers, **inline)
    raise InvalidInput(f"unknown engine {spec!r}: choose local, ray, auto or ray://HOST:PORT")
