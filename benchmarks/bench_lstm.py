"""Time one training step (forward + backward) of the acoustic model: packed vs padded LSTM.

Usage:
    python benchmarks/bench_lstm.py [--batch 24] [--seconds 2.0] [--repeats 7]

The model has the bundled model's shape (recipes/commands/config.yaml). The batch looks like
one from `DurationBatchSampler`: lengths within 10 % of each other. Both paths run on the same
batch, interleaved, so machine noise hits both alike; the report gives median times and their
ratio, and checks that both paths give the same loss.
"""

import argparse
import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.model import AcousticModel, ModelConfig

FRAMES_PER_SECOND = 100  # 10 ms hop


def packed_forward(model: AcousticModel, feats: torch.Tensor, lengths: torch.Tensor):
    """The model with `nn.LSTM` on a packed sequence (the GPU path), on any device."""
    x, lengths = model.subsample(feats, lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    x, _ = pad_packed_sequence(model.lstm(packed)[0], batch_first=True)
    return model.output(model.dropout(x)).log_softmax(-1), lengths


def step(forward, model, feats, lengths) -> tuple[float, float]:
    start = time.perf_counter()
    log_probs, out_lengths = forward(model, feats, lengths)
    valid = torch.arange(log_probs.shape[1])[None, :] < out_lengths[:, None]
    loss = (log_probs.max(-1).values * valid).sum()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start, loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = ModelConfig(subsampling=4, conv_channels=192, hidden_size=192, num_layers=3)
    model = AcousticModel(config).train()
    model.dropout.p = model.lstm.dropout = 0.0  # same loss on both paths
    longest = int(args.seconds * FRAMES_PER_SECOND)
    lengths = torch.randint(int(0.9 * longest), longest + 1, (args.batch,))
    lengths[0] = longest
    feats = torch.randn(args.batch, longest, config.n_mels)

    paths = {"packed": packed_forward, "padded": AcousticModel.forward}
    times: dict[str, list[float]] = {name: [] for name in paths}
    losses = {}
    for _ in range(args.repeats + 1):  # the first round warms up
        for name, forward in paths.items():
            seconds, losses[name] = step(forward, model, feats, lengths)
            times[name].append(seconds)
    medians = {name: statistics.median(t[1:]) for name, t in times.items()}
    print(f"batch {args.batch} x {args.seconds} s, threads {torch.get_num_threads()}")
    for name, seconds in medians.items():
        print(f"  {name:7s} {seconds * 1000:8.1f} ms per step  (loss {losses[name]:.4f})")
    print(f"  padded is {medians['packed'] / medians['padded']:.2f}x faster than packed")


if __name__ == "__main__":
    main()
