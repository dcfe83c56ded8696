"""Numbered recordings joined from clips with silences between them, each seeded by its number.

Shared by join_commands.py (commands said one after another) and recipes/asterisk/prepare.py
(digit strings joined from Allison's prompts; recipes/saytime joins its clips through it).
Recording i draws from ``random.Random(f"{seed}:{i}")``, so it is the same whatever the
count and whatever else is skipped; a re-run rewrites the files and removes what an
earlier run left that this one does not make.

The scripts of this folder ``import joining``, as they import grammar; recipes elsewhere
load it by path, as recipes/asterisk loads grammar.py.
"""

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from asr.files import write_atomically

# audio (S,), its sample rate, text, extra manifest keys
Joined = tuple[np.ndarray, int, str, dict[str, Any]]


def join(
    clips: Sequence[np.ndarray], gaps: Sequence[int], edges: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """(S,) the clips in order with digital silence between and around them.

    Args:
        clips: (S_i,) float32 waveforms.
        gaps: zero samples between clip i and clip i + 1 (one fewer than the clips).
        edges: zero samples before the first clip and after the last.
    """
    parts = [np.zeros(edges[0], np.float32), clips[0]]
    for gap, clip in zip(gaps, clips[1:], strict=True):
        parts += [np.zeros(gap, np.float32), clip]
    parts.append(np.zeros(edges[1], np.float32))
    return np.concatenate(parts)


def remove_stale(folder: Path, prefix: str, count: int) -> None:
    """Remove ``folder/<prefix>_<number>.wav`` numbered `count` or more.

    An earlier run with a larger count left them, and a folder's manifest should not sit
    beside recordings it does not list. Other files, ``<prefix>_notes.wav`` included, stay.
    """
    for old in folder.glob(f"{prefix}_*.wav"):
        number = old.stem.removeprefix(f"{prefix}_")
        if number.isdecimal() and int(number) >= count:
            old.unlink()


def write_joined(
    folder: Path,
    prefix: str,
    count: int,
    seed: int,
    draw: Callable[[int, random.Random], Joined | None],
) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """Write ``folder/<prefix>_0000.wav``... (16-bit WAV); yield (audio, text, extra keys).

    Args:
        folder: where the recordings go; created when needed.
        prefix: the recordings' file name before their 4-digit number.
        count: how many to draw; numbers from `count` on, left by an earlier run, are removed.
        seed: with the number, seeds the generator `draw` gets.
        draw: (number, its generator) -> (audio, rate, text, extra keys) of the recording,
            or None to skip it (having said why); a skipped number's earlier file is removed.
    """
    remove_stale(folder, prefix, count)
    for index in range(count):
        path = folder / f"{prefix}_{index:04d}.wav"
        joined = draw(index, random.Random(f"{seed}:{index}"))
        if joined is None:
            path.unlink(missing_ok=True)  # an earlier run's recording of this number is not it
            continue
        audio, rate, text, extra = joined
        write_atomically(
            path, lambda tmp, a=audio, r=rate: sf.write(tmp, a, r, "PCM_16", format="WAV")
        )
        yield path, text, extra
