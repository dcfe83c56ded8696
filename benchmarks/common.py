"""Helpers shared by the benchmark scripts (not a benchmark itself).

Timing: `interleave` runs the compared variants in rounds (A, B, A, B, ...) so that machine
noise hits them alike, and `median` summarises; every figure the scripts report as a goal is
a ratio of two such medians from the same run. Memory: `peak_rss_mib` is the process's peak
resident set (a fresh subprocess has its own). Models: `bundled_config` is the shape of the
bundled model (recipes/commands/config.yaml); `random_model_file` writes a model file of that
shape with random weights for runs without a trained model. Audio: `speechlike` makes
deterministic, speech-shaped audio (voiced syllables and pauses) and `write_wavs` writes it.

Scripts import this module as ``common`` (Python puts the script's folder, benchmarks/, first
on sys.path).
"""

import os
import random
import resource
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from asr.audio import SAMPLE_RATE
from asr.data import collate
from asr.model import AcousticModel, ModelConfig
from asr.model_file import save_model_file
from asr.text import Tokenizer

REPO = Path(__file__).resolve().parents[1]
BUNDLED_SHAPE = {"subsampling": 4, "conv_channels": 192, "hidden_size": 192, "num_layers": 3}
RECIPE_DROPOUT = 0.1  # recipes/commands/config.yaml
RECIPE_LR = 2e-3
RECIPE_WEIGHT_DECAY = 1e-2  # CTCModule's default
RECIPE_GRAD_CLIP = 5.0  # trainer.gradient_clip_val (norm clipping)
# Speech frames (10 ms) per batch: config.yaml's data.max_frames is 12000 since stop 23,
# counting the silence padding too, which gives batches of about this much speech.
RECIPE_MAX_FRAMES = 8000
RECIPE_SPEED_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.2)
RECIPE_TRAIN_MANIFESTS = ("data/commands/train.jsonl", "data/fsdd/train.jsonl")
FRAMES_PER_SECOND = 100  # feature frames per second of audio (10 ms hop)
BLANK_BIAS = 6.0  # logit added to blank in a random model, so it emits (almost) no text
SYLLABLE_SECONDS = 0.2  # one voiced syllable of `speechlike` audio
PAUSE_EVERY_SECONDS = 1.5  # a pause of PAUSE_SECONDS this often in `speechlike` audio
PAUSE_SECONDS = 0.25
SPEECH_PEAK = 0.3  # full scale
CHARS_PER_SECOND = 12  # transcript length of synthetic batches (commands: ~10-14 chars/s)
LENGTH_SPREAD = 0.9  # synthetic batch lengths lie in [0.9, 1] x the longest, as bucketed
SEED = 0
RSS_INTERVAL_S = 0.002  # sampling period of `RssPeak`
HARMONICS = 8  # of each `speechlike` syllable's f0


def bundled_config(dropout: float = RECIPE_DROPOUT) -> ModelConfig:
    """The bundled model's shape: conv subsampling 4 x 192 channels -> 3 x BiLSTM 192."""
    return ModelConfig(dropout=dropout, **BUNDLED_SHAPE)


def random_model_file(path: str | Path, seed: int = 0) -> Path:
    """Write a model file of the bundled shape with random weights.

    The output bias favours the blank by BLANK_BIAS, so the model emits (almost) no text
    rather than a random character every frame, which would make greedy decoding and forced
    alignment far slower than a trained model's. Timings with it include the model and
    features in full but little decoding and alignment; error rates with it are meaningless.
    """
    torch.manual_seed(seed)
    model = AcousticModel(bundled_config())
    tokenizer = Tokenizer()
    with torch.no_grad():
        model.output.bias[tokenizer.blank_id] += BLANK_BIAS
    save_model_file(path, model, tokenizer, "utterance", {"random": True, "seed": seed})
    return Path(path)


def model_to_time(requested: Path | None, tmp: Path) -> Path:
    """The model file asked for, else the bundled one, else a random one of its shape in tmp."""
    from asr.model_file import BUNDLED_MODEL

    if requested is not None:
        return requested
    if BUNDLED_MODEL.exists():
        return BUNDLED_MODEL
    print("no --model and no bundled model: using a random model (timings only)")
    return random_model_file(tmp / "random.safetensors")


def interleave(
    variants: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Wall times of each variant, run in rounds: warm-up rounds first (not kept).

    Args:
        variants: name -> function to time (called with no arguments).
        repeats: timed rounds.
        warmup: untimed rounds before them.
        sync: called before reading the clock (e.g. torch.cuda.synchronize).

    Returns:
        name -> `repeats` times in seconds.
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(warmup + repeats):
        for name, fn in variants.items():
            if sync:
                sync()
            start = time.perf_counter()
            fn()
            if sync:
                sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """'median [min-max]' of times in milliseconds, for the reports."""
    return f"{median(values) * 1e3:.1f} ms [{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}]"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssPeak:
    """Context manager sampling this process's current RSS in a thread; `peak` is its maximum.

    `getrusage`'s peak is a high-water mark for the whole process, often set by importing
    torch (~0.7 GiB for its CUDA build); this gives the peak of one phase instead.

    Attributes:
        start: RSS on entry, MiB.
        peak: highest RSS sampled between entry and exit, MiB.
    """

    def __init__(self, interval: float = RSS_INTERVAL_S) -> None:
        self.interval = interval
        self.start = self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss_mib())

    def __enter__(self) -> "RssPeak":
        self.start = self.peak = current_rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mib())

    @property
    def growth(self) -> float:
        """Peak minus RSS on entry, MiB."""
        return self.peak - self.start


def matmul(size: int, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """A `size` x `size` matmul to time, and its FLOPs (2 n^3): the machine's reference speed."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    return (lambda: torch.mm(a, b)), 2.0 * size**3


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Deterministic speech-shaped audio: voiced syllables with pauses, 16 kHz float32.

    Each SYLLABLE_SECONDS is a harmonic tone (random f0 100-250 Hz, 8 harmonics, 1/k
    amplitudes) under a raised-cosine envelope, with a little noise; a PAUSE_SECONDS
    near-silence every PAUSE_EVERY_SECONDS gives long-audio chunking pauses to cut at.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    out = np.empty(n, dtype=np.float32)
    syllable = round(SYLLABLE_SECONDS * SAMPLE_RATE)
    t = np.arange(syllable) / SAMPLE_RATE
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(syllable) / syllable)
    for start in range(0, n, syllable):
        f0 = rng.uniform(100, 250)
        tone = sum(
            np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
            for k in range(1, HARMONICS + 1)
        )
        piece = SPEECH_PEAK * envelope * tone / 2.5 + 0.003 * rng.standard_normal(syllable)
        out[start : start + syllable] = piece[: n - start]
    period, pause = round(PAUSE_EVERY_SECONDS * SAMPLE_RATE), round(PAUSE_SECONDS * SAMPLE_RATE)
    for start in range(period, n, period):
        out[start : start + pause] *= 0.01
    return out


def write_wavs(
    folder: Path, count: int, seconds: float, clips: list[np.ndarray] | None = None
) -> list[Path]:
    """Write `count` 16-bit wav files of exactly `seconds` each to `folder`; return their paths.

    Args:
        clips: audio to cycle through (cropped or zero-padded to `seconds`); default:
            `speechlike` audio, a different seed per file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    samples = round(seconds * SAMPLE_RATE)
    paths = []
    for i in range(count):
        audio = clips[i % len(clips)] if clips else speechlike(seconds, seed=i)
        audio = np.pad(audio[:samples], (0, max(0, samples - len(audio))))
        path = folder / f"utt{i:06d}.wav"
        sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def existing(paths: list[str] | tuple[str, ...]) -> list[str]:
    """The given paths (relative to the repository root) that exist, as absolute paths."""
    found = [REPO / p for p in paths]
    return [str(p) for p in found if p.exists()]


def environment() -> str:
    """One line describing what the timings ran on."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads of {os.cpu_count()} cores, "
        f"OMP_WAIT_POLICY={policy}, load average {load}, python {sys.version.split()[0]}"
    )


def synthetic_batch(batch: int, seconds: float, seed: int = SEED) -> dict:
    """A collated batch like one from DurationBatchSampler: lengths within 10 % of each other.

    Audio is `speechlike`; transcripts are random characters, CHARS_PER_SECOND.
    """
    rng = random.Random(seed)
    longest = round(seconds * SAMPLE_RATE)
    lengths = [longest] + [
        rng.randint(int(LENGTH_SPREAD * longest), longest) for _ in range(batch - 1)
    ]
    letters = Tokenizer().vocabulary[3:]  # a-z
    items = []
    for i, n in enumerate(lengths):
        chars = max(1, round(n / SAMPLE_RATE * CHARS_PER_SECOND))
        text = "".join(rng.choice(letters) for _ in range(chars))
        tokens = torch.tensor(Tokenizer().encode(text), dtype=torch.long)
        audio = torch.from_numpy(speechlike(n / SAMPLE_RATE, seed=seed + i))
        items.append({"index": i, "audio": audio, "tokens": tokens, "text": text})
    return collate(items)


class Trainer:
    """A bare training loop doing what `asr fit` does per step, without Lightning's loop.

    Args:
        device: "cpu" or "cuda".
        precision: "32" or "bf16-mixed" (autocast to bfloat16, as Lightning does).
    """

    def __init__(self, device: str, precision: str) -> None:
        # Imported here: Lightning adds ~0.3 GiB RSS, which bench_scaling's children avoid.
        from asr.lightning_module import CTCModule

        torch.manual_seed(SEED)
        self.device = torch.device(device)
        self.module = CTCModule(**BUNDLED_SHAPE, dropout=RECIPE_DROPOUT).to(self.device).train()
        self.optimizer = torch.optim.AdamW(
            self.module.parameters(), lr=RECIPE_LR, weight_decay=RECIPE_WEIGHT_DECAY
        )
        self.precision = precision

    def autocast(self) -> AbstractContextManager:
        """Mixed-precision context for the forward pass (none for fp32)."""
        if self.precision == "bf16-mixed":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def to_device(self, batch: dict) -> dict:
        """Tensors of a collated batch on the training device."""
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def step(self, batch: dict) -> float:
        """One optimizer step on a collated batch; returns the loss."""
        batch = self.to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log() without a Lightning trainer
            loss = self.module._shared_step(batch, "train")
        loss.backward()
        self.optimizer_step()
        return loss.item()

    def optimizer_step(self) -> None:
        """What follows backward: the NaN/inf gradient check, clipping, the AdamW step."""
        self.module.on_before_optimizer_step(self.optimizer)
        nn.utils.clip_grad_norm_(self.module.parameters(), RECIPE_GRAD_CLIP)
        self.optimizer.step()

    def model_step(self, feats: torch.Tensor, lengths: torch.Tensor) -> None:
        """Model forward + backward on precomputed features (no features, CTC or optimizer)."""
        with self.autocast():
            log_probs, out_lengths = self.module.model(feats, lengths)
        valid = torch.arange(log_probs.shape[1], device=self.device)[None, :] < out_lengths[:, None]
        (log_probs.max(-1).values * valid).sum().backward()
        self.module.zero_grad(set_to_none=True)

    def sync(self) -> None:
        """Wait for the device (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
