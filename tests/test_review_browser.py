"""The review page in a real browser: Debian's chromium, headless, driven by Playwright for Python.

Playwright's own browser download cannot work here, so the tests point it at the system chromium
(.ci/install-browser installs it, from README's test command and .ci/run). Where it is absent they skip,
saying why, except under CI=true, where a skipped browser test would hide a missing install step.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from synthdistill.cli import main
from synthdistill.review.server import ReviewServer

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("chromium not found under CI=true; bash .ci/install-browser installs it", pytrace=False)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: bash .ci/install-browser")
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


def test_side_by_side_view_shows_a_questions_samples_and_saves_decisions_made_there(page, tmp_path):
    from conftest import HOSTILE_TEXT

    tab, run, _, errors = page
    tab.select_option("#f-kept", "true")  # one kept record a question: its group holds the dropped ones
    tab.wait_for_function("document.querySelector('#count').innerText.includes('of 8 records')")
    tab.keyboard.press("Escape")
    tab.keyboard.press("j")
    chosen = tab.locator("#records > .record.selected").get_attribute("data-id")
    tab.keyboard.press("g")
    tab.wait_for_selector("#group > .member >> nth=2")
    members = tab.locator("#group > .member")
    assert members.count() == 3 and "of 3 records in 03-filter · 1 kept" in tab.inner_text("#group-count")
    assert tab.locator("#group > .member.anchor.selected").get_attribute("data-id") == chosen
    assert tab.locator("#group .kept").count() == 1 and tab.locator("#group .dropped").count() == 2
    verdicts = tab.locator("#group .verdict-list").all_inner_texts()
    assert len(verdicts) == 3 and all("answer_match" in text for text in verdicts)
    assert sum("answer_match pass 1.000" in text for text in verdicts) == 1
    assert "(gold)" in tab.inner_text("#group-answers")
    question = tab.locator("#records > .record.selected .input dd").first.inner_text()
    assert question in tab.inner_text("#group-question")
    # Side by side: the columns share a top edge, left to right, and the view sits beside the list.
    boxes = [members.nth(i).bounding_box() for i in range(3)]
    assert len({round(box["y"]) for box in boxes}) == 1
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
    assert tab.locator("#group-view").bounding_box()["x"] > tab.locator("#records").bounding_box()["x"] + 200
    ids = members.evaluate_all("nodes => nodes.map(n => n.dataset.id)")

    # Keys act on the group now: j moves along the columns, r rejects the selected one; a button on the
    # chosen (kept) one accepts it; e edits a third.
    anchor = ids.index(chosen)
    tab.keyboard.press("j")
    assert tab.locator("#group > .member.selected").get_attribute("data-id") == ids[min(anchor + 1, 2)]
    dropped = [i for i in ids if i != chosen]
    members.nth(ids.index(dropped[0])).locator(".badges").click()
    tab.keyboard.press("r")
    tab.fill("#group > .member.selected .reason", "off by one")
    tab.keyboard.press("Enter")
    tab.wait_for_selector(f"#group > .member[data-id='{dropped[0]}'] .decision.rejected")
    members.nth(anchor).locator("button.accept").click()
    tab.wait_for_selector(f"#group > .member[data-id='{chosen}'] .decision.accepted")
    members.nth(ids.index(dropped[1])).locator(".badges").click()
    tab.keyboard.press("e")
    tab.fill("#group > .member.selected .edit-rationale", "Counted again.")
    tab.keyboard.press("Control+Enter")
    tab.wait_for_selector(f"#group > .member[data-id='{dropped[1]}'] .decision.edited")

    lines = [json.loads(line) for line in (run / "review.jsonl").read_text().splitlines()]
    assert [(d["record_id"], d["action"], d["stage"]) for d in lines] == [
        (dropped[0], "reject", "03-filter"),
        (chosen, "accept", "03-filter"),
        (dropped[1], "edit", "03-filter"),
    ]
    assert lines[0]["reason"] == "off by one" and lines[2]["rationale"] == "Counted again."
    # The list's card of the record accepted in the group shows it too.
    assert tab.locator(f"#records > .record[data-id='{chosen}'] .decision.accepted").count() == 1

    # The open group lives in the address: a reload shows it again, decisions and all.
    tab.reload()
    tab.wait_for_selector("body[data-ready='1']")
    tab.wait_for_selector("#group > .member >> nth=2")
    badges = {i: tab.locator(f"#group > .member[data-id='{i}'] .decision").all_inner_texts() for i in ids}
    assert badges[dropped[0]] == ["rejected: off by one"] and badges[chosen] == ["accepted"]
    assert badges[dropped[1]] == ["accepted", "edited"]  # an edit accepts the record
    assert "Counted again." in tab.locator(f"#group > .member[data-id='{dropped[1]}'] pre.value").inner_text()
    tab.screenshot(path=str(tmp_path / "side-by-side.png"))
    tab.keyboard.press("x")
    assert tab.locator("#group-view").is_hidden()

    # Markup from the teacher stays text here too.
    tab.select_option("#f-kept", "")
    tab.fill("#f-q", "onerror")
    tab.wait_for_function("document.querySelector('#count').innerText.includes('of 3 records')")
    tab.keyboard.press("Escape")
    tab.keyboard.press("g")
    tab.wait_for_selector("#group > .member >> nth=2")
    rationales = tab.locator("#group > .member pre.value").all_inner_texts()
    assert len(rationales) == 3 and all(HOSTILE_TEXT in text for text in rationales)
    assert tab.locator("#group img, #group script").count() == 0
    assert tab.evaluate("window.__pwned") is None
    assert errors == []


def test_side_by_side_view_runs_under_the_pages_own_csp_and_stays_in_sight(page, tmp_path):
    tab, _, server, errors = page
    strict = tab.context.browser.new_page(viewport={"width": 1280, "height": 900})  # the CSP applies
    console: list[str] = []
    strict.on("console", lambda message: console.append(message.text))
    strict.on("pageerror", lambda error: errors.append(str(error)))
    strict.goto(server.url)
    strict.wait_for_selector("body[data-ready='1']")
    strict.locator("#records > .record").nth(5).locator("button.side-by-side").click()
    strict.wait_for_selector("#group > .member >> nth=2")
    assert strict.locator("#records > .record.selected").get_attribute("data-index") == "5"
    anchor = int(strict.locator("#group > .member.anchor").get_attribute("data-index"))
    strict.keyboard.press("j")  # the keys act on the group once it is open
    assert strict.locator("#group > .member.selected").get_attribute("data-index") == str(min(anchor + 1, 2))
    assert strict.locator("#records > .record.selected").get_attribute("data-index") == "5"
    strict.mouse.wheel(0, 3000)
    strict.wait_for_timeout(200)
    view = strict.locator("#group-view").bounding_box()
    filters = strict.locator("#filters").bounding_box()
    assert view["y"] >= filters["y"] + filters["height"] and view["y"] < 900  # sticky below the filters
    strict.screenshot(path=str(tmp_path / "side-by-side-scrolled.png"))
    assert [text for text in console if "Content Security Policy" in text] == []
    assert errors == []
