"""The witness's state folder and its one decision: cosign or refuse.

    STATE/witness.key          the cosigning key (C2SP tlog-cosignature, type 0x04), mode 0600
    STATE/logs.json            the logs it watches: origin -> the log's verifier keys
    STATE/logs/<log>/checkpoint          the latest checkpoint it cosigned
    STATE/logs/<log>/history/<size>.note every checkpoint it cosigned

The folder is the witness's memory; it shares nothing with the log's database, so a log operator
who rewrites their own history cannot rewrite it. `copytrail verify --against STATE/logs/<log>`
replays that memory against the log.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from copytrail.atomic import exclusive
from copytrail.atomic import write_atomic as _write_atomic
from copytrail.errors import Conflict, CopytrailError, InvalidInput, NotFound
from copytrail.ledger import merkle, note

FETCH_TIMEOUT_S = 15
MAX_PROOF_BYTES = 64 * 1024  # 64 hashes of 64 hex digits fit in well under 8 KB


class Refused(CopytrailError):
    """The witness will not cosign: the new checkpoint does not extend the one it holds."""

    exit_code = 1


def log_folder_name(origin: str) -> str:
    """A safe folder name for a log origin (any text) that stays recognisable."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", origin)[:60].strip("._") or "log"
    return f"{slug}-{hashlib.sha256(origin.encode()).hexdigest()[:8]}"


class Witness:
    def __init__(self, state: Path) -> None:
        self.state = Path(state)

    # ---- set-up ------------------------------------------------------------------------------
    def init(self, name: str) -> dict[str, Any]:
        key = self.state / "witness.key"
        if key.exists():
            raise Conflict(f"{self.state} already holds a witness ({self.signer().verifier.vkey})")
        signer = note.Signer.generate(name, note.COSIGNATURE_V1)
        _write_atomic(key, (signer.skey() + "\n").encode(), 0o600)
        _write_atomic(self.state / "witness.vkey", (signer.verifier.vkey + "\n").encode())
        return {"name": name, "vkey": signer.verifier.vkey, "state": str(self.state)}

    def signer(self) -> note.Signer:
        key = self.state / "witness.key"
        if not key.exists():
            raise NotFound(f"no witness at {self.state}: run `copytrail witness init` first")
        return note.Signer.from_skey(key.read_text(encoding="ascii"))

    def logs(self) -> dict[str, list[str]]:
        f = self.state / "logs.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.exists() else {}

    def trust(self, vkey: str) -> dict[str, Any]:
        """Watch the log whose checkpoints `vkey` signs (its origin is the key name)."""
        v = note.parse_vkey(vkey)
        if v.sig_type != note.ED25519:
            raise InvalidInput("give the log's key (`copytrail key identity` prints it)")
        with self._locked():
            logs = self.logs()
            keys = logs.setdefault(v.name, [])
            if v.vkey not in keys:
                keys.append(v.vkey)
            _write_atomic(self.state / "logs.json", json.dumps(logs, indent=2).encode())
        return {"origin": v.name, "vkeys": keys}

    def show(self) -> dict[str, Any]:
        out = {"vkey": self.signer().verifier.vkey, "state": str(self.state), "logs": []}
        for origin, keys in self.logs().items():
            held = self.held(origin)
            out["logs"].append(
                {
                    "origin": origin,
                    "vkeys": keys,
                    "folder": str(self._log_dir(origin)),
                    "tree_size": held.size if held else None,
                    "root": held.root.hex() if held else None,
                }
            )
        return out

    # ---- memory ------------------------------------------------------------------------------
    def _log_dir(self, origin: str) -> Path:
        return self.state / "logs" / log_folder_name(origin)

    def held(self, origin: str) -> note.Checkpoint | None:
        f = self._log_dir(origin) / "checkpoint"
        if not f.exists():
            return None
        return note.parse_checkpoint(note.parse_note(f.read_bytes()).text)

    def _locked(self) -> AbstractContextManager[None]:
        return exclusive(self.state / ".lock")

    # ---- the decision --------------------------------------------------------------------------
    def cosign(self, signed_note: bytes | str, proof: list[bytes] | None) -> dict[str, Any]:
        """Cosign `signed_note` if it is a checkpoint of a watched log that extends the held one
        (by `proof`, the RFC 9162 consistency path from the held size); otherwise raise Refused
        with the reason. Returns the cosigned note."""
        try:
            n = note.parse_note(signed_note)
            head = note.parse_checkpoint(n.text)
        except note.NoteError as e:
            raise Refused(f"not a checkpoint: {e}") from None
        logs = self.logs()
        if head.origin not in logs:
            raise Refused(
                f"log {head.origin!r} is not watched here; `copytrail witness trust VKEY` first"
            )
        try:
            if not n.signed_by([note.parse_vkey(k) for k in logs[head.origin]]):
                raise Refused(f"the checkpoint is not signed by a key of log {head.origin!r}")
        except note.NoteError as e:
            raise Refused(f"the log's signature is bad: {e}") from None
        signer = self.signer()
        with self._locked():
            held = self.held(head.origin)
            _decide(held, head, proof)
            line = signer.sign_line(n.text, int(time.time()))
            cosigned = note.add_signatures(n, line).render()
            folder = self._log_dir(head.origin)
            _write_atomic(folder / "history" / f"{head.size}.note", cosigned.encode())
            _write_atomic(folder / "checkpoint", cosigned.encode())
        return {
            "origin": head.origin,
            "tree_size": head.size,
            "root": head.root.hex(),
            "previous_size": held.size if held else None,
            "cosigned_note": cosigned,
            "witness_vkey": signer.verifier.vkey,
        }


def _decide(held: note.Checkpoint | None, head: note.Checkpoint, proof: list[bytes] | None) -> None:
    if held is None:
        return  # the first checkpoint seen of a log is taken as given (trust on first use)
    if head.size < held.size:
        raise Refused(
            f"tree size {head.size} is smaller than the {held.size} this witness already "
            "cosigned: the log was truncated or rolled back"
        )
    if head.size == held.size:
        if head.root != held.root:
            raise Refused(
                f"tree size {head.size} has root {head.root.hex()[:16]}... but this witness "
                f"cosigned root {held.root.hex()[:16]}... at that size: the log forked"
            )
        return
    if proof is None:
        raise Refused(
            f"a consistency proof from size {held.size} to {head.size} is needed "
            f"(`copytrail consistency {held.size} {head.size} --json`)"
        )
    if not merkle.verify_consistency(held.size, head.size, held.root, head.root, proof):
        raise Refused(
            f"tree size {head.size} does not extend the tree of size {held.size} this witness "
            "cosigned (the consistency proof fails): history before it was rewritten or forked"
        )


def read_proof(doc: dict[str, Any], old_size: int, new_size: int) -> list[bytes]:
    """The path of a consistency proof as `copytrail consistency --json` prints it."""
    if (doc.get("old_size"), doc.get("new_size")) != (old_size, new_size):
        raise Refused(
            f"the proof is from size {doc.get('old_size')} to {doc.get('new_size')}; "
            f"this witness needs {old_size} to {new_size}"
        )
    try:
        path = [bytes.fromhex(h) for h in doc["path"]]
    except (KeyError, TypeError, ValueError):
        raise Refused("the consistency proof's path is not a list of hex hashes") from None
    if len(path) > 64:
        raise Refused("the consistency proof is longer than any tree is deep")
    return path


def fetch_from_url(url: str, witness: Witness) -> tuple[bytes, list[bytes] | None]:
    """The latest checkpoint a `copytrail serve` publishes, and the consistency proof to it
    from the size the witness holds (no key needed: they hold hashes only)."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InvalidInput(f"--url takes http(s)://HOST:PORT, not {url[:80]!r}")
    body = _get(f"{base}/v1/log/checkpoint", note.MAX_NOTE_BYTES)
    try:
        head = note.parse_checkpoint(note.parse_note(body).text)
    except note.NoteError as e:
        raise Refused(f"{base} does not publish a checkpoint: {e}") from None
    held = witness.held(head.origin)
    held_size = held.size if held else None
    if held_size is None or head.size <= held_size:
        return body, None
    q = urllib.parse.urlencode({"old": held_size, "new": head.size})
    doc = json.loads(_get(f"{base}/v1/log/consistency?{q}", MAX_PROOF_BYTES))
    return body, read_proof(doc, held_size, head.size)


def _get(url: str, limit: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as r:
            data = r.read(limit + 1)
    except urllib.error.HTTPError as e:
        raise CopytrailError(f"{url}: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise CopytrailError(f"{url} did not answer: {e}") from None
    if len(data) > limit:
        raise Refused(f"{url}: answer larger than {limit} bytes")
    return data
