"""Foreign-accented English for espeak-ng: rule-based phoneme substitutions.

espeak-ng's English voices all share one native pronunciation. Real users of a command
recogniser often speak English as a second language, and their errors are systematic: "three"
as [tri:] or [sri:], "hundred" without its h, "four" with a uvular r, "five" devoiced to
[faIf]. This module rewrites espeak-ng's own English phonemes (`english_phonemes`) with the
substitutions typical of a first language (`ACCENTS`), then espeak speaks the result through
its phoneme input ``[[...]]`` with any English voice. Every output phoneme is one espeak's
English phoneme table knows, so nothing is silently dropped; each English voice still
applies its own allophone rules to them (en-us flaps t, the Scottish voice adds r, ...).

Phonemes are espeak mnemonics (``T`` = θ, ``D`` = ð, ``I`` = ɪ, ``V`` = ʌ, ``3:`` = ɜː,
``Q`` = ɣ, close to a French or German uvular r); stress marks ``'`` (primary) and ``,``
(secondary) prefix a vowel.
"""

import functools
import random
import subprocess

ENGLISH_VOICE = "en-us"  # whose pronunciation the accents start from

# rule -> {phoneme: alternatives}; an alternative is a space-separated phoneme sequence, "" drops
SUBSTITUTIONS: dict[str, dict[str, list[str]]] = {
    "th_stop": {"T": ["t"], "D": ["d"]},
    "th_sibilant": {"T": ["s"], "D": ["z"]},
    "th_labial": {"T": ["f"], "D": ["v"]},
    "h_drop": {"h": [""]},
    "h_velar": {"h": ["x"]},
    "w_to_v": {"w": ["v"]},
    "v_to_b": {"v": ["b"]},
    "z_to_s": {"z": ["s"], "Z": ["S"]},
    "tense_vowels": {"I": ["i"], "I2": ["i"], "I#": ["i"], "U": ["u:"], "i:": ["i"], "u:": ["u"]},
    "full_schwa": {"@": ["E", "a", "o"], "@2": ["E"], "a#": ["a"], "@L": ["E l"], "3": ["E r"]},
    "strut": {"V": ["a", "O"], "0": ["O"], "aa": ["a"], "a": ["E", "a"]},
    "nurse": {"3:": ["E r", "o r"]},
    "monophthongs": {"eI": ["e"], "oU": ["o"], "aU": ["a u"], "aI@": ["a i E r"]},
    "rhotic_split": {"o@": ["O r"], "O@": ["O r"], "A@": ["a r"], "i@": ["i", "i E"]},
    "ng_split": {"N": ["n"]},
    # Inaudible: espeak's en-us voices flap the t again and the others say t# as t anyway.
    # Kept because removing it would change the random draws, hence the audio and file
    # names, of the corpora made with it.
    "no_flap": {"t#": ["t"], "t2": ["t"]},
}
# r-like phonemes after "rhotic_split"; which r replaces them is the accent's `r` choice
R_PHONEMES = ("r",)
R_KINDS = {"uvular": ["Q", "X"], "trill": ["R"], "english": ["r"]}

# first language -> (rule -> probability, r kind, extra habits). A phoneme tries the rules in
# this order and takes the first that fires, so a later rule on the same phoneme fires less
# often than its probability (French th_stop: 0.4 s (1 - 0.5 s) at strength s).
ACCENTS: dict[str, tuple[dict[str, float], str, frozenset[str]]] = {
    "french": (
        {"th_sibilant": 0.5, "th_stop": 0.4, "h_drop": 0.9, "tense_vowels": 0.8, "strut": 0.7,
         "nurse": 0.8, "monophthongs": 0.8, "rhotic_split": 0.9, "full_schwa": 0.4,
         "no_flap": 0.9},
        "uvular", frozenset({"final_stress"}),
    ),
    "spanish": (
        {"th_stop": 0.5, "tense_vowels": 0.9, "full_schwa": 0.8, "strut": 0.8, "nurse": 0.8,
         "monophthongs": 0.9, "rhotic_split": 0.9, "z_to_s": 0.8, "v_to_b": 0.7,
         "h_velar": 0.6, "ng_split": 0.5, "no_flap": 0.9},
        "trill", frozenset({"s_epenthesis"}),
    ),
    "german": (
        {"th_sibilant": 0.7, "th_stop": 0.2, "w_to_v": 0.8, "strut": 0.6, "nurse": 0.5,
         "rhotic_split": 0.7, "no_flap": 0.8, "monophthongs": 0.3},
        "uvular", frozenset({"final_devoicing"}),
    ),
    "italian": (
        {"th_stop": 0.8, "h_drop": 0.8, "tense_vowels": 0.9, "full_schwa": 0.8, "strut": 0.8,
         "nurse": 0.8, "monophthongs": 0.9, "rhotic_split": 0.9, "ng_split": 0.6,
         "no_flap": 0.9},
        "trill", frozenset({"final_vowel"}),
    ),
    "greek": (
        {"h_velar": 0.7, "tense_vowels": 0.9, "full_schwa": 0.7, "strut": 0.8, "nurse": 0.8,
         "monophthongs": 0.9, "rhotic_split": 0.9, "z_to_s": 0.3, "no_flap": 0.9},
        "trill", frozenset(),
    ),
    "slavic": (
        {"th_stop": 0.4, "th_sibilant": 0.3, "th_labial": 0.2, "h_velar": 0.8, "w_to_v": 0.6,
         "tense_vowels": 0.8, "strut": 0.7, "nurse": 0.6, "monophthongs": 0.6,
         "rhotic_split": 0.8, "no_flap": 0.9},
        "trill", frozenset({"final_devoicing"}),
    ),
    "indian": (
        {"th_stop": 0.8, "w_to_v": 0.7, "monophthongs": 0.9, "rhotic_split": 0.8,
         "nurse": 0.6, "full_schwa": 0.3, "no_flap": 0.9},
        "trill", frozenset(),
    ),
}  # fmt: skip
STRENGTH = (0.4, 1.0)  # each speaker applies the rules with probability x strength
# First language -> the espeak-ng language whose phoneme table speaks the accented English
# when asked (`native_phonemes`): the first language's own vowels, r and rhythm, where the
# rules above only choose among English sounds.
FIRST_LANGUAGE_VOICES = {
    "french": "fr", "spanish": "es", "german": "de", "italian": "it", "greek": "el",
    "slavic": "pl", "indian": "hi",
}  # fmt: skip
# English phoneme -> the plain sounds a first language without it says instead. Phonemes not
# listed (p b t d k g f v s z S Z m n l r w j h x T D N tS dZ a e E i o O u @) are mnemonics
# every espeak-ng language reads, each in its own way (r is French's uvular r in "fr").
NATIVE_PHONEMES = {
    "i:": "i", "I": "i", "I2": "i", "I#": "i", "i@": "i r", "i@3": "i r", "eI": "e j",
    "e@": "E r", "3": "E r", "3:": "E r", "@L": "E l", "@2": "@", "a#": "a", "aa": "a",
    "A:": "a", "A@": "a r", "V": "a", "0": "o", "O:": "O", "O2": "O", "O@": "O r",
    "o@": "O r", "oU": "o", "u:": "u", "U": "u", "U@": "u r", "aI": "a j", "aU": "a w",
    "OI": "O j", "aI@": "a j E r", "aI3": "a j E r", "aU3": "a w E r",
    "Q": "r", "X": "r", "R": "r", "r-": "r", "t#": "t", "t2": "t", "d#": "d", "l/": "l",
    "n-": "n", "z/": "z",
}  # fmt: skip
VOWELS = frozenset((
    "a", "a#", "aa", "A:", "A@", "aI", "aI@", "aU", "e", "E", "eI", "i", "i:", "i@", "I", "I2",
    "I#", "o", "O", "O:", "O@", "O2", "o@", "oU", "0", "u", "u:", "U", "V", "@", "@2", "@L",
    "3", "3:", "OI", "e@", "U@", "aI3", "aU3",
))  # fmt: skip
DEVOICED = {"z": "s", "v": "f", "d": "t", "g": "k", "dZ": "tS", "Z": "S", "D": "T", "b": "p"}


@functools.cache
def english_phonemes(word: str) -> tuple[str, ...]:
    """espeak-ng's English phonemes of one word, stress marks attached, e.g. ``("T", "r", "'i:")``.

    Raises:
        RuntimeError: espeak-ng failed or gave no phonemes.
    """
    result = subprocess.run(
        ["espeak-ng", "-v", ENGLISH_VOICE, "-q", "-x", "--sep=_", word],
        capture_output=True,
        text=True,
    )
    phonemes = tuple(p for p in result.stdout.strip().replace(" ", "_").split("_") if p)
    if result.returncode != 0 or not phonemes:
        raise RuntimeError(f"espeak-ng gave no phonemes for {word!r}: {result.stderr.strip()}")
    return phonemes


def _split_stress(phoneme: str) -> tuple[str, str]:
    base = phoneme.lstrip("',")
    return phoneme[: len(phoneme) - len(base)], base


def accent_word(
    phonemes: tuple[str, ...], accent: str, strength: float, rng: random.Random
) -> list[str]:
    """One word's phonemes as spoken with `accent` (a key of `ACCENTS`), stress kept."""
    rules, r_kind, habits = ACCENTS[accent]
    out: list[str] = []
    for phoneme in phonemes:
        stress, base = _split_stress(phoneme)
        replaced = [base]
        for rule, probability in rules.items():
            alternatives = SUBSTITUTIONS[rule].get(base)
            if alternatives and rng.random() < probability * strength:
                replaced = rng.choice(alternatives).split()
                break
        for i, p in enumerate(replaced):
            out.append((stress if i == 0 else "") + p)
    # The r of the first language, for every r including those split off r-coloured vowels.
    out = [
        s + rng.choice(R_KINDS[r_kind]) if b in R_PHONEMES and rng.random() < strength else s + b
        for s, b in map(_split_stress, out)
    ]
    if not out:
        return out
    bases = [_split_stress(p)[1] for p in out]
    if "final_devoicing" in habits and bases[-1] in DEVOICED and rng.random() < strength:
        out[-1] = out[-1][: len(out[-1]) - len(bases[-1])] + DEVOICED[bases[-1]]
    # Italian: a vowel after a final consonant ("six-a"); Spanish: a vowel before s + consonant.
    if "final_vowel" in habits and bases[-1] not in VOWELS and rng.random() < 0.5 * strength:
        out.append("@")
    initial_cluster = len(bases) > 1 and bases[0] == "s" and bases[1] not in VOWELS
    if "s_epenthesis" in habits and initial_cluster and rng.random() < strength:
        out.insert(0, "E")
    if "final_stress" in habits and rng.random() < strength:
        out = _stress_last_vowel(out)
    return out


def _stress_last_vowel(phonemes: list[str]) -> list[str]:
    """French rhythm: the primary stress moves to the word's last vowel, all others go."""
    bases = [_split_stress(p)[1] for p in phonemes]
    vowels = [i for i, b in enumerate(bases) if b in VOWELS]
    if not vowels:
        return phonemes
    return ["'" + b if i == vowels[-1] else b for i, b in enumerate(bases)]


def native_phonemes(phonemes: list[str]) -> list[str]:
    """Accented English phonemes as a first language's own (`NATIVE_PHONEMES`), stress kept.

    ``["T", "r", "'i:"]`` becomes ``["T", "r", "'i"]``: spoken by the "fr" voice, a French
    r and a French i.
    """
    out: list[str] = []
    for phoneme in phonemes:
        stress, base = _split_stress(phoneme)
        for i, p in enumerate(NATIVE_PHONEMES.get(base, base).split()):
            out.append((stress if i == 0 else "") + p)
    return out


def accented_phonemes(
    text: str, accent: str, strength: float, rng: random.Random, native: bool = False
) -> str:
    """espeak phoneme input for `text` spoken with `accent`: ``"[[t'ri: f'OQ]]"``.

    Args:
        text: the words, space-separated.
        accent: a first language, a key of `ACCENTS`.
        strength: how often its habits apply, 0 (native English) to 1.
        rng: the accent's random stream.
        native: give the first language's phonemes (`native_phonemes`), to be spoken by
            its espeak-ng language (`FIRST_LANGUAGE_VOICES`), not English ones.
    """
    words = []
    for word in text.split():
        phonemes = accent_word(english_phonemes(word), accent, strength, rng)
        words.append("".join(native_phonemes(phonemes) if native else phonemes))
    return "[[" + " ".join(words) + "]]"


def draw_accent(rng: random.Random) -> tuple[str, float]:
    """A random speaker's first language and accent strength."""
    return rng.choice(sorted(ACCENTS)), round(rng.uniform(*STRENGTH), 2)
