"""Training speed: achieved FLOP/s, audio throughput, batch padding and data loading.

Usage:
    python benchmarks/bench_training.py                     # all four parts, recipe sizes
    python benchmarks/bench_training.py --parts flops --repeats 3 --seconds 1.0 --batch 8
    python benchmarks/bench_training.py --device cuda --precision bf16-mixed   # on a GPU

What is measured (model: the bundled model's shape, recipes/commands/config.yaml):

(a) flops: achieved FLOP/s of a full training step (asr.features.LogMel + SpecAugment +
    model forward and backward + CTC loss + the NaN-gradient check + gradient clipping +
    AdamW step, i.e. `CTCModule._shared_step` and what Lightning runs around it) divided by
    the FLOP/s of a large matmul measured in the same run, on the same threads and dtype.
    FLOPs are counted analytically on the executed (padded) frames, model layers only:
    conv layers 2*C_out*C_in*K per output frame, LSTM 2*4*H*(I+H) per step and direction,
    output linear 2*in*out per frame; backward = 2x forward (1x for the first conv, whose
    input needs no gradient). Features, CTC and the optimizer count as overhead. For
    reference the same ratio for a bare `nn.LSTM` (the model's LSTM stack alone) and for the
    model's forward + backward on precomputed features. Goal: full step >= 0.6.
(b) audio seconds trained per wall-second: real (unpadded, speed-perturbed) audio in the
    batches divided by the step time, on the synthetic batch of (a) and on real data in (d).
(c) padding: padded frames / real frames of `asr.data.DurationBatchSampler` on a manifest's
    durations with the recipe's speed factors and max_frames, averaged over epochs (default
    manifests: data/commands/train.jsonl + data/fsdd/train.jsonl when present, otherwise
    synthetic durations). Goal <= 1.10.
(d) loading: training steps fed by the real DataLoader (SpeechDataset + DurationBatchSampler
    + collate, --num-workers workers, as `asr.datamodule.SpeechDataModule` builds it without
    waveform augmentation, which `asr fit`'s workers also apply since stop 24) against
    the same batches replayed from memory. Blocks of --block steps alternate (real, then the
    same batches from memory), --rounds times; the ratio is the median over rounds of
    (memory block time / real block time). Goal >= 0.95. The workers' prefetched batches
    (num_workers x 2) can hide that many batches of a slow loader per block, so keep --block
    well above that. Also reported: time spent waiting for a batch, and the loader's own rate.

Every ratio compares variants run interleaved in one process (medians): the machine may be
noisy. Under CPU oversubscription set OMP_WAIT_POLICY=PASSIVE (printed in the header).
"""

import argparse
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from common import (
    FRAMES_PER_SECOND,
    RECIPE_MAX_FRAMES,
    RECIPE_SPEED_FACTORS,
    RECIPE_TRAIN_MANIFESTS,
    SEED,
    Trainer,
    environment,
    existing,
    interleave,
    matmul,
    median,
    spread,
    synthetic_batch,
    write_wavs,
)
from torch import nn
from torch.utils.data import DataLoader

from asr.audio import SAMPLE_RATE
from asr.data import DurationBatchSampler, SpeechDataset, collate, feature_frames
from asr.features import num_frames
from asr.manifest import read_manifest, write_manifest
from asr.model import ModelConfig
from asr.text import Tokenizer

PARTS = ("flops", "padding", "loading")
GOAL_FLOPS_RATIO = 0.6
GOAL_PADDING = 1.10
GOAL_LOADING = 0.95
SYNTHETIC_UTTERANCES = 13_350  # synthetic durations for (c): the recipe's training set size
SYNTHETIC_WAVS = 200  # wav files written for (d) when no manifest exists
PREFETCH_FACTOR = 2  # DataLoader's default; batches in flight per worker


def model_flops(config: ModelConfig, batch: int, frames: int) -> tuple[float, float]:
    """Analytic forward and backward FLOPs of `AcousticModel` on a (batch, frames) input.

    Returns:
        (forward FLOPs, backward FLOPs), counted on every (padded) frame.
    """
    forward = backward = 0.0
    channels_in, t = config.n_mels, frames
    for layer in range(config.subsampling.bit_length() - 1):
        t = (t - 1) // 2 + 1  # kernel 3, stride 2, padding 1
        flops = 2.0 * config.conv_channels * channels_in * 3 * t * batch
        forward += flops
        backward += flops if layer == 0 else 2 * flops  # no gradient for the features
        channels_in = config.conv_channels
    directions = 2 if config.bidirectional else 1
    lstm_input = channels_in
    lstm = lstm_flops(lstm_input, config.hidden_size, config.num_layers, directions, batch, t)
    linear = 2.0 * directions * config.hidden_size * config.vocab_size * t * batch
    return forward + lstm + linear, backward + 2 * (lstm + linear)


def lstm_flops(
    input_size: int, hidden: int, layers: int, directions: int, batch: int, steps: int
) -> float:
    """Forward FLOPs of a stacked (Bi)LSTM: 2 * 4H * (I + H) per step, direction and item."""
    total = 0.0
    for layer in range(layers):
        size = input_size if layer == 0 else directions * hidden
        total += 2.0 * 4 * hidden * (size + hidden) * directions * steps * batch
    return total


def bench_flops(args: argparse.Namespace, trainer: Trainer) -> None:
    """(a) and (b): achieved FLOP/s ratios and audio seconds per second on a synthetic batch."""
    batch_size = args.batch or max(1, args.max_frames // round(args.seconds * FRAMES_PER_SECOND))
    batch = trainer.to_device(synthetic_batch(batch_size, args.seconds))
    config = trainer.module.model.config
    frames = int(num_frames(batch["audio"].shape[1]))
    fwd, bwd = model_flops(config, batch_size, frames)
    out_frames = int(trainer.module.model.output_lengths(torch.tensor(frames)))
    with torch.no_grad():
        feats, feat_lengths = trainer.module.features(batch["audio"], batch["audio_lengths"])
    dirs = 2 if config.bidirectional else 1
    lstm = nn.LSTM(
        config.conv_channels,
        config.hidden_size,
        config.num_layers,
        batch_first=True,
        bidirectional=config.bidirectional,
    ).to(trainer.device)
    lstm_in = torch.randn(
        batch_size, out_frames, config.conv_channels, device=trainer.device, requires_grad=True
    )
    lstm_fwd = lstm_flops(
        config.conv_channels, config.hidden_size, config.num_layers, dirs, batch_size, out_frames
    )
    dtype = torch.bfloat16 if args.precision == "bf16-mixed" else torch.float32
    mm, mm_flops = matmul(args.matmul_size, args.device, dtype)

    def bare_lstm() -> None:
        with trainer.autocast():
            out = lstm(lstm_in)[0]
        out.float().sum().backward()
        lstm.zero_grad(set_to_none=True)
        lstm_in.grad = None

    variants: dict[str, Callable[[], object]] = {
        "matmul": mm,
        "lstm": bare_lstm,
        "model": lambda: trainer.model_step(feats, feat_lengths),
        "step": lambda: trainer.step(batch),
    }

    def features() -> None:
        with torch.no_grad():
            trainer.module.features(batch["audio"], batch["audio_lengths"])

    parts = {"features": features, "optimizer": trainer.optimizer_step}  # after "step": grads
    times = interleave({**variants, **parts}, args.repeats, warmup=1, sync=trainer.sync)
    t = {name: median(v) for name, v in times.items()}
    peak = mm_flops / t["matmul"]
    audio_seconds = float(batch["audio_lengths"].sum()) / SAMPLE_RATE
    print(
        f"\n(a) achieved FLOP/s / matmul FLOP/s; batch {batch_size} x {args.seconds:g} s "
        f"({frames} frames -> {out_frames} after subsampling), {args.precision}, "
        f"median of {args.repeats}"
    )
    rows = [
        (f"matmul {args.matmul_size}^2 {str(dtype)[6:]}", t["matmul"], mm_flops, "reference"),
        ("bare nn.LSTM fwd+bwd (reference)", t["lstm"], 3 * lstm_fwd, ""),
        ("model fwd+bwd on features", t["model"], fwd + bwd, ""),
        ("full training step", t["step"], fwd + bwd, f"goal >= {GOAL_FLOPS_RATIO}"),
    ]
    print(f"  {'':36} {'time':>28} {'GFLOP':>8} {'GFLOP/s':>8} {'ratio':>6}")
    for (name, seconds, flops, note), key in zip(rows, variants, strict=True):
        rate = flops / seconds
        line = (
            f"  {name:36} {spread(times[key]):>28} {flops / 1e9:8.2f} {rate / 1e9:8.1f} "
            f"{rate / peak:6.2f}  {note}"
        )
        print(line.rstrip())
    overhead = 1 - t["model"] / t["step"]
    print(
        f"  step time outside the model's fwd+bwd: {overhead:.0%}; of which LogMel "
        f"{t['features'] / t['step']:.1%}, NaN check + clipping + AdamW "
        f"{t['optimizer'] / t['step']:.1%} (the rest: SpecAugment, CTC, autograd glue)"
    )
    print(
        f"(b) audio trained per wall-second (synthetic batch, {audio_seconds:.1f} s of audio "
        f"per step): {audio_seconds / t['step']:.1f} s/s"
    )


def manifest_durations(paths: list[str]) -> tuple[list[float], str]:
    """Durations of the given manifests, or synthetic ones (log-normal around 1.6 s)."""
    if paths:
        records = [r for p in paths for r in read_manifest(p)]
        return [r["duration"] for r in records], ", ".join(paths)
    rng = random.Random(SEED)
    durations = [
        min(5.0, max(0.3, rng.lognormvariate(math.log(1.6), 0.4)))
        for _ in range(SYNTHETIC_UTTERANCES)
    ]
    return durations, f"{len(durations)} synthetic durations (no manifest found)"


def padding_ratio(
    durations: list[float],
    max_frames: int,
    speed_factors: tuple[float, ...],
    epochs: int,
    shuffle: bool = True,
) -> tuple[float, float, int]:
    """Padded / real frames of DurationBatchSampler batches over `epochs` epochs.

    Args:
        shuffle: as in training (jittered sort); False sorts by exact duration (validation).

    Returns:
        (padded / real frames, mean utterances per batch, batches per epoch).
    """
    sampler = DurationBatchSampler(
        durations, max_frames, shuffle=shuffle, speed_factors=speed_factors
    )
    padded = real = batches = items = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            frames = [
                feature_frames(sampler.samples[i], f)
                for i, f in (b if speed_factors else (b, 1.0) for b in batch)
            ]
            padded += len(frames) * max(frames)
            real += sum(frames)
            batches += 1
            items += len(frames)
    return padded / real, items / batches, batches // epochs


def bench_padding(args: argparse.Namespace) -> None:
    """(c): padding ratio of the duration-bucketed sampler."""
    durations, source = manifest_durations(args.manifest)
    print(f"\n(c) padding: padded frames / real frames, max_frames {args.max_frames}, {source}")
    factors = tuple(args.speed_factors)
    cases = [
        (f"training: speed factors {list(factors)}", factors, True, f"  goal <= {GOAL_PADDING}"),
        ("training: no speed perturbation", (), True, ""),
        ("exact sort, no jitter (shuffle=False), speed factors", factors, False, ""),
    ]
    for label, speeds, shuffle, goal in cases:
        ratio, mean_batch, per_epoch = padding_ratio(
            durations, args.max_frames, speeds, args.epochs, shuffle
        )
        print(
            f"  {label:52} {ratio:.3f}  ({mean_batch:.1f} utterances per batch, "
            f"{per_epoch} batches per epoch){goal}"
        )


def endless(loader: DataLoader, sampler: DurationBatchSampler) -> Iterator[dict]:
    """Batches from `loader` forever, a new epoch each time it runs out."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def loading_records(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], str]:
    """Training records of the manifests, or SYNTHETIC_WAVS speech-like files in `tmp`."""
    if args.manifest:
        records = [r for p in args.manifest for r in read_manifest(p)]
        return records, ", ".join(args.manifest)
    rng = random.Random(SEED)
    records = []
    for i in range(SYNTHETIC_WAVS):
        seconds = round(rng.uniform(0.5, 3.0), 2)
        path = write_wavs(tmp / f"{i}", 1, seconds)[0]
        records.append({"audio": str(path), "text": "turn on the light", "duration": seconds})
    write_manifest(tmp / "synthetic.jsonl", records)
    return records, f"{SYNTHETIC_WAVS} synthetic wav files (no manifest found)"


def bench_loading(args: argparse.Namespace, trainer: Trainer, tmp: Path) -> None:
    """(d) and (b) on real data: real DataLoader vs the same batches from memory."""
    records, source = loading_records(args, tmp)
    sampler = DurationBatchSampler(
        [r["duration"] for r in records],
        max_frames=args.max_frames,
        seed=SEED,
        speed_factors=args.speed_factors,
    )
    loader = DataLoader(
        SpeechDataset(records, Tokenizer()),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
    )
    batches = endless(loader, sampler)
    for _ in range(args.num_workers * PREFETCH_FACTOR + 1):  # workers start, warm-up steps
        trainer.step(next(batches))
    real_times, memory_times, waits, audio = [], [], [], 0.0
    for _ in range(args.rounds):
        kept = []
        trainer.sync()
        start = time.perf_counter()
        wait = 0.0
        for _ in range(args.block):
            fetch = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - fetch
            trainer.step(batch)
            kept.append(batch)
        trainer.sync()
        real_times.append(time.perf_counter() - start)
        waits.append(wait)
        audio += sum(float(b["audio_lengths"].sum()) for b in kept) / SAMPLE_RATE
        start = time.perf_counter()
        for batch in kept:
            trainer.step(batch)
        trainer.sync()
        memory_times.append(time.perf_counter() - start)
    ratios = [m / r for m, r in zip(memory_times, real_times, strict=True)]
    steps = args.rounds * args.block

    # The loader alone (no training), after its prefetched stock is used up: its headroom.
    for _ in range(args.num_workers * PREFETCH_FACTOR):
        next(batches)
    start = time.perf_counter()
    for _ in range(args.block):
        next(batches)
    loader_rate = args.block / (time.perf_counter() - start)
    real_step = sum(real_times) / steps
    print(
        f"\n(d) data loading, {args.num_workers} workers, {args.rounds} rounds of {args.block} "
        f"steps, max_frames {args.max_frames}, speed factors {list(args.speed_factors)}; {source}"
    )
    print(f"  real DataLoader           {real_step * 1e3:8.1f} ms per step (mean)")
    print(f"  same batches from memory  {sum(memory_times) / steps * 1e3:8.1f} ms per step (mean)")
    print(
        f"  real-loader speed / in-memory speed: {median(ratios):.3f} (median over rounds; "
        f"rounds {', '.join(f'{r:.3f}' for r in ratios)})  goal >= {GOAL_LOADING}"
    )
    print(f"  waiting for the next batch: {sum(waits) / sum(real_times):.1%} of real step time")
    print(
        f"  loader alone (no training): {loader_rate:.1f} batches/s vs "
        f"{1 / real_step:.1f} steps/s consumed"
    )
    print(
        "(b) audio trained per wall-second (real data, real loader): "
        f"{audio / sum(real_times):.1f} s/s"
    )
    del loader, batches


def main() -> None:
    """Parse arguments and run the chosen parts."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("32", "bf16-mixed"), default="32")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=7, help="(a) timed rounds")
    parser.add_argument("--seconds", type=float, default=1.8, help="(a) longest utterance, s")
    parser.add_argument("--batch", type=int, help="(a) utterances (default: max_frames' worth)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="(a) reference matmul n")
    parser.add_argument("--max-frames", type=int, default=RECIPE_MAX_FRAMES)
    parser.add_argument(
        "--speed-factors", type=float, nargs="*", default=list(RECIPE_SPEED_FACTORS)
    )
    parser.add_argument(
        "--manifest",
        nargs="*",
        default=existing(RECIPE_TRAIN_MANIFESTS),
        help="(c, d) training manifests (default: the commands recipe's, where present)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="(c) epochs to average over")
    parser.add_argument("--num-workers", type=int, default=2, help="(d) DataLoader workers")
    parser.add_argument("--block", type=int, default=20, help="(d) steps per block")
    parser.add_argument("--rounds", type=int, default=3, help="(d) real/memory block pairs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"bench_training: {environment()}, device {args.device}")

    trainer = (
        Trainer(args.device, args.precision) if {"flops", "loading"} & set(args.parts) else None
    )
    if "flops" in args.parts:
        bench_flops(args, trainer)
    if "padding" in args.parts:
        bench_padding(args)
    if "loading" in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            bench_loading(args, trainer, Path(tmp))


if __name__ == "__main__":
    main()
