"""Where the readable text of each response type is, and masking what must survive translation.

These tests run `handlers.fields` on IBM's published reply examples with a stand-in translation
(a visible prefix), and compare the reply before and after leaf by leaf: the expected list of
changed places is written out per example, so a field translated by mistake (a value, a URL, the
message for the human agent) or missed (a nested suggestion output) fails by name.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest

from handlers import fields
from tests.conftest import FIXTURES, fixture

PREFIX = "«es» "


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar of a JSON document with its path (`output.generic[0].text`)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def shape(node: Any) -> Any:
    """The document with every scalar replaced by its type name: keys, nesting, list lengths."""
    if isinstance(node, dict):
        return {key: shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [shape(value) for value in node]
    return type(node).__name__


def changed_paths(before: Any, after: Any) -> set[str]:
    """The leaves that differ; the two documents must have the same shape and key order."""
    assert shape(before) == shape(after)
    assert [p for p, _ in leaves(before)] == [p for p, _ in leaves(after)]
    old = dict(leaves(before))
    return {path for path, value in leaves(after) if old[path] != value}


def as_payload(example: dict[str, Any]) -> dict[str, Any]:
    """An example as a message response payload: runtime examples already are one; the reference's
    `{"generic": [...]}` and lone items are put into `output.generic`."""
    if "output" in example:
        return example
    if "generic" in example:
        return {"output": {"generic": example["generic"]}}
    return {"output": {"generic": [example]}}


def fake_translate(texts: list[str]) -> dict[str, str]:
    return {text: PREFIX + text for text in texts}


def translate_payload(payload: dict[str, Any]) -> tuple[int, int]:
    slots = fields.find_output_texts(payload["output"])
    return fields.apply(slots, fake_translate(fields.wanted(slots)))


G = "output.generic"
# Every response example and the places in it a person reads.
EXPECTED: dict[str, set[str]] = {
    "runtime_output.audio.api-dialog-responses_L142.json": set(),
    "runtime_output.iframe.api-dialog-responses_L170.json": {f"{G}[0].title"},
    "runtime_output.image.api-dialog-responses_L86.json": {f"{G}[0].title", f"{G}[0].description"},
    "runtime_output.option.api-dialog-responses_L216.json": {
        f"{G}[0].title", f"{G}[0].description", f"{G}[0].options[0].label",
        f"{G}[0].options[1].label"},
    "runtime_output.option.api-dialog-responses_L464.json": {
        f"{G}[0].title", f"{G}[0].options[0].label", f"{G}[0].options[1].label",
        f"{G}[0].options[2].label"},
    "runtime_output.pause.api-dialog-responses_L192.json": set(),
    "runtime_output.search.api-dialog-responses_L363.json": {
        f"{G}[0].header", f"{G}[0].results[0].title", f"{G}[0].results[0].body",
        f"{G}[0].results[0].highlight.Shortdesc[0]", f"{G}[0].results[0].highlight.body[0]"},
    "runtime_output.suggestion.api-dialog-responses_L263.json": {
        f"{G}[0].title",
        f"{G}[0].suggestions[0].label", f"{G}[0].suggestions[0].output.text[0]",
        f"{G}[0].suggestions[0].output.generic[0].text",
        f"{G}[0].suggestions[1].label", f"{G}[0].suggestions[1].output.text[0]",
        f"{G}[0].suggestions[1].output.generic[0].text"},
    "runtime_output.text.api-dialog-responses_L25.json": {f"{G}[0].text", "output.text[0]"},
    "runtime_output.text.api-dialog-responses_L64.json": {f"{G}[0].text"},
    "runtime_output.user_defined.api-dialog-responses_L411.json": set(),
    "runtime_output.video.api-dialog-responses_L109.json": {
        f"{G}[0].title", f"{G}[0].description", f"{G}[0].alt_text"},
    "runtime_or_editor.audio.response-types-reference_L121.json": {
        f"{G}[0].title", f"{G}[0].description"},
    "runtime_or_editor.button.response-types-reference_L173.json": {f"{G}[0].label"},
    "runtime_or_editor.button.response-types-reference_L202.json": {f"{G}[0].label"},
    "runtime_or_editor.button.response-types-reference_L234.json": {
        f"{G}[0].label", f"{G}[0].panel.title", f"{G}[0].panel.body[1].text"},
    "runtime_or_editor.button.response-types-reference_L273.json": {f"{G}[0].label"},
    "runtime_or_editor.card.response-types-reference_L311.json": {
        f"{G}[0].body[0].text", f"{G}[0].body[1].text"},
    "runtime_or_editor.carousel.response-types-reference_L354.json": {
        f"{G}[0].items[{i}].body[{j}].text" for i in (0, 1) for j in (0, 1)},
    "runtime_or_editor.channel_transfer+connect_to_agent.response-types-reference_L419.json": {
        f"{G}[0].message_to_user", f"{G}[1].agent_available.message",
        f"{G}[1].agent_unavailable.message"},
    "runtime_or_editor.connect_to_agent.response-types-reference_L498.json": {
        f"{G}[0].agent_available.message", f"{G}[0].agent_unavailable.message"},
    "runtime_or_editor.date+text.response-types-reference_L542.json": {f"{G}[0].text"},
    "runtime_or_editor.dtmf.response-types-reference_L592.json": set(),
    "runtime_or_editor.end_session.response-types-reference_L643.json": set(),
    "runtime_or_editor.grid.response-types-reference_L687.json": {
        f"{G}[0].rows[{r}].cells[{c}].items[0].text" for r in (0, 1) for c in (0, 1)},
    "runtime_or_editor.iframe.response-types-reference_L782.json": {
        f"{G}[0].title", f"{G}[0].description"},
    "runtime_or_editor.image.response-types-reference_L832.json": {
        f"{G}[0].title", f"{G}[0].description"},
    "runtime_or_editor.option.response-types-reference_L879.json": {
        f"{G}[0].title", f"{G}[0].options[0].label", f"{G}[0].options[1].label"},
    "runtime_or_editor.pause.response-types-reference_L938.json": set(),
    "runtime_or_editor.speech_to_text.response-types-reference_L986.json": set(),
    "runtime_or_editor.start_activities.response-types-reference_L1041.json": set(),
    "runtime_or_editor.stop_activities.response-types-reference_L1092.json": set(),
    # "22" has no words to translate.
    "runtime_or_editor.table.response-types-reference_L1146.json": {
        f"{G}[0].title", f"{G}[0].description", f"{G}[0].headers[0]", f"{G}[0].headers[1]",
        f"{G}[0].rows[0].cells[0]", f"{G}[0].rows[0].cells[1]", f"{G}[0].rows[1].cells[0]"},
    # The JSON editor's form of a text (values/text_expression) is not what the runtime sends.
    "runtime_or_editor.text.response-types-reference_L1198.json": set(),
    "runtime_or_editor.text.response-types-reference_L32.json": set(),
    "runtime_or_editor.text_to_speech.response-types-reference_L1261.json": set(),
    "runtime_or_editor.user_defined.response-types-reference_L1316.json": set(),
    "runtime_or_editor.video.response-types-reference_L1387.json": {
        f"{G}[0].title", f"{G}[0].description"},
}


def test_every_response_example_is_listed():
    on_disk = {path.name for path in FIXTURES.glob("runtime_*.json")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_readable_text_changes(name):
    before = as_payload(fixture(name))
    after = copy.deepcopy(before)
    done, kept = translate_payload(after)
    changed = changed_paths(before, after)
    assert changed == EXPECTED[name]
    old = dict(leaves(before))
    for path, value in leaves(after):
        if path in changed:
            assert value == PREFIX + old[path]
    assert (done, kept) == (len(changed), 0)


def test_a_reply_holding_every_type_at_once():
    items: list[dict[str, Any]] = []
    expected: set[str] = set()
    for name in sorted(EXPECTED):
        generic = as_payload(fixture(name))["output"]["generic"]
        for path in EXPECTED[name]:
            if path.startswith(G):
                index, rest = path[len(G) + 1:].split("]", 1)
                expected.add(f"{G}[{len(items) + int(index)}]{rest}")
        items.extend(generic)
    before = {"output": {"generic": items}}
    after = copy.deepcopy(before)
    translate_payload(after)
    assert changed_paths(before, after) == expected
    assert len(expected) > 60


def test_values_urls_and_the_human_agent_message_are_never_sent():
    reply = as_payload(fixture("runtime_or_editor.channel_transfer+connect_to_agent"
                               ".response-types-reference_L419.json"))
    reply["output"]["generic"] += fixture("runtime_output.option.api-dialog-responses_L216.json")[
        "output"]["generic"]
    sent = fields.wanted(fields.find_output_texts(reply["output"]))
    assert "User asked to speak to an agent." not in sent
    assert "option 1" not in sent and "option 2" not in sent
    assert not any("example.com" in text for text in sent)
    assert "Option {0}" in sent  # the label, its number masked (issue 13 item 6)


def test_unknown_types_and_editor_forms_pass_untouched():
    items = [{"response_type": "hologram", "text": "Hello", "title": "A title"},
             {"response_type": "user_defined", "user_defined": {"text": "Hello"}},
             {"text": "no response type"}, "not an object", None,
             {"response_type": "text", "text": 42}]
    assert fields.find_texts(copy.deepcopy(items)) == []


def test_each_distinct_string_is_asked_for_once():
    reply = fixture("runtime_output.text.api-dialog-responses_L25.json")
    reply["output"]["generic"].append({"response_type": "text",
                                       "text": "OK, here's a picture of a dog."})
    slots = fields.find_output_texts(reply["output"])
    assert len(slots) == 3
    assert fields.wanted(slots) == ["OK, here's a picture of a dog."]


def test_search_highlight_of_the_url_is_left_alone():
    reply = fixture("runtime_output.search.api-dialog-responses_L363.json")
    url_highlight = reply["output"]["generic"][0]["results"][0]["highlight"]["url"][0]
    translate_payload(reply)
    result = reply["output"]["generic"][0]["results"][0]
    assert result["highlight"]["url"][0] == url_highlight
    # The <em> tags of the highlight survive, the words between them are translated.
    assert result["highlight"]["body"][0].startswith(PREFIX + "IBM <em>watsonx</em> <em>")


# --- conversational search: the citation offsets follow the translated text -------------------

def conversational_search() -> dict[str, Any]:
    text = "Returns are free for 30 days. Refunds take five days. Ask us anything."
    first, second = text.index("Returns"), text.index("Refunds")
    return {"response_type": "conversational_search", "text": text,
            "citations_title": "How do we know?",
            "citations": [
                {"title": "Returns policy", "text": "Free returns within 30 days",
                 "url": "https://example.com/returns", "search_result_index": 0,
                 "ranges": [{"start": first, "end": first + 29}]},
                {"title": "Refunds", "text": "Refunds in five days",
                 "url": "https://example.com/refunds", "search_result_index": 1,
                 "range_start": second, "range_end": second + 23}],
            "search_results": [{"id": "doc-1", "title": "Returns", "body": "Body"}],
            "confidence_scores": {"threshold": 0.4},
            "disclaimer": "Answers are generated and may be wrong."}


def test_conversational_search_moves_citation_ranges():
    item = conversational_search()
    before = copy.deepcopy(item)
    slots = fields.find_texts([item])
    fields.apply(slots, fake_translate(fields.wanted(slots)))
    assert changed_paths(before, item) == {
        "text", "citations_title", "citations[0].title", "citations[0].text",
        "citations[1].title", "citations[1].text", "disclaimer",
        "citations[0].ranges[0].end",  # its start, 0, stays 0
        "citations[1].range_start", "citations[1].range_end"}
    first = item["citations"][0]["ranges"][0]
    assert item["text"][first["start"]:first["end"]] == PREFIX + "Returns are free for 30 days."
    second = item["citations"][1]
    assert (item["text"][second["range_start"]:second["range_end"]]
            == PREFIX + "Refunds take five days.")
    assert item["text"].endswith(PREFIX + "Ask us anything.")
    assert item["search_results"] == before["search_results"]


def test_conversational_search_piece_failing_keeps_offsets_true():
    item = conversational_search()
    slots = fields.find_texts([item])
    wanted = fields.wanted(slots)
    translations = fake_translate([w for w in wanted if not w.startswith("Refunds take")])
    fields.apply(slots, translations)
    second = item["citations"][1]
    assert item["text"][second["range_start"]:second["range_end"]] == "Refunds take five days."


def test_out_of_range_offsets_are_left_alone():
    item = conversational_search()
    item["citations"][0]["ranges"][0]["end"] = 10_000
    slots = fields.find_texts([item])
    fields.apply(slots, fake_translate(fields.wanted(slots)))
    assert item["citations"][0]["ranges"][0]["end"] == 10_000
    assert item["text"].startswith(PREFIX)


# --- masking ----------------------------------------------------------------------------------

PROTECTED_EXAMPLES = [
    ("Read https://www.ibm.com/products?id=7&x=y#top today.", "https://www.ibm.com/products?id=7&x=y#top"),
    ("Go to www.example.org/help now", "www.example.org/help"),
    ("Write to help.desk+eu@example.co.uk please", "help.desk+eu@example.co.uk"),
    ("See [our guide](https://example.com/guide_(v2) \"Guide\") first", "(https://example.com/guide_(v2) \"Guide\")"),
    ("See [our guide](/relative/path) first", "(/relative/path)"),
    ('Click <a href="https://example.com/a b" target=\'_blank\'>here</a>', '<a href="https://example.com/a b" target=\'_blank\'>'),
    ("Line<br/>break and <b>bold</b>", "<br/>"),
    ("Hello {{user_name}}, welcome", "{{user_name}}"),
    ("Your order $order_number ships $ship.date", "$order_number"),
    ("Your order $order_number ships $ship.date", "$ship.date"),
    ("Total: ${total} due", "${total}"),
    ("Type `reset password` to start", "`reset password`"),
    ("Fish &amp; chips", "&amp;"),
    ("Call tel:+441234567890 or mailto:a@b.com", "tel:+441234567890"),
]


@pytest.mark.parametrize("text,span", PROTECTED_EXAMPLES)
def test_protected_spans_are_hidden_and_restored(text, span):
    masked = fields.mask(text)
    assert span in masked.spans
    assert span not in masked.text
    assert fields.unmask(masked, masked.text) == text
    translated = fields.unmask(masked, PREFIX + masked.text.upper())
    assert translated is not None and span in translated


def test_urls_keep_sentence_punctuation_outside():
    masked = fields.mask("Visit https://ibm.com/x. Or https://ibm.com/y, then stop!")
    assert masked.spans == ("https://ibm.com/x", "https://ibm.com/y")


def test_text_with_no_words_left_is_not_sent():
    for text in ("https://example.com/x", "22", "{{name}}", "  ", "<br/>", "$amount"):
        assert not fields.mask(text).translatable
    assert fields.mask("Hi {{name}}").translatable


def test_whitespace_around_the_text_is_kept():
    masked = fields.mask("  Hi, \n")
    assert masked.text == "Hi,"
    assert fields.unmask(masked, " Hola, ") == "  Hola, \n"


def test_lost_or_doubled_tokens_refuse_the_translation():
    masked = fields.mask("See https://a.example/x and {{b}}")
    assert masked.text == "See {0} and {1}"
    assert fields.unmask(masked, "Ver {0}") is None
    assert fields.unmask(masked, "Ver {0} y {1} y {1}") is None
    assert fields.unmask(masked, "Ver {0} y {2}") is None
    # Spacing and full-width braces that some translators produce are accepted.
    assert fields.unmask(masked, "Ver { 0 } y ｛1｝") == "Ver https://a.example/x y {{b}}"


def test_literal_braces_in_text_cannot_pose_as_tokens():
    masked = fields.mask("Press {0} then https://x.example")
    assert masked.text == "Press {0} then {1}"
    assert fields.unmask(masked, "Pulse {0} luego {1}") == "Press {0} then https://x.example".replace(
        "Press", "Pulse").replace("then", "luego")


def test_a_bad_translation_keeps_the_original_string():
    reply = {"output": {"generic": [
        {"response_type": "text", "text": "Open https://example.com/a now"},
        {"response_type": "text", "text": "Thanks"}]}}
    slots = fields.find_output_texts(reply["output"])
    done, kept = fields.apply(slots, {"Open {0} now": "Abrir ahora", "Thanks": "Gracias"})
    assert (done, kept) == (1, 1)
    assert [item["text"] for item in reply["output"]["generic"]] == [
        "Open https://example.com/a now", "Gracias"]


# --- offered options ------------------------------------------------------------------------

def test_offered_values_are_what_a_click_sends_back():
    items = (fixture("runtime_output.option.api-dialog-responses_L464.json")["output"]["generic"]
             + fixture("runtime_output.suggestion.api-dialog-responses_L263.json")["output"]["generic"]
             + [fixture("runtime_or_editor.button.response-types-reference_L173.json"),
                fixture("runtime_or_editor.button.response-types-reference_L273.json")])
    assert fields.offered_values(items, 50) == [
        "hello", "time", "goodbye", "I want to place an order", "I need a drink refill",
        "[Message to send]"]
    assert fields.offered_values(items, 2) == ["hello", "time"]
    assert fields.offered_values(fixture("runtime_output.text.api-dialog-responses_L64.json")[
        "output"]["generic"], 50) == []


def test_examples_are_valid_json_after_translation():
    for name in EXPECTED:
        payload = as_payload(fixture(name))
        translate_payload(payload)
        json.loads(json.dumps(payload))
