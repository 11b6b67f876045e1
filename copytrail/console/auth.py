"""Console sessions: an API key is exchanged once for a signed, HTTP-only, SameSite=Strict
cookie; every form carries a CSRF token bound to the session.

    cookie = KEYNAME_HEX . EXPIRES . NONCE . HMAC-SHA256(secret, the three before)
    csrf   = HMAC-SHA256(secret, "csrf:" + NONCE)

The secret lives in LIBRARY/console/secret (0600), so every `serve` worker of a library accepts
the same sessions. Each request re-reads the key's role and revocation: a revoked key's sessions
end at once. Signing out forgets the nonce in this process and clears the cookie."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "ct_session"
LOGIN_COOKIE = "ct_login"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    key_name: str
    role: str
    nonce: str
    csrf: str


class Sessions:
    def __init__(self, root: Path | None) -> None:
        # No library folder (an app over a stand-in library): a secret for this process only.
        self.secret = _secret(root / "console" / "secret") if root else secrets.token_bytes(32)
        self._ended: set[str] = set()

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, key_name: str) -> str:
        expires = int(time.time()) + SESSION_SECONDS
        body = f"{key_name.encode().hex()}.{expires}.{secrets.token_hex(16)}"
        return f"{body}.{self._sign(body)}"

    def csrf_for(self, nonce: str) -> str:
        return self._sign("csrf:" + nonce)[:40]

    def parse(self, cookie: str | None) -> tuple[str, str] | None:
        """(key name, nonce) of a valid, unexpired, not signed-out cookie."""
        if not cookie or len(cookie) > 1000:
            return None
        parts = cookie.split(".")
        if len(parts) != 4:
            return None
        body, sig = ".".join(parts[:3]), parts[3]
        if not hmac.compare_digest(self._sign(body), sig):
            return None
        name_hex, expires, nonce = parts[:3]
        try:
            if int(expires) < time.time() or nonce in self._ended:
                return None
            return bytes.fromhex(name_hex).decode(), nonce
        except ValueError:
            return None

    def end(self, nonce: str) -> None:
        self._ended.add(nonce)

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf, str(token))


def _secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):  # first writer wins; others read its secret
            os.link(tmp, path)
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())
