"""Reading audio: any soundfile-readable format, any rate, any channel count -> 16 kHz mono."""

import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16_000  # Hz; every model works at this rate
MAX_AUDIO_SECONDS = 3 * 3600  # longest file read; 3 h of 16 kHz float32 mono is 0.7 GB
READ_BLOCK_SECONDS = 60  # files are read (and downmixed) this much at a time
CHUNK_SECONDS = 30.0  # longest stretch the model sees at once (bounds activation memory)
CUT_SEARCH_SECONDS = 5.0  # a chunk ends at the quietest frame of its last few seconds
CUT_FRAME_SECONDS = 0.025  # frame over which the energy for choosing a cut is summed
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".sph")


class AudioError(Exception):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# libsndfile logs "data : 66184 (should be 29956)" for a file shorter than its header says
# (WAV; SSND: AIFF; Data Size: AU), and reads the samples that are there without complaint.
SIZE_MISMATCH = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+) \(should be (\d+)\)", re.M)
# Bytes. A writer that streamed to a pipe leaves a size it could not know: 0 or 2**32 - 1
# (ffmpeg), 0x7ffff000 (SoX's WAV), 0x7f000008 (SoX's AIFF).
UNKNOWN_SIZE = 0x7F000000


def cut_short(log: str) -> str | None:
    """Why a file is shorter than its header says (from libsndfile's `extra_info` log), or
    None. A size of 0 or from UNKNOWN_SIZE on is a streaming writer's "unknown" instead."""
    for declared, present in SIZE_MISMATCH.findall(log):
        if int(present) < int(declared) < UNKNOWN_SIZE:
            return (
                f"the file is cut short: its header counts {declared} bytes of samples, "
                f"{present} are there (an interrupted copy or recording?)"
            )
    return None


# soundfile's errors on opening a file; TypeError is its answer to a ".raw" file (no header
# to take the rate and encoding from).
OPEN_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, TypeError)


def unreadable_reason(path: str | Path, err: Exception) -> str:
    """Why `path` could not be opened; libsndfile calls a missing file a "System error"."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return "cannot read audio (no such file)"
    except OSError as stat_err:  # e.g. a folder on the way that may not be searched
        return f"cannot read audio ({stat_err.strerror})"
    if Path(path).is_dir():
        return "cannot read audio (a folder: asr.audio.find_audio_files lists the audio in it)"
    if size == 0:
        return "cannot read audio (the file is empty: 0 bytes)"
    if isinstance(err, TypeError) and Path(path).suffix.lower() == ".raw":
        return (
            "cannot read audio (headerless raw samples: rate and encoding unknown; convert to WAV)"
        )
    return f"cannot read audio ({err})"


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """The file's header (rate, frames, duration) without reading its samples.

    Raises:
        AudioError: the file is missing or not audio soundfile can read.
    """
    try:
        return sf.info(str(path))
    except OPEN_ERRORS as err:
        raise AudioError(path, unreadable_reason(path, err)) from None


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Band-limited resampling of the last dimension (torchaudio's windowed sinc)."""
    if orig_rate == new_rate:
        return audio
    return AF.resample(audio, orig_freq=orig_rate, new_freq=new_rate)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as float32 mono at `sample_rate`.

    The file is read in blocks of READ_BLOCK_SECONDS and each block is downmixed (channels
    averaged) at once, so a long multi-channel file never sits in memory with all its
    channels; the mono signal is then resampled with torchaudio. Files longer than
    MAX_AUDIO_SECONDS are refused before any sample is read.

    Returns:
        (num_samples,) float32 array (integer formats give [-1, 1]; float files may exceed it).

    Raises:
        AudioError: the file is missing, unreadable, empty, cut short, too long, or holds
            NaN/inf samples.
    """
    try:
        f = sf.SoundFile(str(path))
    except OPEN_ERRORS as err:
        raise AudioError(path, unreadable_reason(path, err)) from None
    with f:
        rate = f.samplerate
        if reason := cut_short(f.extra_info):
            raise AudioError(path, reason)
        if f.frames > MAX_AUDIO_SECONDS * rate:
            raise AudioError(
                path,
                f"{f.frames / rate:.0f} s of audio is longer than the {MAX_AUDIO_SECONDS} s "
                "limit (asr.audio.MAX_AUDIO_SECONDS); split the file first",
            )
        blocks = []
        try:
            if f.seekable():
                # A headerless file libsndfile recognised (raw 8 kHz mu-law, say) is left
                # past the bytes it examined; sf.read seeks back to the first sample too.
                f.seek(0)
            # `f.read`, not `f.blocks`: when fewer samples are there than the header counts,
            # `blocks` hands back the unfilled end of its buffer, arbitrary memory, as audio.
            while len(block := f.read(READ_BLOCK_SECONDS * rate, "float32", always_2d=True)):
                blocks.append(block.mean(axis=1))
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(path, unreadable_reason(path, err)) from None
    data = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if data.shape[0] == 0:
        raise AudioError(path, "the file holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "the audio holds NaN or infinite samples")
    return resample(torch.from_numpy(data), rate, sample_rate).numpy()


def chunk_starts(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[int]:
    """Where to cut long audio into pieces of at most CHUNK_SECONDS for the model.

    A BiLSTM's memory grows with the input's length, so long audio is decoded piece by
    piece and the texts are joined. Each piece ends at the quietest CUT_FRAME_SECONDS frame
    in its last CUT_SEARCH_SECONDS, which is most often a pause between words, so few words
    are split; no overlap is needed because pieces are cut in pauses, not at fixed times.

    Args:
        audio: (num_samples,) mono audio.

    Returns:
        Sample offsets of the pieces, starting with 0; piece i is audio[starts[i]:starts[i+1]].
    """
    longest = int(CHUNK_SECONDS * sample_rate)
    search = int(CUT_SEARCH_SECONDS * sample_rate)
    frame = max(1, int(CUT_FRAME_SECONDS * sample_rate))
    starts = [0]
    while len(audio) - starts[-1] > longest:
        low = starts[-1] + longest - search
        n = search // frame
        energy = np.square(audio[low : low + n * frame]).reshape(n, frame).sum(axis=1)
        starts.append(low + int(np.argmin(energy)) * frame + frame // 2)
    return starts


def find_audio_files(paths: list[str | Path]) -> list[Path]:
    """Expand directories (recursively, sorted) into audio files; files are kept as given."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            found.append(path)
    return found
