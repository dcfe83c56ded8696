"""Cutting an input at its pauses, so that each spoken command is decoded on its own.

The acoustic model learnt from recordings of one command each; given several in one
recording it drops most of them (half the words of two or three joined commands, even
with a second of silence between them: recipes/commands/README.md, "Several commands in
one recording"). So `asr.transcribe` cuts its inputs inside every pause of at least
`min_pause` seconds, decodes the pieces separately and joins their texts. A recording of
one command has no such pause and stays whole, leading and trailing silence included.
"""

import math

import numpy as np

from asr.audio import SAMPLE_RATE, chunk_starts
from asr.features import HOP_LENGTH

MIN_PAUSE_SECONDS = 0.5  # default: shorter silences do not cut (pauses inside a command)
KEEP_SECONDS = 0.15  # silence a piece keeps of each pause it was cut from
# Seconds (10 ms) per energy frame for finding pauses: one feature hop, as the word times
# of `asr.transcribe` use sound frames as feature frames.
FRAME_SECONDS = HOP_LENGTH / SAMPLE_RATE
SOUND_RANGE_DB = 40.0  # a frame this far below the loudest is silent...
FLOOR_MARGIN_DB = 10.0  # ... and so is one within this of the noise floor
NOISE_FLOOR_PERCENTILE = 10  # of the frames' energies: the noise floor
MIN_RANGE_DB = 15.0  # noisier input (the loudest frame this close to the floor) is not cut
MIN_SOUND_SECONDS = 0.1  # less sound between two pauses (a click, a breath) is no command


def check_min_pause(min_pause: float | None) -> None:
    """Raise ValueError for a negative `min_pause` (None and 0: no cutting at pauses)."""
    if min_pause is not None and min_pause < 0:
        raise ValueError(f"min_pause must be >= 0 seconds, got {min_pause}")


def sound_frames(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """Which FRAME_SECONDS frames of the audio sound, and which are silent.

    A frame is silent when its energy is SOUND_RANGE_DB below the loudest frame's, or within
    FLOOR_MARGIN_DB of the noise floor (the NOISE_FLOOR_PERCENTILE-th percentile of the
    frames' energies), whichever is higher. A frame's energy is its variance, not its mean
    square, so that a DC offset is no sound.

    Args:
        audio: (num_samples,) mono audio.

    Returns:
        (num_samples // frame,) bool, True where a frame sounds; None when the audio is
        shorter than a frame or its loudest frame lies within MIN_RANGE_DB of the floor
        (speech in loud noise, or noise alone), where loudness cannot tell speech apart.
    """
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    n = len(audio) // frame
    if n == 0:
        return None
    frames = audio[: n * frame].reshape(n, frame)  # a view: no copy of a long input
    # Summed in float64 without a float64 copy of the audio.
    mean = frames.sum(axis=1, dtype=np.float64) / frame  # (n,)
    energy = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frame - mean**2
    db = 10 * np.log10(np.maximum(energy, 0) + 1e-20)  # (n,)
    loudest = db.max()
    floor = np.percentile(db, NOISE_FLOOR_PERCENTILE)
    if loudest - floor < MIN_RANGE_DB:
        return None
    return db >= max(loudest - SOUND_RANGE_DB, floor + FLOOR_MARGIN_DB)


def snap_to_sound(start: float, end: float, sound: np.ndarray | None) -> tuple[float, float]:
    """A word's span without the silent frames at its edges.

    CTC alignments can put a word's first letters in the silence before it (the model is
    free to emit a label anywhere it likes); the audio's loudness says where the sound
    really starts and ends.

    Args:
        start, end: the word's span, seconds.
        sound: `sound_frames` of the audio the span lies in (None: unknown).

    Returns:
        (start, end) moved inwards to the first and last sounding frames within the span;
        unchanged when no frame in it sounds or `sound` is None.
    """
    if sound is None:
        return start, end
    first = max(0, int(start / FRAME_SECONDS + 1e-6))  # frames [first, last) overlap the span
    last = math.ceil(end / FRAME_SECONDS - 1e-6)
    inside = np.flatnonzero(sound[first:last])
    if len(inside) == 0:
        return start, end
    return (
        max(start, float(first + inside[0]) * FRAME_SECONDS),
        min(end, float(first + inside[-1] + 1) * FRAME_SECONDS),
    )


def pauses(
    audio: np.ndarray,
    min_pause: float,
    sample_rate: int = SAMPLE_RATE,
    sound: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """The silences of at least `min_pause` seconds between sounds of the audio.

    A pause is a run of silent frames (`sound_frames`); audio where loudness cannot tell
    speech apart (speech in loud noise, or noise alone) has none. Every stretch between two
    pauses holds at least MIN_SOUND_SECONDS of sounding frames.

    Args:
        audio: (num_samples,) mono audio.
        min_pause: shortest silence that counts, seconds (>= 0).
        sound: the audio's `sound_frames` when the caller has them (None: found here).

    Returns:
        (start, end) samples of each pause, in order; silence at the very start or end of the
        audio is not a pause between sounds and is not listed.

    Raises:
        ValueError: `min_pause` is negative.
    """
    check_min_pause(min_pause)
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    loud = sound if sound is not None else sound_frames(audio, sample_rate)  # (n,)
    if loud is None:
        return []
    n = len(loud)
    sound = np.flatnonzero(loud)
    after = np.flatnonzero(np.diff(sound) > 1)  # silence follows sound[k] for k in after
    found = [(int(sound[k]) + 1, int(sound[k + 1])) for k in after]  # frames [start, end)
    found = [(a, b) for a, b in found if (b - a) * frame >= min_pause * sample_rate]
    # Each piece between two pauses must hold a sound of its own; a piece with less (a
    # click, a breath, an echo's tail) joins its neighbour over its shorter pause. Piece k
    # lies between pauses k - 1 and k, and a pause holds no loud frame, so joining two
    # pieces adds their counts.
    bounds = [0, *(x for pause in found for x in pause), n]
    loud_before = np.concatenate([[0], np.cumsum(loud)])  # loud frames in [0, i)
    held = [
        int(loud_before[b] - loud_before[a]) for a, b in zip(bounds[::2], bounds[1::2], strict=True)
    ]
    least = MIN_SOUND_SECONDS * sample_rate / frame  # frames
    k = 0
    while k < len(held) and found:
        if held[k] >= least:
            k += 1
            continue
        sides = [j for j in (k - 1, k) if 0 <= j < len(found)]
        j = min(sides, key=lambda j: found[j][1] - found[j][0])  # pieces j and j + 1 join
        found.pop(j)
        held[j] += held.pop(j + 1)
        k = j  # the joined piece may still hold too little
    return [(a * frame, b * frame) for a, b in found]


def pieces(
    audio: np.ndarray,
    min_pause: float | None = MIN_PAUSE_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    sound: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """Where to cut the audio into the pieces the model decodes separately.

    The audio is cut inside every pause of at least `min_pause` seconds (`pauses`); each
    piece keeps up to KEEP_SECONDS of the pause at the cut and the rest of the pause is not
    decoded. A piece longer than `asr.audio.CHUNK_SECONDS` is cut further at its quietest
    moments (`asr.audio.chunk_starts`), whose pieces touch.

    Args:
        audio: (num_samples,) mono audio.
        min_pause: shortest pause that cuts, seconds; None or 0: cut only for length.
        sound: the audio's `sound_frames` when the caller has them (None: found here).

    Returns:
        (start, end) samples of the pieces, in order, none empty and none overlapping;
        the first starts at 0, the last ends at len(audio); empty audio has none.

    Raises:
        ValueError: `min_pause` is negative.
    """
    check_min_pause(min_pause)
    if len(audio) == 0:
        return []
    keep = round(KEEP_SECONDS * sample_rate)
    bounds, start = [], 0
    found = pauses(audio, min_pause, sample_rate, sound) if min_pause else []
    for pause_start, pause_end in found:
        kept = min(keep, (pause_end - pause_start) // 2)  # the two sides never overlap
        bounds.append((start, pause_start + kept))
        start = pause_end - kept
    bounds.append((start, len(audio)))
    cut = []
    for begin, end in bounds:
        starts = [begin + s for s in chunk_starts(audio[begin:end], sample_rate)]
        cut += list(zip(starts, [*starts[1:], end], strict=True))
    return cut
