"""LOG_REDACT end to end (issue 22): each way customers really write a card number, an e-mail
address, a phone number or an IBAN goes through the real log endpoint, and is then looked for in
the stored row (every column and the raw copy), both exports (`flask --app handlers logs export`,
JSON lines and CSV) and the explorer's transcript page; on SQLite and PostgreSQL. Ids stay only
where the assistant puts them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from handlers.store import events
from logs_support import cdr_body, message_body, pg_store_url, store_url  # noqa: F401

SESSION = "session-redaction"
# What is compared: separators taken out, so "4111 1111" and "4111-1111" are both "41111111".
SEPARATORS = re.compile(r"[\s\u00a0\u202f.\-\u2013\u2014]")


def squeeze(text: str) -> str:
    return SEPARATORS.sub("", text)


def variables(body: dict[str, Any]) -> dict[str, Any]:
    return body["payload"]["response"]["context"]["skills"]["actions skill"]["skill_variables"]


def said(text: str) -> dict[str, Any]:
    """A turn where the customer typed `text` (it lands in customer_text and the raw copy)."""
    return message_body("log-redaction", text=text, session=SESSION)


def variable(name: str, value: Any) -> dict[str, Any]:
    body = said("nothing personal here")
    variables(body)[name] = value
    return body


def deep(name: str, value: Any) -> dict[str, Any]:
    """`name` deep inside the user's variables, where no id of the assistant lives."""
    body = said("nothing personal here")
    variables(body)["profile"] = {"contact": {name: value}}
    return body


def call_from(uri: str) -> dict[str, Any]:
    body = cdr_body("call-redaction")
    body["payload"]["session_initiation_protocol"]["headers"]["from_uri"] = uri
    body["payload"]["assistant_interaction_summaries"][0]["session_id"] = SESSION
    return body


# (body or raw text sent, what must appear nowhere, the label left in its place)
CASES = {
    # card numbers
    "card followed by a full stop": (said("My card is 4111111111111111."), ["4111111111111111"],
                                     "[card]"),
    "card with no-break spaces": (said("card 4111\u00a01111\u00a01111\u00a01111 thanks"),
                                  ["4111111111111111"], "[card]"),
    "card with narrow no-break spaces": (said("5555\u202f5555\u202f5555\u202f4444"),
                                         ["5555555555554444"], "[card]"),
    "card with dots": (said("it is 4012.8888.8888.1881, ok?"), ["4012888888881881"], "[card]"),
    "card with en dashes": (said("amex 3782\u2013822463\u201310005"), ["378282246310005"],
                            "[card]"),
    "card with double spaces": (said("6011  1111  1111  1117"), ["6011111111111117"], "[card]"),
    "card glued to words": (said("mycard4242424242424242please"), ["4242424242424242"],
                            "[card]"),
    "card as a JSON number": (variable("card_number", 4111111111111111), ["4111111111111111"],
                              "[card]"),
    # e-mail addresses
    "e-mail with a non-ASCII local part": (said("write to josé@example.es"), ["josé"],
                                           "[email]"),
    "e-mail with an IDN domain": (said("pedidos@bücher.de please"), ["pedidos", "bücher"],
                                  "[email]"),
    "e-mail written full-width": (said("ｊｏｓｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"), ["ｊｏｓｅ", "ｅｘａｍｐｌｅ"],
                                  "[email]"),
    "e-mail with %40": (said("mailto:maria%40example.org"), ["maria"], "[email]"),
    "e-mail at an IP literal": (said("root user@[203.0.113.5] here"), ["user@", "203.0.113.5"],
                                "[email]"),
    # phone numbers
    "phone with en dashes": (said("call +1 415\u2013555\u20130199"), ["14155550199"], "[phone]"),
    "phone followed by letters": (said("ring 4155550142ext 12"), ["4155550142"], "[phone]"),
    "caller's number in a SIP URI with an IP host": (call_from("sip:+18885550456@203.0.113.5"),
                                                     ["18885550456"], None),
    # IBANs
    "printed IBAN": (said("IBAN DE89 3704 0044 0532 0130 00."), ["370400440532013000"],
                     "[iban]"),
    "compact lower-case IBAN": (said("gb82west12345698765432"), ["12345698765432"], "[iban]"),
    # ids are kept only where the assistant puts them
    "e-mail in a variable named state": (variable("state", "jane@example.com"),
                                         ["jane@example.com"], "[email]"),
    "e-mail under a deep session_id key": (deep("session_id", "jane@example.com"),
                                           ["jane@example.com"], "[email]"),
    "phone under a deep log_id key": (deep("log_id", "+44 20 7946 0958"), ["442079460958"],
                                      "[phone]"),
    # object keys
    "e-mail as an object key": (variable("contacts", {"jane@example.com": "vip"}),
                                ["jane@example.com"], "[email]"),
    # a key given twice: the parse keeps the last value, the text received holds both
    "card in a duplicate key": (
        json.dumps(said("placeholder")).replace(
            '"text": "placeholder"', '"text": "4111 1111 1111 1111", "text": "hello"'),
        ["4111111111111111"], None),
}


@pytest.fixture
def app(make_app: Any, store_url: str) -> Any:
    return make_app(DATABASE_URL=store_url, LOG_REDACT="true", EXPLORER_AUTH="none")


def everything_shown(app: Any) -> dict[str, str]:
    """Where a stored event can be read: the row, both exports and the explorer's page."""
    store = app.extensions["webhooks"].store
    with store.engine.connect() as connection:
        [row] = connection.execute(select(events)).all()
    runner = app.test_cli_runner()
    jsonl = runner.invoke(args=["logs", "export"])
    table = runner.invoke(args=["logs", "export", "--format", "csv"])
    assert jsonl.exit_code == 0 and table.exit_code == 0, (jsonl.output, table.output)
    page = app.test_client().get("/explorer/session", query_string={"id": SESSION})
    assert page.status_code == 200
    return {"row": " | ".join(str(value) for value in row if value is not None),
            "raw": row.raw, "jsonl": jsonl.output, "csv": table.output,
            "explorer": page.get_data(as_text=True)}


@pytest.mark.parametrize("case", list(CASES))
def test_personal_data_is_masked_in_the_row_the_exports_and_the_explorer(app: Any,
                                                                         case: str) -> None:
    body, hidden, label = CASES[case]
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    answer = app.test_client().post("/webhooks/logs", data=data.encode())
    assert answer.status_code == 200, answer.get_data(as_text=True)
    shown = everything_shown(app)
    for where, text in shown.items():
        for secret in hidden:
            assert squeeze(secret) not in squeeze(text), f"{secret!r} is in the {where}"
    if label:
        assert label in shown["raw"] and label in shown["jsonl"]
    raw = json.loads(shown["raw"])
    assert raw["event"]["name"] in ("message_logged", "cdr_logged")


def test_ids_stay_where_the_assistant_puts_them_and_look_alikes_are_kept(app: Any) -> None:
    body = said("order 4111111111111112. on 2021-10-12 at 10:30, ref 58bebfd1-0118-419b")
    payload = body["payload"]
    payload["session_id"] = payload["response"]["context"]["global"]["session_id"] = \
        "7874ec3a-1330-4180-afe1-46bfb220af5b"
    payload["log_id"] = "00000000-0000-4000-8000-000000001234"
    state = "eyJzZXNzaW9uX2lkIjoiNDE1NTU1MDE0MiJ9+4155550142/x"
    payload["response"]["context"]["skills"]["actions skill"]["system"]["state"] = state
    answer = app.test_client().post("/webhooks/logs", json=body)
    assert answer.status_code == 200
    store = app.extensions["webhooks"].store
    with store.engine.connect() as connection:
        [row] = connection.execute(select(events)).all()
    assert row.customer_text == "order 4111111111111112. on 2021-10-12 at 10:30, " \
                                "ref 58bebfd1-0118-419b"        # fails Luhn: an order number
    assert row.session_id == payload["session_id"]
    assert row.idempotency_key == payload["log_id"]
    raw = json.loads(row.raw)["payload"]
    assert raw["log_id"] == payload["log_id"]
    assert raw["response"]["context"]["global"]["session_id"] == payload["session_id"]
    assert raw["response"]["context"]["skills"]["actions skill"]["system"]["state"] == state
    assert raw["request_timestamp"] == payload["request_timestamp"]


def test_the_cdr_keeps_its_ids_and_counters_and_masks_the_phone_numbers(app: Any) -> None:
    body = call_from("sip:+18885550456@203.0.113.5")
    body["payload"]["call"]["milliseconds_elapsed"] = 3_600_000      # an hour: 7 digits
    body["payload"]["realtime_transport_network_summary"]["inbound_stream"][
        "packets_transmitted"] = 1_234_567
    answer = app.test_client().post("/webhooks/logs", json=body)
    assert answer.status_code == 200
    store = app.extensions["webhooks"].store
    with store.engine.connect() as connection:
        [row] = connection.execute(select(events)).all()
    sent, raw = body["payload"], json.loads(row.raw)["payload"]
    assert raw["primary_phone_number"] == "[phone]"
    assert raw["session_initiation_protocol"]["headers"]["from_uri"] in (
        "sip:[email]", "sip:[phone]@203.0.113.5")
    assert raw["session_initiation_protocol"]["headers"]["call_id"] == \
        sent["session_initiation_protocol"]["headers"]["call_id"]
    assert raw["global_session_id"] == sent["global_session_id"] == row.idempotency_key
    turns = raw["assistant_interaction_summaries"][0]["turns"]
    assert [item["assistant"]["log_id"] for item in turns] == \
        [item["assistant"]["log_id"] for item in sent["assistant_interaction_summaries"][0]["turns"]]
    assert raw["call"] == sent["call"]
    assert raw["realtime_transport_network_summary"] == sent["realtime_transport_network_summary"]
    assert row.session_id == SESSION and row.end_reason == "assistant_hangup"


def test_a_label_longer_than_what_it_masked_still_fits_its_column(app: Any) -> None:
    customer = "x" * 243 + " 123-45-6789"                  # 255 characters, the column's width
    body = said("hello")
    body["payload"]["customer_id"] = customer
    answer = app.test_client().post("/webhooks/logs", json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    store = app.extensions["webhooks"].store
    with store.engine.connect() as connection:
        [row] = connection.execute(select(events)).all()
    assert row.customer_id == ("x" * 243 + " [national_id]")[:255]
    assert "6789" not in row.customer_id
