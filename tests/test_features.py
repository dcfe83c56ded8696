import librosa
import numpy as np
import pytest
import torch

from asr.features import (
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    LogMel,
    num_frames,
    warp_frequencies,
    warped_filterbanks,
)


def test_log_mel_matches_librosa(rng):
    """Same STFT, Slaney filterbank and scaling as librosa's defaults, zero-padded edges."""
    audio = (0.1 * rng.standard_normal(16_000)).astype(np.float32)
    reference = librosa.feature.melspectrogram(
        y=audio,
        sr=16_000,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        center=True,
        pad_mode="constant",
        power=2.0,
    )  # (n_mels, frames)
    feats, lengths = LogMel(normalization="none")(
        torch.from_numpy(audio)[None], torch.tensor([16_000])
    )
    ours = feats[0].numpy().T  # (n_mels, frames)
    assert ours.shape == reference.shape and lengths.item() == reference.shape[1]
    # Tolerance on the log scale: 1e-3 nats, i.e. 0.1% relative on the power.
    np.testing.assert_allclose(ours, np.log(np.maximum(reference, 1e-10)), atol=1e-3)


def test_padding_does_not_change_features(rng):
    short = torch.from_numpy((0.1 * rng.standard_normal(5_000)).astype(np.float32))
    long = torch.from_numpy((0.1 * rng.standard_normal(12_345)).astype(np.float32))
    batch = torch.zeros(2, 12_345)
    batch[0, :5_000], batch[1] = short, long
    extractor = LogMel("utterance")
    feats, lengths = extractor(batch, torch.tensor([5_000, 12_345]))
    alone, alone_len = extractor(short[None], torch.tensor([5_000]))
    assert lengths.tolist() == [num_frames(5_000), num_frames(12_345)]
    assert torch.allclose(feats[0, : alone_len.item()], alone[0], atol=1e-5)
    assert feats[0, alone_len.item() :].abs().max() == 0  # padding frames are zero


def test_utterance_normalisation_statistics(rng):
    audio = torch.from_numpy((0.3 * rng.standard_normal(20_000)).astype(np.float32))
    feats, _ = LogMel("utterance")(audio[None], torch.tensor([20_000]))
    assert feats[0].mean(0).abs().max() < 1e-4
    assert torch.allclose(feats[0].std(0, unbiased=False), torch.ones(N_MELS), atol=1e-3)


def spectrum_peak(power: torch.Tensor) -> int:
    """Frequency bin of the largest mean power of a (K, T) spectrogram."""
    return int(power.mean(dim=1).argmax())


def test_warp_moves_a_tone_by_the_factor_and_keeps_nyquist():
    bins = N_FFT // 2 + 1
    hz_per_bin = 16_000 / N_FFT  # 40 Hz
    t = torch.arange(16_000) / 16_000
    tone = torch.sin(2 * torch.pi * 1_000 * t)  # bin 25
    window = torch.hann_window(N_FFT)
    power = torch.stft(tone, N_FFT, HOP_LENGTH, window=window, return_complex=True).abs() ** 2
    power = power[None].repeat(3, 1, 1)  # (3, K, T)
    warped = warp_frequencies(power, torch.tensor([1.0, 1.2, 0.8]))
    assert torch.allclose(warped[0], power[0])  # factor 1: unchanged
    assert spectrum_peak(warped[1]) * hz_per_bin == pytest.approx(1_200, abs=hz_per_bin)
    assert spectrum_peak(warped[2]) * hz_per_bin == pytest.approx(800, abs=hz_per_bin)
    # Nyquist maps to Nyquist: the top bin reads the top bin whatever the factor.
    ramp = torch.arange(bins, dtype=torch.float32)[None, :, None].repeat(3, 1, 2)
    top = warp_frequencies(ramp, torch.tensor([1.0, 1.2, 0.8]))[:, -1, 0]
    assert torch.allclose(top, torch.full((3,), bins - 1.0))
    # The mapping is monotone: no bin reads from below its lower neighbour.
    assert (warp_frequencies(ramp, torch.tensor([1.0, 1.2, 0.8])).diff(dim=1) >= 0).all()


def test_warped_filterbanks_equal_warping_the_spectrum_then_filtering():
    g = torch.Generator().manual_seed(0)
    power = torch.rand(4, N_FFT // 2 + 1, 30, generator=g)  # (B, K, T)
    filterbank = LogMel().mel.mel_scale.fb  # (K, N_MELS)
    factors = torch.tensor([0.9, 1.0, 1.07, 1.1])
    warped_first = warp_frequencies(power, factors).transpose(1, 2) @ filterbank
    in_the_filterbank = power.transpose(1, 2) @ warped_filterbanks(filterbank, factors)
    assert torch.allclose(in_the_filterbank, warped_first, rtol=1e-5, atol=1e-6)


def test_log_mel_warp_of_one_leaves_features_unchanged(rng):
    audio = torch.from_numpy((0.1 * rng.standard_normal((2, 8_000))).astype(np.float32))
    lengths = torch.tensor([8_000, 8_000])
    extractor = LogMel("utterance")
    plain, _ = extractor(audio, lengths)
    same, _ = extractor(audio, lengths, torch.ones(2))
    moved, _ = extractor(audio, lengths, torch.tensor([1.1, 0.9]))
    assert torch.allclose(plain, same, atol=1e-5)
    assert not torch.allclose(plain, moved, atol=1e-2)


def test_dynamic_range_floors_digital_silence_relative_to_the_utterance(rng):
    speech = 0.3 * rng.standard_normal(8_000).astype(np.float32)
    audio = torch.from_numpy(np.concatenate([np.zeros(4_000, np.float32), speech]))[None]
    lengths = torch.tensor([audio.shape[1]])
    absolute, _ = LogMel("none")(audio, lengths)
    relative, _ = LogMel("none", dynamic_range_db=80.0)(audio, lengths)
    peak = float(absolute.max())
    assert float(absolute.min()) == pytest.approx(np.log(1e-10))  # silence: the absolute floor
    assert float(relative.min()) == pytest.approx(peak - 8 * np.log(10), abs=1e-4)  # 80 dB down
    loud = absolute > peak - 8 * np.log(10)
    assert torch.equal(relative[loud], absolute[loud])  # louder values are untouched
    # The floor follows the utterance: a quieter copy gets the same features, shifted.
    quiet, _ = LogMel("none", dynamic_range_db=80.0)(audio * 0.1, lengths)
    assert torch.allclose(quiet, relative + 2 * np.log(0.1), atol=1e-3)


def test_speech_normalisation_ignores_silence_around_the_speech(rng):
    """With "speech" statistics, zeros before and after leave the speech frames' values
    unchanged; with "utterance" statistics they shift them (what the option is for)."""
    t = np.arange(8_000) / 16_000
    speech = np.sin(2 * np.pi * 300 * t) * (1 + 0.5 * rng.standard_normal(8_000))
    audio = torch.from_numpy((0.2 * speech).astype(np.float32))
    padded = torch.nn.functional.pad(audio, (20 * HOP_LENGTH, 60 * HOP_LENGTH))  # 0.2 / 0.6 s
    for normalization, changed in (("speech", False), ("utterance", True)):
        extractor = LogMel(normalization, dynamic_range_db=80.0)
        alone, n = extractor(audio[None], torch.tensor([len(audio)]))
        around, _ = extractor(padded[None], torch.tensor([len(padded)]))
        inner = around[0, 20 : 20 + n.item()]  # the same STFT frames, shifted by 20 hops
        assert torch.allclose(inner, alone[0], atol=1e-4) != changed, normalization


def test_std_floor_bounds_bins_that_barely_vary_in_the_speech(rng):
    """Speech with nothing above 4 kHz (8 kHz audio resampled) leaves the top mel bins at the
    dynamic-range floor in every speech frame; a quiet click outside the speech then comes
    out in the thousands without the floor and within the log-range over the floor (80 dB
    is 18.4 in natural-log units) with it."""
    t = np.arange(8_000) / 16_000
    voiced = sum(np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) for f0 in range(200, 3001, 200))
    speech = torch.from_numpy((0.02 * voiced * np.hanning(8_000)).astype(np.float32))
    click = torch.zeros(4_000)
    click[2_000] = 0.02  # about 43 dB below the speech: not a speech frame
    audio = torch.cat([speech, click])
    lengths = torch.tensor([len(audio)])
    unbounded, _ = LogMel("speech", dynamic_range_db=80.0)(audio[None], lengths)
    bounded, _ = LogMel("speech", dynamic_range_db=80.0, std_floor=1.0)(audio[None], lengths)
    assert unbounded.abs().max() > 100
    assert bounded.abs().max() < 80 / (10 * np.log10(np.e))
    with pytest.raises(ValueError, match="std_floor"):
        LogMel("speech", std_floor=0.0)


def test_std_floor_leaves_bins_that_vary_more_alone():
    from asr.features import normalize_utterances

    feats = torch.zeros(1, 5, 2)
    feats[0, :, 0] = torch.tensor([1.0, 3.0, 1.0, 3.0, -20.0])  # std 1 over frames 0-3
    feats[0, :, 1] = torch.tensor([0.0, 0.01, 0.0, 0.01, -20.0])  # std 0.005
    used = torch.tensor([True, True, True, True, False])[None, :, None]
    plain = normalize_utterances(feats, used)
    floored = normalize_utterances(feats, used, std_floor=0.5)
    torch.testing.assert_close(floored[..., 0], plain[..., 0])
    assert plain[0, 4, 1] < -3000  # -20 over a std of 0.005
    torch.testing.assert_close(floored[0, :, 1], (feats[0, :, 1] - 0.005) / 0.5)


def test_speech_frames_are_within_the_range_of_the_loudest():
    from asr.features import NORMALIZATION_RANGE_DB, speech_frames

    mel = torch.ones(1, 6, N_MELS)
    mel[0, :, :] *= torch.tensor(
        [1.0, 0.5, 10 ** (-NORMALIZATION_RANGE_DB / 10) * 1.01, 1e-4, 0, 5]
    )[:, None]
    pad = torch.tensor([False] * 5 + [True])[None, :, None]  # the loud last frame is padding
    assert speech_frames(mel, pad)[0, :, 0].tolist() == [True, True, True, False, False, False]


def test_valid_mask_is_the_pad_masks_complement():
    from asr.features import make_pad_mask, valid_mask

    lengths = torch.tensor([2, 0, 3])
    expected = [[True, True, False], [False, False, False], [True, True, True]]
    assert valid_mask(lengths, 3).tolist() == expected
    assert torch.equal(make_pad_mask(lengths, 3), ~valid_mask(lengths, 3))
