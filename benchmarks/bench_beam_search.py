"""Time CTC decoding on synthetic peaky emissions: greedy vs flashlight beam search.

Usage:
    python benchmarks/bench_beam_search.py [--batch 16] [--frames 200] [--beam 32] [--repeats 5]

Emissions (B, T, V=29) are random command sentences rendered as CTC spikes (each character on
1-2 frames, blanks between) plus Gaussian logit noise, so decoders face realistic, not uniform,
posteriors. Timed: greedy (``asr.decoding.greedy_texts``), flashlight lexicon-free and
lexicon-constrained beam search (``asr.beam_search.BeamSearchDecoder``), and, when available,
pyctcdecode with the same beam (lexicon-free: without KenLM it has no word constraint).

pyctcdecode is a benchmark-only extra, never a project dependency. Install it apart from the
project environment and point PYCTCDECODE_PATH at it::

    .venv/bin/pip install --no-deps --target /tmp/pyctc pyctcdecode pygtrie
    PYCTCDECODE_PATH=/tmp/pyctc .venv/bin/python benchmarks/bench_beam_search.py
"""

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

from asr.beam_search import BeamSearchDecoder
from asr.decoding import greedy_texts
from asr.features import HOP_LENGTH, LogMel
from asr.metrics import word_errors
from asr.model import AcousticModel, ModelConfig
from asr.model_file import load_model_file
from asr.text import Tokenizer

WORDS = [
    "turn",
    "on",
    "off",
    "the",
    "light",
    "lights",
    "music",
    "play",
    "stop",
    "pause",
    "volume",
    "up",
    "down",
    "next",
    "previous",
    "set",
    "a",
    "timer",
    "for",
    "five",
    "ten",
    "fifteen",
    "minutes",
    "open",
    "close",
    "door",
    "window",
    "yes",
    "no",
    "left",
    "right",
    "go",
    "back",
    "kitchen",
    "bedroom",
    "living",
    "room",
    "call",
    "mom",
    "dad",
    "what's",
    "weather",
    "today",
    "tomorrow",
]
SPIKE_LOGIT = 8.0
NOISE_STD = 1.5
SEED = 0


def synthetic_emissions(
    batch: int, frames: int, tokenizer: Tokenizer, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Peaky CTC log-probs of random word sequences.

    Returns:
        ``(log_probs, lengths, texts)``: (B, T, V) float32, (B,) int64 (between T/2 and T),
        and the B texts the spikes spell.
    """
    vocab = len(tokenizer)
    logits = torch.randn(batch, frames, vocab, generator=generator) * NOISE_STD
    logits[..., tokenizer.blank_id] += SPIKE_LOGIT  # blank by default
    lengths = torch.randint(frames // 2, frames + 1, (batch,), generator=generator)
    texts = []
    for b in range(batch):
        t, words = 2, []
        while True:
            word = WORDS[int(torch.randint(len(WORDS), (1,), generator=generator))]
            ids = tokenizer.encode(word + " ")
            if t + 3 * len(ids) >= int(lengths[b]):
                break
            for token in ids:
                hold = 1 + int(torch.randint(2, (1,), generator=generator))
                logits[b, t : t + hold, token] += 2 * SPIKE_LOGIT
                t += hold + 1 + int(torch.randint(2, (1,), generator=generator))
            words.append(word)
        texts.append(" ".join(words))
    return logits.log_softmax(-1), lengths, texts


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time over ``repeats`` calls (after one warm-up) and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def load_pyctcdecode(
    labels: list[str], beam: int
) -> Callable[[torch.Tensor, torch.Tensor], list[str]] | None:
    """A pyctcdecode batch decoder, or None (with a message) when it is not importable."""
    path = os.environ.get("PYCTCDECODE_PATH")
    if path:
        sys.path.append(path)  # appended: the project's own numpy etc. keep precedence
    try:
        logging.getLogger("pyctcdecode").setLevel(logging.ERROR)  # "kenlm not installed" noise
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyctcdecode import build_ctcdecoder
    except ImportError:
        print("pyctcdecode not importable: skipped (set PYCTCDECODE_PATH, see the docstring)")
        return None
    decoder = build_ctcdecoder(labels)

    def decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        arrays = log_probs.numpy()
        return [
            decoder.decode(arrays[b, : int(n)], beam_width=beam)
            for b, n in enumerate(lengths.tolist())
        ]

    return decode


def acoustic_forward_time(args: argparse.Namespace) -> tuple[float, int]:
    """Features + acoustic model forward on audio that yields `args.frames` output frames.

    Runs with torch's default threads (all cores), as transcription does; the decoders run
    on one thread. Returns (median seconds per batch, threads).
    """
    if args.model:
        model = load_model_file(args.model)[0]
    else:
        config = ModelConfig(subsampling=4, conv_channels=192, hidden_size=192, num_layers=3)
        model = AcousticModel(config).eval()
    samples = args.frames * model.config.subsampling * HOP_LENGTH
    audio = 0.1 * torch.randn(args.batch, samples, generator=torch.Generator().manual_seed(SEED))
    lengths = torch.full((args.batch,), samples)
    features = LogMel()

    def forward() -> None:
        with torch.inference_mode():
            model(*features(audio, lengths))

    seconds, _ = best_time(forward, args.repeats)
    return seconds, torch.get_num_threads()


def main() -> None:
    """Parse arguments, run the timings and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--beam", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--model",
        help="model file for the forward-time comparison "
        "(default: random weights of the bundled model's shape)",
    )
    args = parser.parse_args()
    forward_s, forward_threads = acoustic_forward_time(args)
    torch.set_num_threads(1)

    tokenizer = Tokenizer()
    generator = torch.Generator().manual_seed(SEED)
    log_probs, lengths, texts = synthetic_emissions(args.batch, args.frames, tokenizer, generator)

    start = time.perf_counter()
    free = BeamSearchDecoder(tokenizer, beam_size=args.beam)
    lexicon = BeamSearchDecoder(tokenizer, lexicon=WORDS, beam_size=args.beam)
    build_s = time.perf_counter() - start

    rows: list[tuple[str, float, list[str]]] = []
    for name, fn in [
        ("greedy", lambda: greedy_texts(log_probs, lengths, tokenizer)),
        (f"flashlight beam {args.beam}, lexicon-free", lambda: free(log_probs, lengths)),
        (f"flashlight beam {args.beam}, lexicon", lambda: lexicon(log_probs, lengths)),
    ]:
        seconds, out = best_time(fn, args.repeats)
        rows.append((name, seconds, out))
    labels = ["", " ", *tokenizer.vocabulary[2:]]  # pyctcdecode: "" is the blank
    pyctc = load_pyctcdecode(labels, args.beam)
    if pyctc is not None:
        seconds, out = best_time(lambda: pyctc(log_probs, lengths), args.repeats)
        rows.append((f"pyctcdecode beam {args.beam}, lexicon-free", seconds, out))

    print(
        f"B={args.batch} T={args.frames} V={len(tokenizer)} beam={args.beam}, 1 thread, "
        f"median of {args.repeats}; decoder construction (both flashlight) {build_s * 1e3:.1f} ms"
    )
    greedy_s = rows[0][1]
    print(f"{'decoder':<40} {'ms/batch':>10} {'ms/utt':>8} {'x greedy':>9} {'WER %':>6}")
    for name, seconds, out in rows:
        wer = word_errors(texts, [" ".join(o.split()) for o in out]).rate
        print(
            f"{name:<40} {seconds * 1e3:>10.2f} {seconds * 1e3 / args.batch:>8.3f} "
            f"{seconds / greedy_s:>9.1f} {100 * wer:>6.2f}"
        )
    print(
        f"acoustic model forward (features + model, {forward_threads} threads, same batch: "
        f"{args.batch} x {args.frames * 4 * HOP_LENGTH / 16000:.1f} s audio): "
        f"{forward_s * 1e3:.1f} ms"
    )
    print(f"lexicon beam search / acoustic forward: {100 * rows[2][1] / forward_s:.1f}%")
    print(f"lexicon-free beam search / acoustic forward: {100 * rows[1][1] / forward_s:.1f}%")
    if pyctc is not None:
        print(f"pyctcdecode / flashlight lexicon-free: {rows[3][1] / rows[1][1]:.1f}x")
        print(f"pyctcdecode / flashlight lexicon:      {rows[3][1] / rows[2][1]:.1f}x")


if __name__ == "__main__":
    main()
