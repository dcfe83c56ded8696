"""Cutting inputs at their pauses (asr.segment), on hand-built signals with known pauses."""

import itertools

import numpy as np
import pytest

from asr.audio import CHUNK_SECONDS, SAMPLE_RATE
from asr.cli import main
from asr.segment import KEEP_SECONDS, pauses, pieces, snap_to_sound, sound_frames


def sound(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise at about -20 dBFS standing in for a spoken word."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


def seconds(spans: list[tuple[int, int]]) -> list[tuple[float, float]]:
    return [(round(a / SAMPLE_RATE, 2), round(b / SAMPLE_RATE, 2)) for a, b in spans]


# 0.3 s lead, sound 0.3-0.7, pause 0.7-0.9 (0.2 s), sound 0.9-1.3, pause 1.3-1.9 (0.6 s),
# sound 1.9-2.4, pause 2.4-3.4 (1 s), sound 3.4-3.8, 0.5 s tail: 4.3 s.
PARTS = [silence(0.3), sound(0.4, 1), silence(0.2), sound(0.4, 2), silence(0.6)]
PARTS += [sound(0.5, 3), silence(1.0), sound(0.4, 4), silence(0.5)]
AUDIO = np.concatenate(PARTS)


def test_pauses_are_the_long_silences_between_sounds_only():
    assert seconds(pauses(AUDIO, 0.5)) == [(1.3, 1.9), (2.4, 3.4)]
    assert seconds(pauses(AUDIO, 0.15)) == [(0.7, 0.9), (1.3, 1.9), (2.4, 3.4)]
    assert pauses(AUDIO, 1.5) == []  # the lead and the tail are not pauses between sounds


def test_sound_frames_are_the_sounds_and_edges_snap_to_them():
    loud = sound_frames(AUDIO)
    spans = [(0.3, 0.7), (0.9, 1.3), (1.9, 2.4), (3.4, 3.8)]
    expected = np.zeros(len(AUDIO) // (SAMPLE_RATE // 100), bool)
    for a, b in spans:
        expected[round(a * 100) : round(b * 100)] = True
    assert (loud == expected).all()
    assert snap_to_sound(0.0, 0.5, loud) == pytest.approx((0.3, 0.5))  # the lead is dropped
    assert snap_to_sound(1.2, 1.6, loud) == pytest.approx((1.2, 1.3))  # so is the pause
    assert snap_to_sound(1.4, 1.8, loud) == (1.4, 1.8)  # nothing sounds: left alone
    assert snap_to_sound(0.0, 0.5, None) == (0.0, 0.5)
    # Too short for a frame, or loudness that cannot tell speech from noise: unknown.
    assert sound_frames(AUDIO[:100]) is None
    assert sound_frames(sound(2.0)) is None


def test_pieces_hold_the_sounds_and_a_little_of_each_pause():
    cut = seconds(pieces(AUDIO, 0.5))
    keep = KEEP_SECONDS
    assert cut == [(0.0, 1.3 + keep), (1.9 - keep, 2.4 + keep), (3.4 - keep, 4.3)]
    assert pieces(AUDIO, None) == pieces(AUDIO, 0) == [(0, len(AUDIO))]
    # a pause shorter than twice KEEP_SECONDS is split in its middle: pieces touch
    short = pieces(AUDIO, 0.15)
    assert seconds(short)[:2] == [(0.0, 0.8), (0.8, 1.3 + keep)]
    assert all(b <= c for (_, b), (c, _) in itertools.pairwise(short))


def test_a_pause_of_exactly_min_pause_counts_and_negative_is_refused():
    exact = np.concatenate([sound(0.4), silence(0.5), sound(0.4)])
    assert seconds(pauses(exact, 0.5)) == [(0.4, 0.9)]
    assert pauses(exact, 0.51) == []
    for audio in (exact, np.zeros(0, np.float32)):
        with pytest.raises(ValueError, match="min_pause"):
            pieces(audio, -0.1)


def test_a_dc_offset_is_not_sound():
    assert pauses(AUDIO + 0.05, 0.5) == pauses(AUDIO, 0.5)


def test_a_click_or_a_breath_is_not_a_command_of_its_own():
    click = np.concatenate([sound(0.6), silence(0.8), sound(0.03), silence(0.2)])
    assert pauses(click, 0.5) == []
    between = np.concatenate([sound(0.6), silence(0.7), sound(0.03), silence(0.9), sound(0.5)])
    # the click joins a neighbour over its shorter pause; the longer one still cuts
    assert seconds(pauses(between, 0.5)) == [(1.33, 2.23)]


def test_quiet_room_noise_still_has_pauses_but_loud_noise_has_none():
    rng = np.random.default_rng(9)
    noise = rng.standard_normal(len(AUDIO)).astype(np.float32)
    room = AUDIO + 0.1 * 10 ** (-30 / 20) * noise  # 30 dB below the sound
    assert seconds(pauses(room, 0.5)) == [(1.3, 1.9), (2.4, 3.4)]
    loud = AUDIO + 0.1 * 10 ** (-12 / 20) * noise  # 12 dB below: no trustworthy pause
    assert pauses(loud, 0.5) == []


@pytest.mark.parametrize("audio", [silence(2.0), sound(0.005), sound(3.0)])
def test_silent_tiny_and_unbroken_inputs_are_one_piece(audio):
    assert pauses(audio, 0.5) == []
    assert pieces(audio) == [(0, len(audio))]


def test_empty_input_has_no_pieces():
    assert pauses(np.zeros(0, np.float32), 0.5) == pieces(np.zeros(0, np.float32)) == []


def test_the_cli_refuses_a_negative_min_pause(capsys):
    with pytest.raises(SystemExit):
        main(["transcribe", "a.wav", "--min-pause", "-1"])
    assert "--min-pause: -1: must be >= 0 seconds" in capsys.readouterr().err


def test_a_long_stretch_without_pauses_is_still_cut_to_the_model_limit():
    long = np.concatenate([sound(40), silence(6.0), sound(2)])
    cut = pieces(long, 0.5)
    assert cut[0][0] == 0 and cut[-1][1] == len(long)
    assert all(b - a <= CHUNK_SECONDS * SAMPLE_RATE for a, b in cut)
    assert len(cut) == 3  # 40 s in two chunks, then the 2 s after the pause
    assert all(b <= c for (_, b), (c, _) in itertools.pairwise(cut))
