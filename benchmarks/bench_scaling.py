"""Scaling: transcribing long audio, and reading and bucketing a huge manifest.

Usage:
    python benchmarks/bench_scaling.py [--model M.safetensors] [--lengths 1 10 60 600 1800]
    python benchmarks/bench_scaling.py --lengths 1 10 40 --lines 10000          # smoke test

What is measured, each case in a fresh Python process so that each has its own peak RSS
(resident set size):

1. One utterance of each of --lengths seconds (speech-like audio with a pause every 1.5 s,
   written as a 16 kHz 16-bit wav) transcribed by `asr.load_model(M).transcribe(path)`:
   wall time, real-time factor, the process's peak RSS, and its growth during the
   transcription (`common.RssPeak`: RSS sampled every 2 ms, peak minus the RSS before,
   which is taken after loading the model and a warm-up run on 1 s). `asr.transcribe`
   cuts audio longer than asr.audio.CHUNK_SECONDS (30 s) into pieces cut at pauses and
   decodes them in batches of --batch-size pieces, so activation
   memory is bounded by batch-size x 30 s: it stops growing once an input has that many
   pieces (8 min at the default 16); above that only the audio itself (a few float32
   copies) grows. The report checks that slope between the two longest inputs.
2. A manifest of --lines lines (no audio; random durations 0.5-5 s and short texts, written
   to a temporary file) read by `asr.manifest.read_manifest`, then bucketed by
   `asr.data.DurationBatchSampler` (recipe max_frames and speed factors): time of reading,
   of building the sampler, of one epoch's batches, and of `len(sampler)` (which Lightning
   calls); the process's peak RSS and the sampled growth over reading and bucketing.
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
from common import (
    RECIPE_MAX_FRAMES,
    RECIPE_SPEED_FACTORS,
    RssPeak,
    current_rss_mib,
    environment,
    model_to_time,
    peak_rss_mib,
    speechlike,
)

from asr.audio import CHUNK_SECONDS, SAMPLE_RATE, chunk_starts

GOAL_COPIES = 4  # float32 copies of the audio that may grow with length (blocks, join, ...)
WORDS = ("turn", "on", "off", "the", "kitchen", "light", "play", "music", "set", "a", "timer")
SEED = 0


def child_transcribe(model: str, wav: str, batch_size: int) -> dict:
    """In a fresh process: load the model, warm up, transcribe `wav`; times and memory."""
    import asr

    recognizer = asr.load_model(model)
    recognizer.transcribe(speechlike(1.0))  # warm-up: first-call allocations
    with RssPeak() as rss:
        start = time.perf_counter()
        result = recognizer.transcribe(wav, batch_size=batch_size)[0]
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_mib": peak_rss_mib(),
        "start_mib": rss.start,
        "growth_mib": rss.growth,
        "words": len(result.words),
        "error": result.error,
    }


def child_manifest(path: str, max_frames: int) -> dict:
    """In a fresh process: read and bucket a manifest; times and memory."""
    from asr.data import DurationBatchSampler
    from asr.manifest import read_manifest

    with RssPeak() as rss:
        start = time.perf_counter()
        records = read_manifest(path)
        read = time.perf_counter() - start
        after_read = current_rss_mib()
        start = time.perf_counter()
        sampler = DurationBatchSampler(
            [r["duration"] for r in records], max_frames, speed_factors=RECIPE_SPEED_FACTORS
        )
        build = time.perf_counter() - start
        start = time.perf_counter()
        batches = list(sampler)
        epoch = time.perf_counter() - start
        start = time.perf_counter()
        length = len(sampler)
        len_seconds = time.perf_counter() - start
    return {
        "lines": len(records),
        "read_s": read,
        "build_s": build,
        "epoch_s": epoch,
        "len_s": len_seconds,
        "batches": len(batches),
        "len": length,
        "start_mib": rss.start,
        "records_mib": after_read - rss.start,
        "growth_mib": rss.growth,
        "peak_mib": peak_rss_mib(),
    }


def run_child(*arguments: str) -> dict:
    """Run this script with --child ... in a fresh interpreter; its JSON result."""
    command = [sys.executable, __file__, "--child", *arguments]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def long_audio(args: argparse.Namespace, model: Path, tmp: Path) -> None:
    """Part 1: one utterance per length, each in its own process."""
    print(
        f"\n1. one utterance per length, fresh process each, batch size {args.batch_size}; "
        f"model {model}"
    )
    print(
        f"  {'length':>8} {'pieces':>6} {'time':>9} {'x real time':>11} {'peak RSS':>10} "
        f"{'growth':>10} {'audio f32':>10}   (RSS before: imports + model)"
    )
    rows = []
    for seconds in args.lengths:
        audio = speechlike(seconds, seed=SEED)
        wav = tmp / f"{seconds:g}s.wav"
        sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
        pieces = len(chunk_starts(audio))
        audio_mib = audio.nbytes / 2**20
        del audio
        r = run_child("transcribe", str(model), str(wav), str(args.batch_size))
        if r["error"]:
            raise RuntimeError(r["error"])
        wav.unlink()
        rows.append((seconds, r["growth_mib"], audio_mib))
        print(
            f"  {seconds:>7g}s {pieces:>6} {r['seconds']:>8.2f}s {seconds / r['seconds']:>11.0f} "
            f"{r['peak_mib']:>6.0f} MiB {r['growth_mib']:>6.0f} MiB {audio_mib:>6.1f} MiB   "
            f"({r['start_mib']:.0f} MiB)"
        )
    if len(rows) >= 2:
        (s1, g1, a1), (s2, g2, a2) = rows[-2], rows[-1]
        slope = (g2 - g1) / (a2 - a1)
        full = args.batch_size * CHUNK_SECONDS
        if s1 >= full:
            verdict = "bounded" if slope <= GOAL_COPIES else "NOT bounded"
            verdict += f"; goal <= {GOAL_COPIES} copies"
        else:
            verdict = (
                f"not a check: below {full:g} s = batch x chunk activations still grow; "
                f"give two lengths >= {full:g} s last"
            )
        print(
            f"  growth from {s1:g} s to {s2:g} s: {g2 - g1:.0f} MiB = {slope:.1f} x the extra "
            f"float32 audio ({verdict})"
        )


def manifest(args: argparse.Namespace, tmp: Path) -> None:
    """Part 2: read and bucket a generated manifest in its own process."""
    path = tmp / "huge.jsonl"
    rng = random.Random(SEED)
    start = time.perf_counter()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(args.lines):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
            record = {
                "audio": f"wav/{i // 1000:04d}/utt{i:08d}.wav",
                "text": text,
                "duration": round(rng.uniform(0.5, 5.0), 4),
                "speaker": f"spk{rng.randint(0, 999):03d}",
            }
            f.write(json.dumps(record) + "\n")
    written = time.perf_counter() - start
    size_mib = path.stat().st_size / 2**20
    r = run_child("manifest", str(path), str(args.max_frames))
    path.unlink()
    print(
        f"\n2. manifest of {r['lines']:,} lines ({size_mib:.0f} MiB, written in {written:.1f} s), "
        f"fresh process; max_frames {args.max_frames}, speed factors {list(RECIPE_SPEED_FACTORS)}"
    )
    rate = r["lines"] / r["read_s"]
    print(f"  read_manifest              {r['read_s']:7.2f} s  ({rate:,.0f} lines/s)")
    print(f"  DurationBatchSampler()     {r['build_s']:7.2f} s")
    print(f"  one epoch of batches       {r['epoch_s']:7.2f} s  ({r['batches']:,} batches)")
    print(f"  len(sampler)               {r['len_s']:7.2f} s  (cached: the epoch's batches)")
    print(
        f"  memory: {r['start_mib']:.0f} MiB before reading (imports), peak growth "
        f"{r['growth_mib']:.0f} MiB ({r['growth_mib'] * 2**20 / r['lines']:.0f} bytes per line; "
        f"records alone {r['records_mib']:.0f} MiB); process peak RSS {r['peak_mib']:.0f} MiB"
    )


def main() -> None:
    """Parse arguments; run the parts, or one child case (--child)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model file (default: bundled, or random)")
    parser.add_argument(
        "--lengths", type=float, nargs="+", default=[1, 10, 60, 600, 1800], help="seconds"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="transcribe's batch_size")
    parser.add_argument("--lines", type=int, default=1_000_000, help="manifest lines")
    parser.add_argument("--max-frames", type=int, default=RECIPE_MAX_FRAMES)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "transcribe":
            result = child_transcribe(rest[0], rest[1], int(rest[2]))
        else:
            result = child_manifest(rest[0], int(rest[1]))
        print(json.dumps(result))
        return

    print(f"bench_scaling: {environment()}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model = model_to_time(args.model, tmp)
        long_audio(args, model, tmp)
        manifest(args, tmp)


if __name__ == "__main__":
    main()
