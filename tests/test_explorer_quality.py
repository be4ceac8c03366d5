"""The explorer's quality views on SQLite and PostgreSQL, over the quality fixtures (tests/
fixtures/quality/, hand counts in quality_support.py): the Quality by language table of the
overview, the Actions page and the Unrecognized page show the figures of the report (`flask logs
report`), each rate beside the assistant language's; escaping, paging and bad input as on the
other pages."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup

from handlers.cli import logs_cli
from logs_support import pg_store_url, store_url  # noqa: F401
from quality_support import (EXPECTED_ACTIONS, EXPECTED_ALL, EXPECTED_LANGUAGES,
                             EXPECTED_UNRECOGNIZED, FIXTURE_START, log_event, session, shifted)
from test_explorer import PASSWORD, USER, get

PERIOD = {"period": "custom", "since": "2026-01-05", "until": "2026-01-05"}
RATES = ("containment", "recognition", "completion")


@pytest.fixture
def app(make_app: Any, store_url: str) -> Any:
    app = make_app(DATABASE_URL=store_url, EXPLORER_USERNAME=USER, EXPLORER_PASSWORD=PASSWORD,
                   SUPPORTED_LANGUAGES="en,es,de,fr,it,pt")
    app.extensions["webhooks"].store.add_many([log_event(turn)
                                               for turn in shifted(FIXTURE_START)])
    return app


def page(app: Any, path: str, **args: Any) -> BeautifulSoup:
    answer = get(app, path, **args)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return BeautifulSoup(answer.get_data(as_text=True), "html.parser")


def shown(rate: float | None) -> str:
    return "–" if rate is None else f"{round(100 * rate, 1)} %"


def text(row: Any, selector: str) -> str:
    return row.select_one(selector).get_text()


def quality_rows(soup: BeautifulSoup) -> dict[str, Any]:
    """The quality table: language (or "all") -> its row."""
    return {"all" if "all" in row.get("class", []) else text(row, "td bdi"): row
            for row in soup.select("#quality tbody tr")}


def test_quality_table_shows_the_hand_counts_with_the_gaps(app: Any) -> None:
    rows = quality_rows(page(app, "/explorer/", **PERIOD))
    # The assistant language first, then most conversations first, then all.
    assert list(rows) == ["en", "es", "de", "fr", "it", "pt", "tr", "all"]
    assert "assistant" in rows["en"].get_text()
    own = EXPECTED_LANGUAGES["en"]
    for name, row in rows.items():
        mine = EXPECTED_ALL if name == "all" else EXPECTED_LANGUAGES[name]
        assert text(row, ".conversations") == str(mine["conversations"]), name
        assert text(row, ".translation-failed") == str(mine["translation_failed"]), name
        for rate in RATES:
            assert text(row, f".{rate} .percent, .{rate} .none") == shown(mine[rate]), (name, rate)
            gap = row.select_one(f".{rate} .gap")
            if name == "en" or mine[rate] is None or own[rate] is None:
                assert gap is None, (name, rate)
            else:
                points = round(100 * (mine[rate] - own[rate]), 1)
                assert gap.get_text() == f"{points:+.1f} pts", (name, rate)
                assert ("worse" in gap["class"]) == (points < 0)
    assert text(rows["fr"], ".containment .gap") == "-100.0 pts"       # escalated
    assert text(rows["pt"], ".recognition .percent") == "66.7 %"
    assert text(rows["pt"], ".recognition .gap") == "-33.3 pts"
    assert text(rows["es"], ".completion .gap") == "+50.0 pts"         # en's one got stuck


@pytest.mark.skipif("report" not in logs_cli.commands,
                    reason="`flask logs report` is not in this tree yet")
def test_the_table_is_the_report_of_logs_report(app: Any) -> None:
    result = app.test_cli_runner().invoke(args=["logs", "report", "--since", "2026-01-05",
                                                "--until", "2026-01-05", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = quality_rows(page(app, "/explorer/", **PERIOD))
    for name, row in rows.items():
        mine = report["all"] if name == "all" else report["languages"][name]
        assert text(row, ".conversations") == str(mine["conversations"])
        assert [text(row, f".{rate} .percent, .{rate} .none") for rate in RATES] == \
            [shown(mine[rate]) for rate in RATES]


def test_filtered_to_one_language_the_assistant_language_stays_to_compare(app: Any) -> None:
    rows = quality_rows(page(app, "/explorer/", language="fr", **PERIOD))
    assert list(rows) == ["en", "fr", "all"]
    assert text(rows["en"], ".completion .percent") == "0.0 %"
    assert text(rows["all"], ".conversations") == "1"                  # French only
    assert text(rows["fr"], ".containment .gap") == "-100.0 pts"


def test_actions_page_three_ways_with_the_reasons(app: Any) -> None:
    soup = page(app, "/explorer/actions", **PERIOD)
    frequent = soup.select("#frequent tbody tr")
    shown_rows = [(text(row, ".action bdi"), text(row, ".language"), int(text(row, ".started")),
                   int(text(row, ".completed")),
                   {reason: int(text(row, f".reason-{reason}"))
                    for reason in ("escalated", "stuck", "new_action", "abandoned")})
                  for row in frequent]
    assert sorted(shown_rows, key=repr) == sorted(
        ((item["title"], item["language"], item["started"], item["completed"],
          item["incomplete"]) for item in EXPECTED_ACTIONS), key=repr)
    least = [(text(row, ".action bdi"), text(row, ".completion .percent"))
             for row in soup.select("#least tbody tr")]
    assert [percent for _, percent in least] == ["0.0 %"] * 4 + ["100.0 %"] * 3
    assert {title for title, _ in least[:4]} == {"Report a lost card", "Book an appointment",
                                                 "Send money", "Check balance"}
    pivot = soup.select_one("#by-language")
    assert [cell.get_text() for cell in pivot.select("thead bdi")][:2] == ["en", "es"]
    hours = next(row for row in pivot.select("tbody tr")
                 if text(row, ".action bdi") == "Opening hours")
    assert text(hours, '[data-language="de"] .percent') == "100.0 %"
    assert hours.select_one('[data-language="en"] .percent') is None   # not started in en


def test_unrecognized_page_shows_both_texts(app: Any) -> None:
    soup = page(app, "/explorer/unrecognized", **PERIOD)
    rows = [(text(row, "a.session"), text(row, ".wrote"), text(row, ".received"),
             text(row, ".language")) for row in soup.select("#unrecognized tbody tr")]
    assert sorted(rows) == sorted(EXPECTED_UNRECOGNIZED)
    link = soup.select_one("a.session")["href"]
    assert link.startswith("/explorer/session?id=quality-")
    only = page(app, "/explorer/unrecognized", language="de", **PERIOD)
    assert [a.get_text() for a in only.select("a.session")] == ["quality-unrecognized-de"]
    assert soup.select_one("a.next") is None


def marked(session_id: str, words: str, title: str, start: datetime) -> list[Any]:
    """The unrecognized fixture again as another session, with other words and its recognized
    request in an action of its own, titled `title`."""
    rows = []
    for index, turn in enumerate(session("unrecognized")["turns"]):
        turn = copy.deepcopy(turn)
        turn["log_id"] = f"{session_id}-{index}"
        turn["session_id"] = turn["response"]["context"]["global"]["session_id"] = session_id
        turn["request_timestamp"] = (start + timedelta(seconds=index)).isoformat() + "Z"
        turn["response"]["context"]["skills"]["actions skill"]["skill_variables"][
            "original_input"] = words
        for event in turn["response"]["output"].get("debug", {}).get("turn_events", []):
            if event["source"]["action"] != "anything_else":     # an action of its own
                event["source"]["action"] = f"action_{session_id}"
                event["source"]["action_title"] = title
        rows.append(log_event(turn))
    return rows


def test_words_and_titles_are_shown_never_rendered(app: Any) -> None:
    app.extensions["webhooks"].store.add_many(
        marked("markup-1", "<b>Muscheln</b> & <i>Perlen</i>", "Opening <hours>",
               FIXTURE_START + timedelta(hours=3)))
    soup = page(app, "/explorer/unrecognized", **PERIOD)
    first = soup.select_one("#unrecognized tbody tr")
    assert text(first, ".wrote") == "<b>Muscheln</b> & <i>Perlen</i>"
    assert first.select_one(".wrote b") is None
    actions = get(app, "/explorer/actions", **PERIOD).get_data(as_text=True)
    assert "Opening &lt;hours&gt;" in actions and "<hours>" not in actions


def test_unrecognized_pages_follow_the_offset(app: Any) -> None:
    store = app.extensions["webhooks"].store
    later = FIXTURE_START + timedelta(hours=2)
    store.add_many([row for index in range(55) for row in
                    marked(f"nm-{index:02d}", f"unbekannt {index}", "Opening hours",
                           later + timedelta(minutes=index))])
    first = page(app, "/explorer/unrecognized", **PERIOD)
    assert [a.get_text() for a in first.select("a.session")] == \
        [f"nm-{index:02d}" for index in range(54, 4, -1)]             # newest first
    following = first.select_one("a.next")["href"]
    assert "offset=50" in following
    second = BeautifulSoup(get(app, following).get_data(as_text=True), "html.parser")
    assert [a.get_text() for a in second.select("a.session")] == \
        ["nm-04", "nm-03", "nm-02", "nm-01", "nm-00", "quality-dialog-pt",
         "quality-unrecognized-de"]
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
        assert answer.status_code == 401 and "Muscheln" not in answer.get_data(as_text=True)
        assert answer.headers["Cache-Control"] == "no-store"
    for path in ("/explorer/actions", "/explorer/unrecognized"):
        answer = get(app, path, **PERIOD)
        assert answer.status_code == 200
        assert "script-src 'none'" in answer.headers["Content-Security-Policy"]
        body = answer.get_data(as_text=True)
        assert "<script" not in body and " style=" not in body
        assert not re.search(r"https?://", body)
