"""Waveform augmentations for training batches: edge cuts, silence padding, coloured noise.

Each takes a zero-padded batch, (B, S) audio with (B,) valid lengths in samples, draws from
torch's global generator (seeded by `seed_everything`; in a DataLoader worker, the seed
torch gives each worker) on the batch's device, and decides per utterance whether to apply
itself. `WaveformAugment` applies them in their order.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch

from asr.audio import SAMPLE_RATE
from asr.features import HOP_LENGTH, make_pad_mask, valid_mask

# Samples (10 ms): the energy frame `cut_edges` cuts at; one feature hop, so that a cut
# utterance keeps the feature frame grid of the uncut one.
EDGE_FRAME = HOP_LENGTH
NOISE_LOWEST_HZ = 100.0  # Hz; coloured training noise is flat below this frequency


def check_range_db(range_db: tuple[float, float], name: str = "range_db") -> None:
    """Raise ValueError unless `range_db` is (low, high) with low <= high <= 0."""
    if not range_db[0] <= range_db[1] <= 0.0:
        raise ValueError(f"{name} must be (low, high) with low <= high <= 0, got {range_db}")


def frame_energy_db(
    audio: torch.Tensor, lengths: torch.Tensor, frame: int = EDGE_FRAME
) -> torch.Tensor:
    """Mean power of each `frame`-sample frame in dB: (B, S) zero-padded waveforms and (B,)
    lengths -> (B, S // frame); frames not wholly inside their utterance are -inf."""
    batch = audio.shape[0]
    frames = audio.shape[1] // frame
    power = audio[:, : frames * frame].reshape(batch, frames, frame).square().mean(2)
    energy = 10 * torch.log10(power + 1e-12)  # (B, N) dB
    return energy.masked_fill(make_pad_mask(lengths // frame, frames), -math.inf)


def edge_span(
    audio: torch.Tensor,
    lengths: torch.Tensor,
    start_db: torch.Tensor,
    end_db: torch.Tensor,
    frame: int = EDGE_FRAME,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each utterance's energy first and last comes within `start_db` / `end_db` of its
    loudest frame (whole frames of `frame` samples inside its length only).

    Args:
        audio: (B, S) zero-padded waveforms, at least one frame wide; lengths: (B,) samples.
        start_db, end_db: (B,) levels relative to the loudest frame, <= 0.

    Returns:
        (B,) first frame and (B,) last frame + 1; rows with no whole frame give 0 and the
        batch's frame count (callers leave them alone).
    """
    energy = frame_energy_db(audio, lengths, frame)  # (B, N) dB
    frames = energy.shape[1]
    peak = energy.amax(1, keepdim=True)  # (B, 1)
    # argmax of a bool row is its first True (every row has one: its loudest frame).
    first = (energy >= peak + start_db[:, None]).int().argmax(1)  # (B,)
    last = frames - (energy >= peak + end_db[:, None]).flip(1).int().argmax(1)  # (B,)
    return first, last


def place_spans(
    audio: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    count: torch.Tensor,
    new_lengths: torch.Tensor,
) -> torch.Tensor:
    """Copy a span of each row into a zero batch as wide as the longest new length.

    All bounds come to the host in one transfer: slicing by tensor elements made a GPU wait
    once per bound and row (profiled on an H200: 266 waits per recipe step from this and the
    old copies, benchmarks/README.md).

    Args:
        audio: (B, S) waveforms.
        source: (B,) first sample of each row's span; count: (B,) its samples, within S.
        target: (B,) where the span starts in the output.
        new_lengths: (B,) each output row's length, at least target + count.

    Returns:
        (B, max(new_lengths)) zeros but for row i's span at target[i].
    """
    bounds = torch.stack([source, target, count, new_lengths], 1).tolist()  # (B, 4) ints
    placed = audio.new_zeros(audio.shape[0], max(row[3] for row in bounds))
    for row, (first, at, samples, _) in enumerate(bounds):
        placed[row, at : at + samples] = audio[row, first : first + samples]
    return placed


def cut_edges(
    audio: torch.Tensor, lengths: torch.Tensor, range_db: tuple[float, float], probability: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a share of the utterances into their first and last sounds.

    A chosen utterance keeps the frames from the first to the last whose 10 ms energy comes
    within D dB of its loudest frame, D drawn uniformly from `range_db` for each end: the way
    some corpora trim their recordings (FSDD's unseen test speaker, recipes/fsdd/README.md).

    Args:
        audio: (B, S) zero-padded waveforms; lengths: (B,) valid samples.
        range_db: (low, high), both <= 0.
        probability: the share of utterances cut.

    Returns:
        (B, S') waveforms, each cut utterance moved to start at sample 0, and (B,) lengths;
        whole frames are cut, and an utterance keeps at least its loudest frame. Utterances
        shorter than a frame are left alone. The transcript is not cut: a tight cut can leave
        an utterance too short for it (CTC-infeasible, then skipped by the training step) or
        without a sound it names, which is the point up to a limit (`range_db`).

    Raises:
        ValueError: `range_db` is not (low, high) with low <= high <= 0.
    """
    check_range_db(range_db)
    batch = audio.shape[0]
    if audio.shape[1] < EDGE_FRAME:  # no utterance has a whole frame
        return audio, lengths
    low, high = range_db
    start_db, end_db = low + (high - low) * torch.rand(2, batch, device=audio.device)
    first, last = edge_span(audio, lengths, start_db, end_db)
    chosen = (torch.rand(batch, device=audio.device) < probability) & (lengths >= EDGE_FRAME)
    start = torch.where(chosen, first * EDGE_FRAME, 0)
    new_lengths = torch.where(chosen, (last - first) * EDGE_FRAME, lengths)
    return place_spans(audio, start, torch.zeros_like(start), new_lengths, new_lengths), new_lengths


def pad_with_silence(
    audio: torch.Tensor, lengths: torch.Tensor, most: int, probability: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put 0 to `most` samples of zeros before and after a share of the utterances.

    Args:
        audio: (B, S) zero-padded waveforms; lengths: (B,) valid samples.
        most: the longest silence at each end, samples.
        probability: the share of utterances padded.

    Returns:
        (B, S') waveforms and (B,) lengths, each utterance shifted by its leading silence.
    """
    batch = audio.shape[0]
    chosen = torch.rand(batch, device=audio.device) < probability  # (B,)
    before, after = torch.randint(0, most + 1, (2, batch), device=audio.device) * chosen
    return place_silence(audio, lengths, before, after)


def place_silence(
    audio: torch.Tensor, lengths: torch.Tensor, before: torch.Tensor, after: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put `before` and `after` samples of zeros around each utterance (amounts drawn
    elsewhere: by `pad_with_silence`, or by `asr.data.DurationBatchSampler` before batching).

    Args:
        audio: (B, S) zero-padded waveforms; lengths: (B,) valid samples.
        before, after: (B,) samples of silence at each end.

    Returns:
        (B, S') waveforms and (B,) lengths, each utterance shifted by its leading silence.
    """
    new_lengths = lengths + before + after
    return place_spans(audio, torch.zeros_like(before), before, lengths, new_lengths), new_lengths


def add_noise(
    audio: torch.Tensor, lengths: torch.Tensor, power: torch.Tensor, snr_db: tuple[float, float]
) -> torch.Tensor:
    """Add coloured Gaussian noise, white to brown, to half of the utterances.

    Args:
        audio: (B, S) zero-padded waveforms; lengths: (B,) valid samples.
        power: (B,) mean square of each utterance's speech, the SNR's reference.
        snr_db: (low, high): each noisy utterance's SNR is drawn uniformly from it.

    Returns:
        (B, S) waveforms, noise added within each chosen utterance's valid samples.
    """
    batch, samples = audio.shape
    low, high = snr_db
    snr = low + (high - low) * torch.rand(batch, device=audio.device)  # (B,) dB
    chosen = torch.rand(batch, device=audio.device) < 0.5
    # Noise is drawn for the chosen rows only (N of them): half the FFT work.
    rows = chosen.nonzero().squeeze(1)  # (N,)
    if len(rows) == 0:  # an FFT of no rows fails
        return audio
    # Power spectrum slope from 0 (white) to -2 (brown): amplitude ~ f^(-slope / 2), flat
    # below NOISE_LOWEST_HZ and nothing at 0 Hz, so the power (which the SNR is measured
    # on) is audible noise, not a slow drift, whatever the batch's length.
    slope = 2.0 * torch.rand(len(rows), 1, device=audio.device)  # (N, 1)
    # Coloured at a power-of-two length, then cut to the batch's: an FFT of the batch's own
    # length, often with a large prime factor (57,313 = 37 x 1,549), took 3.7x as long.
    size = 1 << (samples - 1).bit_length()
    white = torch.fft.rfft(torch.randn(len(rows), size, device=audio.device))  # (N, K)
    hz = torch.arange(white.shape[1], device=audio.device) * (SAMPLE_RATE / size)  # (K,)
    shape = hz.clamp_min(NOISE_LOWEST_HZ) ** (-slope / 2)  # (N, K)
    shape[:, 0] = 0.0
    noise = torch.fft.irfft(white * shape, n=size)[:, :samples]  # (N, S)
    noise = noise * valid_mask(lengths[rows], samples)  # none beyond each utterance
    noise_power = noise.square().sum(1) / lengths[rows].clamp_min(1)  # (N,)
    gain = (power[rows] / 10 ** (snr[rows] / 10) / noise_power.clamp_min(1e-12)).sqrt()
    return audio.index_add(0, rows, noise * gain[:, None])


@dataclass(frozen=True)
class WaveformAugment:
    """The training waveform augmentations, in order: edge cuts, silence, noise.

    `asr fit` runs them in the DataLoader's worker processes (`asr.data.collate` with
    `augment`), so that a GPU's host is not busy with their many small operations (38 ms of a
    71 ms recipe step on an H200, benchmarks/README.md); `CTCModule` runs them itself on
    batches that come without them. Its fields are `CTCModule`'s arguments of the same
    names (`from_settings`), which `SpeechDataModule` takes too.

    Attributes:
        edge_cut_db: (low, high) dB for `cut_edges`, or None: no cuts.
        edge_cut_probability: the share of utterances cut.
        pad_silence: seconds of silence at most at each end, drawn here for batches that
            carry no amounts of their own (0: none).
        pad_probability: the share of utterances padded.
        noise_snr_db: (low, high) SNR for `add_noise`, or None: no noise.
    """

    edge_cut_db: tuple[float, float] | None = None
    edge_cut_probability: float = 0.5
    pad_silence: float = 0.0
    pad_probability: float = 0.5
    noise_snr_db: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("edge_cut_db", "noise_snr_db"):  # a config may give lists
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_settings(cls, settings: Mapping) -> "WaveformAugment":
        """The augmentations of a module's or data module's hyperparameters."""
        return cls(**{field.name: settings[field.name] for field in fields(cls)})

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        cuts, noise = self.edge_cut_db is not None, self.noise_snr_db is not None
        return self.pad_silence > 0 or cuts or noise

    def __call__(
        self,
        audio: torch.Tensor,
        lengths: torch.Tensor,
        silence: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) zero-padded waveforms, (B,) lengths, optional (2, B) samples of silence
        before and after each (drawn by the batch sampler) -> (B, S') waveforms, (B,) lengths.
        """
        if self.edge_cut_db is not None:
            audio, lengths = cut_edges(audio, lengths, self.edge_cut_db, self.edge_cut_probability)
        if self.noise_snr_db is not None:  # the speech's power before any silence: the SNR's
            power = audio.square().sum(1) / lengths.clamp_min(1)  # reference (B,)
        if silence is not None:
            audio, lengths = place_silence(audio, lengths, silence[0], silence[1])
        elif self.pad_silence > 0:
            most = int(self.pad_silence * SAMPLE_RATE)  # samples
            audio, lengths = pad_with_silence(audio, lengths, most, self.pad_probability)
        if self.noise_snr_db is not None:
            audio = add_noise(audio, lengths, power, self.noise_snr_db)
        return audio, lengths
