"""Asterisk's English prompts (Allison Smith) -> data/asterisk/{prompts,strings,train}.jsonl.

A real speaker for testing (the bundled model has heard her other prompts since stage 17):
the professional US English woman who recorded the Asterisk PBX's prompts, 8 kHz, CC BY-SA
3.0, from Debian's packages ``asterisk-core-sounds-en-wav`` (the audio) and
``asterisk-core-sounds-en`` (the transcripts, ``core-sounds-en.txt.gz``). Two test sets:

- prompts.jsonl: every prompt whose transcript is made only of words of the commands
  grammar (digits, teens, tens, hundred, oh, o'clock, minutes, seconds, hours, pause, no...),
  read where it is, except letter names (``letters/a`` is the letter, not the word) and
  words that sound like another word of the grammar when said alone (``for``: four).
- strings.jsonl: digit strings (3-5 digits, "oh" for some zeros) and numbers 21-99 spoken
  by joining her prompts for the digits and tens, each cut to its speech, with 0.05-0.25 s
  of silence between them, as an answering machine says a number; written to
  ``OUT/wav/`` at her 8 kHz. The same seed gives the same files; a re-run rewrites them.

And one set for training, for recipes that want a real woman's voice (FSDD's speakers are
all men); a model trained on it has heard her, so her two test sets then measure a seen
speaker on words said in other prompts or not at all (the digits folder is never in it):

- train.jsonl: every other prompt of plain words (380, 21 minutes): not in the digits or
  letters folders, no ``[sound]`` descriptions or ``(notes)``, no spelt-out letters.

Usage::

    apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en
    python recipes/asterisk/prepare.py
    python recipes/asterisk/prepare.py --sounds DIR --transcripts FILE --strings 400
"""

import argparse
import gzip
import importlib.util
import logging
import random
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import soundfile as sf
import torch

from asr.audio import unreadable_reason
from asr.augment import edge_span
from asr.manifest import Record, collect_records, write_manifest
from asr.text import normalize_text, number_to_words

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
DEFAULT_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
DEFAULT_OUT = REPO_ROOT / "data" / "asterisk"
SPEAKER = "allison"
PACKAGES = "asterisk-core-sounds-en-wav asterisk-core-sounds-en"
# said alone, these sound like another word of the grammar (four, two, one, eight): not a
# fair test of a recogniser
AMBIGUOUS = frozenset({"for", "to", "too", "won", "ate"})
SKIPPED_FOLDERS = ("letters/",)  # letter names: "a" is [eI], not the word a
# never trained on: the strings are joined from the digits folder, and a letter's name is
# not what its one character spells
TEST_ONLY_FOLDERS = ("digits/", "letters/")
NOTE = re.compile(r"\([^)]*\)")  # a transcriber's note in a transcript, not speech
DEFAULT_STRINGS = 200
DIGIT_STRING_LENGTHS = (3, 5)  # digits per digit string, inclusive
NUMBER_SHARE = 0.4  # share of the strings that are numbers 21-99, not digit strings
OH_PROBABILITY = 0.3  # a zero in a digit string is said "oh" this often
GAP_S = (0.05, 0.25)  # silence between two joined prompts, seconds
EDGE_S = (0.1, 0.3)  # silence before the first and after the last, seconds
SPEECH_RANGE_DB = 40.0  # a prompt is cut to the 10 ms frames within this of its loudest
MARGIN_S = 0.03  # kept on each side of the cut, seconds

logger = logging.getLogger("asterisk")


def commands_module(name: str) -> ModuleType:
    """``recipes/commands/<name>.py``, loaded by path: the recipes are scripts, not a package."""
    path = REPO_ROOT / "recipes" / "commands" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"commands_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


joining = commands_module("joining")  # the joining loop join_commands.py uses too


def grammar_words() -> set[str]:
    """Every word of the commands recipe's grammar (recipes/commands/grammar.py)."""
    return set(commands_module("grammar").vocabulary())


def read_transcripts(path: Path) -> dict[str, str]:
    """Prompt name -> text from ``name: text`` lines (gzip or plain); ``;`` lines are comments.

    Notes in parentheses are not what she says ("(10 seconds of silence)", "IAX (note: does
    not say "2")") and are left out of the text, which may then be empty.

    Raises:
        ValueError: a prompt is named twice (the message gives the file and line).
        UnicodeDecodeError: the file is not UTF-8.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    prompts: dict[str, str] = {}
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            name, colon, text = line.partition(":")
            name = name.strip()
            if not colon or line.startswith(";") or not name:
                continue
            if name in prompts:
                raise ValueError(f"{path}:{number}: prompt {name!r} is listed twice")
            prompts[name] = " ".join(NOTE.sub(" ", text).split())
    return prompts


def command_prompts(transcripts: dict[str, str], words: set[str]) -> dict[str, str]:
    """The prompts a command recogniser can be fairly tested on: name -> normalised text."""
    kept = {}
    for name, text in sorted(transcripts.items()):
        normalized = normalize_text(text.replace(".", " "))
        if not normalized or name.startswith(SKIPPED_FOLDERS) or normalized in AMBIGUOUS:
            continue
        if set(normalized.split()) <= words:
            kept[name] = normalized
    return kept


def training_prompts(transcripts: dict[str, str], test: set[str]) -> dict[str, str]:
    """The prompts to train on: name -> normalised text, none of `test` nor TEST_ONLY_FOLDERS.

    Left out too: transcripts that describe a sound (``[ascending tones]``) and spelt-out
    letters (``N B S``, a one-letter word other than "a" or "i"), whose characters are not
    what she says.
    """
    kept = {}
    for name, text in sorted(transcripts.items()):
        if name in test or name.startswith(TEST_ONLY_FOLDERS) or "[" in text:
            continue
        normalized = normalize_text(text.replace(".", " "))
        if normalized and all(len(w) > 1 or w in ("a", "i") for w in normalized.split()):
            kept[name] = normalized
    return kept


def speech_part(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) audio cut to its speech: the 10 ms frames within SPEECH_RANGE_DB of the loudest.

    Raises:
        ValueError: the audio is shorter than one 10 ms frame.
    """
    frame = sample_rate // 100
    if frame == 0 or len(audio) < frame:
        raise ValueError(f"{len(audio)} samples at {sample_rate} Hz: shorter than 10 ms")
    level = torch.tensor([-SPEECH_RANGE_DB])
    first, last = edge_span(
        torch.from_numpy(audio)[None], torch.tensor([len(audio)]), level, level, frame
    )
    margin = round(MARGIN_S * sample_rate)
    start = max(int(first) * frame - margin, 0)
    end = min(int(last) * frame + margin, len(audio))
    return audio[start:end]


def draw_string(rng: random.Random) -> tuple[list[str], str]:
    """(prompt names, text) of one digit string or number 21-99."""
    if rng.random() < NUMBER_SHARE:
        number = rng.randrange(21, 100)
        names = [f"digits/{number - number % 10}"]
        if number % 10:
            names.append(f"digits/{number % 10}")
        return names, number_to_words(number)
    digits = [rng.randrange(10) for _ in range(rng.randint(*DIGIT_STRING_LENGTHS))]
    names, spoken = [], []
    for d in digits:
        oh = d == 0 and rng.random() < OH_PROBABILITY
        names.append("digits/oh" if oh else f"digits/{d}")
        spoken.append("oh" if oh else number_to_words(d))
    return names, " ".join(spoken)


def _read_prompt(path: Path) -> tuple[np.ndarray, int] | None:
    """(its speech (S,), sample rate), or None with a warning when it cannot be used."""
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        return speech_part(audio.mean(axis=1), rate), rate
    except sf.LibsndfileError as err:
        logger.warning("skipping the strings that need %s: %s", path, unreadable_reason(path, err))
    except ValueError as err:
        logger.warning("skipping the strings that need %s: %s", path, err)
    return None


def join_prompts(clips: list[np.ndarray], sample_rate: int, rng: random.Random) -> np.ndarray:
    """(S,) clips (each already cut to its speech) with random silences between and around."""

    def silence(seconds: tuple[float, float]) -> int:
        return round(rng.uniform(*seconds) * sample_rate)

    # drawn in the order they are heard (lead, gaps, tail): the same seed, the same files
    lead = silence(EDGE_S)
    gaps = [silence(GAP_S) for _ in clips[1:]]
    return joining.join(clips, gaps, (lead, silence(EDGE_S)))


def string_items(
    sounds: Path, out: Path, count: int, seed: int
) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """Write `count` joined strings under ``out/wav/``; yield (audio, text, extra keys).

    A string that needs an unreadable prompt is skipped (with one warning per prompt), and
    the others go on. Strings left from an earlier run with a larger `count` are removed.

    Raises:
        ValueError: (while iterating) the prompts of one string differ in sample rate.
    """
    cache: dict[str, tuple[np.ndarray, int] | None] = {}

    def prompt(name: str) -> tuple[np.ndarray, int] | None:
        if name not in cache:
            cache[name] = _read_prompt(sounds / f"{name}.wav")
        return cache[name]

    def draw(index: int, rng: random.Random) -> joining.Joined | None:
        names, text = draw_string(rng)
        clips = [prompt(name) for name in names]  # every one read: one warning per bad prompt
        if any(clip is None for clip in clips):
            return None
        rates = {rate for _, rate in clips}
        if len(rates) != 1:
            raise ValueError(f"{sounds}: prompts {names} differ in sample rate {sorted(rates)}")
        rate = rates.pop()
        audio = join_prompts([clip for clip, _ in clips], rate, rng)
        return audio, rate, text, {"speaker": SPEAKER, "prompts": " ".join(names)}

    return joining.write_joined(out / "wav", "string", count, seed, draw)


def prompt_items(
    sounds: Path, prompts: dict[str, str]
) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(audio, text, extra keys) of prompts read where they are."""
    for name, text in prompts.items():
        yield sounds / f"{name}.wav", text, {"speaker": SPEAKER}


def prepare(
    sounds: Path, transcripts: Path, out: Path, strings: int = DEFAULT_STRINGS, seed: int = 0
) -> dict[str, list[Record]]:
    """Write ``out/{prompts,strings,train}.jsonl``; return their records.

    Args:
        sounds: the folder of her prompts (``digits/1.wav``, ...).
        transcripts: ``core-sounds-en.txt(.gz)``, a ``name: text`` line per prompt.
        out: the output folder.
        strings: how many digit strings and numbers to join.
        seed: seed of the joined strings; the same seed gives the same files.

    Raises:
        FileNotFoundError: the sounds folder or the transcripts file is missing (the message
            names the Debian packages that install them).
        ValueError: the transcripts name a prompt twice, or joined prompts differ in rate.
    """
    for path in (sounds, transcripts):
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found (Debian: apt-get install {PACKAGES})")
    every = read_transcripts(transcripts)
    prompts = command_prompts(every, grammar_words())
    training = training_prompts(every, set(prompts))
    records = {
        "prompts": collect_records(prompt_items(sounds, prompts), f"asterisk prompts in {sounds}"),
        "strings": collect_records(string_items(sounds, out, strings, seed), "joined prompts"),
        "train": collect_records(prompt_items(sounds, training), f"training prompts in {sounds}"),
    }
    for name, split in records.items():
        write_manifest(out / f"{name}.jsonl", split)
    return records


def print_summary(out: Path, records: dict[str, list[Record]]) -> None:
    """One line per manifest written: its path, utterances and words."""
    for name, split in records.items():
        words = sum(len(r["text"].split()) for r in split)
        print(f"{out / name}.jsonl: {len(split)} utterances, {words} words")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sounds", type=Path, default=DEFAULT_SOUNDS, help="prompt folder")
    parser.add_argument(
        "--transcripts", type=Path, default=DEFAULT_TRANSCRIPTS, help="core-sounds-en.txt(.gz)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--strings", type=int, default=DEFAULT_STRINGS, help="joined strings")
    parser.add_argument("--seed", type=int, default=0, help="seed of the joined strings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        records = prepare(args.sounds, args.transcripts, args.out, args.strings, args.seed)
    except (OSError, ValueError, sf.LibsndfileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_summary(args.out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
