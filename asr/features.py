"""Log-mel features, batched, computed with torchaudio."""

import torch
import torchaudio
from torch import nn

from asr.audio import SAMPLE_RATE

N_MELS = 80
N_FFT = 400  # samples: 25 ms window at 16 kHz
HOP_LENGTH = 160  # samples: 10 ms hop at 16 kHz
LOG_FLOOR = 1e-10  # power floor before the log, so silence gives a finite value
NORMALIZATIONS = ("utterance", "none")


def num_frames(num_samples: torch.Tensor | int) -> torch.Tensor | int:
    """Frames of a centred STFT with HOP_LENGTH: 1 + samples // hop (integer)."""
    return 1 + num_samples // HOP_LENGTH


class LogMel(nn.Module):
    """Waveforms -> (optionally normalised) 80-bin log-mel spectrogram.

    Uses the Slaney mel scale and area-normalised filters, as librosa does by default, so
    `librosa.feature.melspectrogram` with the same STFT settings gives the same values.
    Zero padding (rather than reflection) at the signal edges makes a padded batch compute
    the same features per item as the item alone.

    Args:
        normalization: "utterance" (per-utterance mean/variance per mel bin, over the valid
            frames only) or "none".
    """

    def __init__(self, normalization: str = "utterance") -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        self.normalization = normalization
        # Only its window and mel filterbank are used (see `forward`); kept as the module so
        # checkpoints keep their layout.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=N_FFT,
            hop_length=HOP_LENGTH,
            n_mels=N_MELS,
            power=2.0,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute features.

        Args:
            waveforms: (B, S) float32 audio at SAMPLE_RATE, zero-padded.
            lengths: (B,) int64 valid samples per item.

        Returns:
            features: (B, T, N_MELS) float32, zero beyond each item's frames.
            frame_lengths: (B,) int64 valid frames per item.
        """
        # STFT in fp32 even under autocast: fp16/bf16 power spectra lose the quiet bins.
        with torch.autocast(waveforms.device.type, enabled=False):
            # torchaudio's window and filterbank, applied by hand: its |X|^2 as abs().pow(2)
            # on complex numbers costs as much as the FFT; re^2 + im^2 makes the whole
            # transform about 1.3x faster (benchmarks/bench_features.py), same values.
            spectrum = torch.stft(
                waveforms.float(),
                N_FFT,
                HOP_LENGTH,
                window=self.mel.spectrogram.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )  # (B, N_FFT // 2 + 1, T)
            power = spectrum.real.square() + spectrum.imag.square()
            mel = power.transpose(1, 2) @ self.mel.mel_scale.fb  # (B, T, N_MELS)
        feats = torch.log(mel.clamp_min(LOG_FLOOR))
        frame_lengths = num_frames(lengths)
        mask = make_pad_mask(frame_lengths, feats.shape[1]).unsqueeze(-1)  # (B, T, 1)
        if self.normalization == "utterance":
            feats = normalize_utterances(feats, frame_lengths, mask)
        return feats.masked_fill(mask, 0.0), frame_lengths


def make_pad_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_length) bool, True at padded positions."""
    return torch.arange(max_length, device=lengths.device)[None, :] >= lengths[:, None]


def normalize_utterances(
    feats: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor
) -> torch.Tensor:
    """Zero mean, unit variance per utterance and mel bin, over valid frames only.

    Args:
        feats: (B, T, F); lengths: (B,); pad_mask: (B, T, 1) True at padding.
    """
    valid = (~pad_mask).to(feats.dtype)
    count = lengths.clamp_min(1).to(feats.dtype)[:, None, None]  # (B, 1, 1)
    mean = (feats * valid).sum(1, keepdim=True) / count
    var = (((feats - mean) * valid) ** 2).sum(1, keepdim=True) / count
    return (feats - mean) / torch.sqrt(var + 1e-5)
