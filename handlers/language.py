"""Which language the conversation is in: the policy that weighs one message's detection
against the session, an explicit choice and the channel's locale.

A single message is weak evidence ("ok", "no", "merci"). `choose_language` is the conversation-
aware policy: an explicit choice wins; a message of nothing but chat words (`CHAT_WORDS`) is no
evidence at all; otherwise the session keeps its language unless a confident detection of a
message with enough letters for its script says otherwise. What the text alone
says comes from a detector (`handlers.detectors`, re-exported here: this module is the language
concern's one entry point).
"""

from __future__ import annotations

from typing import Any, Iterable

from .detectors import (SHORT_TEXT_WORDS, Detection, Detector, LangdetectDetector,
                        LazyDetector, LinguaDetector, build_detector)
from .scripts import has_letters, scripts_of_language

# has_letters is the scripts module's, and part of this module's interface.
__all__ = ["CHAT_WORDS", "ENDONYMS", "SHORT_TEXT_WORDS", "Detection", "Detector",
           "LangdetectDetector", "LazyDetector", "LinguaDetector", "build_detector",
           "choose_language", "enough_letters", "has_letters", "is_chat", "language_tag",
           "normalise_code"]

# Letters a message needs before it may move a session to another language. Latin letters are
# weak evidence whatever the session's language ("merci" is five letters and proves nothing; "OK"
# and product names turn up in every language). Another script than the session's is strong
# evidence on its own: one kana or Hangul letter, two Han characters, two letters of the others.
# The session's own script again (Cyrillic after Russian, Han after Japanese) needs more.
LATIN_MIN_LETTERS = 12
OTHER_SCRIPT_MIN_LETTERS = {"kana": 1, "hangul": 1, "han": 2}
OTHER_SCRIPT_DEFAULT_MIN_LETTERS = 2
SAME_SCRIPT_MIN_LETTERS = {"han": 4}
SAME_SCRIPT_DEFAULT_MIN_LETTERS = 10

# Each language's own name, for the default reply to a language the assistant does not serve.
ENDONYMS = {
    "en": "English", "es": "español", "fr": "français", "de": "Deutsch", "it": "italiano",
    "pt": "português", "nl": "Nederlands", "sv": "svenska", "pl": "polski", "ru": "русский",
    "tr": "Türkçe", "ar": "العربية", "hi": "हिन्दी", "ja": "日本語", "ko": "한국어", "zh": "中文",
    "uk": "українська", "cs": "čeština", "da": "dansk", "fi": "suomi", "no": "norsk",
    "nb": "norsk bokmål", "el": "Ελληνικά", "he": "עברית", "id": "Bahasa Indonesia",
    "ms": "Bahasa Melayu", "vi": "Tiếng Việt", "th": "ไทย", "ro": "română", "hu": "magyar",
    "bg": "български", "ca": "català", "fa": "فارسی", "bn": "বাংলা", "ur": "اردو",
}
# A short first message opens a session in another language than the assistant's only when the
# assistant's language scores below this share of the best candidate's ("Danke": 0.13 with
# lingua; "agent": 0.55). Measured with bench/language_accuracy.py.
RULED_OUT_SHARE = 0.3

# Chat words, by ASSISTANT_LANGUAGE: what customers type in the assistant's language whatever
# their own ("ok", "yes", "thanks"), plus the loan words of every language (`LOAN_WORDS`). A
# message made of nothing else says nothing about the customer's language: the session keeps its
# language, a new one starts in the assistant's. Detectors cannot know this: lingua reads "ok" as
# Polish, langdetect "yes" as Turkish. Change a list to change the rule (a word here is one
# customers of other languages type too; a word only one language uses, such as "hola", belongs
# in detectors.OPENING_WORDS instead). Entries with a space are matched as a whole message.
LOAN_WORDS = frozenset({"ok", "okay", "okey", "oki", "k"})


def _chat(words: str, *phrases: str) -> frozenset[str]:
    return frozenset(words.split()) | frozenset(phrases) | LOAN_WORDS


CHAT_WORDS: dict[str, frozenset[str]] = {
    "en": _chat("yes no yeah yep nope thanks thx thank hi hello hey help sure bye goodbye please "
                "sorry", "thank you", "no thanks", "yes please"),
    "es": _chat("sí si no vale gracias hola ayuda claro adiós adios chao bueno perfecto",
                "de nada", "por favor", "muchas gracias"),
    "fr": _chat("oui non merci bonjour salut aide bien parfait d'accord", "au revoir",
                "s'il vous plaît", "s'il te plaît", "merci beaucoup"),
    "de": _chat("ja nein danke hallo hi hilfe klar tschüss tschüs bitte gut super genau",
                "danke schön", "vielen dank"),
    "it": _chat("sì si no grazie ciao aiuto certo arrivederci prego bene perfetto", "per favore",
                "va bene", "grazie mille"),
    "pt": _chat("sim não nao obrigado obrigada olá ola oi ajuda claro tchau certo", "por favor",
                "de nada", "muito obrigado", "muito obrigada"),
    "nl": _chat("ja nee dank bedankt hallo hoi hulp zeker doei dag graag prima oké", "dank je",
                "dank u"),
    "sv": _chat("ja nej tack hej hjälp visst okej bra", "hej då", "tack så mycket"),
    "pl": _chat("tak nie dzięki dziękuję cześć pomoc jasne pa proszę dobrze okej",
                "do widzenia"),
    "ru": _chat("да нет спасибо привет помощь помогите конечно пока пожалуйста хорошо ладно ок",
                "до свидания"),
    "tr": _chat("evet hayır teşekkürler teşekkür sağol merhaba selam yardım tamam tabii",
                "teşekkür ederim", "güle güle", "hoşça kal"),
    "ar": _chat("نعم لا شكرا شكراً مرحبا أهلا اهلا مساعدة حسنا حسناً تمام", "مع السلامة"),
    "hi": _chat("हाँ हां नहीं धन्यवाद शुक्रिया नमस्ते मदद ठीक अलविदा haan nahi namaste dhanyavad "
                "shukriya", "ठीक है", "theek hai"),
    "ja": _chat("はい いいえ ありがとう ありがとうございます こんにちは 助けて お願いします わかりました 了解 "
                "さようなら オーケー"),
    "ko": _chat("네 예 아니요 아니오 감사합니다 고마워요 안녕하세요 안녕 도움 도와주세요 알겠습니다 좋아요 오케이"),
    "zh": _chat("是 是的 不 不是 谢谢 你好 帮助 帮帮我 好 好的 再见 嗯"),
}
_CHAT_MARKS = " \t!?.,;:¡¿'\"()…"


def is_chat(text: str, assistant_language: str) -> bool:
    """Whether `text` is nothing but chat words of the assistant's language (`CHAT_WORDS`; the
    loan words alone for a language without a list): "OK", "ok!", "yes please", "Thanks 👍"."""
    words = CHAT_WORDS.get(assistant_language, LOAN_WORDS)
    message = " ".join(text.lower().split()).strip(_CHAT_MARKS)
    if message in words:
        return True
    parts = [part.strip(_CHAT_MARKS) for part in message.split()]
    parts = [part for part in parts if has_letters(part)]
    return 0 < len(parts) <= SHORT_TEXT_WORDS and all(part in words for part in parts)


def enough_letters(detection: Detection, current: str) -> bool:
    """Whether the message is long enough, for its script, to move the session off `current`."""
    if detection.script == "latin":
        need = LATIN_MIN_LETTERS
    elif detection.script in scripts_of_language(current):
        need = SAME_SCRIPT_MIN_LETTERS.get(detection.script, SAME_SCRIPT_DEFAULT_MIN_LETTERS)
    else:
        need = OTHER_SCRIPT_MIN_LETTERS.get(detection.script, OTHER_SCRIPT_DEFAULT_MIN_LETTERS)
    return detection.letters >= need


def language_tag(value: Any) -> str | None:
    """" es_MX " → "es-mx": the one spelling in which the kit compares language codes, wherever
    they come from (a context variable, a locale, a file name); None for anything but a non-blank
    string. Whether the code is one the kit knows is the caller's question."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().replace("_", "-").lower()


def normalise_code(value: Any, languages: Iterable[str]) -> str | None:
    """"es", "ES", "es-MX", "es_MX" → "es" when among `languages`; anything else → None."""
    code = language_tag(value)
    if code is None:
        return None
    langs = tuple(languages)
    if code in langs:
        return code
    base = code.split("-")[0]
    return base if base in langs else None


def choose_language(detection: Detection | None, *, chosen: str | None, session: str | None,
                    hint: str | None, min_confidence: float, default: str,
                    text: str | None = None) -> tuple[str, str]:
    """The turn's language and where it came from ("chosen", "detected", "session", "locale",
    "default"). All codes given must already be among LANGUAGES (see `normalise_code`); `text`
    is the message `detection` was made from.

    - an explicit choice always wins;
    - a message of nothing but chat words of the assistant's language (`is_chat`: "ok", "yes",
      "thanks" for an English assistant) keeps the session's language (or the locale's), and
      a new session starts in the assistant's language, whatever the detection says;
    - the session keeps its language unless a detection of a message with enough letters for its
      script says otherwise, confidently or ruling the session's language out (its score under
      `RULED_OUT_SHARE` of the best: lingua spreads its confidence over the candidates, so a
      clear French sentence may score 0.35 and still leave Spanish at a tenth of that);
    - a new session starts from the locale hint when there is one (same rule), else from the
      detection of its first message when it is confident or long enough for its script (there
      is no conversation to weigh it against), else from the assistant's language;
    - a short message (one or two words, `SHORT_TEXT_WORDS`) in a script the current language
      shares never moves a session; as a first message with no hint it opens a session in another
      language than the assistant's only when detection rules the assistant's language out
      (`RULED_OUT_SHARE`), an opening word names it, or the script belongs to one candidate.
    """
    if chosen:
        return chosen, "chosen"
    current, origin = (session, "session") if session else (hint, "locale") if hint else (None, "")
    if text is not None and is_chat(text, default):
        return (current, origin) if current else (default, "default")
    if detection is None or detection.language is None:
        return (current, origin) if current else (default, "default")
    confident = detection.confidence >= min_confidence
    if 0 < detection.words <= SHORT_TEXT_WORDS and detection.method != "script":
        if current is not None:
            if detection.script in scripts_of_language(current):
                return current, "detected" if detection.language == current else origin
        elif detection.language == default or detection.method == "opening_word":
            return detection.language, "detected"
        elif detection.assistant_share is not None \
                and detection.assistant_share < RULED_OUT_SHARE:
            return detection.language, "detected"
        else:
            return default, "default"
    if current is None:
        if confident or enough_letters(detection, default):
            return detection.language, "detected"
        return default, "default"
    if detection.language == current:
        return current, "detected"
    current_share = detection.share_of(current)
    ruled_out = current_share is not None and current_share < RULED_OUT_SHARE
    if (confident or ruled_out) and enough_letters(detection, current):
        return detection.language, "detected"
    return current, origin
