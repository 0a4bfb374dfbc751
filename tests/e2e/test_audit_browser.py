"""The audit summary and item pages in headless Chromium (Debian's chromium, driven by Playwright): no
console errors, the token map visible, links that work, and hostile prompts shown as text that runs nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
BROWSER = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)
HOSTILE = ["<script>alert('x')</script>Tell me a joke", "<img src=x onerror=alert(1)> hello",
           "{{ config.items() }} {% raw %} and }} close",
           "<iframe src='http://127.0.0.1:9/i'></iframe><link rel=stylesheet href=http://127.0.0.1:9/s.css> "
           "<div style=\"background:url(http://127.0.0.1:9/b.png)\">fetch me</div>"]


@pytest.fixture(scope="module")
def report(tiny_dir, tmp_path_factory) -> Path:
    if BROWSER is None:
        pytest.skip("no chromium binary")
    tmp = tmp_path_factory.mktemp("audit")
    log = tmp / "log.jsonl"
    log.write_text("\n".join(json.dumps({"prompt": p, "label": "hostile"}) for p in HOSTILE) + "\nnot json\n")
    run = [sys.executable, "-m", "diffusiongemma.cli"]
    subprocess.run(run + ["audit", str(log), "--store", str(tmp / "a.db"), "--model", str(tiny_dir), "--budget", "8",
                          "--components", "mlps", "--component-budget", "9", "--max-new-tokens", "4"],
                   check=True, capture_output=True, timeout=600)
    subprocess.run(run + ["audit-report", str(tmp / "a.db"), "--html", str(tmp / "audit.html")], check=True,
                   capture_output=True, timeout=300)
    return tmp / "audit.html"


def _open(page, url, errors):
    # nothing outside the page's own files may be fetched (a hostile prompt's iframe, stylesheet, background)
    page.on("request", lambda r: errors.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:"))
            else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(url)


def test_summary_and_item_pages_in_a_real_browser(report):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        _open(page, report.as_uri(), errors)
        assert page.locator("#cards").is_visible() and page.locator("#items tr").count() == 6  # header + 5 rows
        body = page.inner_text("body")
        for text in HOSTILE:  # shown as the literal text, nothing interpreted
            assert text.replace("  ", " ") in body
        assert page.evaluate("document.querySelectorAll('body script, img[src=x]').length") == 0
        assert "not JSON" in body
        links = page.locator("#items a")
        assert links.count() == 4
        links.nth(1).click()
        page.wait_for_load_state()
        assert page.url.endswith("audit_items/item-000001.html")
        assert page.locator(".heat").is_visible() and "onerror=alert(1)" in page.inner_text(".heat")
        assert page.evaluate("document.querySelectorAll('img[src=x], body script').length") == 0
        # each unit drawn as its stored significance says: a finding coloured, the rest grey, dotted, no colour
        from diffusiongemma.attribution import Attribution
        from diffusiongemma.audit.store import AuditStore

        row = next(r for r in AuditStore(report.parent / "a.db", readonly=True).rows(status="done", full=True)
                   if r["key"] == "1")
        resolved = Attribution.from_dict(row["result"]).significance.resolved.tolist()
        drawn = page.evaluate("[...document.querySelectorAll('.heat .unit')].map(e => [e.classList.contains("
                              "'unresolved'), getComputedStyle(e).backgroundColor, getComputedStyle(e).textDecorationStyle])")
        assert len(drawn) == len(resolved) and False in resolved  # this item has an unresolved unit
        for ok, (unresolved, background, decoration) in zip(resolved, drawn):
            assert unresolved == (not ok)
            assert (background == "rgba(0, 0, 0, 0)" and decoration == "dotted") == (not ok)
        page.goto((report.parent / "audit_items" / "item-000003.html").as_uri())  # the fetching payload's page
        assert "fetch me" in page.inner_text("body")
        assert page.evaluate("document.querySelectorAll('iframe, link[href^=http], [style*=\\'127.0.0.1\\']').length") == 0
        assert errors == []
        browser.close()
