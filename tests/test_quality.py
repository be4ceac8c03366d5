"""The quality figures, pure: each IBM-shaped fixture session's facts, the report's hand counts,
and parts that merge to the same figures however a conversation is cut (quality.py)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from datetime import datetime, timedelta

import pytest

from handlers.store.rows import message_columns
from handlers.store.quality import Part, close, merge, part_of, report
from handlers.store.quality_facts import Op, turn_facts
from quality_support import (EXPECTED_ACTIONS, EXPECTED_ALL, EXPECTED_LANGUAGES, NAMES,
                             expected_report, received, session, shifted)

START = datetime(2026, 3, 2, 9, 0)


def facts_of(payload):
    columns = message_columns(payload, "customer_language")
    return received(payload), turn_facts(payload, language=columns["language"],
                                         translation_failed=columns["translation_failed"])


def parts_of(turns):
    by_session = {}
    for payload in turns:
        by_session.setdefault(payload["session_id"], []).append(facts_of(payload))
    return [part_of(key, items) for key, items in by_session.items()]


@pytest.mark.parametrize("name", NAMES)
def test_the_fixtures_are_what_the_sdk_models_read(name):
    """Every turn is a Log of ibm-watson 11.2.0; the action and node events the figures read
    come back from its turn-event models unchanged."""
    sdk = pytest.importorskip("ibm_watson.assistant_v2", reason="ibm-watson is not installed")
    Log, MessageOutputDebugTurnEvent = sdk.Log, sdk.MessageOutputDebugTurnEvent
    for payload in session(name)["turns"]:
        assert Log.from_dict(payload).session_id == payload["session_id"]
        debug = payload["response"]["output"].get("debug", {})
        for event in debug.get("turn_events", []):
            model = MessageOutputDebugTurnEvent.from_dict(event).to_dict()
            if event["event"].startswith("action_"):
                assert model == event
            else:
                assert model.items() <= {**event, "source": model["source"]}.items()


def test_the_report_of_the_fixtures_is_the_hand_count():
    now = START + timedelta(hours=3)
    until = START + timedelta(hours=4)
    got = report(parts_of(shifted(START)), now, "en", START, until)
    assert got == expected_report(START, until)
    assert list(got["languages"]) == ["es", "de", "en", "fr", "it", "pt", "tr"]


def test_open_actions_wait_for_an_hour_of_quiet():
    """Within the hour the abandoned and switched-from actions are undecided: not counted."""
    last = max(received(turn) for turn in shifted(START))
    got = report(parts_of(shifted(START)), last + timedelta(minutes=30), "en", START, None)
    assert got["all"]["actions_started"] == EXPECTED_ALL["actions_started"] - 2
    assert got["all"]["incomplete"] == {"escalated": 1, "stuck": 1, "new_action": 0,
                                        "abandoned": 0}
    assert got["until"] is None


def test_the_language_filter_keeps_that_language_only():
    got = report(parts_of(shifted(START)), START + timedelta(hours=3), "en", START, None, "es")
    assert got["languages"] == {"es": EXPECTED_LANGUAGES["es"]}
    assert got["all"] == EXPECTED_LANGUAGES["es"]
    assert [entry["action"] for entry in got["actions"]] == ["action_10", "action_50"]


def test_a_conversation_without_a_customer_language_is_the_assistants():
    turns = [facts_of(turn) for turn in session("stuck")["turns"]]
    part = part_of("s", [(at, facts.__class__(**{**facts.__dict__, "language": None}))
                         for at, facts in turns])
    got = report([part], START + timedelta(days=1), "nl", None, None)
    assert list(got["languages"]) == ["nl"]


@pytest.mark.parametrize("name", ["contained_spanish", "escalated", "abandoned",
                                  "topic_switch", "stuck"])
def test_parts_merge_to_the_whole_however_the_session_is_cut(name):
    turns = [facts_of(turn) for turn in session(name)["turns"]]
    now = turns[-1][0] + timedelta(hours=2)
    whole = close(part_of("s", turns), now)
    for cuts in itertools.chain.from_iterable(
            itertools.combinations(range(1, len(turns)), k) for k in range(1, len(turns))):
        bounds = [0, *cuts, len(turns)]
        pieces = [part_of("s", turns[a:b]) for a, b in zip(bounds, bounds[1:])]
        left = pieces[0]
        for piece in pieces[1:]:
            left = merge(left, piece)
        right = pieces[-1]
        for piece in reversed(pieces[:-1]):
            right = merge(piece, right)
        for merged in (left, right):
            merged = close(merged, now)
            assert merged.outcomes == whole.outcomes, cuts
            assert merged.open == whole.open == []
            assert (merged.requests, merged.recognized, merged.escalated, merged.language) == \
                (whole.requests, whole.recognized, whole.escalated, whole.language)


def test_a_stored_part_reads_back_the_same():
    turns = [facts_of(turn) for turn in session("topic_switch")["turns"]]
    part = part_of("s", turns[:1])
    back = Part.from_row(SimpleNamespace(**part.to_row()))
    assert back.open == part.open and back.outcomes == part.outcomes
    assert merge(back, part_of("s", turns[1:])).outcomes == \
        merge(part, part_of("s", turns[1:])).outcomes


def test_a_return_resumes_the_action_the_customer_left():
    at = START
    start_a = turn_facts({"response": {"output": {"debug": {"turn_events": [
        {"event": "action_visited", "reason": "intent",
         "source": {"type": "action", "action": "a", "action_title": "A"}}]}}}})
    switch_b = turn_facts({"response": {"output": {"debug": {"turn_events": [
        {"event": "action_visited", "reason": "topic_switch", "source": {"action": "b"}},
        {"event": "action_finished", "reason": "all_steps_done", "source": {"action": "b"}},
        {"event": "action_visited", "reason": "topic_return", "source": {"action": "a"}}]}}}})
    part = close(part_of("s", [(at, start_a), (at, switch_b)]), at + timedelta(hours=2))
    assert part.outcomes == {"b\tcompleted": 1, "a\tabandoned": 1}
    assert switch_b.ops[-1] == Op("return", "a")


@pytest.mark.parametrize("reason, action, outcome", [
    ("all_steps_done", "a", "completed"), ("ended_by_step", "a", "completed"),
    ("no_steps_visited", "a", "completed"), ("connect_to_agent", "a", "completed"),
    ("connect_to_agent", "fallback", "escalated"), ("fallback", "a", "escalated"),
    ("max_retries_reached", "a", "stuck")])
def test_each_finish_reason(reason, action, outcome):
    facts = turn_facts({"response": {"output": {"debug": {"turn_events": [
        {"event": "action_visited", "reason": "intent", "source": {"action": action}},
        {"event": "action_finished", "reason": reason, "source": {"action": action}}]}}}})
    part = part_of("s", [(START, facts)])
    assert part.outcomes == {f"{action}\t{outcome}": 1}
    assert facts.escalated is (reason == "connect_to_agent")


def test_a_no_match_reason_is_an_unrecognized_request():
    facts = turn_facts({"response": {"output": {"debug": {"turn_events": [
        {"event": "action_visited", "reason": "no_action_matches",
         "source": {"action": "action_9"}}]}}}})
    assert (facts.request, facts.recognized, facts.ops) == (True, False, ())


def test_odd_events_are_ignored_not_fatal():
    for output in (None, [], {"debug": []}, {"debug": {"turn_events": [1, "x", None]}},
                   {"generic": "text", "debug": {"turn_events": [{"event": "action_visited",
                                                                  "source": "x"}]}}):
        facts = turn_facts({"response": {"output": output}})
        assert not facts.request and not facts.escalated
