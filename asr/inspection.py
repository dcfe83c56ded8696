"""`asr inspect`: everything the model computes for one recording, on one time axis.

Waveform -> log-mel features -> conv subsampling -> LSTM (recomputed by `asr.gates.run_lstm`
so its gates are visible) -> CTC posteriors -> greedy text -> forced-alignment word times.
`inspect_audio` returns the numbers, `to_json` makes them JSON, `asr.plots.plot_inspection`
draws them. (Named `inspection`, not `inspect`, so it never shadows the standard library.)
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.alignment import Word
from asr.audio import SAMPLE_RATE, load_audio
from asr.features import HOP_LENGTH
from asr.gates import DIRECTION_NAMES, GATE_NAMES, run_lstm
from asr.segment import sound_frames
from asr.transcribe import Recognizer, snap_words

FEATURE_SHIFT = HOP_LENGTH / SAMPLE_RATE  # seconds per feature frame (10 ms)
MATCH_TOLERANCE = 1e-3  # max |log-prob| difference between the recomputed and the real model
JSON_DECIMALS = 4


@dataclass
class Inspection:
    """One recording as the model sees it.

    Attributes:
        waveform: (S,) float32 samples at SAMPLE_RATE.
        features: (T_in, n_mels) the normalised log-mel features the model reads.
        log_probs: (T, V) CTC log-probabilities, T = the model's output frames.
        gates: (L, D, 3, T) input, forget and output gate activations (order GATE_NAMES)
            per LSTM layer and direction, averaged over the layer's units.
        text: the greedy transcript.
        words: its words with start/end seconds from forced alignment.
        frame_shift: seconds per output frame (T frames cover T * frame_shift seconds).
        vocabulary: token strings, index = token id (0 is the CTC blank).
    """

    waveform: np.ndarray
    features: np.ndarray
    log_probs: np.ndarray
    gates: np.ndarray
    text: str
    words: list[Word]
    frame_shift: float
    vocabulary: list[str]

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.waveform) / SAMPLE_RATE


@torch.inference_mode()
def inspect_audio(recognizer: Recognizer, audio: str | Path | np.ndarray) -> Inspection:
    """Run the model on one recording and keep every intermediate worth looking at.

    Args:
        recognizer: a loaded model (`asr.load_model`).
        audio: a file path, or a (S,) float32 16 kHz mono array.

    Raises:
        asr.audio.AudioError: the file cannot be read.
    """
    waveform = load_audio(audio) if not isinstance(audio, np.ndarray) else audio
    waveform = waveform.astype(np.float32, copy=False)
    samples = torch.from_numpy(waveform)[None]  # (1, S)
    feats, frame_lengths = recognizer.features(samples, torch.tensor([samples.shape[1]]))
    model = recognizer.model
    x, lengths = feats, frame_lengths
    if model.subsample is not None:
        x, lengths = model.subsample(x, lengths)  # (1, T, C)
    trace = run_lstm(model.lstm, x[0, : int(lengths[0])])
    log_probs = model.output(trace.output).log_softmax(-1)  # (T, V)
    # The recomputed network must be the one that transcribes; a mismatch would make the
    # gate panels describe some other model.
    reference, _ = model(feats, frame_lengths)
    if not torch.allclose(log_probs, reference[0], atol=MATCH_TOLERANCE):
        raise RuntimeError("recomputed LSTM disagrees with the model's own forward pass")
    # Word times as `Recognizer.transcribe` gives them for an input it decodes whole.
    sound = sound_frames(waveform)
    sounding = [recognizer.sounding(sound, 0, int(lengths[0]))]
    result = recognizer.decode(log_probs[None], lengths, recognizer.default_options, sounding)[0]
    words = snap_words(result.words, sound, len(waveform) / SAMPLE_RATE)
    return Inspection(
        waveform=waveform,
        features=feats[0, : int(frame_lengths[0])].numpy(),
        log_probs=log_probs.numpy(),
        gates=trace.gates.mean(-1).numpy(),  # (L, D, 3, T): mean over units
        text=result.text,
        words=words,
        frame_shift=recognizer.frame_shift,
        vocabulary=list(recognizer.tokenizer.vocabulary),
    )


def _rounded(array: np.ndarray) -> list:
    return np.round(array.astype(np.float64), JSON_DECIMALS).tolist()


def to_json(inspection: Inspection) -> dict:
    """The inspection as plain JSON types (arrays as nested lists, rounded).

    Keys: duration, sample_rate, text, words, frame_shift, feature_shift, num_frames,
    vocabulary, features (T_in x n_mels), posteriors (T x V probabilities) and gates: a list
    of {layer, direction, input, forget, output}, each gate a T-long list of unit means.
    """
    layers, directions = inspection.gates.shape[:2]
    return {
        "duration": round(inspection.duration, 3),
        "sample_rate": SAMPLE_RATE,
        "text": inspection.text,
        "words": [
            {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
            for w in inspection.words
        ],
        "frame_shift": inspection.frame_shift,
        "feature_shift": FEATURE_SHIFT,
        "num_frames": int(inspection.log_probs.shape[0]),
        "vocabulary": inspection.vocabulary,
        "features": _rounded(inspection.features),
        "posteriors": _rounded(np.exp(inspection.log_probs)),
        "gates": [
            {
                "layer": layer,
                "direction": DIRECTION_NAMES[direction],
                **{
                    name: _rounded(inspection.gates[layer, direction, g])
                    for g, name in enumerate(GATE_NAMES)
                },
            }
            for layer in range(layers)
            for direction in range(directions)
        ],
    }
