"""A compact grammar of spoken commands; texts come out already normalised.

The grammar maps a symbol to its alternatives; ``{name}`` inside an alternative expands the
symbol ``name``, every other word is a terminal. Alternatives of a symbol are equally likely;
the top-level domains have explicit weights (`DOMAIN_WEIGHTS`). Generation is deterministic
given a `random.Random`, and the grammar is finite, so `vocabulary` lists every word a command
can contain (for a lexicon or a language model).
"""

import random
import re
from collections.abc import Iterator


def _words(text: str) -> list[str]:
    return text.split()


SPEECH_COMMANDS_WORDS = _words(
    "yes no up down left right on off stop go zero one two three four five six seven eight nine "
    "bed bird cat dog happy house marvin sheila tree wow backward forward follow learn visual"
)  # the 35 words of Google Speech Commands v2

GRAMMAR: dict[str, list[str]] = {
    # --- numbers --------------------------------------------------------------------------
    "digit": _words("zero oh one two three four five six seven eight nine"),
    "unit": _words("one two three four five six seven eight nine"),
    "teen": _words("ten eleven twelve thirteen fourteen fifteen")
    + _words("sixteen seventeen eighteen nineteen"),
    "ten": _words("twenty thirty forty fifty sixty seventy eighty ninety"),
    "two_digit": ["{teen}", "{ten}", "{ten} {unit}"],
    "count": ["two", "three", "four", "five", "six", "seven", "eight", "nine", "{two_digit}"],
    "number": [
        "zero",
        "{unit}",
        "{two_digit}",
        "{two_digit}",
        "{unit} hundred",
        "{unit} hundred {unit}",
        "{unit} hundred {two_digit}",
    ],
    "digit_string": [" ".join(["{digit}"] * n) for n in range(2, 7)],
    "numbers": ["{number}", "{digit_string}"],
    # --- navigation -----------------------------------------------------------------------
    "direction": ["forward", "backward"],
    "navigation": [
        "go {direction} {count} meters",
        "go {direction} one meter",
        "go {direction}",
        "turn left",
        "turn right",
        "move up",
        "move down",
        "stop",
        "go",
        "rotate {number} degrees",
        "rotate left {number} degrees",
        "rotate right {number} degrees",
    ],
    # --- smart home -----------------------------------------------------------------------
    "room": ["kitchen", "bedroom", "living room", "bathroom", "garage", "office"],
    "device": ["light", "lights", "lamp", "fan", "heater", "tv"],
    "opening": ["door", "window", "garage door"],
    "temperature": ["{teen}", "twenty", "twenty {unit}", "thirty"],
    "smart_home": [
        "turn on the {room} {device}",
        "turn off the {room} {device}",
        "turn the {room} {device} on",
        "turn the {room} {device} off",
        "set the temperature to {temperature} degrees",
        "open the {opening}",
        "close the {opening}",
        "dim the lights",
        "dim the {room} lights",
    ],
    # --- media ----------------------------------------------------------------------------
    "media": [
        "play the music",
        "pause the music",
        "stop the music",
        "play music",
        "next song",
        "previous song",
        "volume up",
        "volume down",
        "set volume to {number}",
        "set the volume to {number}",
        "mute",
        "unmute",
    ],
    # --- timers ---------------------------------------------------------------------------
    "clock_hour": _words("one two three four five six seven eight nine ten eleven twelve"),
    "clock_minute": ["o'clock", "oh {unit}", "{two_digit}"],
    "time_unit": ["minutes", "seconds", "hours"],
    "timers": [
        "set a timer for {count} {time_unit}",
        "set a timer for one minute",
        "set a timer for one hour",
        "set an alarm for {clock_hour}",
        "set an alarm for {clock_hour} {clock_minute}",
        "cancel the timer",
        "cancel the alarm",
        "stop the timer",
    ],
    # --- playing cards --------------------------------------------------------------------
    "rank": _words("ace two three four five six seven eight nine ten jack queen king"),
    "suit": ["clubs", "diamonds", "hearts", "spades"],
    "card": ["{rank} of {suit}"],
    "cards": ["{card}", "{card} {card}", "{card} {card} {card}"],
    # --- single keywords ------------------------------------------------------------------
    "keyword": SPEECH_COMMANDS_WORDS,
}

DOMAIN_WEIGHTS: dict[str, float] = {
    "numbers": 0.15,
    "navigation": 0.15,
    "smart_home": 0.2,
    "media": 0.1,
    "timers": 0.1,
    "cards": 0.1,
    "keyword": 0.2,
}

_REFERENCE = re.compile(r"\{(\w+)\}")


def expand(symbol: str, rng: random.Random) -> str:
    """One random expansion of `symbol`."""
    alternative = rng.choice(GRAMMAR[symbol])
    text = _REFERENCE.sub(lambda m: expand(m.group(1), rng), alternative)
    return " ".join(text.split())


def generate(rng: random.Random, weights: dict[str, float] | None = None) -> tuple[str, str]:
    """One random command: (domain, text), domains drawn by `weights` (default DOMAIN_WEIGHTS)."""
    weights = weights or DOMAIN_WEIGHTS
    domains = list(weights)
    domain = rng.choices(domains, weights=[weights[d] for d in domains])[0]
    return domain, expand(domain, rng)


def generate_many(count: int, seed: int) -> list[str]:
    """`count` command texts, the same for the same seed."""
    rng = random.Random(seed)
    return [generate(rng)[1] for _ in range(count)]


def _terminals() -> Iterator[str]:
    for alternatives in GRAMMAR.values():
        for alternative in alternatives:
            yield from _REFERENCE.sub(" ", alternative).split()


def vocabulary() -> list[str]:
    """Every word any command can contain, sorted."""
    return sorted(set(_terminals()))


def check_grammar() -> None:
    """Raise ValueError when a symbol references an undefined symbol or has no alternatives."""
    for symbol, alternatives in GRAMMAR.items():
        if not alternatives:
            raise ValueError(f"symbol {symbol!r} has no alternatives")
        for alternative in alternatives:
            for name in _REFERENCE.findall(alternative):
                if name not in GRAMMAR:
                    raise ValueError(f"symbol {symbol!r} references undefined {{{name}}}")
    missing = set(DOMAIN_WEIGHTS) - set(GRAMMAR)
    if missing:
        raise ValueError(f"domains without a grammar symbol: {sorted(missing)}")
