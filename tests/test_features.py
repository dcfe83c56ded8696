import librosa
import numpy as np
import torch

from asr.features import HOP_LENGTH, N_FFT, N_MELS, LogMel, num_frames


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
