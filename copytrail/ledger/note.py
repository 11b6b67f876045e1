"""C2SP signed notes, tlog checkpoints and Ed25519 cosignatures (c2sp.org/signed-note,
c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature), written out from the specifications.

Like merkle.py this module needs only the standard library and `cryptography`, so the
stand-alone bundle verifier (tools/verify_bundle.py) is built from it unchanged.

    note      = text (ending in a newline) + "\\n" + signature lines
    signature = "— " + key name + " " + base64(key ID (4 bytes) || signature)
    key ID    = SHA-256(key name || "\\n" || type byte || public key)[:4]
    vkey      = key name + "+" + hex(key ID) + "+" + base64(type byte || public key)

Type 0x01 is a log's Ed25519 signature over the note text; type 0x04 is a witness's timestamped
cosignature over "cosignature/v1\\ntime T\\n" + the note text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
MAX_NOTE_BYTES = 1 << 20  # a checkpoint with 16 signatures is under 2 KB
MAX_SIGNATURES = 100
DASH = "\u2014 "


class NoteError(ValueError):
    """A note, key or signature that is malformed or does not verify."""


def _key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def check_key_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


@dataclass(frozen=True)
class Verifier:
    """A public key a note can be checked against (a log's or a witness's)."""

    name: str
    sig_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.sig_type, self.public)

    @property
    def vkey(self) -> str:
        material = base64.b64encode(bytes([self.sig_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify(self, text: bytes, sig: bytes) -> int | None:
        """Check one signature (without its key ID) over the note text. Returns the cosignature
        time for type 0x04, 0 for type 0x01; raises NoteError when it does not verify."""
        key = Ed25519PublicKey.from_public_bytes(self.public)
        try:
            if self.sig_type == ED25519:
                key.verify(sig, text)
                return 0
            if len(sig) != 8 + 64:
                raise NoteError(f"cosignature by {self.name} has {len(sig)} bytes, not 72")
            (ts,) = struct.unpack(">Q", sig[:8])
            key.verify(sig[8:], cosigned_message(text, ts))
            return ts
        except InvalidSignature:
            raise NoteError(f"signature by {self.name} does not verify") from None


def parse_vkey(vkey: str) -> Verifier:
    parts = vkey.strip().split("+", 2)  # base64 may itself hold '+'
    if len(parts) != 3:
        raise NoteError(
            "a verifier key reads NAME+KEYID+BASE64 (as `copytrail key identity` prints)"
        )
    name, key_id, material = parts
    check_key_name(name)
    try:
        raw = base64.b64decode(material, validate=True)
    except binascii.Error:
        raise NoteError("the verifier key's last part is not base64") from None
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("only Ed25519 keys (type 0x01) and cosigner keys (type 0x04) are known")
    v = Verifier(name, raw[0], raw[1:])
    if v.key_id.hex() != key_id.lower():
        raise NoteError(f"verifier key {name}: key ID {key_id} does not match its public key")
    return v


class Signer:
    """An Ed25519 private key with its note name and signature type."""

    def __init__(self, name: str, sig_type: int, seed: bytes) -> None:
        self.name = check_key_name(name)
        self.sig_type = sig_type
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._seed = seed
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, sig_type, public)

    @classmethod
    def generate(cls, name: str, sig_type: int = ED25519) -> Signer:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(name, sig_type, seed)

    def skey(self) -> str:
        """The private key as golang.org/x/mod/sumdb/note writes one: keep it secret."""
        material = base64.b64encode(bytes([self.sig_type]) + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{material}"

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a private signing key (PRIVATE+KEY+NAME+KEYID+BASE64)")
        raw = base64.b64decode(parts[4])
        if len(raw) != 33:
            raise NoteError("the private key's material has the wrong length")
        return cls(parts[2], raw[0], raw[1:])

    def sign_line(self, text: bytes, timestamp: int | None = None) -> str:
        if self.sig_type == ED25519:
            sig = self._key.sign(text)
        else:
            ts = int(timestamp or 0)
            sig = struct.pack(">Q", ts) + self._key.sign(cosigned_message(text, ts))
        return f"{DASH}{self.name} {base64.b64encode(self.verifier.key_id + sig).decode()}\n"


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text


@dataclass(frozen=True)
class Note:
    text: bytes  # the signed text, final newline included
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (key name, key ID, signature)

    def lines(self) -> list[str]:
        return self.text.decode().splitlines()

    def signed_by(self, verifiers: list[Verifier]) -> dict[str, int]:
        """{vkey: signature time} for every known key that signed. A known key whose signature
        fails rejects the whole note; unknown signatures are ignored (as the spec says)."""
        ok: dict[str, int] = {}
        for name, key_id, sig in self.signatures:
            for v in verifiers:
                if v.name == name and v.key_id == key_id:
                    ok[v.vkey] = v.verify(self.text, sig) or 0
        return ok

    def render(self) -> str:
        sigs = "".join(
            f"{DASH}{n} {base64.b64encode(k + s).decode()}\n" for n, k, s in self.signatures
        )
        return self.text.decode() + "\n" + sigs


def parse_note(data: bytes | str) -> Note:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteError(f"a note of {len(raw)} bytes is larger than any checkpoint")
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("a note must be UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        raise NoteError("a note must not hold control characters other than newline")
    cut = s.rfind("\n\n")
    if cut < 0 or not s.endswith("\n"):
        raise NoteError("a note is text, a blank line, then signature lines")
    text, sig_block = s[: cut + 1], s[cut + 2 :]
    sigs = []
    for line in sig_block.splitlines():
        if not line.startswith(DASH):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, _, b64 = line[len(DASH) :].rpartition(" ")
        check_key_name(name)
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError(f"signature by {name} is not base64") from None
        if len(blob) < 5:
            raise NoteError(f"signature by {name} is too short")
        sigs.append((name, blob[:4], blob[4:]))
    if not sigs or len(sigs) > MAX_SIGNATURES:
        raise NoteError(f"a note carries 1 to {MAX_SIGNATURES} signatures, not {len(sigs)}")
    return Note(text.encode(), tuple(sigs))


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> bytes:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode()


def parse_checkpoint(text: bytes) -> Checkpoint:
    lines = text.decode().split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise NoteError("a checkpoint is an origin, a tree size and a root hash, one per line")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        raise NoteError(f"tree size {size[:30]!r} is not a decimal number")
    try:
        raw_root = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise NoteError("the root hash line is not base64") from None
    if len(raw_root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    return Checkpoint(origin, int(size), raw_root, tuple(lines[3:-1]))


def add_signatures(note: Note, lines: str) -> Note:
    """The note with more signature lines (a witness's cosignature), each once."""
    extra = parse_note(note.text.decode() + "\n" + lines).signatures
    merged = list(note.signatures)
    for sig in extra:
        if sig not in merged:
            merged.append(sig)
    return Note(note.text, tuple(merged))
