"""Transcription: the Python API behind `asr.load_model(...).transcribe(...)`."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.audio import AudioError, load_audio
from asr.decoding import greedy_texts
from asr.features import LogMel
from asr.model import AcousticModel
from asr.model_file import load_model_file
from asr.text import Tokenizer

DEFAULT_MODEL = Path(__file__).parent / "assets" / "commands.safetensors"
SORT_WINDOW = 8  # batches read ahead and sorted by length, so batches carry little padding

AudioInput = str | Path | np.ndarray


@dataclass
class Transcription:
    """The result for one input.

    Attributes:
        text: the recognised text ("" when `error` is set).
        path: the input's path as given, or None for an array.
        error: why this input could not be transcribed, or None.
    """

    text: str
    path: str | None = None
    error: str | None = None


class Recognizer:
    """A loaded model, ready to transcribe audio files or arrays."""

    def __init__(
        self, model: AcousticModel, tokenizer: Tokenizer, normalization: str, header: dict
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.features = LogMel(normalization)
        self.header = header

    @torch.inference_mode()
    def log_probs(self, audio: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the acoustic model on 16 kHz mono arrays.

        Returns:
            log_probs: (B, T, V) CTC log-probabilities; lengths: (B,) valid frames.
        """
        lengths = torch.tensor([len(a) for a in audio], dtype=torch.long)
        batch = torch.zeros(len(audio), int(lengths.max()))
        for i, a in enumerate(audio):
            batch[i, : len(a)] = torch.from_numpy(a)
        feats, frame_lengths = self.features(batch, lengths)
        return self.model(feats, frame_lengths)

    def transcribe(
        self, inputs: AudioInput | Sequence[AudioInput], batch_size: int = 16
    ) -> list[Transcription]:
        """Transcribe files (any format and rate soundfile reads) or 16 kHz mono arrays.

        A file that cannot be read gives a result with `.error` set (naming the file and
        the reason) and empty text; the other inputs are still transcribed.

        Returns:
            One `Transcription` per input, in input order.
        """
        if isinstance(inputs, str | Path | np.ndarray):
            inputs = [inputs]
        results: list[Transcription] = []
        window = batch_size * SORT_WINDOW
        for start in range(0, len(inputs), window):
            results += self._transcribe_window(inputs[start : start + window], batch_size)
        return results

    def _transcribe_window(
        self, inputs: Sequence[AudioInput], batch_size: int
    ) -> list[Transcription]:
        results = [Transcription("", None if isinstance(x, np.ndarray) else str(x)) for x in inputs]
        audio: dict[int, np.ndarray] = {}
        for i, item in enumerate(inputs):
            try:
                audio[i] = _read(item)
            except AudioError as err:
                results[i].error = str(err)
        order = sorted(audio, key=lambda i: len(audio[i]))
        for batch in _chunks(order, batch_size):
            log_probs, lengths = self.log_probs([audio[i] for i in batch])
            for i, text in zip(
                batch, greedy_texts(log_probs, lengths, self.tokenizer), strict=True
            ):
                results[i].text = text
        return results


def _read(item: AudioInput) -> np.ndarray:
    if not isinstance(item, np.ndarray):
        return load_audio(item)
    if item.ndim != 1 or item.size == 0:
        raise AudioError("<array>", f"expected a non-empty 1-D array, got shape {item.shape}")
    if not np.isfinite(item).all():
        raise AudioError("<array>", "the audio holds NaN or infinite samples")
    return item.astype(np.float32, copy=False)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_model(path: str | Path | None = None) -> Recognizer:
    """Load a model file; with no path, the model bundled with the package.

    Raises:
        FileNotFoundError: no path given and no bundled model is installed.
        asr.model_file.ModelFileError: the file is not a valid model file.
    """
    if path is None:
        if not DEFAULT_MODEL.exists():
            raise FileNotFoundError(
                f"no bundled model at {DEFAULT_MODEL}: pass the path of a model file"
            )
        path = DEFAULT_MODEL
    model, tokenizer, header = load_model_file(path)
    return Recognizer(model, tokenizer, header["features"]["normalization"], header)
