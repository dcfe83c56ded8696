"""Forced-alignment word timestamps and confidences on hand-built emissions."""

import pytest
import torch

from asr.alignment import align_batch, align_words, ctc_frames_needed, ctc_frames_needed_batch
from asr.text import Tokenizer

TOKENIZER = Tokenizer()
FLOOR = 1e-4
FRAME_SHIFT = 0.04


def emissions(spec: list[str | dict[str, float]]) -> torch.Tensor:
    """(T, V) log-probs; a str frame is that token at probability 0.9 ("" is blank)."""
    rows = []
    for item in spec:
        probs = {item: 0.9} if isinstance(item, str) else item
        p = torch.full((len(TOKENIZER),), FLOOR)
        for token, prob in probs.items():
            p[0 if token == "" else TOKENIZER.vocabulary.index(token)] = prob
        rows.append(p / p.sum())
    return torch.stack(rows).log()


# "on" occupies frames 2-4 (the "n" is held for two frames), the space frame 6, "off" frames
# 8-11 (its two "f"s need a blank between them).
# Frames:   0   1    2    3    4   5   6   7    8    9  10   11  12  13
SPEC_OFF = ["", "", "o", "n", "n", "", " ", "", "o", "f", "", "f", "", ""]


def test_word_boundaries_at_built_frames() -> None:
    result = align_words(emissions(SPEC_OFF), "on off", TOKENIZER, FRAME_SHIFT)
    assert [w.word for w in result.words] == ["on", "off"]
    on, off = result.words
    assert on.start == pytest.approx(2 * FRAME_SHIFT)
    assert on.end == pytest.approx(5 * FRAME_SHIFT)  # last "n" frame is 4, end exclusive
    assert off.start == pytest.approx(8 * FRAME_SHIFT)
    assert off.end == pytest.approx(12 * FRAME_SHIFT)
    assert result.text == "on off"
    assert 0.85 < result.confidence <= 1.0


def test_ambiguous_word_has_lower_confidence() -> None:
    spec = list(SPEC_OFF)
    spec[8] = {"o": 0.4, "a": 0.4}
    spec[9] = {"f": 0.5, "v": 0.4}
    clear = align_words(emissions(SPEC_OFF), "on off", TOKENIZER, FRAME_SHIFT)
    murky = align_words(emissions(spec), "on off", TOKENIZER, FRAME_SHIFT)
    assert murky.words[0].confidence == pytest.approx(clear.words[0].confidence)
    assert murky.words[1].confidence < clear.words[1].confidence - 0.1
    assert murky.words[1].confidence < murky.words[0].confidence
    assert murky.confidence < clear.confidence


def test_wrong_word_has_lower_confidence() -> None:
    right = align_words(emissions(SPEC_OFF), "on off", TOKENIZER, FRAME_SHIFT)
    # A deleted "f" (strong at frame 11, which "of" must call blank) and a substituted "a".
    for text in ("on of", "on oaf"):
        wrong = align_words(emissions(SPEC_OFF), text, TOKENIZER, FRAME_SHIFT)
        assert wrong.words[0].confidence == pytest.approx(right.words[0].confidence)
        assert wrong.words[1].confidence < right.words[1].confidence - 0.05, text


def test_letters_spelled_in_silence_are_timed_at_the_sound() -> None:
    """The model spells "on" at frames 1-2 while the audio sounds at frames 6-9 only: the
    times come from the sounding frames, the confidence from the model's own alignment."""
    spec = ["", "o", "n", "", "", "", {"o": 0.2, "": 0.7}, "", {"n": 0.2, "": 0.7}, "", ""]
    sounding = torch.tensor([False] * 6 + [True] * 4 + [False])
    free = align_words(emissions(spec), "on", TOKENIZER, FRAME_SHIFT)
    kept = align_words(emissions(spec), "on", TOKENIZER, FRAME_SHIFT, sounding)
    assert (free.words[0].start, free.words[0].end) == pytest.approx((0.04, 0.12))
    assert (kept.words[0].start, kept.words[0].end) == pytest.approx((0.24, 0.36))
    assert kept.confidence == pytest.approx(free.confidence)
    # No sounding frame at all, or a text too long for them: the model's own alignment.
    none = align_words(emissions(spec), "on", TOKENIZER, FRAME_SHIFT, torch.zeros(11, dtype=bool))
    assert none.words == free.words
    one = torch.zeros(11, dtype=bool)
    one[7] = True
    squeezed = align_words(emissions(spec), "on", TOKENIZER, FRAME_SHIFT, one)
    # Two letters, one sounding frame: "n" takes it, "o" stays where the model spelled it.
    assert (squeezed.words[0].start, squeezed.words[0].end) == pytest.approx((0.04, 0.32))


def test_empty_text() -> None:
    silent = align_words(emissions(["", "", ""]), "", TOKENIZER, FRAME_SHIFT)
    assert silent.words == [] and silent.confidence > 0.85
    speechy = align_words(emissions(["o", "n", ""]), "  ", TOKENIZER, FRAME_SHIFT)
    assert speechy.words == [] and speechy.confidence < 0.5
    nothing = align_words(torch.zeros(0, len(TOKENIZER)), "", TOKENIZER, FRAME_SHIFT)
    assert nothing.words == [] and nothing.confidence == 0.0


def test_text_too_long_raises() -> None:
    with pytest.raises(ValueError, match="frames"):
        align_words(emissions(["", "o"]), "off", TOKENIZER, FRAME_SHIFT)


def test_batch_uses_valid_frames_only() -> None:
    torch.manual_seed(0)
    short = emissions(["", "o", "n", ""])
    lp = torch.randn(2, len(SPEC_OFF), len(TOKENIZER)).log_softmax(-1)
    lp[0] = emissions(SPEC_OFF)
    lp[1, :4] = short
    results = align_batch(lp, torch.tensor([len(SPEC_OFF), 4]), ["on off", "on"], TOKENIZER, 0.01)
    assert [r.text for r in results] == ["on off", "on"]
    assert results[1].words[0].start == pytest.approx(0.01)
    assert results[1].words[0].end == pytest.approx(0.03)
    assert results[1].confidence == pytest.approx(
        align_words(short, "on", TOKENIZER, 0.01).confidence
    )


def test_ctc_frames_needed_counts_repeats() -> None:
    tokens = TOKENIZER.encode("hello")  # "ll" needs a blank between the two l's
    assert ctc_frames_needed(tokens) == 6
    assert ctc_frames_needed([]) == 0


def test_ctc_frames_needed_on_hand_built_cases_and_padded_batches() -> None:
    texts = ["aa", "ab", "aab", "a", ""]
    ids = [TOKENIZER.encode(t) for t in texts]
    assert [ctc_frames_needed(x) for x in ids] == [3, 2, 4, 1, 0]
    # Padded with copies of the last label (and 0s): padding must never count as a repeat.
    tokens = torch.zeros(len(ids), 4, dtype=torch.int64)
    for row, x in zip(tokens, ids, strict=True):
        row[: len(x)] = torch.tensor(x, dtype=torch.int64)
    tokens[3, 1:] = tokens[3, 0]
    lengths = torch.tensor([len(x) for x in ids])
    assert ctc_frames_needed_batch(tokens, lengths).tolist() == [3, 2, 4, 1, 0]
    assert (
        ctc_frames_needed_batch(tokens[:, :0], torch.zeros(5, dtype=torch.int64)).tolist()
        == [0] * 5
    )


def test_token_confidence_is_the_mean_of_the_tokens_own_posteriors():
    """Blank frames, however sure, do not count: each token's frames are averaged, then
    the tokens."""
    from asr.alignment import token_confidence

    rows = [("-", 0.99), ("g", 0.8), ("g", 0.6), ("-", 0.99), ("o", 0.4), ("-", 0.99)]
    probs = torch.empty(len(rows), len(TOKENIZER))
    for t, (token, p) in enumerate(rows):  # the peak, the rest spread over the others
        probs[t] = (1 - p) / (len(TOKENIZER) - 1)
        probs[t, 0 if token == "-" else TOKENIZER.vocabulary.index(token)] = p
    lp = probs.log()
    expected = ((0.8 + 0.6) / 2 + 0.4) / 2  # g's two frames, then o
    got = token_confidence(lp, TOKENIZER.encode("go"))
    assert abs(got - expected) < 0.01, got
    assert token_confidence(lp, []) == 0.0
