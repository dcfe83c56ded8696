"""What the waveform augmentations cost in a recipe training step, piece by piece.

Usage:
    python benchmarks/bench_augment.py                    # CPU, recipe sizes
    python benchmarks/bench_augment.py --device cuda

What is measured, variants interleaved in one run (medians), on one batch padded once as
recipes/commands/config.yaml pads it (up to 1 s of silence at each end of 90 % of the
utterances), so every variant sees the same shapes:

(a) each training augmentation on the batch it gets: `cut_edges` and `pad_with_silence` on
    the unpadded batch, `add_noise` and VTLP (LogMel with warp factors minus LogMel
    without: a difference of two medians, so noisy) on the padded one. Under `asr fit` the
    first three run in the loader's worker processes, one thread each
    (`asr.augment.WaveformAugment`); here all run in this process, on its threads;
    against a training step on the padded batch with the waveform augmentations off
    (LogMel, SpecAugment, model forward and backward, CTC, NaN check, clipping, AdamW):
    their sum's share of the step the two make together.
(b) `asr.augment.place_spans` (span bounds brought to the host in one transfer), as
    `pad_with_silence` and `cut_edges` use it, against copying the same spans with bounds
    taken from the tensors row by row, as they did before: on a GPU each of those bounds is
    a host-device sync.

Synthetic batch (`common.synthetic_batch`): --batch utterances up to --seconds long; the
default, 44 x 1.8 s, is the recipe's mean batch (max_frames 8000).
"""

import argparse
import warnings

import torch
import yaml
from common import RECIPE_GRAD_CLIP, environment, interleave, median, synthetic_batch
from torch import nn

from asr.audio import SAMPLE_RATE
from asr.augment import add_noise, cut_edges, pad_with_silence, place_spans
from asr.features import LogMel
from asr.lightning_module import CTCModule

CONFIG = "recipes/commands/config.yaml"
WAVEFORM_AUGMENTATION_OFF = {
    "pad_silence": 0.0,
    "noise_snr_db": None,
    "edge_cut_db": None,
    "vtlp": 0.0,
}


def train_step(module: CTCModule, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    """What `asr fit` runs per step, without Lightning's loop."""
    optimizer.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() without a Lightning trainer
        loss = module._shared_step(batch, "train")
    loss.backward()
    module.on_before_optimizer_step(optimizer)
    nn.utils.clip_grad_norm_(module.parameters(), RECIPE_GRAD_CLIP)
    optimizer.step()


def row_by_row(
    audio: torch.Tensor, source: torch.Tensor, target: torch.Tensor, count: torch.Tensor
) -> torch.Tensor:
    """`place_spans` with tensor-element bounds (the reference: the code before)."""
    placed = audio.new_zeros(audio.shape[0], int((target + count).max()))  # the width's sync
    for i in range(audio.shape[0]):
        placed[i, target[i] : target[i] + count[i]] = audio[i, source[i] : source[i] + count[i]]
    return placed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=44, help="utterances per batch")
    parser.add_argument("--seconds", type=float, default=1.8, help="longest utterance, s")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds")
    args = parser.parse_args()
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    print(environment())
    with open(CONFIG) as f:
        hp = yaml.safe_load(f)["model"]
    batch = synthetic_batch(args.batch, args.seconds)
    batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    audio, lengths = batch["audio"], batch["audio_lengths"]
    most = int(hp["pad_silence"] * SAMPLE_RATE)  # samples
    torch.manual_seed(0)
    padded, padded_lengths = pad_with_silence(audio, lengths, most, hp["pad_probability"])
    power = audio.square().sum(1) / lengths  # (B,) the SNR's reference
    warp = 1.0 + hp["vtlp"] * (2.0 * torch.rand(len(lengths), device=args.device) - 1.0)
    features = LogMel(hp["normalization"], hp["dynamic_range_db"]).to(args.device)
    module = CTCModule(**{**hp, **WAVEFORM_AUGMENTATION_OFF}).to(args.device).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=hp["lr"])
    padded_batch = {**batch, "audio": padded, "audio_lengths": padded_lengths}
    print(f"batch: {tuple(audio.shape)} samples, padded {tuple(padded.shape)}, {args.device}")

    pieces = {
        "cut_edges": lambda: cut_edges(
            audio, lengths, hp["edge_cut_db"], hp["edge_cut_probability"]
        ),
        "pad_with_silence": lambda: pad_with_silence(audio, lengths, most, hp["pad_probability"]),
        "add_noise": lambda: add_noise(padded, padded_lengths, power, hp["noise_snr_db"]),
        "LogMel with VTLP": lambda: features(padded, padded_lengths, warp),
        "LogMel": lambda: features(padded, padded_lengths),
        "step": lambda: train_step(module, optimizer, padded_batch),
    }
    times = {k: median(v) for k, v in interleave(pieces, args.repeats, 2, sync).items()}
    times["VTLP"] = times.pop("LogMel with VTLP") - times.pop("LogMel")
    step = times.pop("step")
    print(f"(a) step without waveform augmentation on the padded batch: {step * 1e3:.1f} ms")
    for name, seconds in times.items():
        print(f"    {name}: {seconds * 1e3:.1f} ms")
    total = sum(times.values())
    print(f"    augmentations together: {total * 1e3:.1f} ms, {total / (total + step):.1%} of both")

    shift = torch.randint(0, most + 1, lengths.shape, device=args.device)
    spans = (torch.zeros_like(shift), shift, lengths)  # as pad_with_silence places them
    times = interleave(
        {
            "place_spans": lambda: place_spans(audio, *spans, shift + lengths),
            "tensor bounds": lambda: row_by_row(audio, *spans),
        },
        args.repeats * 3,
        warmup=2,
        sync=sync,
    )
    ours, before = median(times["place_spans"]), median(times["tensor bounds"])
    print(
        f"(b) place_spans {ours * 1e3:.2f} ms, with tensor bounds {before * 1e3:.2f} ms: "
        f"{before / ours:.2f}x"
    )


if __name__ == "__main__":
    main()
