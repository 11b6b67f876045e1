"""EPUB 2 and 3: text of the spine documents in reading order, metadata from the OPF package
(title, creators, language, identifiers including ISBN). DRM-encrypted books are unreadable."""

from __future__ import annotations

import io
import posixpath
import zipfile

from copytrail.ingest.limits import Limits
from copytrail.ingest.readers import Extraction, Refused, Unreadable
from copytrail.ingest.readers.html import decode_html, html_to_text

# Font obfuscation is not DRM: the text is still readable.
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")


def _xml(data: bytes):  # type: ignore[no-untyped-def]
    from lxml import etree

    if b"<!ENTITY" in data[: 1 << 20] or b"<!entity" in data[: 1 << 20]:
        # EPUB XML has no use for entity declarations; they are how billion-laughs attacks work.
        raise Refused("EPUB XML declares entities (entity expansion is refused)")

    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, huge_tree=False)
    root = etree.fromstring(data, parser)
    if root is None:
        raise Unreadable("EPUB XML could not be parsed")
    return root


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


class _Inflation:
    """Bytes read out of one EPUB (members and text), held to the ratio and archive limits."""

    def __init__(self, limits: Limits, compressed: int) -> None:
        self.limits = limits
        self.allowed = limits.max_inflated(compressed)
        self.used = 0

    def take(self, n: int, what: str) -> None:
        self.used += n
        if self.used > self.allowed:
            raise Refused(
                f"EPUB inflates past {self.allowed} bytes at {what} (the ratio and archive "
                "limits: --max-ratio, --max-archive-bytes)"
            )


def _read_member(zf: zipfile.ZipFile, name: str, budget: _Inflation) -> bytes:
    max_bytes = budget.limits.max_member_bytes
    info = zf.getinfo(name)
    if info.file_size > max_bytes:
        raise Refused(f"EPUB member {name!r} is {info.file_size} bytes, over the limit")
    with zf.open(info) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Refused(f"EPUB member {name!r} inflates past the limit (zip bomb?)")
    budget.take(len(data), name)
    return data


def read_epub(data: bytes, limits: Limits | None = None) -> Extraction:
    limits = limits or Limits()
    budget = _Inflation(limits, len(data))
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise Unreadable(f"corrupt EPUB (not a valid zip: {e})") from e
    try:
        names = set(zf.namelist())
        if "META-INF/rights.xml" in names:
            raise Unreadable("encrypted EPUB (DRM rights.xml present)")
        encrypted: set[str] = set()
        if "META-INF/encryption.xml" in names:
            enc = _xml(_read_member(zf, "META-INF/encryption.xml", budget))
            for ed in enc.iter():
                if _local(ed.tag) != "EncryptedData":
                    continue
                algo = next(
                    (
                        m.get("Algorithm", "")
                        for m in ed.iter()
                        if _local(m.tag) == "EncryptionMethod"
                    ),
                    "",
                )
                uri = next(
                    (r.get("URI", "") for r in ed.iter() if _local(r.tag) == "CipherReference"), ""
                )
                if algo not in _FONT_OBFUSCATION:
                    encrypted.add(uri)
        if "META-INF/container.xml" not in names:
            raise Unreadable("not an EPUB: META-INF/container.xml is missing")
        container = _xml(_read_member(zf, "META-INF/container.xml", budget))
        opf_path = next(
            (e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile"), None
        )
        if not opf_path or opf_path not in names:
            raise Unreadable("EPUB container names no package (OPF) file that exists")
        opf = _xml(_read_member(zf, opf_path, budget))
        base = posixpath.dirname(opf_path)

        title = None
        creators: list[str] = []
        identifiers: list[dict[str, str]] = []
        language = None
        for el in opf.iter():
            name, value = _local(el.tag), (el.text or "").strip()
            if not value:
                continue
            if name == "title" and title is None:
                title = value
            elif name == "creator":
                creators.append(value)
            elif name == "language" and language is None:
                language = value
            elif name == "identifier":
                scheme = next((v for k, v in el.attrib.items() if _local(k) == "scheme"), "")
                identifiers.append({"scheme": scheme, "value": value})

        manifest = {
            el.get("id"): el.get("href")
            for el in opf.iter()
            if _local(el.tag) == "item" and el.get("id") and el.get("href")
        }
        spine = [el.get("idref") for el in opf.iter() if _local(el.tag) == "itemref"]
        parts: list[str] = []
        replacements = 0
        seen: dict[str, int] = {}
        for idref in spine:
            href = manifest.get(idref)
            if not href:
                continue
            member = posixpath.normpath(posixpath.join(base, href.split("#", 1)[0]))
            if member in encrypted or member.lstrip("/") in encrypted:
                raise Unreadable(f"encrypted EPUB (DRM on {member})")
            if member not in names:
                continue
            seen[member] = seen.get(member, 0) + 1
            if seen[member] > limits.max_spine_repeats:
                raise Refused(
                    f"EPUB spine lists {member!r} more than {limits.max_spine_repeats} times "
                    "(text amplification)"
                )
            markup, _enc, rep = decode_html(_read_member(zf, member, budget))
            replacements += rep
            text, _meta, _lang = html_to_text(markup, limits.max_html_depth)
            budget.take(len(text), f"the text of {member}")
            parts.append(text)
        if not spine:
            raise Unreadable("EPUB package has an empty spine (no reading order)")
    except (zipfile.BadZipFile, KeyError, EOFError, OSError) as e:
        raise Unreadable(f"corrupt EPUB: {e}") from e
    finally:
        zf.close()

    isbns = [i["value"] for i in identifiers if "isbn" in (i["scheme"] + i["value"]).lower()]
    # Unlabelled identifiers that are valid ISBNs count too (normalised and checked later).
    isbns += [i["value"] for i in identifiers if i["value"] not in isbns]
    return Extraction(
        text="\n".join(parts),
        media_type="application/epub+zip",
        title=title,
        authors=creators,
        isbns=isbns,
        language=language,
        replacements=replacements,
        extra={"identifiers": identifiers, "spine_documents": len(parts)},
    )
