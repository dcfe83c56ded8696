"""Transcription speed: the `asr transcribe` command, single-file latency, int8 quantisation.

Usage:
    python benchmarks/bench_transcribe.py --model exp/commands/model.safetensors \\
        --manifest data/commands/test.jsonl
    python benchmarks/bench_transcribe.py --files 20 --repeats 1 --latency-repeats 3 \\
        --wer-utterances 4                                                   # smoke test

What is measured:

1. The command line: `python -m asr.cli transcribe --model M -q DIR` on --files wav files of
   --seconds each (16 kHz, 16-bit) written to a temporary folder, with the model's own
   decoding (the bundled model's: lexicon beam search + LM) and with `--greedy`, against
   the same command on a folder holding one such file (start-up: interpreter, imports,
   model load) and `python -c "import asr.transcribe"` (imports alone), interleaved,
   --repeats rounds.
   Real-time factor = audio seconds / wall seconds, with start-up (goal >= 200x) and
   without it (the many-file run minus the one-file run).
2. Latency of one --latency-seconds file after the model is loaded:
   `asr.load_model(M).transcribe(path)`, median and 90th percentile. Goal <= 30 ms.
3. Eager fp32 against `torch.ao.quantization.quantize_dynamic` int8 (nn.LSTM and nn.Linear):
   speed ratio on 16 equal-length clips in one batch and on one clip, interleaved; with
   --manifest, word error rates of both on its first --wer-utterances utterances. These run
   at batch size 1: the int8 LSTM has no `weight_ih_l0` attributes, which the model's padded
   CPU path reads, so it cannot run a padded batch.
4. Optional, when onnxruntime is installed (`pip install -e .[bench]`): the acoustic model
   (without features) exported to ONNX and run by ONNX Runtime against eager PyTorch, on
   the same 16-clip batch of features.

The wav files hold clips of --manifest's audio when given (cropped or padded to --seconds),
else speech-like synthetic audio. Without --model the bundled model is used, or when none is
installed a random model of its shape (`common.random_model_file`: timings only, and its
text is not a trained model's, so decoding and alignment costs differ).
"""

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import (
    REPO,
    SEED,
    environment,
    existing,
    interleave,
    median,
    model_to_time,
    speechlike,
    spread,
    write_wavs,
)
from torch import nn

import asr
from asr.audio import load_audio
from asr.manifest import read_manifest
from asr.metrics import word_errors
from asr.transcribe import Recognizer

GOAL_REAL_TIME = 200
GOAL_LATENCY_S = 0.030
SOURCE_CLIPS = 200  # manifest utterances cycled through to make the wav files
QUANT_BATCH = 16  # clips in the fp32-vs-int8 batch comparison
DEFAULT_MANIFEST = "data/commands/test.jsonl"


def command_line(args: argparse.Namespace, model: Path, tmp: Path) -> None:
    """Part 1: the `asr transcribe` command on many files, on one file, and bare imports."""
    clips = None
    if args.manifest:
        records = read_manifest(args.manifest)[:SOURCE_CLIPS]
        clips = [load_audio(r["audio"]) for r in records]
    many, one = tmp / "many", tmp / "one"
    write_wavs(many, args.files, args.seconds, clips)
    write_wavs(one, 1, args.seconds, clips)
    base = [sys.executable, "-m", "asr.cli", "transcribe", "--model", str(model), "-q"]
    base += ["--batch-size", str(args.batch_size)]

    def run(command: list[str], lines: int | None = None) -> Callable[[], None]:
        """A function running `command` from the repository root, checking its output."""

        def call() -> None:
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
            if lines is not None and len(done.stdout.splitlines()) != lines:
                raise RuntimeError(f"expected {lines} lines, got:\n{done.stdout[:2000]}")

        return call

    variants = {
        "many": run([*base, str(many)], args.files),
        "many, --greedy": run([*base, "--greedy", str(many)], args.files),
        "one": run([*base, str(one)], 1),
        "imports": run([sys.executable, "-c", "import asr.transcribe"]),
    }
    times = interleave(variants, args.repeats, warmup=1)
    t = {name: median(v) for name, v in times.items()}
    audio = args.files * args.seconds
    print(
        f"\n1. asr transcribe, {args.files} files x {args.seconds:g} s ({audio:g} s of audio), "
        f"batch size {args.batch_size}, median of {args.repeats}; model {model}"
    )
    print(f"  {f'{args.files} files':20} {spread(times['many'])}  (the model's own decoding)")
    print(f"  {'the same, --greedy':20} {spread(times['many, --greedy'])}")
    print(f"  {'1 file (start-up)':20} {spread(times['one'])}")
    print(f"  {'of which imports':20} {spread(times['imports'])}")
    print(
        f"  real-time factor with start-up:    {audio / t['many']:7.0f}x  goal >= {GOAL_REAL_TIME}x"
    )
    if t["many"] > t["one"]:
        print(f"  real-time factor without start-up: {audio / (t['many'] - t['one']):7.0f}x")
    else:
        print("  real-time factor without start-up: n/a (too few files to measure past noise)")
    print(f"  real-time factor with start-up, --greedy: {audio / t['many, --greedy']:7.0f}x")


def latency(args: argparse.Namespace, recognizer: Recognizer, tmp: Path) -> None:
    """Part 2: one file of --latency-seconds, model already loaded."""
    path = write_wavs(tmp / "latency", 1, args.latency_seconds)[0]
    times = interleave({"file": lambda: recognizer.transcribe(path)}, args.latency_repeats, 2)
    values = sorted(times["file"])
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    print(
        f"\n2. latency, one {args.latency_seconds:g} s file, model loaded, "
        f"{torch.get_num_threads()} threads, {args.latency_repeats} runs"
    )
    print(
        f"  median {median(values) * 1e3:.1f} ms, 90th percentile {p90 * 1e3:.1f} ms  "
        f"goal <= {GOAL_LATENCY_S * 1e3:.0f} ms"
    )


def quantized(recognizer: Recognizer) -> Recognizer:
    """The same recogniser with its LSTM and linear layers dynamically quantised to int8."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        model = torch.ao.quantization.quantize_dynamic(
            recognizer.model, {nn.LSTM, nn.Linear}, dtype=torch.qint8
        )
    return Recognizer(model, recognizer.tokenizer, recognizer.header)


def int8(args: argparse.Namespace, recognizer: Recognizer) -> None:
    """Part 3: eager fp32 vs dynamic int8, speed and (with a manifest) WER."""
    q8 = quantized(recognizer)
    clips = [speechlike(args.seconds, seed=SEED + i) for i in range(QUANT_BATCH)]
    one = [speechlike(args.latency_seconds, seed=SEED)]
    variants = {
        "fp32 batch": lambda: recognizer.transcribe(clips, batch_size=QUANT_BATCH),
        "int8 batch": lambda: q8.transcribe(clips, batch_size=QUANT_BATCH),
        "fp32 one": lambda: recognizer.transcribe(one),
        "int8 one": lambda: q8.transcribe(one),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = interleave(variants, args.quant_repeats)
    t = {name: median(v) for name, v in times.items()}
    print(f"\n3. eager fp32 vs dynamic int8 (quantize_dynamic), median of {args.quant_repeats}")
    for name, values in times.items():
        print(f"  {name:12} {spread(values)}")
    print(
        f"  int8 speed-up: {t['fp32 batch'] / t['int8 batch']:.2f}x on {QUANT_BATCH} x "
        f"{args.seconds:g} s, {t['fp32 one'] / t['int8 one']:.2f}x on one "
        f"{args.latency_seconds:g} s clip"
    )
    if not args.manifest:
        print("  WER: skipped (no --manifest)")
        return
    records = read_manifest(args.manifest)[: args.wer_utterances]
    paths, refs = [r["audio"] for r in records], [r["text"] for r in records]
    print(f"  WER on {len(records)} utterances of {args.manifest} (batch size 1):")
    for name, variant in (("fp32", recognizer), ("int8", q8)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            begin = time.perf_counter()
            texts = [r.text for r in variant.transcribe(paths, batch_size=1)]
            seconds = time.perf_counter() - begin
        print(f"    {name}: {word_errors(refs, texts).summary('WER')}, {seconds:.1f} s")


def onnx_runtime(args: argparse.Namespace, recognizer: Recognizer, tmp: Path) -> None:
    """Part 4 (optional): eager vs ONNX Runtime on the acoustic model alone."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime
    except ImportError:
        print("\n4. ONNX Runtime: skipped (not installed; pip install -e .[bench])")
        return
    model = recognizer.model
    core = FullLengthModel(model).eval()
    clips = [speechlike(args.seconds, seed=SEED + i) for i in range(QUANT_BATCH)]
    audio = torch.from_numpy(np.stack(clips))
    with torch.no_grad():  # not inference_mode: export traces with these tensors
        feats, _ = recognizer.features(audio, torch.full((QUANT_BATCH,), audio.shape[1]))
    path = tmp / "model.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            core,
            (feats,),
            str(path),
            input_names=["features"],
            output_names=["log_probs"],
            dynamic_axes={"features": {0: "batch", 1: "frames"}, "log_probs": {0: "batch", 1: "t"}},
            dynamo=False,
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # ORT's idle threads spin by default, which would slow the interleaved eager runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {"features": feats.numpy()}

    def eager() -> torch.Tensor:
        with torch.inference_mode():
            return core(feats)

    times = interleave(
        {"eager": eager, "onnxruntime": lambda: session.run(None, inputs)}, args.quant_repeats
    )
    diff = np.abs(eager().numpy() - session.run(None, inputs)[0]).max()
    ratio = median(times["eager"]) / median(times["onnxruntime"])
    print(
        f"\n4. acoustic model only, {QUANT_BATCH} x {args.seconds:g} s, "
        f"onnxruntime {onnxruntime.__version__}, median of {args.quant_repeats}"
    )
    print(f"  eager        {spread(times['eager'])}")
    print(f"  onnxruntime  {spread(times['onnxruntime'])}")
    print(f"  onnxruntime speed-up: {ratio:.2f}x (max abs difference {diff:.1e})")


class FullLengthModel(nn.Module):
    """`AcousticModel.forward` for batches without padding, traceable for ONNX export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, n_mels) -> (B, T', V) log-probabilities."""
        x = features.transpose(1, 2)
        if self.model.subsample is not None:
            for conv in self.model.subsample.convs:
                x = nn.functional.gelu(conv(x))
        x, _ = self.model.lstm(x.transpose(1, 2))
        return self.model.output(x).log_softmax(dim=-1)


def main() -> None:
    """Parse arguments and run the parts."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model file (default: bundled, or random)")
    parser.add_argument(
        "--manifest",
        default=(existing([DEFAULT_MANIFEST]) or [None])[0],
        help=f"audio source and WER manifest (default: {DEFAULT_MANIFEST} where present)",
    )
    parser.add_argument("--files", type=int, default=1000, help="1. files for the command")
    parser.add_argument("--seconds", type=float, default=1.0, help="1, 3. seconds per file")
    parser.add_argument("--batch-size", type=int, default=16, help="1. --batch-size")
    parser.add_argument("--repeats", type=int, default=3, help="1. command runs")
    parser.add_argument("--latency-seconds", type=float, default=2.0, help="2. clip length")
    parser.add_argument("--latency-repeats", type=int, default=30, help="2. runs")
    parser.add_argument("--quant-repeats", type=int, default=7, help="3, 4. rounds")
    parser.add_argument("--wer-utterances", type=int, default=300, help="3. manifest utterances")
    args = parser.parse_args()
    print(f"bench_transcribe: {environment()}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model = model_to_time(args.model, tmp)
        command_line(args, model, tmp)
        recognizer = asr.load_model(model)
        latency(args, recognizer, tmp)
        int8(args, recognizer)
        onnx_runtime(args, recognizer, tmp)


if __name__ == "__main__":
    main()
