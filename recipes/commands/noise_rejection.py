"""Closed-set decoding (`--commands`) on noise: how often a model accepts a phrase in audio
that holds none.

    python recipes/commands/noise_rejection.py                     # the bundled model
    python recipes/commands/noise_rejection.py --model exp/commands/model.safetensors

The allowed list is the dev split's smart-home, media and timer texts (as in
decoding_report.py), then the same with the ten digits and ten Speech Commands keywords
added, whose short words noise resembles most. The clips are made here, the same every run:
white, pink and brown noise at NOISE_LEVELS and NOISE_SECONDS, hums, a sweep, a chord and a
click. For each threshold it prints the share of clips accepted by the likelihood ratio
alone (the score before stop 28) and by the score (ratio x the phrase's confidence), with
the phrases that got through.
"""

import argparse
import math
from collections.abc import Iterator

import decoding_report
import grammar
import numpy as np

import asr
from asr.audio import SAMPLE_RATE
from asr.manifest import read_manifest
from asr.transcribe import DecodingOptions

# Speech Commands' ten keywords and ten digits: the short words noise resembles most.
SHORT_WORDS = grammar.SPEECH_COMMANDS_WORDS[:20]
NOISE_LEVELS = (0.003, 0.01, 0.03, 0.1, 0.3, 0.9)  # peak amplitude, full scale
NOISE_SECONDS = (0.6, 2.0)
HUM_HZ = (50, 60, 440, 1000)
THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


def coloured(rng: np.random.Generator, samples: int, slope: float) -> np.ndarray:
    """(samples,) noise whose power falls as 1 / f**slope (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    hz = np.fft.rfftfreq(samples, 1 / SAMPLE_RATE)
    spectrum[1:] /= hz[1:] ** (slope / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n=samples)
    return noise / np.abs(noise).max()


def clips(seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(name, (samples,) float32 at 16 kHz) of every clip, the same for the same seed."""
    rng = np.random.default_rng(seed)
    for name, slope in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        for level in NOISE_LEVELS:
            for seconds in NOISE_SECONDS:
                noise = level * coloured(rng, round(seconds * SAMPLE_RATE), slope)
                yield f"{name} noise {level} {seconds} s", noise.astype(np.float32)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE  # 2 s
    for hz in HUM_HZ:
        yield f"hum {hz} Hz", (0.3 * np.sin(2 * math.pi * hz * t)).astype(np.float32)
    sweep = np.sin(2 * math.pi * (200 * t + (4000 - 200) / 4 * t**2))  # 200 -> 4000 Hz in 2 s
    yield "sweep 200-4000 Hz", (0.3 * sweep).astype(np.float32)
    chord = sum(np.sin(2 * math.pi * hz * t) for hz in (262, 330, 392)) / 3
    yield "chord", (0.3 * chord).astype(np.float32)
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[SAMPLE_RATE // 2 : SAMPLE_RATE // 2 + 320] = 0.9 * rng.standard_normal(320)
    yield "click", click


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model file (default: bundled)")
    parser.add_argument("--dev", default="data/commands/dev.jsonl")
    args = parser.parse_args()
    model = asr.load_model(args.model)
    dev = read_manifest(args.dev, need_duration=False)
    phrases = decoding_report.in_list_phrases(dev)
    names, audio = zip(*clips(), strict=True)
    log_probs, lengths = model.log_probs(list(audio))  # (N, T, V), (N,)
    for label, allowed in (
        (f"{len(phrases)} in-list phrases", phrases),
        ("the same + digits and keywords", phrases + SHORT_WORDS),
    ):
        decoder = DecodingOptions(commands=tuple(allowed), rejection_threshold=None).decoder
        results = decoder(log_probs, lengths)
        print(f"\n{len(names)} clips, {label}; clips accepted:")
        for threshold in THRESHOLDS:
            kept = [f"{n}: {r.phrase}" for n, r in zip(names, results, strict=True)]
            kept = [k for k, r in zip(kept, results, strict=True) if r.score >= threshold]
            by_ratio = sum(r.ratio >= threshold for r in results)
            print(
                f"  threshold {threshold}: by the ratio alone {by_ratio}, "
                f"by ratio x confidence {len(kept)}"
                + (f" ({'; '.join(kept)})" if 0 < len(kept) <= 5 else "")
            )


if __name__ == "__main__":
    main()
