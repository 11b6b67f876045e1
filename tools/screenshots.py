"""Screenshots of the console's main pages, and how long each took to load.

    python tools/screenshots.py --url http://127.0.0.1:8080 --key ADMIN_KEY --out docs/screenshots

Drives Debian's Chromium through Playwright (never `playwright install`). `make screenshots`
runs it against the demo library.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip
PAGES = [
    ("find", "/console/find?by=title&q=metamorphosis"),
    ("work", None),  # the first work found
    ("copy", "/console/copies/1"),
    ("dataset", None),
    ("corpus", None),
    ("log", "/console/log"),
    ("audits", "/console/audits"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", default="docs/screenshots")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(a.url + "/console/login")
        page.fill("#key", a.key)
        page.click("button[type=submit]")
        page.wait_for_url(a.url + "/console")
        page.goto(a.url + "/console/find?by=title&q=a")
        work = page.locator("a[href^='/console/works/']").first.get_attribute("href")
        page.goto(a.url + "/console")
        dataset = page.locator("a[href^='/console/datasets/']").first.get_attribute("href")
        page.goto(a.url + work)
        links = page.locator("a[href^='/console/corpora/']")
        corpus = links.first.get_attribute("href") if links.count() else None
        for name, path in PAGES:
            path = path or {"work": work, "dataset": dataset, "corpus": corpus}[name]
            if not path:
                continue
            timings = []
            for _ in range(3):  # the first load includes the server's lazy imports
                t0 = time.perf_counter()
                page.goto(a.url + path)
                timings.append((time.perf_counter() - t0) * 1000)
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"{name:<8} first {timings[0]:7.1f} ms, then {min(timings[1:]):7.1f} ms  {path}")
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.context.add_cookies(page.context.cookies())
        phone.goto(a.url + "/console/find?by=title&q=metamorphosis")
        phone.screenshot(path=str(out / "find-phone.png"))
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
