"""Feature extraction: its share of training and transcription, and other implementations.

Usage:
    python benchmarks/bench_features.py [--model M.safetensors] [--repeats 7]
    python benchmarks/bench_features.py --repeats 2 --seconds 0.5 --batch 4 --utterances 8  # smoke

What is measured:

1. Share of a training step: `asr.features.LogMel` on a training batch (bundled model's
   shape, --batch utterances of about --seconds, as bucketed) against a full training step
   on the same batch (which computes those features itself), interleaved. Goal <= 5 %.
2. Share of transcription: LogMel on the batches `Recognizer.transcribe` forms (sorted by
   length, --transcribe-batch per batch) against `transcribe` itself (features, model, greedy
   decoding, forced alignment) on --utterances in-memory clips of 1-2 s. Goal <= 5 %.
3. Throughput, one thread (torch and numpy/BLAS limited to 1), on the same --clips clips:
   LogMel per utterance, LogMel on one padded batch, librosa.feature.melspectrogram
   (same STFT and mel settings, then log) and torchaudio.compliance.kaldi.fbank (80 bins,
   Kaldi's defaults); reported as x real time and relative to LogMel. LogMel without normalisation
   is also checked against librosa (max abs difference of the log-mels).

Parts 1 and 2 run on torch's default threads, as training and `asr transcribe` do. Without
--model, a random model of the bundled shape is used (see `common.random_model_file`).
"""

import argparse
import tempfile
from pathlib import Path

import librosa
import numpy as np
import torch
import torchaudio
from common import (
    SEED,
    Trainer,
    environment,
    interleave,
    median,
    model_to_time,
    speechlike,
    spread,
    synthetic_batch,
)
from threadpoolctl import threadpool_limits

import asr
from asr.audio import SAMPLE_RATE
from asr.features import (
    HOP_LENGTH,
    LOG_FLOOR,
    N_FFT,
    N_MELS,
    LogMel,
)

GOAL_SHARE = 0.05


def pad(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, S) batch and (B,) lengths of 1-D arrays."""
    lengths = torch.tensor([len(c) for c in clips])
    batch = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        batch[i, : len(c)] = torch.from_numpy(c)
    return batch, lengths


def librosa_log_mel(clip: np.ndarray) -> np.ndarray:
    """librosa's mel spectrogram with LogMel's STFT and mel settings, then the same log."""
    mel = librosa.feature.melspectrogram(
        y=clip,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        center=True,
        pad_mode="constant",
        power=2.0,
    )  # (N_MELS, T)
    return np.log(np.maximum(mel, LOG_FLOOR))


def training_share(args: argparse.Namespace) -> None:
    """Part 1: LogMel vs a full training step on the same batch."""
    trainer = Trainer("cpu", "32")
    batch = synthetic_batch(args.batch, args.seconds)
    features = trainer.module.features

    def feats() -> None:
        with torch.no_grad():
            features(batch["audio"], batch["audio_lengths"])

    times = interleave({"features": feats, "step": lambda: trainer.step(batch)}, args.repeats)
    share = median(times["features"]) / median(times["step"])
    print(f"\n1. training step, batch {args.batch} x {args.seconds:g} s, median of {args.repeats}")
    print(f"  LogMel            {spread(times['features'])}")
    print(f"  training step     {spread(times['step'])}")
    print(f"  features' share of a training step: {share:.1%}  goal <= {GOAL_SHARE:.0%}")


def transcription_share(args: argparse.Namespace, model: Path) -> None:
    """Part 2: LogMel vs `Recognizer.transcribe` on in-memory clips."""
    recognizer = asr.load_model(model)
    rng = np.random.default_rng(SEED)
    clips = [speechlike(rng.uniform(1.0, 2.0), seed=i) for i in range(args.utterances)]
    ordered = sorted(clips, key=len)
    size = args.transcribe_batch
    batches = [pad(ordered[i : i + size]) for i in range(0, len(ordered), size)]

    def feats() -> None:
        with torch.inference_mode():
            for audio, lengths in batches:
                recognizer.features(audio, lengths)

    def transcribe() -> None:
        recognizer.transcribe(clips, batch_size=size)

    times = interleave({"features": feats, "transcribe": transcribe}, args.repeats)
    share = median(times["features"]) / median(times["transcribe"])
    seconds = sum(len(c) for c in clips) / SAMPLE_RATE
    print(
        f"\n2. transcription of {args.utterances} clips ({seconds:.0f} s of audio, 1-2 s each), "
        f"batch {size}, median of {args.repeats}; model {model}"
    )
    print(f"  LogMel            {spread(times['features'])}")
    print(f"  transcribe        {spread(times['transcribe'])}")
    print(f"  features' share of transcription: {share:.1%}  goal <= {GOAL_SHARE:.0%}")


def throughput(args: argparse.Namespace) -> None:
    """Part 3: LogMel vs librosa vs Kaldi fbank, one thread."""
    torch.set_num_threads(1)
    clips = [speechlike(args.clip_seconds, seed=i) for i in range(args.clips)]
    tensors = [torch.from_numpy(c) for c in clips]
    batch, lengths = pad(clips)
    one = [(t[None], torch.tensor([len(t)])) for t in tensors]
    logmel = LogMel()

    def ours() -> None:
        with torch.inference_mode():
            for audio, n in one:
                logmel(audio, n)

    def ours_batched() -> None:
        with torch.inference_mode():
            logmel(batch, lengths)

    def rosa() -> None:
        for c in clips:
            librosa_log_mel(c)

    def kaldi() -> None:
        with torch.inference_mode():
            for t in tensors:
                torchaudio.compliance.kaldi.fbank(
                    t[None], num_mel_bins=N_MELS, sample_frequency=SAMPLE_RATE
                )

    variants = {
        "asr LogMel, per utterance": ours,
        f"asr LogMel, one batch of {args.clips}": ours_batched,
        "librosa melspectrogram + log": rosa,
        "torchaudio kaldi.fbank": kaldi,
    }
    with threadpool_limits(1):
        times = interleave(variants, args.repeats)
    audio_seconds = args.clips * args.clip_seconds
    base = median(times["asr LogMel, per utterance"])
    print(
        f"\n3. throughput, 1 thread, {args.clips} clips x {args.clip_seconds:g} s, "
        f"median of {args.repeats}"
    )
    print(f"  {'':36} {'time':>28} {'x real time':>12} {'vs LogMel':>10}")
    for name, values in times.items():
        t = median(values)
        print(f"  {name:36} {spread(values):>28} {audio_seconds / t:12.0f} {base / t:9.2f}x")

    with torch.inference_mode():
        ours_raw, _ = LogMel("none")(tensors[0][None], torch.tensor([len(tensors[0])]))
    diff = np.abs(ours_raw[0].numpy() - librosa_log_mel(clips[0]).T).max()
    print(f"  check: LogMel('none') vs librosa log-mel, max abs difference {diff:.2e}")


def main() -> None:
    """Parse arguments and run the three parts."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model file (default: random weights)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=44, help="1. training batch (utterances)")
    parser.add_argument("--seconds", type=float, default=1.8, help="1. longest utterance, s")
    parser.add_argument("--utterances", type=int, default=128, help="2. clips to transcribe")
    parser.add_argument("--transcribe-batch", type=int, default=16, help="2. batch size")
    parser.add_argument("--clips", type=int, default=16, help="3. clips")
    parser.add_argument("--clip-seconds", type=float, default=2.0, help="3. seconds per clip")
    args = parser.parse_args()
    print(f"bench_features: {environment()}")
    training_share(args)
    with tempfile.TemporaryDirectory() as tmp:
        model = model_to_time(args.model, Path(tmp))
        transcription_share(args, model)
    throughput(args)


if __name__ == "__main__":
    main()
