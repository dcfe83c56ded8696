"""Log-mel features, batched, computed with torchaudio."""

import torch
import torchaudio
from torch import nn

from asr.audio import SAMPLE_RATE

N_MELS = 80
N_FFT = 400  # samples: 25 ms window at 16 kHz
HOP_LENGTH = 160  # samples: 10 ms hop at 16 kHz
LOG_FLOOR = 1e-10  # power floor before the log, so silence gives a finite value
# Mel powers more than this far below the utterance's loudest are raised to that level (as
# Whisper does), so digital silence looks like a quiet room instead of log(1e-10).
DEFAULT_DYNAMIC_RANGE_DB = 80.0
NORMALIZATIONS = ("utterance", "speech", "none")
# "speech" normalisation takes its statistics from the frames within this range of the
# utterance's loudest frame, so silence around the speech does not change them.
NORMALIZATION_RANGE_DB = 30.0  # dB
# Vocal tract length perturbation keeps this share of the band (and everything above it)
# from being squeezed past the Nyquist frequency (Jaitly & Hinton, 2013).
WARP_BOUNDARY = 0.8


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
            frames), "speech" (the same, with statistics from the valid frames within
            NORMALIZATION_RANGE_DB of the loudest frame only, so leading or trailing silence of any
            length leaves the speech frames' values unchanged) or "none".
        dynamic_range_db: floor each utterance's mel powers this many dB below its loudest
            (None: only the absolute LOG_FLOOR, as models trained before this option).
        std_floor: smallest standard deviation (natural-log units; 1.0 is 4.3 dB) the
            normalisation divides by (None: no floor, as models trained before this option;
            see `normalize_utterances`).
    """

    def __init__(
        self,
        normalization: str = "utterance",
        dynamic_range_db: float | None = None,
        std_floor: float | None = None,
    ) -> None:
        super().__init__()
        self.dynamic_range_db = dynamic_range_db
        self.std_floor = std_floor
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        self.normalization = normalization
        if std_floor is not None and std_floor <= 0:
            raise ValueError(f"std_floor must be positive or None, got {std_floor}")
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
        self, waveforms: torch.Tensor, lengths: torch.Tensor, warp: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute features.

        Args:
            waveforms: (B, S) float32 audio at SAMPLE_RATE, zero-padded.
            lengths: (B,) int64 valid samples per item.
            warp: (B,) frequency warp factors for vocal tract length perturbation (see
                `warp_frequencies`), or None for none.

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
            filterbank = self.mel.mel_scale.fb  # (K, N_MELS)
            if warp is not None:  # one filterbank per utterance: (B, K, N_MELS)
                filterbank = warped_filterbanks(filterbank, warp)
            mel = power.transpose(1, 2) @ filterbank  # (B, T, N_MELS)
        floor = torch.full_like(mel[:, :1, :1], LOG_FLOOR)  # (B, 1, 1)
        if self.dynamic_range_db is not None:
            # Padding frames are silent, so the loudest value is the utterance's own.
            peak = mel.amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
            floor = torch.maximum(floor, peak * 10 ** (-self.dynamic_range_db / 10))
        feats = torch.log(torch.maximum(mel, floor))
        frame_lengths = num_frames(lengths)
        mask = make_pad_mask(frame_lengths, feats.shape[1]).unsqueeze(-1)  # (B, T, 1)
        if self.normalization == "utterance":
            feats = normalize_utterances(feats, ~mask, self.std_floor)
        elif self.normalization == "speech":
            feats = normalize_utterances(feats, ~mask & speech_frames(mel, mask), self.std_floor)
        return feats.masked_fill(mask, 0.0), frame_lengths


def warp_sources(bins: int, factors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each output bin of a warped spectrum reads the input (see `warp_frequencies`).

    Args:
        bins: K frequency bins from 0 to Nyquist.
        factors: (B,) warp factors.

    Returns:
        (B, K) lower input bin, in [0, K - 2], and (B, K) weight of the bin above it.
    """
    top = float(bins - 1)  # the Nyquist bin
    out_freq = torch.arange(bins, device=factors.device, dtype=factors.dtype)[None, :]  # (1, K)
    factors = factors[:, None]  # (B, 1)
    # Output bins below `boundary` read the input at f / factor; the rest read a line from
    # (boundary, boundary / factor) to (top, top).
    boundary = WARP_BOUNDARY * top * torch.clamp(factors, max=1.0)  # (B, 1)
    low = out_freq / factors
    high = boundary / factors + (out_freq - boundary) * (top - boundary / factors) / (
        top - boundary
    )
    source = torch.where(out_freq <= boundary, low, high).clamp(0.0, top)  # (B, K)
    below = source.floor().long().clamp(max=bins - 2)
    return below, source - below


def warp_frequencies(power: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Vocal tract length perturbation: move each utterance's spectral envelope in frequency.

    Content at frequency f moves to `factor * f` up to a boundary; above it a second linear
    piece maps the rest of the band onto the rest, so the Nyquist frequency stays put. A
    factor above 1 sounds like a shorter vocal tract (higher formants), below 1 a longer one;
    pitch and timing are unchanged. `LogMel` applies the same warp through its filterbank
    (`warped_filterbanks`), which is cheaper than this.

    Args:
        power: (B, K, T) power spectrogram, K frequency bins from 0 to Nyquist.
        factors: (B,) warp factors, e.g. uniform in [0.9, 1.1].

    Returns:
        (B, K, T) warped power spectrogram (linear interpolation between bins).
    """
    below, weight = warp_sources(power.shape[1], factors.to(power.device, power.dtype))
    index = below[:, :, None].expand(-1, -1, power.shape[2])  # (B, K, T)
    weight = weight[:, :, None]  # (B, K, 1)
    return torch.gather(power, 1, index) * (1 - weight) + torch.gather(power, 1, index + 1) * weight


def warped_filterbanks(filterbank: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """A filterbank per utterance that applies `warp_frequencies` and the filterbank at once.

    The warp is linear in the power spectrum, so (warped power)ᵀ @ filterbank equals
    powerᵀ @ (warpᵀ @ filterbank): a (K, M) matrix per utterance instead of two gathers over
    every (K, T) spectrogram (those took 37 ms of a 2-core CPU's recipe batch, this 6,
    benchmarks/README.md). On CUDA `scatter_add_` is not bitwise reproducible (float atomics).

    Args:
        filterbank: (K, M) weights of K frequency bins for M mel bands.
        factors: (B,) warp factors.

    Returns:
        (B, K, M) filterbanks.
    """
    bins, bands = filterbank.shape
    below, weight = warp_sources(bins, factors.to(filterbank.device, filterbank.dtype))
    index = below[:, :, None].expand(-1, -1, bands)  # (B, K, M): output bin k reads `below`
    weight = weight[:, :, None]  # (B, K, 1)
    banks = filterbank.new_zeros(len(factors), bins, bands)
    # Output bin k's filter row goes to the input bins it reads, in their shares.
    banks.scatter_add_(1, index, (1 - weight) * filterbank)
    banks.scatter_add_(1, index + 1, weight * filterbank)
    return banks


def valid_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_length) bool, True at valid positions (`~make_pad_mask`)."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def make_pad_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_length) bool, True at padded positions (`~valid_mask`)."""
    return ~valid_mask(lengths, max_length)


def speech_frames(mel: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Frames whose energy is within NORMALIZATION_RANGE_DB of the utterance's loudest frame.

    Args:
        mel: (B, T, F) mel powers; pad_mask: (B, T, 1) True at padding.

    Returns:
        (B, T, 1) bool; every utterance has at least its loudest frame.
    """
    energy = mel.sum(-1, keepdim=True).masked_fill(pad_mask, 0.0)  # (B, T, 1)
    loudest = energy.amax(dim=1, keepdim=True)  # (B, 1, 1)
    return energy >= loudest * 10 ** (-NORMALIZATION_RANGE_DB / 10)


def normalize_utterances(
    feats: torch.Tensor, used: torch.Tensor, std_floor: float | None = None
) -> torch.Tensor:
    """Zero mean, unit variance per utterance and mel bin, with statistics from `used` frames.

    A bin that barely varies over the `used` frames (one sitting at the dynamic-range floor
    in every speech frame, as the bins above 4 kHz of 8 kHz audio do) would have the other
    frames' values in it divided by a standard deviation near 0 and come out in the
    hundreds or thousands; `std_floor` bounds that.

    Args:
        feats: (B, T, F); used: (B, T, 1) True at the frames the statistics come from.
        std_floor: divide by at least this (None: by sqrt(variance + 1e-5) only).

    Returns:
        (B, T, F) normalised features.
    """
    valid = used.to(feats.dtype)
    count = valid.sum(1, keepdim=True).clamp_min(1)  # (B, 1, 1)
    mean = (feats * valid).sum(1, keepdim=True) / count
    var = (((feats - mean) * valid) ** 2).sum(1, keepdim=True) / count
    std = torch.sqrt(var + 1e-5)
    if std_floor is not None:
        std = std.clamp_min(std_floor)
    return (feats - mean) / std
