"""Text normalisation and the character tokenizer.

The vocabulary is fixed and small: CTC blank (id 0), space, apostrophe and a-z.
Both the normaliser and the vocabulary are stored in every model file, so a model
decodes with exactly the text conventions it was trained with.
"""

import re
import string
import unicodedata
from collections.abc import Sequence

BLANK = "<blank>"
VOCABULARY: tuple[str, ...] = (BLANK, " ", "'", *string.ascii_lowercase)

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def number_to_words(n: int) -> str:
    """Spell a non-negative integer in English words: 342 -> "three hundred forty two"."""
    if n < 0:
        raise ValueError(f"negative number: {n}")
    if n < 10:
        return _ONES[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            words = f"{number_to_words(head)} {name}"
            return words + (f" {number_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth"}
_ORDINALS |= {"eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def ordinal(words: str) -> str:
    """The ordinal of a spelled number: "twenty one" -> "twenty first"."""
    *head, last = words.split()
    if last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _spell_digits(token: str) -> str:
    # A leading zero ("007", "0451") is read digit by digit, as people say codes.
    if len(token) > 1 and token.startswith("0"):
        return " ".join(_ONES[int(d)] for d in token)
    return number_to_words(int(token))


# A number as written in text: its sign (not after a number: "5 -3" is a range), digits
# with thousands separators, decimals, an ordinal suffix or a percent sign.
_NUMBER = re.compile(
    r"(?P<minus>(?<![\w.])(?<!\d\s)-)?(?P<whole>\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
    r"(?:\.(?P<decimals>\d+))?(?:(?P<ordinal>st|nd|rd|th)\b|(?P<percent>%))?"
)


def _spell_number(match: re.Match[str]) -> str:
    words = _spell_digits(match["whole"].replace(",", ""))
    if match["decimals"]:
        words += " point " + " ".join(_ONES[int(d)] for d in match["decimals"])
    if match["ordinal"]:
        words = ordinal(words)
    if match["minus"]:
        words = "minus " + words
    if match["percent"]:
        words += " percent"
    return f" {words} "


# Latin letters that are no letter plus accent, spelled in a-z (NFD leaves them whole).
_LATIN_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l"})


def normalize_text(text: str) -> str:
    """Lower-case, strip accents, spell digits as words, drop punctuation, squeeze spaces.

    Examples:
        >>> normalize_text("Café, Naïve")
        'cafe naive'
        >>> normalize_text("Set a timer for 15 minutes!")
        'set a timer for fifteen minutes'
        >>> normalize_text("the 3rd floor, 1,250 m, -2.5%")
        'the third floor one thousand two hundred fifty m minus two point five percent'
        >>> normalize_text("Don't STOP")
        "don't stop"
    """
    text = unicodedata.normalize("NFD", text.lower().replace("’", "'"))  # "é" -> "e" + "´"
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_LATIN_LETTERS)
    text = _NUMBER.sub(_spell_number, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    # Apostrophes only survive inside words ("don't"), not as quotes.
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())


class Tokenizer:
    """Character tokenizer over a fixed vocabulary; id 0 is the CTC blank."""

    def __init__(self, vocabulary: Sequence[str] = VOCABULARY) -> None:
        if vocabulary[0] != BLANK:
            raise ValueError(f"vocabulary[0] must be the blank {BLANK!r}, got {vocabulary[0]!r}")
        self.vocabulary = tuple(vocabulary)
        self._ids = {token: i for i, token in enumerate(self.vocabulary)}

    def __len__(self) -> int:
        return len(self.vocabulary)

    @property
    def blank_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        """Map normalised text to token ids.

        Raises:
            ValueError: a character is outside the vocabulary (normalise first).
        """
        unknown = sorted({c for c in text if c not in self._ids or c == BLANK})
        if unknown:
            raise ValueError(f"characters outside the vocabulary: {unknown} in {text!r}")
        return [self._ids[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Map token ids (blanks and repeats already removed) back to text, one space between
        words: a blank between two spaces leaves both in the path."""
        return " ".join("".join(self.vocabulary[i] for i in ids if i != self.blank_id).split())
