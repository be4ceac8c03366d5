"""LOG_REDACT's masking: what is personal data, what only looks like it, and the JSON walk.
tests/test_logs_redaction.py sends the same cases through the log webhook to every place the
stored event can be read."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import fixture
from handlers.redact import luhn_valid, redact_json, redact_text


@pytest.mark.parametrize("text, expected", [
    ("write to john.doe+tag@example.co.uk please", "write to [email] please"),
    ("MARIE@Exemple.FR", "[email]"),
    ("card 4111 1111 1111 1111 thanks", "card [card] thanks"),
    ("amex 3782-822463-10005", "amex [card]"),
    ("5555555555554444", "[card]"),
    ("call me on +44 20 7946 0958", "call me on [phone]"),
    ("(555) 123-4567 after six", "[phone] after six"),
    ("0034 612 345 678", "[phone]"),
    ("+18005550123", "[phone]"),
    ("ssn 123-45-6789", "ssn [national_id]"),
    ("NI number AB 12 34 56 C", "NI number [national_id]"),
    ("dni 12345678Z", "dni [national_id]"),
    ("NIE X1234567L", "NIE [national_id]"),
    ("codice RSSMRA85T10A562S", "codice [national_id]"),
    ("CPF 123.456.789-09", "CPF [national_id]"),
    ("PAN ABCPE1234F", "PAN [national_id]"),
    ("aadhaar 2345 6789 0123", "aadhaar [national_id]"),
    ("NIR 1 85 05 78 006 084 36", "NIR [national_id]"),
    ("mail a@b.io or call 555-123-4567", "mail [email] or call [phone]"),
    # issue 22: how customers really write them
    ("My card is 4111111111111111.", "My card is [card]."),
    ("4111\u00a01111\u00a01111\u00a01111", "[card]"),
    ("4111\u202f1111\u202f1111\u202f1111", "[card]"),
    ("4111.1111.1111.1111 or 4111  1111  1111  1111", "[card] or [card]"),
    ("3782\u2013822463\u201310005", "[card]"),
    ("4111\n1111\r\n1111 1111", "[card]"),
    ("mycard4111111111111111please", "mycard[card]please"),
    ("Ref 2024 4111 1111 1111 1111 exp 12/25", "Ref 2024 [card] exp 12/25"),
    ("josé@example.es", "[email]"),
    ("jose\u0301@example.es, प्रिया@example.in", "[email], [email]"),
    ("info@bücher.de or info@пример.рф", "[email] or [email]"),
    ("ｊｏｓｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "[email]"),
    ("mailto:jose%40example.es", "mailto:[email]"),
    ("user@[203.0.113.5] user@[IPv6:2001:db8::1]", "[email] [email]"),
    ("sip:+18885550456@203.0.113.5", "sip:[email]"),
    ("+1 415\u2013555\u20130100", "[phone]"),
    ("4155550100ext 12", "[phone]ext 12"),
    ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN [iban]."),
    ("GB82WEST12345698765432 and fr14 2004 1010 0505 0001 3m02 606",
     "[iban] and [iban]"),
    # a DNI with a wrong check letter is no [national_id], but its digits are a phone's
    ("dni 12345678A", "dni [phone]A"),
])
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text)[0] == expected


@pytest.mark.parametrize("text", [
    "4111-1111-1111-1112",                       # fails Luhn: not a card (and 16 digits: no phone)
    "0000 0000 0000 0000",                       # passes Luhn, but no card is all one digit
    "order 4111111111111112.",                   # 16 digits failing Luhn
    "AB12 CDEF GHIJ KLMN OP",                    # IBAN-shaped, wrong check digits
    "x-request-id 23860083-88b6-41d7-9130-30bbfebe647e",
    "2021-10-12T20:54:00.722Z",
    "on 2021-10-12 at 10:30",
    "12/10/2021",
    "server 10.90.150.99",
    "version 1.0.7.0",
    "58bebfd1-0118-419b-a555-b152a1efbbe8",
    "00000000-0000-0000-0000-000000000000",
    "order 12345, price 1,234.56",
    "I want to track my order",
])
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact_text(text) == (text, 0)


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_json_walk_masks_values_keeps_ids_at_their_paths_and_leaves_the_input_untouched(
        ) -> None:
    body = fixture("log_webhook_request.cdr_logged.full.json")
    original = copy.deepcopy(body)
    body["payload"]["customer_id"] = "jane@example.com"
    before = copy.deepcopy(body)
    redacted, count = redact_json(body)
    assert body == before                                   # a copy, not in place
    payload = redacted["payload"]
    assert payload["primary_phone_number"] == "[phone]"
    assert payload["customer_id"] == "[email]"
    assert payload["session_initiation_protocol"]["headers"]["from_uri"] == "sip:[email]"
    assert payload["global_session_id"] == original["payload"]["global_session_id"]
    summary = payload["assistant_interaction_summaries"][0]
    assert summary["turns"][0]["assistant"]["log_id"] == \
        original["payload"]["assistant_interaction_summaries"][0]["turns"][0]["assistant"]["log_id"]
    assert payload["call"] == original["payload"]["call"]  # numbers, booleans, timestamps
    assert count >= 4
    # the shape is unchanged: same keys everywhere
    assert _shape(redacted) == _shape(before)


def test_numbers_and_keys_are_scanned_and_no_value_is_lost() -> None:
    body = {"payload": {"card_number": 4111111111111111, "phone": 4155550100, "turns": 123456,
                        "confidence": 0.93, "ok": True,
                        "contacts": {"a@example.com": 1, "b@example.com": 2, "[email]": 3}}}
    redacted, count = redact_json(body)
    payload = redacted["payload"]
    assert payload["card_number"] == "[card]" and payload["phone"] == "[phone]"
    assert payload["turns"] == 123456                       # too short for a phone: kept as is
    assert payload["confidence"] == 0.93 and payload["ok"] is True
    assert sorted(payload["contacts"].values()) == [1, 2, 3]
    assert "a@example.com" not in json.dumps(payload)
    assert count == 4


def test_ids_are_kept_only_at_the_paths_where_the_assistant_puts_them() -> None:
    body = fixture("log_webhook_request.message_logged.SYNTHESIZED.json")
    payload = body["payload"]
    payload["session_id"] = "+44 20 7946 0958"              # an odd id, but the assistant's
    skill = payload["response"]["context"]["skills"]["actions skill"]
    skill["system"]["state"] = "a@example.com"
    skill["skill_variables"] = {"state": "a@example.com", "session_id": "a@example.com",
                                "log_id": {"nested": "+44 20 7946 0958"}}
    redacted, _ = redact_json(body)
    kept = redacted["payload"]
    assert kept["session_id"] == "+44 20 7946 0958"
    assert kept["response"]["context"]["skills"]["actions skill"]["system"]["state"] == \
        "a@example.com"
    assert kept["response"]["context"]["skills"]["actions skill"]["skill_variables"] == {
        "state": "[email]", "session_id": "[email]", "log_id": {"nested": "[phone]"}}
    # a key spelt like the marker of a list's items leads nowhere
    fake = {"payload": {"assistant_interaction_summaries": {"[]": {"session_id": "a@b.io"}}}}
    assert redact_json(fake)[0]["payload"]["assistant_interaction_summaries"]["[]"] == {
        "session_id": "[email]"}


def _shape(value: object) -> object:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__
