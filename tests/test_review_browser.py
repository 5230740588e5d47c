"""The review page in a real browser: Debian's chromium, headless, driven by Playwright for Python.

Playwright's own browser download cannot work here, so the tests point it at the system chromium
(.ci/run installs it) and skip, saying why, where it is absent.
"""

from __future__ import annotations

import json
import shutil

import pytest

from synthdistill.cli import main
from synthdistill.review.server import ReviewServer

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: apt-get install -y chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def page(review_run):
    _, run, _ = review_run
    with ReviewServer(run) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # The page's CSP forbids eval, which Playwright's wait_for_function needs; bypassing it also shows
        # that the page's own rendering keeps markup harmless, without the CSP's help.
        tab = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(server.url)
        tab.wait_for_selector("body[data-ready='1']")
        yield tab, run, server, errors
        browser.close()


def count_text(tab) -> str:
    return tab.locator("#count").inner_text()


def test_filter_accept_reject_edit_reload_then_export(page, tmp_path, capfd):
    tab, run, _, errors = page
    assert "of 24 records" in count_text(tab)  # the last stage by default
    tab.select_option("#f-kept", "false")
    tab.wait_for_function("document.querySelector('#count').innerText.includes('of 16 records')")
    tab.select_option("#f-critic", "answer_match")
    tab.select_option("#f-verdict", "pass")
    tab.wait_for_function("document.querySelector('#count').innerText.includes('of 0 records')")
    tab.select_option("#f-verdict", "")
    tab.select_option("#f-kept", "true")
    tab.wait_for_function("document.querySelector('#count').innerText.includes('of 8 records')")
    tab.keyboard.press("Escape")  # leave the filter, so keys reach the page
    ids = tab.locator(".record").evaluate_all("nodes => nodes.map(n => n.dataset.id)")

    tab.keyboard.press("a")
    tab.wait_for_selector(".record.selected .decision.accepted")
    tab.keyboard.press("j")
    tab.keyboard.press("r")
    tab.fill(".record.selected .reason", "skips a step")
    tab.keyboard.press("Enter")
    tab.wait_for_selector(".record.selected .decision.rejected")
    tab.keyboard.press("j")
    tab.keyboard.press("e")
    tab.fill(".record.selected .edit-rationale", "Two and two make four.")
    tab.fill(".record.selected .edit-answer", "4")
    tab.keyboard.press("Control+Enter")
    tab.wait_for_selector(".record.selected .decision.edited")
    assert tab.locator(".record.selected pre.value").first.inner_text() == "Two and two make four."

    lines = [json.loads(line) for line in (run / "review.jsonl").read_text().splitlines()]
    assert [(d["record_id"], d["action"]) for d in lines] == [
        (ids[0], "accept"),
        (ids[1], "reject"),
        (ids[2], "edit"),
    ]
    assert lines[1]["reason"] == "skips a step" and lines[2]["answer"] == "4"
    assert all(d["stage"] == "03-filter" for d in lines)

    tab.reload()
    tab.wait_for_selector("body[data-ready='1']")
    assert "of 8 records" in count_text(tab)  # the filters live in the address
    cards = tab.locator(".record")
    assert cards.nth(0).locator(".decision.accepted").count() == 1
    assert "skips a step" in cards.nth(1).locator(".decision.rejected").inner_text()
    assert cards.nth(2).locator(".decision.edited").count() == 1
    tab.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    assert (tmp_path / "review.png").stat().st_size > 10_000

    tab.keyboard.press("s")
    tab.wait_for_selector(".chart svg rect")
    assert tab.locator(".chart").count() == 4
    assert "rejected 1" in tab.locator("#stats .decisions").inner_text()
    assert errors == []

    capfd.readouterr()
    assert main(["export", str(run), "--format", "jsonl", "--out", str(tmp_path / "export")]) == 0
    rows = {
        r["id"]: r for r in map(json.loads, (tmp_path / "export" / "data.jsonl").read_text().splitlines())
    }
    assert ids[1] not in rows and len(rows) == 7
    assert (rows[ids[2]]["answer"], rows[ids[2]]["rationale"]) == ("4", "Two and two make four.")
    assert rows[ids[0]]["review"] == "accepted" and rows[ids[2]]["review"] == "edited"
    card = (tmp_path / "export" / "README.md").read_text()
    assert "1 accepted, 1 rejected, 1 edited" in card and "skips a step" in card


def test_markup_in_a_record_is_shown_as_text_and_never_runs(page, tmp_path):
    from conftest import HOSTILE_TEXT

    tab, _, _, errors = page
    tab.fill("#f-q", "onerror")
    tab.wait_for_function("document.querySelector('#count').innerText.includes('of 3 records')")
    rationales = tab.locator(".record pre.value").all_inner_texts()
    assert len(rationales) == 3 and all(HOSTILE_TEXT in text for text in rationales)
    assert tab.locator("#records img, #records script").count() == 0
    assert tab.evaluate("window.__pwned") is None
    tab.locator("details summary").first.click()  # the full record and samples, also as text
    assert tab.locator("#records img, #records script").count() == 0
    assert tab.evaluate("window.__pwned") is None
    tab.screenshot(path=str(tmp_path / "hostile.png"))
    assert errors == []
