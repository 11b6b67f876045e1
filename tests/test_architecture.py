"""The shape holds: each folder imports only the layers below it (docs/architecture.md), no
subsystem reaches back into the Library facade or the shells, and only the engine knows how
work is spread."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "copytrail"

# What each part may import besides itself (top-level names under copytrail/). The facade
# (library), the shells (cli, server.app) and the package root are never in these sets.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "atomic": set(),  # atomic file writes and lock files, for the layers that publish files
    "canonical": set(),
    "progress": set(),
    "joins": {"errors"},  # a DuckDB connection bounded in memory, for out-of-core joins
    "samples": set(),  # sample data for the demo and tests
    "store": {"errors"},
    "engine": {"errors"},  # errors a user can act on (Ray missing, a task lost)
    "ledger": {"atomic", "canonical", "errors"},
    "catalog": {"canonical", "errors", "ledger", "store"},
    "context": {"engine", "store"},
    "checker": {"catalog", "engine", "joins", "ledger", "store"},
    "fingerprint": {
        "atomic",
        "canonical",
        "catalog",
        "context",
        "engine",
        "errors",
        "joins",
        "ledger",
        "store",
    },
    "ingest": {"canonical", "catalog", "context", "errors", "ledger", "progress", "store"},
    "guard": {"atomic", "catalog", "context", "errors", "fingerprint", "ledger", "store"},
    "audit": {
        "canonical",
        "catalog",
        "context",
        "errors",
        "fingerprint",
        "ingest",
        "ledger",
        "store",
    },
    "build": {
        "audit",
        "canonical",
        "catalog",
        "context",
        "errors",
        "fingerprint",
        "joins",
        "ledger",
    },
    "retention": {"audit", "build", "catalog", "context", "errors", "guard", "ledger"},
    "acquisition": {
        "audit",
        "build",
        "canonical",
        "catalog",
        "context",
        "errors",
        "ingest",
        "ledger",
        "store",
    },
    "witness": {"atomic", "errors", "ledger"},
    "models": {"audit", "build", "catalog", "context", "errors", "fingerprint", "guard", "ledger"},
    "production": {"audit", "catalog", "context", "errors", "ledger"},
    "console": {"errors", "server"},  # a shell beside server.app: pages over Library calls
    "interop": {"atomic", "catalog", "context", "errors", "ledger", "store"},
    "evidence": {"atomic", "audit", "catalog", "context", "errors", "ledger"},
    "verify_bundle": {"ledger"},  # only merkle.py and note.py: it is built into one file
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every copytrail module the file imports; `from copytrail import X`
    counts as importing copytrail.X."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "copytrail":
                out += [(node.lineno, f"copytrail.{a.name}") for a in node.names]
            elif node.module.startswith("copytrail."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("copytrail")]
    return out


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _modules(part: str) -> list[Path]:
    folder = PACKAGE / part
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{part}.py"]


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_the_layers_below_it(part: str):
    assert _modules(part) and _modules(part)[0].exists(), f"{part} is not under copytrail/"
    wrong = []
    for path in _modules(part):
        for line, module in _imports(path):
            target = module.split(".")[1] if "." in module else module
            if target != part and target not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not wrong, "layering broken (see docs/architecture.md):\n" + "\n".join(wrong)


def test_no_subsystem_imports_the_library_facade():
    """The rule above, stated on its own: the facade is for the shells and for users."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for part in ALLOWED
        for path in _modules(part)
        for line, module in _imports(path)
        if module in ("copytrail.library", "copytrail.Library", "copytrail.cli")
        or module.startswith("copytrail.cli.")
    ]
    assert not offenders, f"subsystems importing Library or the CLI: {offenders}"


def test_every_part_of_the_package_has_a_layer():
    """A new folder must say where it sits, or the rules above would not see it."""
    shells = {"library", "cli", "server", "__init__"}
    parts = {_part(p) for p in PACKAGE.rglob("*.py")} - shells
    missing = parts - set(ALLOWED)
    assert not missing, f"add these to ALLOWED and docs/architecture.md: {missing}"


def test_only_the_engine_spreads_work():
    """Steps hand work to an executor; they never start processes, pools or clusters."""
    spreading = ("multiprocessing", "concurrent.futures.process", "ray")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if _part(path) == "engine":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n.startswith(spreading) or n == "concurrent.futures.ProcessPoolExecutor":
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {n}")
    assert not offenders, f"work spread outside copytrail/engine: {offenders}"


def test_the_facade_only_delegates():
    """Library methods are short delegations: logic belongs in the subsystem that owns it."""
    tree = ast.parse((PACKAGE / "library.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Library")
    long = []
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name in ("__init__", "init", "open"):
            continue
        body = [
            s
            for s in fn.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))  # docstring
        ]
        if len(body) > 2:
            long.append(f"Library.{fn.name} has {len(body)} statements")
    assert not long, "move the logic into its subsystem:\n" + "\n".join(long)
