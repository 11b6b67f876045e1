"""RFC 3161 time-stamp tokens on checkpoints: a time-stamping authority (TSA) signs "this hash
existed at this time", so a checkpoint's date does not rest on the operator's clock.

The token is over SHA-256 of the checkpoint's note text. Checking it: the token's imprint is
that hash, the CMS signature verifies with the TSA certificate inside the token, the certificate
may be used for time-stamping, and (given the TSA's CA certificate) it was issued by that CA.
`openssl ts -verify -data checkpoint.txt -in token.tsr -token_in -CAfile ca.pem` checks the
same with a tool everyone has.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from copytrail.errors import CopytrailError, InvalidInput

TSA_TIMEOUT_S = 15
MAX_REPLY_BYTES = 1 << 20
_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class TimestampError(CopytrailError):
    pass


def request_token(url: str, data: bytes) -> bytes:
    """Ask the TSA at `url` to time-stamp SHA-256(data); returns the token (DER ContentInfo)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"--tsa takes an http(s) URL, not {url[:80]!r}")
    nonce = secrets.randbits(63)
    req = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(data).digest(),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    http = urllib.request.Request(
        url,
        data=req.dump(),
        headers={"Content-Type": "application/timestamp-query"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=TSA_TIMEOUT_S) as r:
            body = r.read(MAX_REPLY_BYTES + 1)
    except (urllib.error.URLError, OSError) as e:
        raise TimestampError(f"the time-stamping authority at {url} did not answer: {e}") from None
    if len(body) > MAX_REPLY_BYTES:
        raise TimestampError("the time-stamping authority's reply is too large")
    try:
        resp = tsp.TimeStampResp.load(body)
        status = resp["status"]["status"].native
        token = resp["time_stamp_token"]
    except Exception as e:
        raise TimestampError(f"the time-stamping authority's reply is not RFC 3161: {e}") from None
    if status not in ("granted", "granted_with_mods") or token.native is None:
        raise TimestampError(f"the time-stamping authority refused: {status}")
    der = token.dump()
    info = verify_token(der, data)
    if info["nonce"] != nonce:
        raise TimestampError("the time-stamp reply does not answer this request (nonce differs)")
    return der


def verify_token(der: bytes, data: bytes, ca_file: Path | None = None) -> dict[str, Any]:
    """Check a token against the data it should time-stamp; returns what it says. Raises
    TimestampError when any check fails."""
    try:
        content = cms.ContentInfo.load(der)
        signed = content["content"]
        tst_der = signed["encap_content_info"]["content"].contents
        tst = tsp.TSTInfo.load(tst_der)
        signer = signed["signer_infos"][0]
        certs = [c.chosen for c in signed["certificates"] or []]
    except Exception as e:
        raise TimestampError(f"not an RFC 3161 time-stamp token: {e}") from None
    imprint = tst["message_imprint"]
    algo = imprint["hash_algorithm"]["algorithm"].native
    if algo not in _HASHES:
        raise TimestampError(f"time-stamp uses {algo}; sha256/384/512 are accepted")
    h = hashlib.new(algo, data).digest()
    if imprint["hashed_message"].native != h:
        raise TimestampError("the time-stamp is for other data (its imprint differs)")
    cert = _signer_cert(signer, certs)
    _check_signature(signer, tst_der, cert)
    eku = _eku(cert)
    if "1.3.6.1.5.5.7.3.8" not in eku:
        raise TimestampError("the signing certificate is not for time-stamping (no EKU)")
    out = {
        "gen_time": tst["gen_time"].native.isoformat(),
        "serial": tst["serial_number"].native,
        "nonce": tst["nonce"].native,
        "tsa": cert.subject.rfc4514_string(),
        "chain_checked": False,
    }
    if ca_file is not None:
        ca = x509.load_pem_x509_certificate(Path(ca_file).read_bytes())
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            issuer = ca.subject.rfc4514_string()
            raise TimestampError(
                f"the TSA certificate ({out['tsa']}) was not issued by {issuer}"
            ) from None
        out["chain_checked"] = True
    return out


def _signer_cert(signer: Any, certs: list[Any]) -> x509.Certificate:
    sid = signer["sid"]
    for c in certs:
        if sid.name == "issuer_and_serial_number":
            want = sid.chosen
            if c.serial_number == want["serial_number"].native and c.issuer == want["issuer"]:
                return x509.load_der_x509_certificate(c.dump())
        elif c.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(c.dump())
    raise TimestampError("the token does not carry its signing certificate (ask with cert_req)")


def _check_signature(signer: Any, tst_der: bytes, cert: x509.Certificate) -> None:
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise TimestampError(f"time-stamp signed with {digest_name}; not accepted")
    attrs = signer["signed_attrs"]
    if not attrs:
        raise TimestampError("the token has no signed attributes")
    digest = next(
        (a["values"][0].native for a in attrs if a["type"].native == "message_digest"), None
    )
    if digest != hashlib.new(digest_name, tst_der).digest():
        raise TimestampError("the token's content does not match its signed digest")
    # The signature covers the attributes DER-encoded as a SET (RFC 5652 section 5.4).
    signed_bytes = b"\x31" + attrs.dump()[1:]
    sig = signer["signature"].native
    key = cert.public_key()
    algo = _HASHES[digest_name]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signed_bytes, padding.PKCS1v15(), algo)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, signed_bytes, ec.ECDSA(algo))
        else:
            raise TimestampError("the TSA key type is not supported (RSA or ECDSA)")
    except InvalidSignature:
        raise TimestampError("the time-stamp's signature does not verify") from None


def _eku(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return set()
    return {u.dotted_string for u in ext.value}


def encode(der: bytes) -> str:
    return base64.b64encode(der).decode()


def decode(text: str) -> bytes:
    return base64.b64decode(text)
