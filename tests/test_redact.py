"""LOG_REDACT's masking: what is personal data, what only looks like it, and the JSON walk."""

from __future__ import annotations

import copy

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
])
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text)[0] == expected


@pytest.mark.parametrize("text", [
    "4111-1111-1111-1112",                       # fails Luhn: not a card (and 16 digits: no phone)
    "0000 0000 0000 0000",                       # passes Luhn, but no card is all one digit
    "dni 12345678A",                             # wrong check letter
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


def test_json_walk_masks_strings_only_keeps_ids_and_leaves_the_input_untouched() -> None:
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


def _shape(value: object) -> object:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__
