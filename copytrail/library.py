"""The Library: the one entry point of the Python API. The CLI and HTTP API only call this.

lib = Library.init("./.copytrail")
lib.add_source("gutenberg", kind="public-domain", license="Public domain in the USA")
summary = lib.ingest(["books/"], source="gutenberg", dataset="pg@2024-01")
lib.checkpoint(); lib.verify().ok

A thin facade: each method delegates to the subsystem that owns the behaviour, handing it the
library's `Context`. Nothing here is logic of its own; subsystems never import this module.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copytrail.catalog import batches, disclose, queries, records
from copytrail.catalog.migrate import ensure_current, migrate
from copytrail.context import Caches, Context
from copytrail.engine.local import LocalEngine
from copytrail.errors import LibraryNotFound
from copytrail.ledger.db import make_engine, read_connection, write_transaction
from copytrail.ledger.events import EventWriter, default_actor
from copytrail.store.blobs import BlobStore


class _OnFirstUse:
    """A subsystem module imported when the facade first calls into it: a CLI command loads
    what it runs, not every subsystem (which cost 0.6 s of start-up before each command).
    importlib's import lock makes the first use from two threads safe."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)


if TYPE_CHECKING:  # the same names, typed, for checkers
    from copytrail import checker
    from copytrail.acquisition import purchases
    from copytrail.acquisition import purpose as purpose_records
    from copytrail.acquisition import reconcile as reconciliation
    from copytrail.acquisition import scans as scan_records
    from copytrail.acquisition import uses as copy_uses
    from copytrail.audit import browse
    from copytrail.audit import run as audits
    from copytrail.build import run as builds
    from copytrail.build import tokenizer as tokenizers
    from copytrail.build import trace as traces
    from copytrail.engine.base import Executor
    from copytrail.evidence import bundle as bundles
    from copytrail.fingerprint import boilerplate as boilerplates
    from copytrail.fingerprint import store as fingerprint_stores
    from copytrail.fingerprint.store import FingerprintStore
    from copytrail.guard import scope as guards
    from copytrail.guard import search as searches
    from copytrail.guard import session as checks
    from copytrail.guard.budget import Budget
    from copytrail.ingest import run as ingests
    from copytrail.interop import croissant, lineage
    from copytrail.interop import hf as hf_export
    from copytrail.ledger import checkpoint as checkpoints
    from copytrail.ledger import publish
    from copytrail.ledger.verify import VerifyReport
    from copytrail.models import decoding as model_decoding
    from copytrail.models import probe as model_probe
    from copytrail.models import train as model_training
    from copytrail.production import produce as productions
    from copytrail.retention import delete as deletions
    from copytrail.retention import holds as legal_holds
    from copytrail.retention import report as retention
    from copytrail.server import keys as api_keys
else:
    checker = _OnFirstUse("copytrail.checker")
    purchases = _OnFirstUse("copytrail.acquisition.purchases")
    purpose_records = _OnFirstUse("copytrail.acquisition.purpose")
    reconciliation = _OnFirstUse("copytrail.acquisition.reconcile")
    scan_records = _OnFirstUse("copytrail.acquisition.scans")
    copy_uses = _OnFirstUse("copytrail.acquisition.uses")
    browse = _OnFirstUse("copytrail.audit.browse")
    audits = _OnFirstUse("copytrail.audit.run")
    builds = _OnFirstUse("copytrail.build.run")
    tokenizers = _OnFirstUse("copytrail.build.tokenizer")
    traces = _OnFirstUse("copytrail.build.trace")
    bundles = _OnFirstUse("copytrail.evidence.bundle")
    boilerplates = _OnFirstUse("copytrail.fingerprint.boilerplate")
    fingerprint_stores = _OnFirstUse("copytrail.fingerprint.store")
    guards = _OnFirstUse("copytrail.guard.scope")
    searches = _OnFirstUse("copytrail.guard.search")
    checks = _OnFirstUse("copytrail.guard.session")
    ingests = _OnFirstUse("copytrail.ingest.run")
    croissant = _OnFirstUse("copytrail.interop.croissant")
    lineage = _OnFirstUse("copytrail.interop.lineage")
    hf_export = _OnFirstUse("copytrail.interop.hf")
    checkpoints = _OnFirstUse("copytrail.ledger.checkpoint")
    publish = _OnFirstUse("copytrail.ledger.publish")
    model_decoding = _OnFirstUse("copytrail.models.decoding")
    model_probe = _OnFirstUse("copytrail.models.probe")
    model_training = _OnFirstUse("copytrail.models.train")
    productions = _OnFirstUse("copytrail.production.produce")
    deletions = _OnFirstUse("copytrail.retention.delete")
    legal_holds = _OnFirstUse("copytrail.retention.holds")
    retention = _OnFirstUse("copytrail.retention.report")
    api_keys = _OnFirstUse("copytrail.server.keys")

CONFIG_NAME = "library.json"
DEFAULT_PATH = ".copytrail"
LEDGER_FILE = "ledger.db"
BLOB_DIR = "blobs"


def resolve_path(path: str | os.PathLike | None) -> Path:
    return Path(path or os.environ.get("COPYTRAIL_LIBRARY") or DEFAULT_PATH)


def locations(root: Path, cfg: dict[str, Any]) -> tuple[str, str]:
    """The ledger URL and blob store URL of the library at `root`. Format 1 wrote the default
    locations as absolute paths; when they name another folder's files while this folder has
    its own (the library was copied or moved), this folder's are used."""
    default_db = f"sqlite:///{(root / LEDGER_FILE).resolve()}"
    default_store = str((root / BLOB_DIR).resolve())
    db, store = cfg.get("db"), cfg.get("store")
    if cfg.get("format", 1) == 1:
        if db and db.startswith("sqlite:///") and _elsewhere(root, Path(db[10:]), LEDGER_FILE):
            db = None
        if store and "://" not in store and _elsewhere(root, Path(store), BLOB_DIR):
            store = None
    return db or default_db, store or default_store


def _elsewhere(root: Path, configured: Path, default_name: str) -> bool:
    """A default-named location in another folder, while this folder has its own."""
    return (
        configured.name == default_name
        and configured.parent != root.resolve()
        and (root / default_name).exists()
    )


class Library:
    def __init__(
        self,
        path: Path,
        db_url: str,
        store_url: str,
        actor: str | None = None,
        executor: Executor | None = None,
        _shared: Context | None = None,
    ) -> None:
        self.path = path
        self.db_url = db_url
        self.store_url = store_url
        self.ctx = _shared or Context(
            db=make_engine(db_url),
            store=BlobStore(store_url),
            root=path,
            actor=actor or default_actor(),
            executor=executor or LocalEngine(),
            caches=Caches(),
        )

    # The pieces a caller may want directly (tests, notebooks, benchmarks).
    @property
    def engine(self) -> Any:
        """The ledger database (SQLAlchemy engine)."""
        return self.ctx.db

    @property
    def store(self) -> BlobStore:
        return self.ctx.store

    @property
    def actor(self) -> str:
        return self.ctx.actor

    @property
    def executor(self) -> Executor:
        return self.ctx.executor

    @property
    def fingerprints(self) -> FingerprintStore:
        return fingerprint_stores.fingerprint_store(self.ctx)

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        path: str | os.PathLike | None = None,
        db: str | None = None,
        store: str | None = None,
        executor: Executor | None = None,
    ) -> Library:
        """Create a library (idempotent: an existing one is opened, never overwritten)."""
        p = resolve_path(path)
        cfg_file = p / CONFIG_NAME
        if cfg_file.exists():
            lib = cls.open(p, db=db, executor=executor)
            migrate(lib.ctx.db)
            return lib
        p.mkdir(parents=True, exist_ok=True)
        # Only what the user chose is written: the default ledger and blob store are found
        # next to library.json, so a copied or moved library folder is a library of its own.
        cfg = {"format": 2, "db": db, "store": store}
        db_url, store_url = locations(p, cfg)
        lib = cls(p, db_url, store_url, executor=executor)
        migrate(lib.ctx.db)
        tmp = cfg_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, cfg_file)  # the config appears last: a half-made library is not a library
        return lib

    @classmethod
    def open(
        cls,
        path: str | os.PathLike | None = None,
        db: str | None = None,
        executor: Executor | None = None,
    ) -> Library:
        p = resolve_path(path)
        cfg_file = p / CONFIG_NAME
        if not cfg_file.exists():
            raise LibraryNotFound(
                f"no copytrail library at {p}: run `copytrail init` there first, or point to one "
                "with --library PATH or COPYTRAIL_LIBRARY"
            )
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        db_url, store_url = locations(p, cfg)
        lib = cls(p, db or db_url, store_url, executor=executor)
        ensure_current(lib.ctx.db, lib.db_url)
        return lib

    def with_executor(self, executor: Executor) -> Library:
        """The same library (ledger, store, caches) with its heavy work run by `executor`."""
        return Library(
            self.path,
            self.db_url,
            self.store_url,
            _shared=self.ctx.with_executor(executor),
        )

    def close(self) -> None:
        self.ctx.db.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- sources and datasets --------------------------------------------------------------
    def add_source(
        self,
        name: str,
        kind: str,
        license: str | None = None,
        provided_by: str | None = None,
        acquired: str | None = None,
        url: str | None = None,
        notes: str | None = None,
    ) -> dict[str, Any]:
        fields = {
            "name": name,
            "kind": kind,
            "license": license,
            "provided_by": provided_by,
            "acquired": acquired,
            "url": url,
            "notes": notes,
        }
        with write_transaction(self.ctx.db) as conn:
            return records.add_source(conn, EventWriter(conn, self.actor), fields)

    def ensure_dataset(self, ref: str, source: str) -> dict[str, Any]:
        return ingests.ensure_dataset(self.ctx, ref, source)

    def record_copies(self, dataset_id: int, batch: list[dict[str, Any]]) -> tuple[int, int]:
        """Record worker results; returns (added, already present)."""
        return ingests.record_copies(self.ctx, dataset_id, batch)

    # ---- ingest ----------------------------------------------------------------------------
    def ingest(self, paths: list[str], source: str, dataset: str, **kw: Any) -> Any:
        return lineage.tracked(
            self.ctx,
            "ingest",
            lambda: ingests.ingest(self.ctx, paths, source, dataset, **kw),
            source=source,
            dataset=dataset,
        )

    # ---- queries ---------------------------------------------------------------------------
    def sources(self) -> list[dict[str, Any]]:
        return queries.list_sources(self.ctx.db)

    def datasets(self) -> list[dict[str, Any]]:
        return queries.list_datasets(self.ctx.db)

    def copies(
        self,
        dataset: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Copies in id order, streamed in pages so millions of rows never sit in memory."""
        return queries.iter_copies(self.ctx.db, dataset, status, limit, offset)

    def copy(self, ref: str | int) -> dict[str, Any]:
        """A copy by id or by a SHA-256 prefix (of its bytes or of its text), with its events."""
        return queries.copy_detail(self.ctx.db, ref)

    def copy_text(
        self, ref: str | int, reason: str, who: str | None = None, channel: str = "python"
    ) -> dict[str, Any]:
        """A copy's text; the disclosure (who, why, through what) is recorded first."""
        return disclose.disclose_text(
            self.ctx.db, self.store, who or self.actor, ref, reason, channel
        )

    def find(self, query: str, by: str = "title", limit: int = 50) -> dict[str, Any]:
        """Works of every list, and copies, by title, author or ISBN."""
        return browse.find(self.ctx.db, query, by, limit)

    def audit_list(self) -> list[dict[str, Any]]:
        return browse.list_audits(self.ctx.db)

    def deletion_list(self) -> list[dict[str, Any]]:
        return browse.list_deletions(self.ctx.db)

    def work_evidence(self, work_id: str, list_name: str | None = None) -> dict[str, Any]:
        """A work with every audit match: the copy's provenance, spans and passages."""
        return browse.work_evidence(self.ctx.db, self.store, work_id, list_name)

    def dataset(self, ref: str) -> dict[str, Any]:
        """A dataset's source and the make-up of its copies."""
        return browse.dataset_overview(self.ctx.db, ref)

    def stats(self) -> dict[str, Any]:
        return queries.stats(self.ctx.db)

    def events(self, start: int = 1, limit: int | None = None) -> Iterator[dict[str, Any]]:
        return queries.list_events(self.ctx.db, start, limit)

    # ---- works lists and audits ------------------------------------------------------------
    def import_works(self, file: str | os.PathLike, list_name: str) -> Any:
        return audits.import_list(self.ctx, file, list_name)

    def works(self, list_name: str) -> list[dict[str, Any]]:
        return audits.list_works(self.ctx, list_name)

    def works_lists(self) -> list[dict[str, Any]]:
        return queries.list_works_lists(self.ctx.db)

    def audit(
        self,
        list_name: str,
        out: str | os.PathLike,
        datasets: list[str] | None = None,
        min_words: int = 200,
        boilerplate_df: int | None = None,
        boilerplate: list[str] | None = None,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Find every work of a list in the library; write the reports; record the audit."""
        return lineage.tracked(
            self.ctx,
            "audit",
            lambda: audits.audit(
                self.ctx, list_name, out, datasets, min_words, boilerplate_df, boilerplate, progress
            ),
            works_list=list_name,
            datasets=datasets,
        )

    def where(
        self,
        work_id: str,
        list_name: str | None = None,
        min_words: int = 200,
        live: bool = False,
    ) -> dict[str, Any]:
        """Every copy of one work, in every dataset, with the evidence: recorded audits answer
        for the copies they saw, the rest are matched now (`live`: all of them)."""
        return audits.where(self.ctx, work_id, list_name, min_words, live)

    def work(self, work_id: str, list_name: str | None = None) -> dict[str, Any]:
        """One work with the matches audits recorded for it (no new matching: see `where`)."""
        return audits.work(self.ctx, work_id, list_name)

    # ---- guard: protected-text indexes, verbatim check, excerpt search ---------------------
    def guard_index(
        self,
        name: str,
        lists: list[str] | None = None,
        datasets: list[str] | None = None,
        all_datasets: bool = False,
        rebuild: bool = False,
        progress: Any = None,
        boilerplate_texts: int | None = None,
    ) -> dict[str, Any]:
        """Build or refresh a guard index; with no scope given, refresh the saved one. Passages
        in more than `boilerplate_texts` indexed texts are boilerplate (default 20, kept)."""
        return guards.build(
            self.ctx, name, lists, datasets, all_datasets, rebuild, progress, boilerplate_texts
        )

    def guards(self) -> list[dict[str, Any]]:
        return guards.list_guards(self.ctx)

    def guard(self, name: str) -> Any:
        """The loaded index (memory-mapped), reloaded when a refresh replaced its manifest."""
        return guards.open_guard(self.ctx, name)

    def check(
        self,
        text: str,
        guard: str,
        min_words: int = 50,
        evidence: bool = True,
        budget: Budget | None = None,
        include_boilerplate: bool = False,
    ) -> dict[str, Any]:
        """Spans of `text` that reproduce indexed text verbatim for min_words words or more.
        `evidence=False` skips the copies, works and character offsets of each place; `budget`
        bounds the work, time and memory of the check (a default one always applies). Spans in
        boilerplate are never flagged; `include_boilerplate` lists them apart."""
        return checks.check_text(
            self.ctx, text, guard, min_words, evidence, budget, include_boilerplate
        )

    def check_stream(
        self,
        guard: str,
        min_words: int = 50,
        evidence: bool = True,
        budget: Budget | None = None,
        include_boilerplate: bool = False,
    ) -> Any:
        """A check fed piece by piece (`feed(piece)`, then `finish()`), each answered at once."""
        return checks.CheckSession(
            self.ctx, guard, min_words, evidence, budget, include_boilerplate
        )

    # ---- boilerplate: never evidence, never flagged -----------------------------------------
    def boilerplate(self) -> list[dict[str, Any]]:
        """The boilerplate passages audit, build and guard share: shipped and declared."""
        return boilerplates.list_passages(self.ctx)

    def add_boilerplate(self, file: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
        """Declare a passage boilerplate for this library (a `declared` event)."""
        return boilerplates.add_passage(self.ctx, file, name)

    def search(
        self,
        phrase: str,
        datasets: list[str] | None = None,
        guards: list[str] | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Every copy holding the exact phrase, with counts and snippets."""
        return searches.search(self.ctx, phrase, datasets, guards, limit)

    # ---- build: tokenizers, corpora ----------------------------------------------------------
    def train_tokenizer(
        self, datasets: list[str], vocab_size: int, out: str | os.PathLike
    ) -> dict[str, Any]:
        """Train a byte-level BPE tokenizer on the datasets' texts; write tokenizer.json."""
        return tokenizers.train_tokenizer(self.ctx, datasets, vocab_size, out)

    def build(self, corpus: str, policy: str | os.PathLike) -> dict[str, Any]:
        """Build a corpus under a policy: fates for every copy, token shards, lineage."""
        return lineage.tracked(
            self.ctx, "build", lambda: builds.build_corpus(self.ctx, corpus, policy), corpus=corpus
        )

    def corpus_dataset(self, name: str) -> Any:
        """The corpus's documents with their lineage columns as a Hugging Face
        `datasets.Dataset` (copy ids next to the text)."""
        return hf_export.corpus_dataset(self.ctx, name)

    def save_corpus_dataset(self, name: str, out: str | os.PathLike) -> dict[str, Any]:
        """`corpus_dataset(name).save_to_disk(out)`."""
        return hf_export.save_corpus(self.ctx, name, out)

    def export_croissant(
        self, out: str | os.PathLike, dataset: str | None = None, corpus: str | None = None
    ) -> dict[str, Any]:
        """A Croissant 1.1 JSON-LD description of a dataset or a corpus (RAI, provenance)."""
        return croissant.export(self.ctx, out, dataset, corpus)

    def corpus(self, name: str) -> dict[str, Any]:
        """A corpus's composition: by source kind, dataset and license; exclusions by rule."""
        return builds.corpus_show(self.ctx, name)

    def record_run(
        self,
        model: str,
        corpus: str,
        shards: list[int] | None = None,
        started: str | None = None,
        finished: str | None = None,
        notes: str | None = None,
    ) -> dict[str, Any]:
        """Record a training run; call it from a training loop, or use `copytrail run record`."""
        return lineage.tracked(
            self.ctx,
            "run-record",
            lambda: traces.record_run(self.ctx, model, corpus, shards, started, finished, notes),
            model=model,
            corpus=corpus,
        )

    def trace(
        self,
        copy: str | int | None = None,
        work: str | None = None,
        works_list: str | None = None,
        dataset: str | None = None,
        model: str | None = None,
        received_after: str | None = None,
    ) -> dict[str, Any]:
        """Forward (copy, work, dataset -> corpora, shards, runs, models) or backward (model ->
        tokens by dataset, source, source kind); or models that read data received after a date."""
        return traces.trace(self.ctx, copy, work, works_list, dataset, model, received_after)

    # ---- models: train, probe, guarded generation ---------------------------------------------
    def train(self, model: str, corpus: str, out: str | os.PathLike, **kw: Any) -> dict[str, Any]:
        """Train (config=tiny|small) or fine-tune (init=DIR or .gguf) a causal LM on a corpus's
        shards; the run is recorded with exactly which token ranges it read."""
        return model_training.train(self.ctx, model, corpus, out, **kw)

    def probe(self, model_path: str | os.PathLike, out: str | os.PathLike, **kw: Any) -> Any:
        """Memorization probe of works, copies or a corpus sample, against unseen controls."""
        return model_probe.probe(self.ctx, model_path, out, **kw)

    def guarded_generate(
        self,
        model_path: str | os.PathLike,
        prompt: str,
        guard: str | None = None,
        min_words: int = 50,
        max_new_tokens: int = 100,
    ) -> dict[str, Any]:
        """Greedy generation; with `guard`, no run of min_words protected words is emitted."""
        return model_decoding.generate_with(
            self.ctx, model_path, prompt, guard, min_words, max_new_tokens
        )

    # ---- retention: holds, deletion ----------------------------------------------------------
    def add_hold(self, matter: str, scope: str, ref: str) -> dict[str, Any]:
        """Put a dataset, a source or a work (LIST:WORK_ID) under legal hold."""
        return legal_holds.add_hold(self.ctx, matter, scope, ref)

    def holds(self, active_only: bool = False) -> list[dict[str, Any]]:
        return legal_holds.list_holds(self.ctx, active_only)

    def release_hold(self, hold_id: int) -> dict[str, Any]:
        return legal_holds.release_hold(self.ctx, hold_id)

    def delete(
        self,
        reason: str,
        dataset: str | None = None,
        source: str | None = None,
        copies_file: str | None = None,
        rebuild: bool = False,
        keep_derived: bool = False,
    ) -> dict[str, Any]:
        """Delete copies (blobs, derived shards, guard entries) with a certificate; refused
        when a hold covers any of them."""
        return lineage.tracked(
            self.ctx,
            "delete",
            lambda: deletions.delete_copies(
                self.ctx, reason, dataset, source, copies_file, rebuild, keep_derived
            ),
            dataset=dataset,
            source=source,
        )

    def retention_report(
        self, rules: str | os.PathLike | None = None, as_of: str | None = None
    ) -> dict[str, Any]:
        """Copies never used for training, and what each retention rule would delete or flag."""
        return retention.retention_report(self.ctx, rules, as_of)

    def produce(
        self,
        request: str,
        out: str | os.PathLike,
        list_name: str | None = None,
        work_ids: list[str] | None = None,
        datasets: list[str] | None = None,
        with_text: bool = False,
        requester: str | None = None,
    ) -> dict[str, Any]:
        """A production for discovery: every responsive copy, Bates-numbered, with a manifest,
        a Concordance load file and (with_text) the texts; a `produced` event."""
        return productions.produce(
            self.ctx, request, out, list_name, work_ids, datasets, with_text, requester
        )

    # ---- acquisition: purchases, scans, purposes, uses -----------------------------------------
    def import_purchases(self, file: str | os.PathLike, source: str) -> Any:
        """Purchase lines from an order export (CSV or JSON Lines); re-import updates."""
        return purchases.import_purchases(self.ctx, file, source)

    def record_scans(self, file: str | os.PathLike, dataset: str) -> Any:
        """Per scanned copy: its purchase line, scan date and the print copy's fate."""
        return scan_records.record_scans(self.ctx, file, dataset)

    def reconcile(self, source: str, out: str | os.PathLike | None = None) -> dict[str, Any]:
        """Purchases against scans, per book, with findings; reports written to `out`."""
        return reconciliation.reconcile(self.ctx, source, out)

    def declare_purpose(
        self,
        scope: str,
        ref: str,
        purpose: str,
        text: str | None = None,
        document: str | os.PathLike | None = None,
        effective: str | None = None,
    ) -> dict[str, Any]:
        """Declare why a source or dataset is kept, with the document that says so."""
        return purpose_records.declare_purpose(
            self.ctx, scope, ref, purpose, text, document, effective
        )

    def purposes(self, history: bool = False) -> list[dict[str, Any]]:
        return purpose_records.list_purposes(self.ctx, history)

    def uses(self, copy: str | int | None = None, dataset: str | None = None) -> dict[str, Any]:
        """Every recorded use of a copy, or of a dataset's copies."""
        return copy_uses.uses(self.ctx, copy, dataset)

    # ---- HTTP API keys -----------------------------------------------------------------------
    def add_key(self, name: str, role: str) -> dict[str, Any]:
        return api_keys.add_key(self.ctx.db, name, role, self.actor)

    def keys(self) -> list[dict[str, Any]]:
        return api_keys.list_keys(self.ctx.db)

    def revoke_key(self, name: str) -> dict[str, Any]:
        return api_keys.revoke_key(self.ctx.db, name, self.actor)

    def authenticate(self, key: str) -> dict[str, Any] | None:
        return api_keys.authenticate(self.ctx.db, key)

    # ---- integrity -------------------------------------------------------------------------
    def checkpoint(self, tsa: str | None = None) -> dict[str, Any]:
        """Record a tree head over every event; signed (a C2SP checkpoint written under
        log/) when the log has a key; with `tsa`, also time-stamped by that RFC 3161 TSA."""
        return publish.make(self.ctx.db, self.ctx.root, self.actor, tsa)

    def signing_identity(
        self, create: bool = False, rotate: bool = False, origin: str | None = None
    ) -> dict[str, Any]:
        """The log's signing key (its public half and history); create or rotate it."""
        return publish.identity(self.ctx.db, self.ctx.root, self.actor, create, rotate, origin)

    def add_cosignatures(self, cosigned: bytes, witnesses: list[str]) -> dict[str, Any]:
        """Keep witnesses' cosignatures (a note `copytrail witness cosign` wrote)."""
        return publish.add_cosignatures(self.ctx.db, self.ctx.root, self.actor, cosigned, witnesses)

    def published_checkpoint(self) -> str:
        """The latest signed checkpoint note, cosignatures included."""
        return publish.latest_note(self.ctx.db)

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """Proof that the tree of `new_size` events extends the tree of `old_size` events."""
        with read_connection(self.ctx.db) as conn:
            return checkpoints.consistency(conn, old_size, new_size)

    def evidence(
        self,
        out: str | os.PathLike,
        copy: str | int | None = None,
        work: str | None = None,
        list_name: str | None = None,
        deletion: int | None = None,
        progress: Any = None,
    ) -> dict[str, Any]:
        """A self-contained bundle (zip) of records, events, inclusion proofs and the signed
        checkpoint for a copy, a work of a list, or a deletion; checked by verify_bundle."""
        return bundles.write_bundle(self.ctx, out, copy, work, list_name, deletion, progress)

    def prove(self, event_seq: int, checkpoint_id: int | None = None) -> dict[str, Any]:
        with read_connection(self.ctx.db) as conn:
            return checkpoints.prove(conn, event_seq, checkpoint_id)

    def prove_copy(self, ref: str | int, checkpoint_id: int | None = None) -> dict[str, Any]:
        with read_connection(self.ctx.db) as conn:
            return batches.prove_copy(conn, ref, checkpoint_id)

    def verify(
        self,
        quick: bool = False,
        progress: Any = None,
        against: list[str | os.PathLike] | None = None,
        tsa_ca: str | os.PathLike | None = None,
    ) -> VerifyReport:
        """Check log, catalog and store; `against`: checkpoints others hold (files, or a
        witness's folder) the log must extend; `tsa_ca`: the CA time-stamps must chain to."""
        held = [Path(p) for p in against or []]
        return checker.check_library(
            self.ctx.db,
            self.store,
            quick,
            progress,
            held,
            Path(tsa_ca) if tsa_ca else None,
            executor=self.executor,
        )
