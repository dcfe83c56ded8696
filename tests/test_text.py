import pytest

from asr.text import VOCABULARY, Tokenizer, normalize_text, number_to_words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (95, "ninety five"),
        (100, "one hundred"),
        (342, "three hundred forty two"),
        (2026, "two thousand twenty six"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Set a timer for 15 minutes!", "set a timer for fifteen minutes"),
        ("Don't STOP", "don't stop"),
        ("'quoted' words,  and   spaces", "quoted words and spaces"),
        ("code 007", "code zero zero seven"),
        ("Turn on the TV.", "turn on the tv"),
        ("rock’n’roll", "rock'n'roll"),
        ("Café NAÏVE Ünïcode façade", "cafe naive unicode facade"),
        ("Straße, Øre, Æsir, Łódź", "strasse ore aesir lodz"),
        ("", ""),
        # Written numbers were spelled digit run by digit run: "one zero zero zero dollars".
        ("1,000 dollars", "one thousand dollars"),
        (
            "the 3rd floor, the 21st, 12th and 40th",
            "the third floor the twenty first twelfth and fortieth",
        ),
        ("set it to 3.5 degrees", "set it to three point five degrees"),
        ("-5 degrees, 4-5 days", "minus five degrees four five days"),
        ("from 5 -3 to (-2)", "from five three to minus two"),
        ("volume 50%", "volume fifty percent"),
        ("1,2,3", "one two three"),
        ("version 2.0.1", "version two point zero one"),
    ],
)
def test_normalize_text(raw, normal):
    assert normalize_text(raw) == normal


def test_tokenizer_round_trip_and_blank():
    tok = Tokenizer()
    assert len(tok) == len(VOCABULARY) == 29 and tok.blank_id == 0
    text = "turn the kitchen light off don't"
    ids = tok.encode(text)
    assert 0 not in ids and tok.decode(ids) == text


def test_tokenizer_rejects_unknown_characters():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Tokenizer().encode("Hello")
