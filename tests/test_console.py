"""The inspection console in a real browser: Playwright for Python drives Debian's headless
Chromium against `copytrail serve` on loopback. Skips with the reason where Chromium is absent
(`make test` installs it when it runs as root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from copytrail import Library

from .conftest import EXAMPLES, REPO, run_cli
from .test_server import Server, _free_port

CHROMIUM = os.environ.get("COPYTRAIL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip
PASSAGE = (
    "One morning, when Gregor Samsa woke from troubled dreams, he found himself transformed "
    "in his bed into a horrible vermin"
)


def make_console_library(root: Path) -> dict[str, str]:
    """A small library with something on every page; returns an API key per role."""
    lib = Library.init(root)
    lib.add_source("gutenberg", kind="public-domain", license="Public domain in the USA",
                   provided_by="Project Gutenberg", acquired="2024-01-15")  # fmt: skip
    lib.ingest([str(EXAMPLES)], source="gutenberg", dataset="pg@1")
    lib.import_works(REPO / "examples" / "works.csv", "class")
    lib.audit("class", root / "audit")
    lib.guard_index("library", all_datasets=True)
    lib.train_tokenizer(["pg@1"], 600, root / "tok.json")
    (root / "policy.toml").write_text(
        'datasets = ["pg@1"]\ntokenizer = "tok.json"\nshard_tokens = 60000\n'
    )
    lib.build("c1", root / "policy.toml")
    lib.record_run("model-a", "c1")
    lib.add_hold("Doe v. Acme, 26-cv-1", "dataset", "pg@1")
    keys = {r: lib.add_key(f"console-{r}", r)["key"] for r in ("checker", "auditor", "admin")}
    lib.checkpoint()
    lib.close()
    return keys


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    pw = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    root = tmp_path_factory.mktemp("console") / "lib"
    keys = make_console_library(root)
    server = Server(root, _free_port(), guard="library")
    server.start()
    p = pw.sync_playwright().start()
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield server, keys, browser, root
    browser.close()
    p.stop()
    server.kill()


def _signed_in(browser, server, key: str):
    page = browser.new_context(accept_downloads=True).new_page()
    page.goto(server.url + "/console")
    assert "/console/login" in page.url
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/console")
    return page


def test_sign_in_and_out(console):
    server, keys, browser, _ = console
    page = browser.new_context().new_page()
    page.goto(server.url + "/console/login")
    page.fill("#key", "ct_not-a-key")
    page.click("button[type=submit]")
    assert "unknown or revoked API key" in page.content()
    page = _signed_in(browser, server, keys["auditor"])
    assert "console-auditor" in page.text_content("header")
    cookie = next(c for c in page.context.cookies() if c["name"] == "ct_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("text=Sign out")
    page.wait_for_url("**/console/login")
    page.goto(server.url + "/console/audits")
    assert "/console/login" in page.url  # the session is gone


def test_find_by_title_isbn_and_passage_then_the_work_page(console):
    server, keys, browser, _ = console
    page = _signed_in(browser, server, keys["auditor"])
    page.fill("#q", "Metamorphosis")
    page.check("input[value=title]")
    page.click("form.find button")
    assert "PG5200" in page.text_content("main")
    page.fill("#q", PASSAGE)
    page.check("input[value=passage]")
    page.click("form.find button")
    assert "Copies holding the passage" in page.content()
    assert page.locator("main a[href^='/console/copies/']").count() >= 1
    isbn = _an_isbn(console[3])
    if isbn:
        page.goto(server.url + f"/console/find?by=isbn&q={isbn}")
        assert (
            "No listed work matches" not in page.content()
            or "No copy matches" not in page.content()
        )
    page.goto(server.url + "/console/works/class/PG5200")
    main = page.text_content("main")
    assert "Copies of this work" in main and "gutenberg" in main and "Project Gutenberg" in main
    assert "corpus" in main  # where each copy went
    assert "Doe v. Acme" in main  # the hold in force
    # An auditor sees no passages; the admin sees them side by side.
    assert "passage shown to admins" in main
    admin = _signed_in(browser, server, keys["admin"])
    admin.goto(server.url + "/console/works/class/PG5200")
    assert admin.locator(".sides blockquote").count() >= 2
    assert "passage shown to admins" not in admin.text_content("main")


def _an_isbn(root: Path) -> tuple[str, str]:
    lib = Library.open(root)
    try:
        return next((w["work_id"], w["isbns"][0]) for w in lib.works("class") if w.get("isbns"))
    finally:
        lib.close()


def test_role_limits(console):
    server, keys, browser, _ = console
    checker = _signed_in(browser, server, keys["checker"])
    checker.goto(server.url + "/console/copies/1")
    assert "may not see this page" in checker.text_content("main")
    checker.goto(server.url + f"/console/find?by=passage&q={PASSAGE}")
    assert "Verbatim check" in checker.text_content("main")
    r = checker.request.post(server.url + "/console/copies/1/text", form={"reason": "x"})
    assert r.status == 403
    auditor = _signed_in(browser, server, keys["auditor"])
    auditor.goto(server.url + "/console/copies/1")
    assert "does not see texts" in auditor.text_content("main")
    auditor.goto(server.url + "/console/produce")
    assert "may not see this page" in auditor.text_content("main")
    assert auditor.locator("nav >> text=Produce").count() == 0


def test_copy_text_is_a_recorded_disclosure(console):
    server, keys, browser, root = console
    admin = _signed_in(browser, server, keys["admin"])
    admin.goto(server.url + "/console/copies/1")
    admin.fill("#reason", "expert review for Doe v. Acme")
    admin.click("text=Show the text")
    assert "Disclosure recorded as ledger event" in admin.text_content("main")
    assert len(admin.text_content("pre.text")) > 1000
    lib = Library.open(root)
    last = [e for e in lib.events() if e["type"] == "disclosed"][-1]
    lib.close()
    assert last["actor"] == "console:console-admin"
    assert last["payload"]["reason"] == "expert review for Doe v. Acme"
    assert last["subjects"]["copy_ids"] == [1]


def test_proof_download_verifies(console, tmp_path):
    server, keys, browser, root = console
    page = _signed_in(browser, server, keys["auditor"])
    page.goto(server.url + "/console/copies/1")
    with page.expect_download() as dl:
        page.click("text=Download the inclusion proof")
    path = tmp_path / "proof.json"
    dl.value.save_as(path)
    assert json.loads(path.read_text())["verified"]
    p = run_cli("verify", "--proof", str(path))
    assert "inclusion proof verifies" in p.stdout


def test_production_from_the_console(console):
    server, keys, browser, root = console
    admin = _signed_in(browser, server, keys["admin"])
    admin.goto(server.url + "/console/produce")
    admin.fill("#request", "RFP 12: Class Works")
    admin.select_option("#scope", "list:class")
    admin.check("input[name=with_text]")
    admin.click("form.stack button")
    status = admin.text_content("[role=status]")
    assert "Produced" in status and "RFP12C0000001" in status
    folder = Path(admin.text_content("[role=status] code"))
    dat = (folder / "loadfile.dat").read_bytes().decode("utf-8-sig")
    assert dat.startswith("\u00feBEGBATES\u00fe\x14")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["requester"] == "console:console-admin" and manifest["items"] >= 1
    assert (folder / "TEXT" / "RFP12C0000001.txt").exists()


def test_forms_without_the_csrf_token_are_refused(console):
    server, keys, browser, _ = console
    admin = _signed_in(browser, server, keys["admin"])
    for path, form in (
        ("/console/produce", {"request": "x", "scope": "list:class"}),
        ("/console/copies/1/text", {"reason": "r"}),
        ("/console/log/verify", {}),
        ("/console/logout", {}),
    ):
        r = admin.request.post(server.url + path, form={**form, "csrf": "forged"})
        assert r.status == 403, path
        assert "security token" in r.text()
    # A cookie signed with another secret is no session at all.
    r = httpx.get(server.url + "/console/audits", cookies={"ct_session": "00.9999999999.aa.bb"})
    assert r.status_code in (303, 307) or "Sign in" in r.text


def test_pages_render_for_every_section(console):
    server, keys, browser, _ = console
    admin = _signed_in(browser, server, keys["admin"])
    for path, expect in (
        ("/console/datasets/pg@1", "Copies by status"),
        ("/console/corpora/c1", "Tokens by source kind"),
        ("/console/models/model-a", "Tokens by dataset"),
        ("/console/audits", "class"),
        ("/console/holds", "Doe v. Acme"),
        ("/console/deletions", "Nothing was deleted"),
        ("/console/log", "Latest checkpoint"),
    ):
        admin.goto(server.url + path)
        assert expect in admin.text_content("main"), path
    assert admin.locator("svg.chart").count() == 0  # the log page has no chart
    admin.goto(server.url + "/console/corpora/c1")
    assert admin.locator("svg.chart rect").count() >= 3
    admin.goto(server.url + "/console/log")
    admin.click("text=Run verify (quick)")
    assert "intact" in admin.text_content("main")
    admin.goto(server.url + "/console/corpora/no-such")
    assert "no corpus" in admin.text_content("main")


def test_screenshots_script_runs(console, tmp_path):
    """`make screenshots` writes the main pages as PNGs (here into a temporary folder)."""
    server, keys, _, _ = console
    out = tmp_path / "shots"
    p = subprocess.run(
        [sys.executable, str(REPO / "tools" / "screenshots.py"), "--url", server.url,
         "--key", keys["admin"], "--out", str(out), "--chromium", CHROMIUM],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    shots = sorted(f.name for f in out.glob("*.png"))
    assert "work.png" in shots and "find-phone.png" in shots
    assert all((out / s).stat().st_size > 5000 for s in shots)
