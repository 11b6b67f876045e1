#!/usr/bin/env bash
# The main job end to end on the embedded default: SQLite ledger, local blob store, sample books.
set -euo pipefail
cd "$(dirname "$0")/.."
ct() { echo; echo "\$ copytrail $*"; .venv/bin/copytrail "$@"; }
raw() { .venv/bin/copytrail "$@"; }  # for values captured by the script, not shown
jq_field() { .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

export COPYTRAIL_LIBRARY=build/demo-library
export COPYTRAIL_ACTOR="demo@copytrail"
rm -rf build/demo-library build/demo-input
.venv/bin/python examples/make_samples.py build/demo-input

ct init
ct source add gutenberg --kind public-domain --license "Public domain in the USA" \
   --provided-by "Project Gutenberg" --url https://www.gutenberg.org --acquired 2024-01-15
ct source add books3-mirror --kind shadow-library --license "none" \
   --notes "torrent dump, Books3 layout" --acquired 2020-10-01
ct source add publisher-feed --kind licensed --license "Agreement 2025-17, training permitted" \
   --provided-by "Example Press" --acquired 2025-03-02

ct ingest examples/gutenberg --source gutenberg --dataset gutenberg@2024-01
ct ingest build/demo-input/books3-sample.jsonl.gz --source books3-mirror --dataset books3@2020-10
ct ingest build/demo-input/publisher --source publisher-feed --dataset example-press@2025-03
echo; echo "# the same ingest again adds nothing:"
ct ingest examples/gutenberg --source gutenberg --dataset gutenberg@2024-01

echo; echo "# a works list (a class list, an opt-out list): which works are in which datasets?"
ct works import examples/works.csv --list demo-class
ct audit --list demo-class --out build/audit
ct where PG5200

echo; echo "# guard: an output filter over the listed works, and excerpt search over the library"
ct guard index demo-class --list demo-class
ct guard index library --all
ct check build/demo-input/model-output-paraphrase.txt --guard demo-class
ct check build/demo-input/model-output-quoting.txt --guard demo-class \
  || { rc=$?; [ "$rc" -eq 3 ] && echo "(exit 3: verbatim reproduction found, as expected)"; }
ct search "gregor samsa woke" --limit 3
ct key add demo-filter --role checker >/dev/null && echo "API key made for: copytrail serve --guard demo-class"

echo; echo "# build a training corpus under a policy: shadow-library copies and opt-outs excluded"
ct tokenizer train --dataset gutenberg@2024-01 --vocab 2000 --out build/demo-tokenizer.json
ct build demo-corpus --policy examples/policy.toml
ct corpus show demo-corpus

echo; echo "# interop: OpenLineage events to a lineage server, Croissant and Hugging Face datasets"
rm -f build/lineage-port
.venv/bin/python examples/lineage_receiver.py build/lineage-events.jsonl build/lineage-port &
RECEIVER=$!
trap 'kill $RECEIVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s build/lineage-port ] && break; sleep 0.1; done
OPENLINEAGE_URL="http://127.0.0.1:$(cat build/lineage-port)" \
  ct build demo-corpus-lineage --policy examples/policy.toml
kill $RECEIVER 2>/dev/null || true
.venv/bin/python - <<'PY'
import json
for line in open("build/lineage-events.jsonl"):
    e = json.loads(line)
    seq = e["run"]["facets"].get("copytrail", {}).get("eventSeq")
    print(f"  lineage server got {e['eventType']:<8} {e['job']['name']}"
          f" -> {[o['name'] for o in e.get('outputs', [])]}" + (f" (ledger event {seq})" if seq else ""))
PY
ct export croissant --corpus demo-corpus --out build/demo-corpus.croissant.json
ct export hf --corpus demo-corpus --out build/demo-corpus-hf
ct run record --model demo-7b --corpus demo-corpus --started 2026-01-05 --finished 2026-01-09
ct trace --model demo-7b
ct trace --dataset books3@2020-10

echo; echo "# models: a tiny model trained on two excerpts, what it read, what it memorized, a guard"
.venv/bin/python - <<'PY'
from pathlib import Path
out = Path("build/demo-input/excerpts")
(out / "train").mkdir(parents=True, exist_ok=True)
for name, f in (("alice", "examples/gutenberg/11/11-0.txt"), ("kafka", "examples/gutenberg/5200/5200.txt")):
    raw = Path(f).read_text(encoding="utf-8")
    words = raw[raw.find("***", raw.find("START OF")) + 3 :].split()[500:1300]
    (out / "train" / f"{name}-excerpt.txt").write_text(" ".join(words), encoding="utf-8")
(out / "policy.toml").write_text(
    'datasets = ["excerpts@demo"]\ntokenizer = "../../demo-tokenizer.json"\nshard_tokens = 100000\n'
)
(out / "prompt.txt").write_text(" ".join((out / "train" / "alice-excerpt.txt").read_text().split()[:40]))
PY
ct ingest build/demo-input/excerpts/train --source gutenberg --dataset excerpts@demo
ct build excerpts-corpus --policy build/demo-input/excerpts/policy.toml
rm -rf build/demo-model build/demo-probe
ct train --model demo-tiny --corpus excerpts-corpus --out build/demo-model --steps 800 --seq-len 256 --batch 4
ct trace --model demo-tiny
ALICE_COPY=$(raw ls copies --dataset excerpts@demo --json | .venv/bin/python -c "import json,sys; print(next(c['id'] for c in json.load(sys.stdin) if 'alice' in c['path']))")
ct probe --model build/demo-model --copy "$ALICE_COPY" --out build/demo-probe --controls 2
ct guard index excerpts --dataset excerpts@demo
echo; echo "\$ copytrail generate --model build/demo-model --prompt (the excerpt's first 40 words) --max-tokens 120"
raw generate --model build/demo-model --prompt "$(cat build/demo-input/excerpts/prompt.txt)" --max-tokens 120 \
  > build/demo-unguarded.txt
cat build/demo-unguarded.txt
echo; echo "\$ copytrail generate ... --guard excerpts --min-words 20"
raw generate --model build/demo-model --prompt "$(cat build/demo-input/excerpts/prompt.txt)" --max-tokens 120 \
  --guard excerpts --min-words 20 > build/demo-guarded.txt
cat build/demo-guarded.txt
ct check build/demo-unguarded.txt --guard excerpts --min-words 20 \
  || { rc=$?; [ "$rc" -eq 3 ] && echo "(exit 3: the unguarded output reproduces the excerpt verbatim)"; }
ct check build/demo-guarded.txt --guard excerpts --min-words 20

echo; echo "# retention, a legal hold, and a deletion with a certificate"
ct retention report --rules examples/retention.toml --as-of 2030-01-01
ct hold add --matter "Doe v. Example AI, 26-cv-0042" --source books3-mirror
ct delete --dataset books3@2020-10 --reason "takedown" \
  || { rc=$?; [ "$rc" -eq 2 ] && echo "(refused: the hold covers it, nothing was deleted)"; }
ct hold release 1
ct delete --dataset books3@2020-10 --reason "takedown notice 2026-114" --rebuild

echo; echo "# acquisition records: print books bought, scanned, and what became of the print copies"
ct source add print-scans --kind purchased-scan --license "first sale; scanned in house" \
   --provided-by "Acquisitions" --acquired 2025-04-17
ct ingest build/demo-input/scans --source print-scans --dataset scans@2025-05
ct purchases import examples/purchases.csv --source print-scans
ct scans record examples/scans.csv --dataset scans@2025-05
ct reconcile --source print-scans --out build/reconcile
ct purpose set --dataset scans@2025-05 --purpose model-training --document examples/scan-approval.txt \
   --effective 2025-09-01
ct uses --dataset scans@2025-05

ct ls datasets
ct ls copies --dataset example-press@2025-03
ct stats

echo; echo "# trust without trusting the operator: a signed tree head, a witness, an evidence bundle"
ct key identity --create --origin demo.copytrail.invalid/library
ct checkpoint
WITNESS=build/demo-witness
rm -rf "$WITNESS"
ct witness init --state "$WITNESS" --name demo.witness.invalid/w1
ct witness trust --state "$WITNESS" "$(raw key identity --json | jq_field vkey)"
ct witness cosign --state "$WITNESS" --checkpoint build/demo-library/log/checkpoint --out build/cosigned.note
ct checkpoint --cosigned build/cosigned.note --witness "$(cat "$WITNESS/witness.vkey")"
ct hold add --matter "Roe v. Example AI, 26-cv-0077" --dataset example-press@2025-03
ct checkpoint
OLD=$(sed -n 2p "$WITNESS"/logs/*/checkpoint)
raw consistency "$OLD" --json > build/consistency.json
ct witness cosign --state "$WITNESS" --checkpoint build/demo-library/log/checkpoint \
   --proof build/consistency.json --out build/cosigned.note
ct checkpoint --cosigned build/cosigned.note --witness "$(cat "$WITNESS/witness.vkey")"
ct verify --against "$WITNESS"
ct evidence --copy 1 --out build/evidence-copy-1.zip
.venv/bin/python tools/verify_bundle.py build/evidence-copy-1.zip \
   --log-key "$(raw key identity --json | jq_field vkey)" --witness-key "$(cat "$WITNESS/witness.vkey")"
ct evidence --work PG5200 --list demo-class --out build/evidence-PG5200.zip
ct prove 5 --out build/proof-event-5.json
ct prove --copy 1   # copy 1 inside the batch event that recorded it, and that event in the tree
ct verify
ct verify --proof build/proof-event-5.json
CONSOLE_KEY=$(raw key add "demo-console-$(date +%s)" --role admin --json | jq_field key)
echo; echo "demo finished: library in build/demo-library, audit report in build/audit/report.html"
echo "console: .venv/bin/copytrail -L build/demo-library serve --guard demo-class"
echo "         then open http://127.0.0.1:8080/console and sign in with the admin key $CONSOLE_KEY"
echo "(try: .venv/bin/copytrail -L build/demo-library show 1)"
