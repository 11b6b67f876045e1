"""Interop, checked with each format's own library: Croissant with mlcroissant (validated, and
its records loaded back), OpenLineage events parsed into the client's models (file transport and
a loopback HTTP receiver), Hugging Face datasets in (save_to_disk folders, Hub-style Parquet)
and out (a corpus with its copy ids next to the text)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from copytrail import Library

from .conftest import EXAMPLES, REPO, run_cli

datasets = pytest.importorskip("datasets", reason="pip install -e '.[interop]'")
mlc = pytest.importorskip("mlcroissant", reason="pip install -e '.[interop]'")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("interop")
    lib = Library.init(root / "lib")
    lib.add_source("pg", kind="public-domain", license="Public domain in the USA",
                   acquired="2024-01-15", url="https://www.gutenberg.org")  # fmt: skip
    lib.add_source("press", kind="licensed", license="Agreement 17", provided_by="Example Press")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    lib.declare_purpose("dataset", "pg@1", "model-training", text="pretraining")
    lib.import_works(REPO / "examples" / "works.csv", "optouts")
    lib.train_tokenizer(["pg@1"], 600, root / "lib" / "tok.json")
    policy = root / "lib" / "policy.toml"
    policy.write_text(
        'datasets = ["pg@1"]\ntokenizer = "tok.json"\nshard_tokens = 60000\n'
        '[[exclude_works]]\nlist = "optouts"\n'
    )
    lib.build("c1", policy)
    yield lib, root
    lib.close()


def test_croissant_for_a_corpus_validates_and_loads(built, tmp_path):
    lib, _ = built
    out = tmp_path / "c1.json"
    r = lib.export_croissant(out, corpus="c1")
    ds = mlc.Dataset(jsonld=out)  # raises on any validation error
    assert not ds.metadata.ctx.issues.errors and not ds.metadata.ctx.issues.warnings
    doc = json.loads(out.read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert r["record_sets"] == ["lineage", "fates"]
    corpus_dir = Path(lib.corpus("c1")["path"]) if "path" in lib.corpus("c1") else None
    for f in doc["distribution"]:
        path = (out.parent / f["contentUrl"]).resolve()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"], f["name"]
        if corpus_dir:
            assert path.parent == corpus_dir.resolve()
    lineage = list(ds.records(record_set="lineage"))
    table = pq.read_table(out.parent / next(
        f["contentUrl"] for f in doc["distribution"] if f["name"] == "lineage.parquet"
    ))  # fmt: skip
    assert [r["lineage/copy_id"] for r in lineage] == table.column("copy_id").to_pylist()
    fates = list(ds.records(record_set="fates"))
    assert {f["fates/fate"] for f in fates} <= {b"included", b"excluded"}
    # Responsible-AI fields and provenance from the ledger
    assert "pg@1 from source pg (public-domain" in doc["rai:dataCollection"]
    assert doc["rai:dataCollectionType"] == ["Web Scraping"]
    assert doc["rai:dataCollectionTimeframe"][0].startswith("2024-01-15")
    assert doc["rai:dataUseCases"] == "model-training"
    assert "works-list:optouts" in doc["rai:dataLimitations"]
    assert doc["prov:wasDerivedFrom"][0]["name"] == "pg@1"
    assert "ledger event" in doc["prov:wasGeneratedBy"]["identifier"]


def test_croissant_for_a_dataset_lists_its_copies(built, tmp_path):
    lib, _ = built
    out = tmp_path / "pg.json"
    run_cli("export", "croissant", "--dataset", "pg@1", "--out", str(out), library=lib.path)
    ds = mlc.Dataset(jsonld=out)
    assert not ds.metadata.ctx.issues.warnings
    rows = list(ds.records(record_set="copies"))
    assert sorted(r["copies/id"] for r in rows) == sorted(c["id"] for c in lib.copies("pg@1"))
    assert all(len(r["copies/sha256"]) == 64 for r in rows)
    with pytest.raises(Exception, match="one"):
        lib.export_croissant(tmp_path / "x.json")


# ---- OpenLineage ------------------------------------------------------------------------------
def _parse(d: dict):
    """Rebuild an event with the openlineage-python client's models (their validators run),
    and check it serialises back to what was sent."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        datasource_dataset,
        lifecycle_state_change_dataset,
        schema_dataset,
    )
    from openlineage.client.serde import Serde

    def facets(f: dict) -> dict:
        out = {}
        if "schema" in f:
            out["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[schema_dataset.SchemaDatasetFacetFields(name=x["name"], type=x["type"])
                        for x in f["schema"]["fields"]]
            )  # fmt: skip
        if "dataSource" in f:
            out["dataSource"] = datasource_dataset.DatasourceDatasetFacet(
                name=f["dataSource"]["name"], uri=f["dataSource"]["uri"]
            )
        if "lifecycleStateChange" in f:
            lc = lifecycle_state_change_dataset
            out["lifecycleStateChange"] = lc.LifecycleStateChangeDatasetFacet(
                lifecycleStateChange=lc.LifecycleStateChange(
                    f["lifecycleStateChange"]["lifecycleStateChange"]
                )
            )
        return out

    ev = RunEvent(
        eventType=RunState(d["eventType"]),
        eventTime=d["eventTime"],
        run=Run(runId=d["run"]["runId"]),
        job=Job(namespace=d["job"]["namespace"], name=d["job"]["name"]),
        inputs=[InputDataset(namespace=i["namespace"], name=i["name"], facets=facets(i["facets"]))
                for i in d.get("inputs", [])],
        outputs=[OutputDataset(namespace=o["namespace"], name=o["name"], facets=facets(o["facets"]))
                 for o in d.get("outputs", [])],
        producer=d["producer"],
    )  # fmt: skip
    back = Serde.to_dict(ev)
    assert back["run"]["runId"] == d["run"]["runId"]
    for side in ("inputs", "outputs"):
        for mine, theirs in zip(back.get(side, []), d.get(side, []), strict=True):
            for k, v in mine["facets"].items():
                assert {x: y for x, y in v.items() if not x.startswith("_")} == {
                    x: y for x, y in theirs["facets"][k].items() if not x.startswith("_")
                }
    return ev


def test_openlineage_events_through_the_file_transport(tmp_path, monkeypatch):
    log = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(log))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain", url="https://www.gutenberg.org")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    lib.import_works(REPO / "examples" / "works.csv", "class")
    lib.audit("class", tmp_path / "audit")
    lib.train_tokenizer(["pg@1"], 600, tmp_path / "lib" / "tok.json")
    (tmp_path / "lib" / "p.toml").write_text(
        'datasets = ["pg@1"]\ntokenizer = "tok.json"\nshard_tokens = 60000\n'
    )
    lib.build("c1", tmp_path / "lib" / "p.toml")
    lib.record_run("model-a", "c1")
    with pytest.raises(Exception):  # noqa: B017 - a failing run emits FAIL
        lib.build("c1", tmp_path / "lib" / "p.toml")
    lib.delete("takedown", dataset="pg@1")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    by_job: dict[str, list[str]] = {}
    for e in events:
        _parse(e)
        by_job.setdefault(e["job"]["name"], []).append(e["eventType"])
    assert by_job["ingest.pg@1"] == ["START", "COMPLETE"]
    assert by_job["audit.class"] == ["START", "COMPLETE"]
    assert by_job["build.c1"] == ["START", "COMPLETE", "START", "FAIL"]
    assert by_job["run-record.c1"] == ["START", "COMPLETE"]
    assert by_job["delete.pg@1"] == ["START", "COMPLETE"]
    done = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    ingest = done["ingest.pg@1"]
    assert ingest["outputs"][0]["name"] == "dataset/pg@1"
    assert ingest["inputs"][0]["facets"]["dataSource"]["uri"] == "https://www.gutenberg.org"
    facet = ingest["run"]["facets"]["copytrail"]
    proof = lib.prove(facet["eventSeq"]) if lib.checkpoint() else None
    assert proof["event_hash"] == facet["eventHash"]
    build = done["build.c1"]
    assert build["inputs"][0]["name"] == "dataset/pg@1"
    assert build["outputs"][0]["facets"]["schema"]["fields"][0]["name"] == "copy_id"
    drop = done["delete.pg@1"]["outputs"][0]["facets"]["lifecycleStateChange"]
    assert drop["lifecycleStateChange"] == "DROP"
    fail = next(e for e in events if e["eventType"] == "FAIL")
    assert "errorMessage" in fail["run"]["facets"]
    lib.close()


def test_openlineage_is_off_unless_configured(tmp_path, monkeypatch):
    from copytrail.interop import lineage

    for k in list(__import__("os").environ):
        if k.startswith("OPENLINEAGE"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not lineage.configured()
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9")
    assert lineage.configured()
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert not lineage.configured()


def test_openlineage_events_reach_a_loopback_receiver_from_a_cli_build(built, tmp_path):
    lib, _ = built
    got: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "event": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        env = {"OPENLINEAGE_URL": f"http://127.0.0.1:{httpd.server_address[1]}"}
        policy = lib.path / "policy.toml"
        run_cli("build", "c2", "--policy", str(policy), library=lib.path, env=env)
    finally:
        httpd.shutdown()
    assert [g["event"]["eventType"] for g in got] == ["START", "COMPLETE"]
    assert all(g["path"] == "/api/v1/lineage" for g in got)
    _parse(got[1]["event"])
    assert got[1]["event"]["outputs"][0]["name"] == "corpus/c2"


# ---- Hugging Face datasets ---------------------------------------------------------------------
def test_save_to_disk_folders_and_hub_parquet_ingest_with_split_and_config(tmp_path):
    texts = [f"Record number {i} tells a short story about a lighthouse keeper." for i in range(6)]
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": texts[:4], "uid": [0, 1, 2, 3]}),
            "test": datasets.Dataset.from_dict({"text": texts[4:], "uid": [4, 5]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    hub = tmp_path / "hub" / "data"
    hub.mkdir(parents=True)
    dd["train"].to_parquet(str(hub / "train-00000-of-00001.parquet"))
    lib = Library.init(tmp_path / "lib")
    lib.add_source("hf", kind="third-party")
    s = lib.ingest([str(tmp_path / "dd")], source="hf", dataset="dd@1")
    assert s.copies_added == 6 and s.unreadable == 0
    splits = {c["path"]: c["extra"].get("hf_split") for c in lib.copies("dd@1")}
    assert sorted(splits.values()) == ["test", "test", "train", "train", "train", "train"]
    assert all("state.json" not in p and "dataset_info" not in p for p in splits)
    s = lib.ingest([str(tmp_path / "hub")], source="hf", dataset="hub@1")
    assert s.copies_added == 4
    assert {c["extra"].get("hf_split") for c in lib.copies("hub@1")} == {"train"}
    assert lib.verify().ok
    lib.close()


def test_corpus_round_trip_through_datasets_keeps_copy_ids(built, tmp_path):
    lib, _ = built
    d = lib.corpus_dataset("c1")
    lineage = pq.read_table(Path(_corpus_path(lib, "c1")) / "lineage.parquet").to_pylist()
    assert d["copy_id"] == [r["copy_id"] for r in lineage]
    for row in d:
        assert hashlib.sha256(row["text"].encode()).hexdigest() == row["text_sha256"]
    run_cli("export", "hf", "--corpus", "c1", "--out", str(tmp_path / "hf"), library=lib.path)
    back = datasets.load_from_disk(str(tmp_path / "hf"))
    assert back["copy_id"] == d["copy_id"] and back["dataset"] == d["dataset"]
    # ...and ingesting the saved dataset finds the same texts (same text hashes).
    lib2 = Library.init(tmp_path / "lib2")
    lib2.add_source("hf", kind="third-party")
    lib2.ingest([str(tmp_path / "hf")], source="hf", dataset="rt@1")
    assert sorted(c["text_sha256"] for c in lib2.copies("rt@1")) == sorted(d["text_sha256"])
    lib2.close()


def _corpus_path(lib: Library, name: str) -> str:
    from sqlalchemy import text

    with lib.engine.connect() as conn:
        return conn.execute(text("select path from corpora where name = :n"), {"n": name}).scalar()
