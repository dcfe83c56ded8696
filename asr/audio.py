"""Reading audio: any soundfile-readable format, any rate, any channel count -> 16 kHz mono."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16_000  # Hz; every model works at this rate
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".sph")


class AudioError(Exception):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Band-limited resampling of the last dimension (torchaudio's windowed sinc)."""
    if orig_rate == new_rate:
        return audio
    return AF.resample(audio, orig_freq=orig_rate, new_freq=new_rate)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as float32 mono at `sample_rate`.

    Channels are averaged; the signal is resampled with torchaudio.

    Returns:
        (num_samples,) float32 array in [-1, 1].

    Raises:
        AudioError: the file is missing, unreadable, empty, or holds NaN/inf samples.
    """
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(path, f"cannot read audio ({err})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "the file holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "the audio holds NaN or infinite samples")
    mono = torch.from_numpy(data.mean(axis=1))
    return resample(mono, rate, sample_rate).numpy()


def find_audio_files(paths: list[str | Path]) -> list[Path]:
    """Expand directories (recursively, sorted) into audio files; files are kept as given."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            found.append(path)
    return found
