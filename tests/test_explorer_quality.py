"""The explorer's quality views on SQLite and PostgreSQL: the Quality by language table of the
overview, the Actions page and the Unrecognized page show the figures of the quality report
(`store.quality_report`, what `flask logs report` prints) and the hand-counted ones of
explorer_quality_data.py, each rate beside the assistant language's; escaping, paging and bad
input as on the other pages."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup

from explorer_quality_data import NO_MATCH, ORDER, REFUND, conversations, turn, visited
from handlers.store import EventStore
from logs_support import pg_store_url, store_url  # noqa: F401
from test_explorer import PASSWORD, USER, get

pytestmark = pytest.mark.skipif(not hasattr(EventStore, "quality_report"),
                                reason="the quality report (store.quality_report) is not "
                                       "in this tree yet")

DAY = datetime(2024, 5, 1, 9, 30)
PERIOD = {"period": "custom", "since": "2024-05-01", "until": "2024-05-01"}
RATES = ("containment", "recognition", "completion")


@pytest.fixture
def app(make_app: Any, store_url: str) -> Any:
    app = make_app(DATABASE_URL=store_url, EXPLORER_USERNAME=USER, EXPLORER_PASSWORD=PASSWORD,
                   SUPPORTED_LANGUAGES="en,es,fr")
    app.extensions["webhooks"].store.add_many(conversations(DAY))
    return app


def page(app: Any, path: str, **args: Any) -> BeautifulSoup:
    answer = get(app, path, **args)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return BeautifulSoup(answer.get_data(as_text=True), "html.parser")


def report(app: Any, language: str | None = None) -> dict[str, Any]:
    return app.extensions["webhooks"].store.quality_report(
        DAY.replace(hour=0, minute=0), DAY.replace(hour=0, minute=0) + timedelta(days=1),
        language=language)


def shown(rate: float | None) -> str:
    return "–" if rate is None else f"{round(100 * rate, 1)} %"


def rows_of(soup: BeautifulSoup) -> dict[str, Any]:
    """The quality table: language (or "all") -> its row."""
    rows = {}
    for row in soup.select("#quality tbody tr"):
        name = "all" if "all" in row.get("class", []) else row.select_one("td bdi").get_text()
        rows[name] = row
    return rows


def test_quality_table_shows_the_report_with_the_gaps(app: Any) -> None:
    figures = report(app)
    rows = rows_of(page(app, "/explorer/", **PERIOD))
    assert list(rows) == ["en", "es", "fr", "all"]           # the assistant's first, then most
    assert "assistant" in rows["en"].get_text()
    for name, row in rows.items():
        mine = figures["all"] if name == "all" else figures["languages"][name]
        assert row.select_one(".conversations").get_text() == str(mine["conversations"])
        assert row.select_one(".translation-failed").get_text() == \
            str(mine["translation_failed"])
        for rate in RATES:
            cell = row.select_one(f".{rate}")
            assert cell.select_one(".percent, .none").get_text() == shown(mine[rate]), (name, rate)
            gap = cell.select_one(".gap")
            own = figures["languages"]["en"][rate]
            if name == "en" or mine[rate] is None or own is None:
                assert gap is None
            else:
                points = round(100 * (mine[rate] - own), 1)
                assert gap.get_text() == f"{points:+.1f} pts"
                assert ("worse" in gap["class"]) == (points < 0)
    # By hand (explorer_quality_data.conversations).
    assert [rows[name].select_one(".conversations").get_text() for name in rows] == \
        ["2", "2", "1", "5"]
    assert rows["es"].select_one(".containment .percent").get_text() == "50.0 %"
    assert rows["es"].select_one(".containment .gap").get_text() == "-50.0 pts"
    assert rows["es"].select_one(".recognition .gap").get_text() == "-16.7 pts"
    assert rows["en"].select_one(".recognition .percent").get_text() == "66.7 %"
    assert rows["all"].select_one(".containment .percent").get_text() == "80.0 %"
    assert rows["es"].select_one(".translation-failed").get_text() == "1"


def test_filtered_to_one_language_the_assistant_language_stays_to_compare(app: Any) -> None:
    rows = rows_of(page(app, "/explorer/", language="es", **PERIOD))
    assert list(rows) == ["en", "es", "all"]
    assert rows["en"].select_one(".containment .percent").get_text() == \
        shown(report(app, "en")["languages"]["en"]["containment"])
    assert rows["all"].select_one(".conversations").get_text() == "2"   # Spanish only
    assert rows["es"].select_one(".containment .gap").get_text() == "-50.0 pts"


def test_actions_page_three_ways_with_the_reasons(app: Any) -> None:
    figures = report(app)["actions"]
    soup = page(app, "/explorer/actions", **PERIOD)
    frequent = soup.select("#frequent tbody tr")
    assert len(frequent) == len(figures) > 0
    for row, action in zip(frequent, figures):          # the report's order: most started first
        assert row.select_one(".language").get_text() == action["language"]
        assert row.select_one(".started").get_text() == str(action["started"])
        assert row.select_one(".completed").get_text() == str(action["completed"])
        for reason, n in action["incomplete"].items():
            assert row.select_one(f".reason-{reason}").get_text() == str(n)
    least = [(row.select_one(".action bdi").get_text(), row.select_one(".language").get_text())
             for row in soup.select("#least tbody tr")]
    rates = {(action["title"], action["language"]): action["completed"] / action["started"]
             for action in figures if action["started"]}
    assert sorted(least) == sorted(rates)
    assert [rates[key] for key in least] == sorted(rates[key] for key in least)
    # Spanish "Order status" got stuck: shown, with its reason, against English's completion.
    spanish = next(row for row in soup.select("#frequent tbody tr")
                   if row.select_one(".action bdi").get_text() == ORDER[1]
                   and row.select_one(".language").get_text() == "es")
    assert spanish.select_one(".reason-stuck").get_text() == "1"
    assert spanish.select_one(".completion .percent").get_text() == "0.0 %"
    assert spanish.select_one(".completion .gap").get_text() == "-100.0 pts"
    pivot = soup.select_one("#by-language")
    assert [cell.get_text() for cell in pivot.select("thead bdi")][0] == "en"
    order = next(row for row in pivot.select("tbody tr")
                 if row.select_one(".action bdi").get_text() == ORDER[1])
    assert order.select_one('[data-language="es"] .gap').get_text() == "-100.0 pts"
    html = str(soup)
    assert "Refund &lt;now&gt;" in html and REFUND[1] not in html     # escaped, in a <bdi>


def test_unrecognized_page_shows_both_texts_escaped(app: Any) -> None:
    soup = page(app, "/explorer/unrecognized", **PERIOD)
    rows = soup.select("#unrecognized tbody tr")
    assert [row.select_one("a.session").get_text() for row in rows] == ["es-2", "en-2"]
    spanish, english = rows
    assert spanish.select_one(".wrote").get_text() == "<b>quiero</b> comprar un barco"
    assert spanish.select_one(".wrote bdi").find("b") is None           # shown, not rendered
    assert spanish.select_one(".received").get_text() == "I want to buy a boat"
    assert english.select_one(".wrote").get_text() == "blorp"
    assert english.select_one(".received").get_text() == "(as written)"
    assert english.select_one("a.session")["href"] == "/explorer/session?id=en-2"
    only = page(app, "/explorer/unrecognized", language="en", **PERIOD)
    assert [a.get_text() for a in only.select("a.session")] == ["en-2"]
    assert soup.select_one("a.next") is None


def test_unrecognized_pages_follow_the_offset(app: Any) -> None:
    store = app.extensions["webhooks"].store
    later = DAY + timedelta(hours=2)
    store.add_many([turn(f"nm-{index:02d}", "de", f"unbekannt {index}",
                         later + timedelta(seconds=index), [visited(NO_MATCH)])
                    for index in range(55)])
    first = page(app, "/explorer/unrecognized", **PERIOD)
    names = [a.get_text() for a in first.select("a.session")]
    assert names == [f"nm-{index:02d}" for index in range(54, 4, -1)]
    following = first.select_one("a.next")["href"]
    assert "offset=50" in following
    second = BeautifulSoup(get(app, following).get_data(as_text=True), "html.parser")
    assert [a.get_text() for a in second.select("a.session")] == \
        ["nm-04", "nm-03", "nm-02", "nm-01", "nm-00", "es-2", "en-2"]
    assert second.select_one("a.next") is None


@pytest.mark.parametrize("offset", ["-1", "x<b>", "10001", "1e3", "²"])
def test_a_bad_offset_is_a_clear_error_not_echoed(app: Any, offset: str) -> None:
    answer = get(app, "/explorer/unrecognized", offset=offset)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "bad_request"
    assert "<b>" not in answer.get_data(as_text=True)


def test_the_quality_pages_need_the_credentials_and_send_the_headers(app: Any) -> None:
    client = app.test_client()
    for path in ("/explorer/actions", "/explorer/unrecognized", "/explorer/actions?period=x"):
        answer = client.get(path)
        assert answer.status_code == 401 and "barco" not in answer.get_data(as_text=True)
        assert answer.headers["Cache-Control"] == "no-store"
    for path in ("/explorer/actions", "/explorer/unrecognized"):
        answer = get(app, path, **PERIOD)
        assert answer.status_code == 200
        assert "script-src 'none'" in answer.headers["Content-Security-Policy"]
        body = answer.get_data(as_text=True)
        assert "<script" not in body and " style=" not in body
        assert not re.search(r"https?://", body)
