import pytest
import torch

from asr.augment import add_noise, cut_edges, pad_with_silence, place_spans


def batch_audio() -> tuple[torch.Tensor, torch.Tensor]:
    """Two utterances of noise, 16,000 and 9,000 samples, 8 times: (16, 16000), (16,)."""
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(2, 16_000, generator=g)
    audio[1, 9_000:] = 0
    return audio.repeat(8, 1), torch.tensor([16_000, 9_000] * 8)


def test_pad_with_silence_shifts_utterances_and_keeps_their_samples():
    torch.manual_seed(0)
    audio, lengths = batch_audio()
    padded, new_lengths = pad_with_silence(audio, lengths, 4_000, 0.5)
    added = new_lengths - lengths
    assert padded.shape[1] == new_lengths.max()  # silence after the speech is there too
    assert ((added >= 0) & (added <= 2 * 4_000)).all()
    assert 0 < (added > 0).sum() < 16  # about half the utterances get silence
    for i in range(16):
        row = padded[i, : new_lengths[i]]
        start = int(row.nonzero()[0])  # the first sample of the speech
        assert torch.equal(row[start : start + lengths[i]], audio[i, : lengths[i]])
        assert padded[i, new_lengths[i] :].abs().sum() == 0


def test_place_spans_matches_copying_row_by_row():
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(12, 500, generator=g)
    count = torch.randint(0, 300, (12,), generator=g)
    source = (torch.rand(12, generator=g) * (500 - count)).long()  # span within the row
    target = torch.randint(0, 200, (12,), generator=g)
    new_lengths = target + count + torch.randint(0, 20, (12,), generator=g)
    placed = place_spans(audio, source, target, count, new_lengths)
    expected = torch.zeros(12, int(new_lengths.max()))
    for i in range(12):
        expected[i, target[i] : target[i] + count[i]] = audio[i, source[i] : source[i] + count[i]]
    assert torch.equal(placed, expected)


def test_add_noise_reaches_the_drawn_snr_within_the_valid_samples():
    torch.manual_seed(0)
    audio, lengths = (torch.cat([a, a]) for a in batch_audio())
    power = audio.square().sum(1) / lengths
    noisy = add_noise(audio, lengths, power, (20.0, 20.0))
    noise = noisy - audio
    snr = 10 * torch.log10(power / (noise.square().sum(1) / lengths))
    got = snr.isfinite()
    assert 0 < got.sum() < 32  # about half the utterances get noise
    assert torch.allclose(snr[got], torch.full_like(snr[got], 20.0), atol=0.5)
    assert noise[1::2, 9_000:].abs().max() == 0  # none in the padding beyond an utterance


def test_add_noise_takes_batches_where_no_utterance_is_chosen():
    torch.manual_seed(0)
    audio, lengths = batch_audio()
    power = audio.square().sum(1) / lengths
    kept = [torch.equal(add_noise(audio[:1], lengths[:1], power[:1], (20.0, 20.0)), audio[:1])
            for _ in range(20)]  # fmt: skip
    assert 0 < sum(kept) < 20  # one utterance: sometimes noisy, sometimes left alone
    assert add_noise(audio[:0], lengths[:0], power[:0], (20.0, 20.0)).shape == (0, 16_000)


def test_add_noise_is_audible_whatever_its_colour_and_the_batch_length():
    """Most of the noise's power (on which its SNR is measured) lies above 100 Hz, even for
    brown noise in a long batch, instead of in a drift below it."""
    torch.manual_seed(0)
    samples = 160_000  # a 10 s batch
    audio = 0.1 * torch.randn(32, samples)
    lengths = torch.full((32,), samples)
    noise = add_noise(audio, lengths, audio.square().mean(1), (20.0, 20.0)) - audio
    power = torch.fft.rfft(noise).abs().square()  # (B, K)
    hz = torch.arange(power.shape[1]) * (16_000 / samples)
    share = power[:, hz >= 100].sum(1) / power.sum(1).clamp_min(1e-12)
    chosen = noise.abs().amax(1) > 0
    assert chosen.any() and (share[chosen] > 0.4).all(), share[chosen].min()


@pytest.mark.parametrize(("probability", "low", "high"), [(1.0, 15, 16), (0.0, 0, 0)])
def test_pad_probability_sets_the_share_of_padded_utterances(probability, low, high):
    torch.manual_seed(0)
    audio, lengths = batch_audio()
    _, new_lengths = pad_with_silence(audio, lengths, 4_000, probability)
    assert low <= int((new_lengths > lengths).sum()) <= high


def stepped_levels(levels_db: list[float], frame: int = 160) -> torch.Tensor:
    """One frame of constant-power audio (alternating +-a) per level, in dB of full scale."""
    signs = torch.tensor([1.0, -1.0]).repeat(frame // 2)
    return torch.cat([10 ** (db / 20) * signs for db in levels_db])


def test_cut_edges_cuts_where_the_energy_first_and_last_comes_within_the_drawn_level():
    levels = [-60, -40, -30, -20, -10, 0, -5, -15, -20, -30, -50]  # peak 0 dB at frame 5
    speech = stepped_levels(levels)
    audio = torch.zeros(3, len(speech) + 320)  # the batch is two frames wider than speech
    audio[:, : len(speech)] = speech
    audio[2, len(speech) : len(speech) + 100] = 1.0  # loud, but not a whole frame: never kept
    lengths = torch.tensor([len(speech), len(speech) + 100, len(speech) + 100])
    cut, new_lengths = cut_edges(audio, lengths, (-25.0, -25.0), 1.0)
    # Within 25 dB of the peak: frames 3 (-20 dB) to 8 (-20 dB).
    assert new_lengths.tolist() == [6 * 160] * 3
    for i in range(3):
        assert torch.equal(cut[i], speech[3 * 160 : 9 * 160])


def test_cut_edges_draws_its_share_and_keeps_the_rest_whole():
    torch.manual_seed(0)
    speech = stepped_levels([-60, -30, -10, 0, -10, -30, -60])
    audio, lengths = speech.repeat(64, 1), torch.full((64,), len(speech))
    cut, new_lengths = cut_edges(audio, lengths, (-35.0, -5.0), 0.5)
    kept = new_lengths == len(speech)
    assert 16 < int(kept.sum()) < 48  # probability 0.5
    assert torch.equal(cut[kept], audio[kept])
    assert (new_lengths[~kept] >= 160).all()  # never less than the loudest frame
    untouched, same = cut_edges(audio, lengths, (-35.0, -5.0), 0.0)
    assert torch.equal(untouched, audio) and torch.equal(same, lengths)


def test_cut_edges_leaves_silence_even_noise_and_too_short_utterances_alone():
    audio = torch.zeros(3, 800)
    audio[1, :100] = 0.5  # shorter than one 10 ms frame
    # Noise of even level: every frame is within 10 dB of the loudest, so nothing is cut.
    audio[2] = 0.1 * torch.randn(800, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([800, 100, 800])
    cut, new_lengths = cut_edges(audio, lengths, (-10.0, -10.0), 1.0)
    assert new_lengths.tolist() == [800, 100, 800]
    assert torch.equal(cut, audio)
    # A batch in which no utterance has a whole frame.
    short, short_lengths = cut_edges(
        audio[:, :100], torch.tensor([0, 100, 100]), (-10.0, -10.0), 1.0
    )
    assert torch.equal(short, audio[:, :100]) and short_lengths.tolist() == [0, 100, 100]


@pytest.mark.parametrize("range_db", [(-10.0, -20.0), (-10.0, 5.0)])
def test_cut_edges_refuses_a_bad_range(range_db):
    with pytest.raises(ValueError, match="range_db"):
        cut_edges(torch.zeros(1, 800), torch.tensor([800]), range_db, 1.0)
