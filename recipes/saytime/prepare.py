"""Debian saytime's spoken numbers (a man, 8 kHz) -> data/saytime/{words,strings}.jsonl.

A voice for testing that no shipped model trains on: the 37 words the talking clock
``saytime`` plays (0-20, 30, 40, 50, "oh", "minutes", "o'clock"...), headerless 8 kHz
mu-law files by David C Dawson (GPL, 2004) in Debian's ``saytime`` package. Two test sets:

- words.jsonl: every clip whose word is in the commands grammar (31 of the 37), converted
  to WAV under ``OUT/wav/``.
- strings.jsonl: the numbers 21-59 (all 36; the package has no 60-90) and digit strings of
  3-5 digits ("oh" for some zeros), joined from his clips cut to their speech, as the
  asterisk recipe joins Allison's (recipes/asterisk/prepare.py).

The same seed gives the same files; a re-run rewrites them.

Usage::

    apt-get install saytime
    python recipes/saytime/prepare.py
    python recipes/saytime/prepare.py --sounds DIR --digit-strings 200
"""

import argparse
import importlib.util
import logging
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import soundfile as sf

from asr.files import write_atomically
from asr.manifest import Record, collect_records, write_manifest
from asr.text import number_to_words

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOUNDS = Path("/usr/share/saytime")
DEFAULT_OUT = REPO_ROOT / "data" / "saytime"
SPEAKER = "saytime"
RATE = 8000  # Hz: saytime plays them with `sox -t ul -r 8000`
# clip name -> its text, for the clips that are not numbers
WORDS = {
    "oh": "oh",
    "minute": "minute",
    "minutes": "minutes",
    "second": "second",
    "seconds": "seconds",
    "hour": "hour",
    "hours": "hours",
    "oclock": "o'clock",
    "and": "and",
    "exactly": "exactly",
    "am": "a m",
    "pm": "p m",
    "the_time_is": "the time is",
}
NUMBERS = (*range(21), 30, 40, 50)  # the numbers with a clip of their own
DEFAULT_DIGIT_STRINGS = 100

logger = logging.getLogger("saytime")


def _load_asterisk() -> ModuleType:
    """recipes/asterisk/prepare.py, loaded by path: the recipes are scripts, not a package."""
    path = REPO_ROOT / "recipes" / "asterisk" / "prepare.py"
    spec = importlib.util.spec_from_file_location("asterisk_prepare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# for its grammar words, digit strings' lengths and "oh"s, speech cut, joining and summary
asterisk = _load_asterisk()


def clip_texts() -> dict[str, str]:
    """Clip name (file stem) -> text, for all 37 clips."""
    return {str(n): number_to_words(n) for n in NUMBERS} | WORDS


def read_clip(path: Path) -> np.ndarray:
    """(S,) float32 samples of one headerless mu-law clip, read as saytime plays it.

    Raises:
        OSError: the file is missing or unreadable.
        ValueError: it holds no samples.
        soundfile.LibsndfileError: libsndfile cannot read it.
    """
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file holds no audio samples")
    with sf.SoundFile(path, samplerate=RATE, channels=1, format="RAW", subtype="ULAW") as f:
        return f.read(dtype="float32")


def draw_digits(rng: random.Random) -> tuple[list[str], str]:
    """(clip names, text) of one digit string, of asterisk's lengths and share of "oh"s.

    Not asterisk's `draw_string`: that one may draw a number 21-99 instead, names prompts
    ``digits/N``, and draws all the digits before the "oh"s, where this draws each digit's
    "oh" after it; either way round would change the strings a seed gives.
    """
    names, spoken = [], []
    for _ in range(rng.randint(*asterisk.DIGIT_STRING_LENGTHS)):
        digit = rng.randrange(10)
        oh = digit == 0 and rng.random() < asterisk.OH_PROBABILITY
        names.append("oh" if oh else str(digit))
        spoken.append("oh" if oh else number_to_words(digit))
    return names, " ".join(spoken)


def string_plan(digit_strings: int, seed: int) -> list[tuple[list[str], str, random.Random]]:
    """(clip names, text, rng for the silences) of the numbers 21-59, then the digit strings."""
    plan = []
    for number in range(21, 60):
        if number % 10:
            names = [str(number - number % 10), str(number % 10)]
            plan.append((names, number_to_words(number), random.Random(f"{seed}:n{number}")))
    for index in range(digit_strings):
        rng = random.Random(f"{seed}:d{index}")
        names, text = draw_digits(rng)
        plan.append((names, text, rng))
    return plan


def prepare(
    sounds: Path, out: Path, digit_strings: int = DEFAULT_DIGIT_STRINGS, seed: int = 0
) -> dict[str, list[Record]]:
    """Write ``out/{words,strings}.jsonl`` and their WAV files; return the records.

    A clip that cannot be read is skipped with a warning, with every string that needs it.

    Args:
        sounds: the folder of saytime's clips (``0.au``, ``oh.au``, ...).
        out: the output folder; its WAV files of an earlier run are replaced.
        digit_strings: how many digit strings to join, after the numbers 21-59.
        seed: seed of the digit strings and silences; the same seed gives the same files.

    Raises:
        FileNotFoundError: the sounds folder is missing (the message names the package).
    """
    if not sounds.is_dir():
        raise FileNotFoundError(f"{sounds}: not found (Debian: apt-get install saytime)")
    grammar = asterisk.grammar_words()
    (out / "wav").mkdir(parents=True, exist_ok=True)
    ours = {f"{name}.wav" for name in clip_texts()}
    for old in (out / "wav").glob("*.wav"):  # nothing of an earlier run is left to mislead
        if old.name in ours or old.name.startswith("string_"):
            old.unlink()
    clips: dict[str, np.ndarray] = {}
    for name in clip_texts():
        try:
            clips[name] = read_clip(sounds / f"{name}.au")
        except (OSError, ValueError, sf.LibsndfileError) as err:
            logger.warning("skipping %s.au and the strings that need it: %s", name, err)

    def write(path: Path, audio: np.ndarray) -> Path:
        write_atomically(path, lambda tmp: sf.write(tmp, audio, RATE, "PCM_16", format="WAV"))
        return path

    def word_items() -> Iterator[tuple[Path, str, dict[str, Any]]]:
        for name, text in clip_texts().items():
            if name in clips and set(text.split()) <= grammar:
                yield write(out / "wav" / f"{name}.wav", clips[name]), text, {"speaker": SPEAKER}

    def string_items() -> Iterator[tuple[Path, str, dict[str, Any]]]:
        for index, (names, text, rng) in enumerate(string_plan(digit_strings, seed)):
            if all(name in clips for name in names):
                parts = [asterisk.speech_part(clips[name], RATE) for name in names]
                audio = asterisk.join_prompts(parts, RATE, rng)
                path = write(out / "wav" / f"string_{index:04d}.wav", audio)
                yield path, text, {"speaker": SPEAKER, "clips": " ".join(names)}

    records = {
        "words": collect_records(word_items(), f"saytime clips in {sounds}"),
        "strings": collect_records(string_items(), "joined saytime clips"),
    }
    for name, split in records.items():
        write_manifest(out / f"{name}.jsonl", split)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sounds", type=Path, default=DEFAULT_SOUNDS, help="saytime's folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--digit-strings", type=int, default=DEFAULT_DIGIT_STRINGS, help="joined digit strings"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the joined strings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        records = prepare(args.sounds, args.out, args.digit_strings, args.seed)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    asterisk.print_summary(args.out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
