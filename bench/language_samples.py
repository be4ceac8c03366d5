"""Labelled chat-like messages, written for this project, for bench/language_accuracy.py.

What customers type to a support assistant: single words, two-word phrases, short sentences, in
sixteen languages (ten written in Latin script, where detection is hard, and six in their own
scripts), and conversations that open with a sentence and go on with short replies, some of which
(e.g. "ok", "no", "Paypal") are ambiguous on their own: that is where the conversation matters.
"""

from __future__ import annotations

# language -> kind -> messages
MESSAGES: dict[str, dict[str, list[str]]] = {
    "en": {
        "word": ["thanks", "hello", "refund", "shipping", "invoice", "cancel", "help", "password",
                 "delivery", "yes"],
        "phrase": ["thank you", "track order", "wrong size", "not working", "good morning",
                   "my account", "late delivery", "great thanks", "sounds good", "reset password"],
        "sentence": ["Where is my order?", "I want to return these shoes",
                     "Can I change my delivery address?", "My card was charged twice",
                     "How long does shipping take?", "I forgot my password again",
                     "The package arrived damaged", "Do you ship to Canada?",
                     "I need to speak with someone", "Why was my order cancelled?"],
    },
    "es": {
        "word": ["gracias", "hola", "pedido", "factura", "ayuda", "envío", "devolución",
                 "contraseña", "vale", "perfecto"],
        "phrase": ["muchas gracias", "buenos días", "mi pedido", "talla equivocada",
                   "no funciona", "por favor", "mi cuenta", "quiero devolverlo", "está roto",
                   "sin respuesta"],
        "sentence": ["¿Dónde está mi pedido?", "Quiero devolver estos zapatos",
                     "¿Puedo cambiar la dirección de entrega?", "Me cobraron dos veces",
                     "¿Cuánto tarda el envío?", "Olvidé mi contraseña otra vez",
                     "El paquete llegó dañado", "¿Hacen envíos a México?",
                     "Necesito hablar con una persona", "¿Por qué cancelaron mi pedido?"],
    },
    "fr": {
        "word": ["merci", "bonjour", "commande", "facture", "aide", "livraison", "remboursement",
                 "d'accord", "parfait", "salut"],
        "phrase": ["merci beaucoup", "bonne journée", "ma commande", "mauvaise taille",
                   "ça marche", "s'il vous plaît", "mon compte", "pas reçu", "c'est cassé",
                   "aucune réponse"],
        "sentence": ["Où est ma commande ?", "Je veux retourner ces chaussures",
                     "Puis-je changer mon adresse de livraison ?", "J'ai été débité deux fois",
                     "Combien de temps prend la livraison ?", "J'ai encore oublié mon mot de passe",
                     "Le colis est arrivé abîmé", "Livrez-vous en Belgique ?",
                     "Je dois parler à quelqu'un", "Pourquoi ma commande a-t-elle été annulée ?"],
    },
    "de": {
        "word": ["danke", "hallo", "Bestellung", "Rechnung", "Hilfe", "Lieferung",
                 "Rückerstattung", "Passwort", "genau", "super"],
        "phrase": ["vielen Dank", "guten Morgen", "meine Bestellung", "falsche Größe",
                   "geht nicht", "bitte schön", "mein Konto", "nicht angekommen", "ist kaputt",
                   "keine Antwort"],
        "sentence": ["Wo ist meine Bestellung?", "Ich möchte diese Schuhe zurückgeben",
                     "Kann ich meine Lieferadresse ändern?", "Mir wurde doppelt abgebucht",
                     "Wie lange dauert der Versand?", "Ich habe mein Passwort schon wieder vergessen",
                     "Das Paket kam beschädigt an", "Liefern Sie auch nach Österreich?",
                     "Ich muss mit jemandem sprechen", "Warum wurde meine Bestellung storniert?"],
    },
    "it": {
        "word": ["grazie", "ciao", "ordine", "fattura", "aiuto", "spedizione", "rimborso",
                 "perfetto", "certo", "buonasera"],
        "phrase": ["grazie mille", "buongiorno a tutti", "il mio ordine", "taglia sbagliata",
                   "non funziona", "per favore", "il mio account", "non arrivato", "è rotto",
                   "nessuna risposta"],
        "sentence": ["Dov'è il mio ordine?", "Voglio restituire queste scarpe",
                     "Posso cambiare l'indirizzo di consegna?", "Mi hanno addebitato due volte",
                     "Quanto ci vuole per la spedizione?", "Ho dimenticato di nuovo la password",
                     "Il pacco è arrivato danneggiato", "Spedite anche in Svizzera?",
                     "Devo parlare con qualcuno", "Perché il mio ordine è stato annullato?"],
    },
    "pt": {
        "word": ["obrigado", "olá", "encomenda", "fatura", "ajuda", "entrega", "reembolso",
                 "perfeito", "beleza", "obrigada"],
        "phrase": ["muito obrigado", "bom dia", "minha encomenda", "tamanho errado",
                   "não funciona", "por favor", "minha conta", "não chegou", "está quebrado",
                   "sem resposta"],
        "sentence": ["Onde está a minha encomenda?", "Quero devolver estes sapatos",
                     "Posso mudar o endereço de entrega?", "Fui cobrado duas vezes",
                     "Quanto tempo demora o envio?", "Esqueci a minha senha outra vez",
                     "O pacote chegou danificado", "Vocês enviam para o Brasil?",
                     "Preciso falar com alguém", "Por que o meu pedido foi cancelado?"],
    },
    "nl": {
        "word": ["bedankt", "hoi", "bestelling", "factuur", "hulp", "levering", "terugbetaling",
                 "wachtwoord", "prima", "dankjewel"],
        "phrase": ["heel erg bedankt", "goedemorgen allemaal", "mijn bestelling", "verkeerde maat",
                   "werkt niet", "alstublieft", "mijn account", "niet ontvangen", "is kapot",
                   "geen antwoord"],
        "sentence": ["Waar is mijn bestelling?", "Ik wil deze schoenen terugsturen",
                     "Kan ik mijn bezorgadres wijzigen?", "Er is twee keer afgeschreven",
                     "Hoe lang duurt de verzending?", "Ik ben mijn wachtwoord weer vergeten",
                     "Het pakket kwam beschadigd aan", "Leveren jullie ook in België?",
                     "Ik moet iemand spreken", "Waarom is mijn bestelling geannuleerd?"],
    },
    "sv": {
        "word": ["tack", "hej", "beställning", "faktura", "hjälp", "leverans", "återbetalning",
                 "lösenord", "toppen", "absolut"],
        "phrase": ["tack så mycket", "god morgon", "min beställning", "fel storlek",
                   "fungerar inte", "snälla hjälp", "mitt konto", "inte levererad", "är trasig",
                   "inget svar"],
        "sentence": ["Var är min beställning?", "Jag vill returnera de här skorna",
                     "Kan jag ändra min leveransadress?", "Jag blev debiterad två gånger",
                     "Hur lång tid tar frakten?", "Jag har glömt mitt lösenord igen",
                     "Paketet kom fram skadat", "Skickar ni till Norge?",
                     "Jag behöver prata med någon", "Varför avbröts min beställning?"],
    },
    "pl": {
        "word": ["dziękuję", "cześć", "zamówienie", "faktura", "pomocy", "dostawa", "zwrot",
                 "hasło", "świetnie", "dzięki"],
        "phrase": ["bardzo dziękuję", "dzień dobry", "moje zamówienie", "zły rozmiar",
                   "nie działa", "proszę pomóc", "moje konto", "nie dotarło", "jest zepsute",
                   "brak odpowiedzi"],
        "sentence": ["Gdzie jest moje zamówienie?", "Chcę zwrócić te buty",
                     "Czy mogę zmienić adres dostawy?", "Pobrano opłatę dwa razy",
                     "Ile trwa wysyłka?", "Znowu zapomniałem hasła",
                     "Paczka dotarła uszkodzona", "Czy wysyłacie do Niemiec?",
                     "Muszę porozmawiać z konsultantem", "Dlaczego moje zamówienie zostało anulowane?"],
    },
    "tr": {
        "word": ["teşekkürler", "merhaba", "sipariş", "fatura", "yardım", "teslimat", "iade",
                 "şifre", "tamam", "harika"],
        "phrase": ["çok teşekkürler", "günaydın efendim", "siparişim nerede", "yanlış beden",
                   "çalışmıyor", "lütfen yardım", "hesabım", "gelmedi hala", "kırık geldi",
                   "cevap yok"],
        "sentence": ["Siparişim nerede?", "Bu ayakkabıları iade etmek istiyorum",
                     "Teslimat adresimi değiştirebilir miyim?", "Kartımdan iki kez çekildi",
                     "Kargo ne kadar sürer?", "Şifremi yine unuttum",
                     "Paket hasarlı geldi", "Almanya'ya gönderim yapıyor musunuz?",
                     "Biriyle konuşmam gerekiyor", "Siparişim neden iptal edildi?"],
    },
    "ru": {
        "word": ["спасибо", "привет", "заказ", "доставка", "да"],
        "phrase": ["большое спасибо", "мой заказ", "не работает", "добрый день", "неправильный размер"],
        "sentence": ["Где мой заказ?", "Я хочу вернуть эти туфли", "Можно изменить адрес доставки?",
                     "С меня списали деньги дважды", "Сколько идёт доставка?"],
    },
    "ar": {
        "word": ["شكرا", "مرحبا", "طلبي", "فاتورة", "نعم"],
        "phrase": ["شكرا جزيلا", "صباح الخير", "لا يعمل", "حسابي مغلق", "مقاس خاطئ"],
        "sentence": ["أين طلبي؟", "أريد إرجاع هذا الحذاء", "هل يمكنني تغيير عنوان التوصيل؟",
                     "تم خصم المبلغ مرتين", "كم يستغرق الشحن؟"],
    },
    "ja": {
        "word": ["ありがとう", "はい", "注文", "配送", "返金"],
        "phrase": ["ありがとうございます", "注文番号", "届いていません", "サイズ違い", "おはようございます"],
        "sentence": ["注文はどこですか？", "この靴を返品したいです", "配送先を変更できますか？",
                     "二重に請求されました", "配送にはどのくらいかかりますか？"],
    },
    "ko": {
        "word": ["감사합니다", "네", "주문", "배송", "환불"],
        "phrase": ["정말 감사합니다", "주문 번호", "작동 안 해요", "사이즈 교환", "안녕하세요 상담"],
        "sentence": ["제 주문은 어디에 있나요?", "이 신발을 반품하고 싶어요", "배송지를 바꿀 수 있나요?",
                     "두 번 결제되었어요", "배송은 얼마나 걸리나요?"],
    },
    "zh": {
        "word": ["谢谢", "你好", "订单", "退款", "好的"],
        "phrase": ["非常感谢", "我的订单", "尺码不对", "无法登录", "还没收到"],
        "sentence": ["我的订单在哪里？", "我想退回这双鞋", "可以修改收货地址吗？", "我被扣了两次款",
                     "运送需要多长时间？"],
    },
    "hi": {
        "word": ["धन्यवाद", "नमस्ते", "ऑर्डर", "रिफंड", "हाँ"],
        "phrase": ["बहुत धन्यवाद", "मेरा ऑर्डर", "काम नहीं करता", "गलत साइज़", "कोई जवाब नहीं"],
        "sentence": ["मेरा ऑर्डर कहाँ है?", "मैं ये जूते वापस करना चाहता हूँ",
                     "क्या मैं डिलीवरी का पता बदल सकता हूँ?", "मुझसे दो बार पैसे काटे गए",
                     "शिपिंग में कितना समय लगता है?"],
    },
}

# (language, opening sentence, short follow-ups in the same language)
CONVERSATIONS: list[tuple[str, str, list[str]]] = [
    ("en", "Hi, I ordered a jacket last week and it still has not arrived",
     ["ok", "yes", "order 48213", "thanks", "no", "perfect", "bye"]),
    ("en", "Hello, I would like to change the email address on my account",
     ["sure", "ok thanks", "Paypal", "done", "great"]),
    ("es", "Hola, pedí una chaqueta la semana pasada y todavía no ha llegado",
     ["vale", "sí", "pedido 48213", "gracias", "no", "perfecto", "adiós"]),
    ("es", "Buenas tardes, quiero cambiar el correo electrónico de mi cuenta",
     ["claro", "ok gracias", "Paypal", "listo", "genial"]),
    ("fr", "Bonjour, j'ai commandé une veste la semaine dernière et elle n'est toujours pas arrivée",
     ["d'accord", "oui", "commande 48213", "merci", "non", "parfait", "au revoir"]),
    ("fr", "Bonsoir, je voudrais changer l'adresse e-mail de mon compte",
     ["bien sûr", "ok merci", "Paypal", "c'est fait", "super"]),
    ("de", "Hallo, ich habe letzte Woche eine Jacke bestellt und sie ist immer noch nicht da",
     ["okay", "ja", "Bestellung 48213", "danke", "nein", "perfekt", "tschüss"]),
    ("de", "Guten Abend, ich möchte die E-Mail-Adresse in meinem Konto ändern",
     ["klar", "ok danke", "Paypal", "erledigt", "super"]),
    ("it", "Ciao, ho ordinato una giacca la settimana scorsa e non è ancora arrivata",
     ["va bene", "sì", "ordine 48213", "grazie", "no", "perfetto", "arrivederci"]),
    ("it", "Buonasera, vorrei cambiare l'indirizzo email del mio account",
     ["certo", "ok grazie", "Paypal", "fatto", "ottimo"]),
    ("pt", "Olá, encomendei um casaco na semana passada e ainda não chegou",
     ["tá bom", "sim", "pedido 48213", "obrigado", "não", "perfeito", "tchau"]),
    ("pt", "Boa tarde, quero mudar o endereço de e-mail da minha conta",
     ["claro", "ok obrigado", "Paypal", "pronto", "ótimo"]),
    ("nl", "Hallo, ik heb vorige week een jas besteld en die is nog steeds niet aangekomen",
     ["oké", "ja", "bestelling 48213", "bedankt", "nee", "perfect", "doei"]),
    ("nl", "Goedenavond, ik wil het e-mailadres van mijn account wijzigen",
     ["natuurlijk", "ok dank je", "Paypal", "gedaan", "top"]),
    ("sv", "Hej, jag beställde en jacka förra veckan och den har fortfarande inte kommit",
     ["okej", "ja", "order 48213", "tack", "nej", "perfekt", "hej då"]),
    ("sv", "God kväll, jag vill ändra e-postadressen på mitt konto",
     ["visst", "ok tack", "Paypal", "klart", "toppen"]),
    ("pl", "Dzień dobry, zamówiłem kurtkę w zeszłym tygodniu i nadal nie dotarła",
     ["dobrze", "tak", "zamówienie 48213", "dziękuję", "nie", "super", "do widzenia"]),
    ("pl", "Dobry wieczór, chcę zmienić adres e-mail na moim koncie",
     ["jasne", "ok dzięki", "Paypal", "gotowe", "świetnie"]),
    ("tr", "Merhaba, geçen hafta bir ceket sipariş ettim ve hala gelmedi",
     ["tamam", "evet", "sipariş 48213", "teşekkürler", "hayır", "mükemmel", "görüşürüz"]),
    ("tr", "İyi akşamlar, hesabımdaki e-posta adresini değiştirmek istiyorum",
     ["tabii", "ok sağ olun", "Paypal", "oldu", "süper"]),
    ("ja", "こんにちは、先週ジャケットを注文しましたが、まだ届いていません",
     ["はい", "了解", "注文48213", "ありがとう", "OK", "いいえ"]),
    ("zh", "你好，我上周订了一件夹克，到现在还没到",
     ["好的", "是", "订单48213", "谢谢", "OK", "不是"]),
    ("ru", "Здравствуйте, я заказал куртку на прошлой неделе, и она до сих пор не пришла",
     ["ок", "да", "заказ 48213", "спасибо", "нет", "OK"]),
]


# --- web text nobody on the project wrote (issue 14) --------------------------------------------
#
# Harder than the chat phrases above, and labelled by others:
# - single words of 5+ letters (2+ characters in Han and kana) and word pairs, drawn with a fixed
#   seed from the `wordfreq` package's word lists (built from web text: Wikipedia, subtitles,
#   news, web crawls, Reddit, Twitter), ranks 300-8000; a word is labelled with its list's
#   language only when wordfreq finds it more frequent there than in any other of the twelve
#   languages (so "hotel" or "menu" label nothing);
# - sentences: translators' own sentences from the system's gettext catalogs
#   (/usr/share/locale/<lang>/LC_MESSAGES/{apt,glib20,PackageKit}.mo, msgstr; for English the
#   msgid), 5+ words (10+ characters in Han and kana), format directives removed.
# wordfreq is a bench/test requirement (requirements-test.in), never a runtime one.

WEB_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "ru", "ja", "zh", "ar", "tr")
WEB_PER_KIND = 60
_CATALOGS = ("apt", "glib20", "PackageKit")
_LOCALE_DIRS = {"zh": "zh_CN"}


def _mo_strings(path: "pathlib.Path") -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a GNU .mo file (the format is a header and two offset tables)."""
    import struct

    data = path.read_bytes()
    order = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])
    pairs = []
    for index in range(count):
        id_len, id_at = struct.unpack(order + "2I", data[ids_at + 8 * index:ids_at + 8 * index + 8])
        str_len, str_at = struct.unpack(order + "2I",
                                        data[strs_at + 8 * index:strs_at + 8 * index + 8])
        msgid = data[id_at:id_at + id_len].decode("utf-8", "replace").split("\0")[0]
        msgstr = data[str_at:str_at + str_len].decode("utf-8", "replace").split("\0")[0]
        if msgid and msgstr:
            pairs.append((msgid, msgstr))
    return pairs


def _clean_sentence(text: str) -> str:
    import re

    text = re.sub(r"%(\d+\$)?[-#0 +']*\d*(\.\d+)?(l|ll|h|z)?[a-zA-Z%]|\$\{?\w+\}?|<[^>]*>|_",
                  " ", text)
    return " ".join(text.split())


def _cjk(language: str) -> bool:
    return language in ("ja", "zh")


def web_sentences(language: str, count: int = WEB_PER_KIND, seed: int = 14) -> list[str]:
    import pathlib
    import random

    found: list[str] = []
    source = "es" if language == "en" else language
    for catalog in _CATALOGS:
        path = pathlib.Path("/usr/share/locale") / _LOCALE_DIRS.get(source, source) / \
            "LC_MESSAGES" / f"{catalog}.mo"
        if not path.exists():
            continue
        for msgid, msgstr in _mo_strings(path):
            text = _clean_sentence(msgid if language == "en" else msgstr)
            if text == _clean_sentence(msgid) and language != "en":
                continue  # left untranslated
            long_enough = len(text) >= 10 if _cjk(language) else \
                len([w for w in text.split() if any(c.isalpha() for c in w)]) >= 5
            if long_enough and len(text) <= 300 and text not in found:
                found.append(text)
    random.Random(f"{seed}-{language}-sentence").shuffle(found)
    return found[:count]


def _web_words(language: str, seed: int, frequencies: dict[str, dict[str, float]]) -> list[str]:
    import random

    import wordfreq

    words = []
    for word in wordfreq.top_n_list(language, 8000)[300:]:
        if not all(ch.isalpha() for ch in word) or len(word) < (2 if _cjk(language) else 5):
            continue
        mine = frequencies[language].get(word, 0.0)
        if all(frequencies[other].get(word, 0.0) < mine
               for other in WEB_LANGUAGES if other != language):
            words.append(word)
    random.Random(f"{seed}-{language}-word").shuffle(words)
    return words


def web_messages(count: int = WEB_PER_KIND, seed: int = 14) -> dict[str, dict[str, list[str]]]:
    """language -> {"word": [...], "pair": [...], "sentence": [...]}, `count` of each."""
    import wordfreq

    # Frequencies as wordfreq stores them (no tokenizer needed, unlike word_frequency for ja/zh).
    frequencies = {language: wordfreq.get_frequency_dict(language) for language in WEB_LANGUAGES}
    samples: dict[str, dict[str, list[str]]] = {}
    for language in WEB_LANGUAGES:
        words = _web_words(language, seed, frequencies)
        glue = "" if _cjk(language) else " "
        pairs = [words[count + 2 * i] + glue + words[count + 2 * i + 1] for i in range(count)]
        samples[language] = {"word": words[:count], "pair": pairs,
                             "sentence": web_sentences(language, count, seed)}
    return samples
