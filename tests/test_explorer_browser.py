"""The explorer in a real browser: Debian's headless Chromium driven by Playwright (pointed at
/usr/bin/chromium: Playwright never downloads a browser here), against the kit under gunicorn
on loopback. Opens the overview, applies a filter, opens a transcript, checks the pages, saves
screenshots, and checks that nothing the pages load leaves this server. Then the quality views
(Quality by language, Actions, Unrecognized) on the day of the quality fixtures (tests/fixtures/
quality/, hand counts in quality_support.py). Few and fast: one browser for the module.
Skipped, with the reason, when the browser or Playwright is missing (`.ci/run` installs
Chromium)."""

from __future__ import annotations

import os
import pathlib
import shutil
from datetime import datetime, timedelta
from typing import Any, Iterator

import pytest

from bench.quality import rows as bench_month
from handlers.store import EventStore, LogEvent, utcnow
from logs_support import cdr_body, message_body, row_of
from quality_support import EXPECTED_UNRECOGNIZED, FIXTURE_START, log_event, shifted
from testsupport.gunicorn_process import serve

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER, PASSWORD = "analyst", "browser-pass"
SCREENSHOTS = pathlib.Path(os.environ.get("EXPLORER_SCREENSHOTS", "")) \
    if os.environ.get("EXPLORER_SCREENSHOTS") else None

pytestmark = pytest.mark.slow
QUALITY_PERIOD = "period=custom&since=2026-01-05&until=2026-01-05"
MONTH_END = datetime(2025, 6, 1)
MONTH = "period=custom&since=2025-05-02&until=2025-05-31"
WORSE = "rgb(164, 38, 44)"     # explorer.css: a rate below the assistant language's

# Session ids a browser would rewrite in a path (dot segments, even percent-encoded; a query;
# a fragment; a double slash): each must still open its own transcript.
ODD_IDS = ["..", ".", "a//b", "%2e%2e", "x/../y", "q?x=1#frag", "./"]
RLO = "\u202e"   # RIGHT-TO-LEFT OVERRIDE: shows what follows it, to the paragraph's end, mirrored
# Where `needle` is drawn inside `element`: [left, right] of the first text node holding it.
TEXT_BOX = """([element, needle]) => {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(needle);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + needle.length);
      const box = range.getBoundingClientRect();
      return [box.left, box.right];
    }
  }
  return null;
}"""



def conversation(session: str, language: str, turns: list[tuple[str, str | None, str]],
                 start: Any, failed_at: int | None = None) -> list[LogEvent]:
    rows = []
    for index, (received, original, reply) in enumerate(turns):
        body = message_body(session=session, text=received, reply=reply,
                            customer_language=language)
        variables = body["payload"]["response"]["context"]["skills"]["actions skill"][
            "skill_variables"]
        if original:
            variables["original_input"] = original
        if index == failed_at:
            variables["translation_failed"] = True
        rows.append(row_of(body, start + timedelta(minutes=index)))
    return rows


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    playwright_api = pytest.importorskip("playwright.sync_api",
                                         reason="Playwright's Python package is not installed")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("explorer-browser")
    url = f"sqlite:///{folder}/events.sqlite3"
    store = EventStore.open(url)
    now = utcnow() - timedelta(hours=3)
    rows = conversation("sess-es-1", "es", [
        ("I want to know where my order is", "Quiero saber dónde está mi pedido",
         "Su pedido llega mañana."),
        ("Can I change the address?", "¿Puedo cambiar la dirección?",
         "Sí, desde su cuenta."),
        ("hablar con una persona", None, "Un momento, le paso con un agente."),
    ], now, failed_at=2)
    rows += conversation("sess-en-1", "en", [("Hello", None, "Hi! How can I help?"),
                                             ("Reset my password", None,
                                              "I sent a link to [email].")],
                         now + timedelta(minutes=20))
    rows += conversation("sess-fr-1", "fr", [("Where is my parcel", "Où est mon colis",
                                              "Votre colis est en route.")],
                         now + timedelta(minutes=40))
    for index in range(30):
        language = ("en", "es", "de")[index % 3]
        rows += conversation(f"bulk-{index}", language, [("hi", None, "Hello")],
                             now - timedelta(hours=index % 20, minutes=index))
    # Two days ago, outside the default 24 hours: ids a path would not carry, and a turn full of
    # right-to-left overrides (found with the search).
    earlier = now - timedelta(days=2)
    for index, session in enumerate(ODD_IDS):
        rows += conversation(session, "en", [(f"odd-id {index}", None, "Hello")],
                             earlier + timedelta(minutes=index))
    bidi = message_body(session="bidi-1", text=f"bidi-test {RLO}abc", assistant=f"{RLO}helper",
                        snapshot="live", customer_language="es", reply=f"{RLO}reply",
                        intents=[{"intent": f"{RLO}order_status", "confidence": 0.9}])
    bidi["payload"]["response"]["context"]["skills"]["actions skill"]["skill_variables"][
        "translation_failed"] = True
    rows.append(row_of(bidi, earlier))
    call = cdr_body("sess-es-1")
    call["payload"]["call"]["end_reason"] = "caller_hangup"
    call["payload"]["assistant_interaction_summaries"][0]["session_id"] = "sess-es-1"
    rows.append(row_of(call, now + timedelta(minutes=5)))
    rows += [log_event(turn) for turn in shifted(FIXTURE_START)]
    rows += list(bench_month(3_000, MONTH_END))       # the screenshots' month
    store.add_many(rows)
    store.engine.dispose()
    env = {"DATABASE_URL": url, "WEBHOOKS": "logs", "EXPLORER_USERNAME": USER,
           "EXPLORER_PASSWORD": PASSWORD, "SUPPORTED_LANGUAGES": "en,es,fr", "WEB_CONCURRENCY": 1}
    with serve("handlers:create_app()", env, log_path=folder / "gunicorn.log") as base:
        yield base


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                  viewport={"width": 1100, "height": 900})
    page = context.new_page()
    elsewhere: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(server)
            else elsewhere.append(request.url))
    page.set_default_timeout(10_000)
    yield page
    context.close()
    assert elsewhere == []


def shoot(page: Any, name: str, tmp_path: pathlib.Path, part: Any = None) -> pathlib.Path:
    """A screenshot of the whole page, or of `part` (a locator) only."""
    target = (SCREENSHOTS or tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if part is None:
        page.screenshot(path=str(target), full_page=True)
    else:
        part.screenshot(path=str(target))
    assert target.stat().st_size > 5_000
    return target


def test_overview_filter_and_transcript(page: Any, server: str, tmp_path: pathlib.Path) -> None:
    answer = page.goto(server + "/explorer/")
    assert answer.status == 200
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("#messages").inner_text() == "36"
    assert page.locator("#translation-failures").inner_text() == "1"
    assert page.locator("#unsupported").inner_text() == "10"          # de is not served
    assert page.locator("svg.chart rect.bar").count() in (24, 25)    # partial hours at the ends
    assert "caller_hangup" in page.locator("#end-reasons").inner_text()
    shoot(page, "explorer-overview.png", tmp_path)

    page.fill("input[name=language]", "es")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "language=es" in page.url
    assert page.locator("#messages").inner_text() == "13"
    assert page.locator("#sessions").inner_text() == "11"

    page.click("text=Sessions where translation failed")
    page.wait_for_load_state()
    sessions = page.locator("a.session")
    assert sessions.count() == 1 and sessions.first.inner_text() == "sess-es-1"
    sessions.first.click()
    page.wait_for_load_state()
    text = page.locator("main").inner_text()
    assert "Quiero saber dónde está mi pedido" in text
    assert "I want to know where my order is" in text
    assert "Su pedido llega mañana." in text
    assert "translation failed" in text and "end reason: caller_hangup" in text
    shoot(page, "explorer-transcript.png", tmp_path)


def test_search_and_redaction_on_a_phone(browser: Any, server: str,
                                         tmp_path: pathlib.Path) -> None:
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                  viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(server + "/explorer/sessions")
    page.fill("input[name=q]", "PASSWORD")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("a.session").all_inner_texts() == ["sess-en-1"]
    page.locator("a.session").first.click()
    page.wait_for_load_state()
    assert page.locator(".redacted").first.inner_text() == "redacted email"
    # Readable on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(page, "explorer-phone.png", tmp_path)
    context.close()


def test_no_credentials_no_content(browser: Any, server: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    # The browser refuses to show a Basic challenge it cannot answer headless.
    with pytest.raises(Exception, match="AUTH"):
        page.goto(server + "/explorer/session?id=sess-es-1")
    answer = context.request.get(server + "/explorer/session?id=sess-es-1")
    assert answer.status == 401 and answer.headers["www-authenticate"].startswith("Basic")
    assert "pedido" not in answer.text()
    context.close()


def test_odd_session_ids_open_their_own_transcript(page: Any, server: str) -> None:
    listing = server + "/explorer/sessions?period=7d&q=odd-id"
    page.goto(listing)
    assert sorted(page.locator("a.session").all_inner_texts()) == sorted(ODD_IDS)
    for index, session in enumerate(ODD_IDS):
        page.goto(listing)
        links = page.locator("a.session")
        position = links.all_inner_texts().index(session)
        links.nth(position).click()
        page.wait_for_load_state()
        assert page.locator("h1 code").inner_text() == session
        text = page.locator("main").inner_text()
        assert f"odd-id {index}" in text
        assert [other for other in range(len(ODD_IDS))
                if other != index and f"odd-id {other}" in text] == []


def test_a_right_to_left_override_stays_inside_its_text(page: Any, server: str) -> None:
    page.goto(server + "/explorer/sessions?period=7d&q=bidi-test")
    assert page.locator("a.session").all_inner_texts() == ["bidi-1"]
    cell = page.locator("#sessions tbody tr td").nth(4).element_handle()
    helper, slash, live = (page.evaluate(TEXT_BOX, [cell, needle])
                           for needle in ("helper", "/", "live"))
    assert helper[1] <= slash[0] <= live[0], (helper, slash, live)   # read left to right

    page.locator("a.session").first.click()
    page.wait_for_load_state()
    meta = page.locator("li.turn .meta").first.element_handle()
    intent, failed = (page.evaluate(TEXT_BOX, [meta, needle])
                      for needle in ("order_status", "translation failed"))
    assert intent[1] <= failed[0], (intent, failed)


def test_quality_actions_and_unrecognized(page: Any, server: str, tmp_path: pathlib.Path) -> None:
    page.goto(f"{server}/explorer/?{QUALITY_PERIOD}")
    table = page.locator("#quality")
    assert table.locator("tbody tr td:first-child bdi").all_inner_texts() == \
        ["en", "es", "de", "fr", "it", "pt", "tr"]
    french = table.locator("tbody tr").nth(3)
    gap = french.locator(".containment .gap")
    assert gap.inner_text() == "-100.0 pts"
    assert gap.evaluate("node => getComputedStyle(node).color") == WORSE
    # The assistant language's rate is marked on the bar: English's containment, 100 %.
    marker = french.locator(".containment svg line").bounding_box()
    bar = french.locator(".containment svg").bounding_box()
    assert abs(marker["x"] + marker["width"] / 2 - (bar["x"] + bar["width"])) < 2

    page.click("text=Actions in this period")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Actions"
    stuck = page.locator("#frequent tbody tr", has=page.locator(".language bdi", has_text="en"))
    assert stuck.locator(".reason-stuck").inner_text() == "1"
    assert page.locator("#by-language thead th").nth(3).inner_text().startswith("en")

    page.goto(f"{server}/explorer/?{QUALITY_PERIOD}")
    page.click("text=Unrecognized requests")
    page.wait_for_load_state()
    rows = page.locator("#unrecognized tbody tr")
    shown = [(row.locator("a.session").inner_text(), row.locator(".wrote").inner_text(),
              row.locator(".received").inner_text(), row.locator(".language").inner_text())
             for row in rows.all()]
    assert sorted(shown) == sorted(EXPECTED_UNRECOGNIZED)
    shoot(page, "explorer-unrecognized.png", tmp_path)
    rows.first.locator("a.session").click()
    page.wait_for_load_state()
    assert page.locator("h1 code").inner_text() == shown[0][0]


def test_quality_views_of_a_month(page: Any, server: str, tmp_path: pathlib.Path) -> None:
    """bench/quality.py's month of conversations (the screenshots of docs/explorer.md)."""
    page.goto(f"{server}/explorer/?{MONTH}")
    table = page.locator("#quality")
    assert table.locator("tbody tr").count() == 9                # 8 languages and all
    shoot(page, "explorer-quality.png", tmp_path, page.locator("section", has=table))
    page.goto(f"{server}/explorer/actions?{MONTH}")
    assert page.locator("#frequent tbody tr").count() == 25      # 8 actions x 8 languages
    assert page.locator("#by-language tbody tr").count() == 8
    shoot(page, "explorer-actions.png", tmp_path)
    page.goto(f"{server}/explorer/unrecognized?{MONTH}")
    assert page.locator("#unrecognized tbody tr").count() == 50
    assert page.locator("a.next").count() == 1


def test_quality_pages_fit_a_phone(browser: Any, server: str) -> None:
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                  viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    for path in ("/explorer/", "/explorer/actions", "/explorer/unrecognized"):
        page.goto(f"{server}{path}?{QUALITY_PERIOD}")
        # Wide tables scroll inside themselves: the page is never wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    context.close()
