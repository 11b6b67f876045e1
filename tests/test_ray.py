"""The Ray executor: the same answers as the local engine, byte for byte, and tasks that survive
a killed Ray worker. One local Ray cluster serves the whole module (it takes seconds to start)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from copytrail import Library
from copytrail.engine.local import LocalEngine

from .conftest import EXAMPLES, REPO, run_cli
from .test_build import _make_samples

ray = pytest.importorskip("ray", reason="the Ray tests need ray (pip install -e '.[ray]')")
psutil = pytest.importorskip("psutil")


@pytest.fixture(scope="module")
def ray_engine():
    from copytrail.engine.ray import RayEngine

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    engine = RayEngine(workers=2, inline_bytes=0)  # every step through Ray, whatever its size
    yield engine
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-inputs")
    _make_samples(root)
    return root


# Fields that say when or by which run, not what, left out of the comparison: times; the
# ledger's tree head and proofs (event hashes commit to event times); and event numbers (ingest
# also commits a batch when FLUSH_SECONDS pass, so how many batch events precede one depends on
# timing; the copies and their ids do not).
TIMES = {
    "seq",
    "time",
    "created",
    "issued",
    "started",
    "finished",
    "seconds",
    "run_id",
    "elapsed_ms",
    "tree_head",
    "inclusion_proof",
}


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _run_everything(lib: Library, root: Path, inputs: Path, tokenizer: Path) -> dict[str, Any]:
    """Ingest, audit, build, guard, delete: every step that hands work to the executor. Returns
    what each wrote, as bytes or as time-free JSON."""
    lib.add_source("gutenberg", kind="public-domain", license="Public domain in the USA")
    lib.add_source("books3", kind="shadow-library", license="none")
    lib.add_source("press", kind="licensed", license="Agreement 17")
    lib.ingest([str(EXAMPLES)], source="gutenberg", dataset="pg@1")
    lib.ingest([str(inputs / "books3-sample.jsonl.gz")], source="books3", dataset="b3@1")
    lib.ingest([str(inputs / "publisher")], source="press", dataset="press@1")
    out: dict[str, Any] = {
        "copies": [
            (c["id"], c["sha256"], c["path"], c["status"], c["text_sha256"]) for c in lib.copies()
        ]
    }
    lib.import_works(REPO / "examples" / "works.csv", "optouts")
    lib.audit("optouts", root / "audit", min_words=50)
    for name in ("works.csv", "matches.jsonl"):
        out[f"audit/{name}"] = (root / "audit" / name).read_bytes()
    policy = root / "policy.toml"
    policy.write_text(
        f'datasets = ["pg@1", "b3@1", "press@1"]\ntokenizer = "{tokenizer}"\n'
        'shard_tokens = 60000\nexclude_kinds = ["shadow-library"]\n'
        '[[exclude_works]]\nlist = "optouts"\nmethods = ["exact"]\n'
    )
    built = lib.build("c1", policy)
    corpus = Path(built["path"])
    for f in sorted(corpus.iterdir()):
        if f.suffix in (".bin", ".idx", ".parquet"):
            out[f"corpus/{f.name}"] = f.read_bytes()
    lib.guard_index("g", datasets=["pg@1", "press@1"])
    out["guard segments"] = len(lib.guard("g").segments)
    quote = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8")[20000:23000]
    out["guard"] = _timeless(lib.check(f"The model wrote: {quote} and then more.", "g"))
    deleted = lib.delete("takedown", dataset="b3@1")
    out["certificate"] = _timeless(json.loads(Path(deleted["certificate_path"]).read_text()))
    report = lib.verify()
    assert report.ok, report.problems
    # The number of events depends on timing too (see TIMES: on a loaded machine ingest cut
    # one more batch); the copies they hold are compared above.
    out["verify"] = {k: v for k, v in report.counts.items() if k != "events"}
    return out


def test_local_and_ray_give_identical_results(
    tmp_path: Path, ray_engine, inputs: Path, monkeypatch
):
    from copytrail.guard import index as guard_index_module

    # small segments, so the guard's segments are built by the engine's workers too
    monkeypatch.setattr(guard_index_module, "SEGMENT_TEXT_BYTES", 400_000)
    runs = {}
    tokenizer = tmp_path / "tok.json"
    for name, engine in (("local", LocalEngine(2, inline_bytes=0)), ("ray", ray_engine)):
        lib = Library.init(tmp_path / name / "lib", executor=engine)
        if not tokenizer.exists():  # one tokenizer for both (trained on a scratch library)
            scratch = Library.init(tmp_path / "scratch")
            scratch.add_source("pg", kind="public-domain")
            scratch.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
            scratch.train_tokenizer(["pg@1"], 1200, tokenizer)
            scratch.close()
        runs[name] = _run_everything(lib, tmp_path / name, inputs, tokenizer)
        lib.close()
    local, on_ray = runs["local"], runs["ray"]
    assert local.keys() == on_ray.keys()
    assert any(k.endswith(".bin") for k in local) and local["audit/matches.jsonl"]
    assert local["guard"]["spans"], "the quote must be found for the comparison to mean much"
    assert local["guard segments"] > 1
    for key in local:
        assert local[key] == on_ray[key], f"{key} differs between the local and the Ray engine"


def _kill_a_busy_worker(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker seen running one of our tasks (its title is ray::_run)."""
    while not stop.is_set() and not killed:
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = p.info["cmdline"] or []
            if cmd and cmd[0].startswith("ray::_run"):
                try:
                    os.kill(p.info["pid"], signal.SIGKILL)
                    killed.append(p.info["pid"])
                except ProcessLookupError:
                    continue
                return
        time.sleep(0.005)


def _with_a_worker_killed(step) -> tuple[Any, list[int]]:
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_busy_worker, args=(stop, killed))
    killer.start()
    try:
        return step(), killed
    finally:
        stop.set()
        killer.join()


def test_a_killed_ray_worker_mid_ingest_and_mid_build_loses_nothing(
    tmp_path: Path, ray_engine, inputs: Path
):
    many = tmp_path / "many"
    words = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8").split()
    for i in range(400):
        (many / f"{i // 100}").mkdir(parents=True, exist_ok=True)
        (many / f"{i // 100}" / f"{i}.txt").write_text(
            f"document {i}: " + " ".join(words[i * 40 : i * 40 + 2000])
        )
    lib = Library.init(tmp_path / "lib", executor=ray_engine)
    lib.add_source("web", kind="web-crawl")
    summary, killed = _with_a_worker_killed(
        lambda: lib.ingest([str(many)], source="web", dataset="w@1")
    )
    assert killed, "no Ray worker was seen running a task"
    assert summary.copies_added == 400 and summary.unreadable == 0
    shas = [c["sha256"] for c in lib.copies()]
    assert len(shas) == len(set(shas)) == 400
    assert lib.verify().ok
    again = lib.ingest([str(many)], source="web", dataset="w@1")  # a rerun adds nothing
    assert again.copies_added == 0 and again.copies_existing == 400

    tokenizer = tmp_path / "tok.json"
    lib.train_tokenizer(["w@1"], 800, tokenizer)
    policy = tmp_path / "p.toml"
    policy.write_text(f'datasets = ["w@1"]\ntokenizer = "{tokenizer}"\nshard_tokens = 50000\n')
    built, killed = _with_a_worker_killed(lambda: lib.build("after-kill", policy))
    assert killed
    calm = lib.with_executor(LocalEngine(1)).build("calm", policy)
    for a in sorted(Path(calm["path"]).glob("shard-*")):
        assert (Path(built["path"]) / a.name).read_bytes() == a.read_bytes(), a.name
    report = lib.verify()
    assert report.ok, report.problems
    lib.close()


def test_cli_runs_on_ray(tmp_path: Path):
    lib = tmp_path / "lib"
    run_cli("init", library=lib)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib)
    env = {"COPYTRAIL_ENGINE": "ray", "RAY_AUTH_MODE": "disabled"}
    p = run_cli(
        "ingest",
        str(EXAMPLES),
        "--source",
        "pg",
        "--dataset",
        "d@1",
        "--workers",
        "2",
        "--json",
        library=lib,
        env=env,
        timeout=300,
    )
    assert json.loads(p.stdout)["copies_added"] > 5
    v = run_cli("verify", "--workers", "2", "--json", library=lib, env=env, timeout=300)
    assert json.loads(v.stdout)["ok"]
    bad = run_cli("--engine", "spark", "stats", library=lib, check=False)
    assert bad.returncode == 2 and "choose local, ray, auto" in bad.stdout + bad.stderr


def _refuse_odd(_context: Any, n: int) -> int:
    if n % 2:
        from copytrail.errors import InvalidInput

        raise InvalidInput(f"task {n} refuses odd numbers")
    return n


def test_a_failing_task_raises_the_steps_own_error_and_ordered_maps_keep_order(ray_engine):
    from copytrail.errors import InvalidInput

    with pytest.raises(InvalidInput, match="task 3 refuses"):
        list(ray_engine.map(_refuse_odd, [0, 2, 4, 3, 6], None))
    evens = list(range(0, 200, 2))
    assert list(ray_engine.map(_refuse_odd, evens, None, ordered=True)) == evens
    assert sorted(ray_engine.map(_refuse_odd, evens, None)) == evens
