"""Speak command texts with espeak-ng, flite, festival or packaged voices, augment, write wavs.

Every utterance is fully described by an `Utterance` (text, voice, prosody, augmentation),
drawn from a `random.Random` seeded with (seed, split, index). The same seed therefore gives
the same corpus whatever the number of worker processes, and an interrupted run can be resumed:
utterances whose wav file exists are not synthesised again.

Voices are split into a training pool and a test pool with no voice identity in common
(`check_voice_pools`): test voices are never used for train or dev.
"""

import hashlib
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import accent
import grammar
import numpy as np
import packaged_voices
import soundfile as sf
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from asr.audio import SAMPLE_RATE, load_audio, resample
from asr.files import write_atomically
from asr.manifest import Record

VoicePool = packaged_voices.VoicePool

# --- voices ---------------------------------------------------------------------------------
ESPEAK_ACCENTS = (
    "en",  # British English
    "en-us",
    "en-us-nyc",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",  # Lancaster
    "en-gb-x-gbcwmd",  # West Midlands
    "en-029",  # Caribbean
)
# espeak-ng voice variants (files in espeak-ng-data/voices/!v). Left out entirely: robotic or
# echo effects (robosoft*, UniRobot, anikaRobot, announcer, Demonic), whisper, whisperf, fast,
# and "Mr serious" (a space in the name). "" is espeak's default voice.
ESPEAK_TEST_VARIANTS = (
    "m3", "m6", "f2", "f4", "klatt4", "Andy", "AnxiousAndy",
    "Gene", "Gene2", "steph", "steph2", "steph3", "belinda", "travis",
)  # fmt: skip
ESPEAK_TRAIN_VARIANTS = (
    "", "m1", "m2", "m4", "m5", "m7", "m8", "f1", "f3", "f5",
    "klatt", "klatt2", "klatt3", "klatt5", "klatt6", "croak", "grandma", "grandpa",
    "Alex", "Alicia", "Andrea", "Annie", "Denis", "Diogo", "Henrique", "Hugo", "Jacky", "Lee",
    "Marco", "Mario", "Michael", "Mike", "Nguyen", "RicishayMax", "RicishayMax2",
    "RicishayMax3", "Storm", "Tweaky", "adam", "anika", "antonio", "aunty", "benjamin", "boris",
    "caleb", "david", "ed", "edward", "edward2", "gustave", "iven", "iven2", "iven3", "iven4",
    "john", "kaukovalta", "linda", "marcelo", "max", "michel", "miguel", "norbert", "pablo",
    "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "victor", "zac",
)  # fmt: skip
# flite voices that work for free text (awb_time only knows clock times). kal16 is kal at
# 16 kHz: the same speaker, so both stay in the same pool.
FLITE_TRAIN_VOICES = ("kal", "kal16", "awb", "slt")
FLITE_TEST_VOICES = ("rms",)
FLITE_F0_HZ = {"kal": 90, "kal16": 90, "awb": 130, "slt": 175, "rms": 100}  # natural mean f0
FLITE_PROBABILITY = 0.2  # share of utterances spoken by flite (it has few voices)
# festival's diphone voices (Debian: festvox-kdlpc16k, festvox-kallpc16k), used only when
# asked for (`festival_probability`): ked is a speaker no other engine has, and one the
# stage-15 model found hard (21 % WER on digits, against 2 % for festival's kal).
FESTIVAL_TRAIN_VOICES = ("ked_diphone", "kal_diphone")
FESTIVAL_TEST_VOICES: tuple[str, ...] = ()
FESTIVAL_F0_HZ = {"ked_diphone": 105, "kal_diphone": 105}  # the voices' own target mean f0
# voice -> the human speaker it was recorded from, where two voices share one
SPEAKERS = {"kal16": "kal", "kal_diphone": "kal", "ked_diphone": "ked"}

# --- prosody --------------------------------------------------------------------------------
ESPEAK_RATE_WPM = (120, 210)  # espeak-ng -s, words per minute (default 175)
ESPEAK_PITCH = (20, 80)  # espeak-ng -p, 0-99 (default 50)
FLITE_STRETCH = (0.8, 1.25)  # flite duration_stretch (>1 is slower)
FLITE_F0_FACTOR = (0.85, 1.2)  # flite mean f0 relative to the voice's natural f0
# festival's Duration_Stretch (>1 is slower); it replaces the voices' own 1.1.
FESTIVAL_STRETCH = (0.8, 1.25)
# Wider than flite's: from festival's two voices, many pitches (ked at 80-140 Hz).
FESTIVAL_F0_FACTOR = (0.75, 1.35)

# --- augmentation ---------------------------------------------------------------------------
PAD_S = (0.05, 0.4)  # silence added before and after the speech, seconds
AUGMENT_PROBABILITY = {"speed": 0.5, "reverb": 0.3, "noise": 0.5, "telephone": 0.15}
SPEED = (0.85, 1.2)  # speed perturbation factor (tempo and pitch together)
RT60_S = (0.15, 0.7)  # reverberation time of the synthetic room, seconds
SNR_DB = (5.0, 30.0)  # additive noise, signal-to-noise ratio in dB
NOISE_KINDS = ("white", "pink", "babble")
BABBLE_TALKERS = (3, 8)  # number of modulated speech-shaped noise sources
SYLLABLE_RATE_HZ = 4.0  # modulation rate of the babble envelopes
TELEPHONE_RATE = 8_000  # Hz, sample rate of the telephone round trip
TELEPHONE_BAND_HZ = (300.0, 3400.0)
REFERENCE_PEAK = 0.5  # speech is scaled to this peak before the random gain
GAIN_DB = (-20.0, 4.0)  # random gain relative to REFERENCE_PEAK, dB
MAX_PEAK = 0.99  # the output is scaled down if it would clip


@dataclass(frozen=True)
class Voice:
    """A synthesiser voice: engine plus name (espeak ``accent+variant``, else the voice)."""

    engine: Literal["espeak", "flite", "festival", "piper", "hibari", "kokoro", "pico"]
    name: str

    @property
    def id(self) -> str:
        """Voice id, written to manifests as the speaker."""
        return f"{self.engine}:{self.name}"

    @property
    def identity(self) -> str:
        """The speaker identity that must not cross the train/test boundary.

        For espeak it is the variant (the timbre), whatever the accent; for flite and
        festival the human speaker the voice was recorded from, whatever the engine (flite's
        kal and festival's kal_diphone are one speaker); for the packaged voices the voice
        (Kokoro: its dominant style).
        """
        if self.engine == "espeak":
            return "espeak:" + (self.name.partition("+")[2] or "default")
        return "speaker:" + SPEAKERS.get(self.name, self.name)


def voices(pool: VoicePool) -> tuple[list[Voice], list[Voice], list[Voice], list[Voice]]:
    """(espeak, flite, festival, packaged voices) of a pool; espeak: each accent, each variant."""
    variants = ESPEAK_TRAIN_VARIANTS if pool == "train" else ESPEAK_TEST_VARIANTS
    flite = FLITE_TRAIN_VOICES if pool == "train" else FLITE_TEST_VOICES
    festival = FESTIVAL_TRAIN_VOICES if pool == "train" else FESTIVAL_TEST_VOICES
    espeak = [Voice("espeak", f"{a}+{v}" if v else a) for a in ESPEAK_ACCENTS for v in variants]
    return (
        espeak,
        [Voice("flite", name) for name in flite],
        [Voice("festival", name) for name in festival],
        [Voice(engine, name) for engine, name in packaged_voices.voices(pool)],  # type: ignore[arg-type]
    )


def check_voice_pools() -> None:
    """Raise AssertionError when a voice identity is in both the train and the test pool."""
    train = {v.identity for group in voices("train") for v in group}
    test = {v.identity for group in voices("test") for v in group}
    shared = train & test
    if shared:  # not an assert: `python -O` would skip it
        raise ValueError(f"test voices also used for training: {sorted(shared)}")


def available_espeak_variants() -> set[str]:
    """Variant file names known to the installed espeak-ng."""
    listing = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        # Columns: Pty Language Age/Gender VoiceName File; File is "!v/<name>" and may hold spaces.
        _, _, rest = line.partition("!v/")
        names.add(rest.split("  ")[0].strip())
    return names


def check_tools(festival: bool = False, packaged: bool = False) -> None:
    """Raise RuntimeError when a synthesiser is missing or lacks a configured voice.

    Args:
        festival: check festival and its voices too (espeak-ng and flite always).
        packaged: check the Python packages of the packaged voices too.
    """
    for tool in ("espeak-ng", "flite"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found; install it (Debian: apt-get install {tool})")
    wanted = {v for v in ESPEAK_TRAIN_VARIANTS + ESPEAK_TEST_VARIANTS if v}
    missing = wanted - available_espeak_variants()
    if missing:
        raise RuntimeError(f"espeak-ng lacks the voice variants {sorted(missing)}")
    listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
    missing = set(FLITE_TRAIN_VOICES + FLITE_TEST_VOICES) - set(listing)
    if missing:
        raise RuntimeError(f"flite lacks the voices {sorted(missing)}")
    if festival:
        _check_festival()
    if packaged:
        packaged_voices.check_installed()


def _check_festival() -> None:
    if shutil.which("festival") is None or shutil.which("text2wave") is None:
        raise RuntimeError("festival not found; install it (Debian: apt-get install festival)")
    wanted = FESTIVAL_TRAIN_VOICES + FESTIVAL_TEST_VOICES
    listing = subprocess.run(  # prints e.g. "(ked_diphone kal_diphone)"
        ["festival", "--batch", "(print (voice.list))"], capture_output=True, text=True
    ).stdout
    missing = sorted(set(wanted) - set(listing.strip().strip("()").split()))
    if missing:
        raise RuntimeError(
            f"festival lacks the voices {missing} "
            "(Debian: apt-get install festvox-kdlpc16k festvox-kallpc16k)"
        )


# --- utterance plans ------------------------------------------------------------------------
@dataclass(frozen=True)
class Utterance:
    """Everything needed to produce one wav file, deterministically."""

    split: str
    index: int
    text: str
    domain: str
    voice: Voice
    rate: float  # espeak: words per minute; others: duration stretch
    pitch: float  # espeak: -p value; flite, festival: mean f0 in Hz; packaged: f0 factor
    seed: int  # seeds the noise and the impulse response
    augment: dict[str, Any] = field(default_factory=dict)
    # Foreign accent (espeak only): first language, strength, and the phoneme input spoken
    # instead of the text. Out of repr so that the digests, hence the file names, of
    # unaccented corpora stay put.
    accent: str = field(default="", repr=False)
    accent_strength: float = field(default=0.0, repr=False)
    phonemes: str = field(default="", repr=False)
    # The words said in random order (the text in the repr is already the shuffled one).
    shuffled: bool = field(default=False, repr=False)
    # A packaged voice's other settings (piper's noise, Kokoro's style blend), out of repr too.
    voice_params: tuple[tuple[str, float], ...] = field(default=(), repr=False)

    @property
    def digest(self) -> str:
        """8 hex digits identifying this exact description."""
        described = repr(self)
        if self.phonemes:
            described += f"{self.accent}@{self.accent_strength:.2f}:{self.phonemes}"
        if self.voice_params:
            described += repr(self.voice_params)
        return hashlib.sha1(described.encode()).hexdigest()[:8]

    def describe_augmentation(self) -> str:
        """Short text form of the augmentation, e.g. ``speed=0.93 noise=pink@12dB gain=-4dB``."""
        a = self.augment
        parts = [f"pad={a['pad'][0]:.2f}+{a['pad'][1]:.2f}s"]
        if "speed" in a:
            parts.append(f"speed={a['speed']:.2f}")
        if "rt60" in a:
            parts.append(f"reverb={a['rt60']:.2f}s")
        if "noise" in a:
            parts.append(f"noise={a['noise']}@{a['snr_db']:.0f}dB")
        if a.get("telephone"):
            parts.append("telephone")
        parts.append(f"gain={a['gain_db']:.0f}dB")
        return " ".join(parts)


def _draw_augmentation(rng: random.Random) -> dict[str, Any]:
    p = AUGMENT_PROBABILITY
    augment: dict[str, Any] = {"pad": (rng.uniform(*PAD_S), rng.uniform(*PAD_S))}
    if rng.random() < p["speed"]:
        augment["speed"] = round(rng.uniform(*SPEED), 2)
    if rng.random() < p["reverb"]:
        augment["rt60"] = rng.uniform(*RT60_S)
    if rng.random() < p["noise"]:
        augment["noise"] = rng.choice(NOISE_KINDS)
        augment["snr_db"] = rng.uniform(*SNR_DB)
    augment["telephone"] = rng.random() < p["telephone"]
    augment["gain_db"] = rng.uniform(*GAIN_DB)
    return augment


def plan(
    split: str,
    count: int,
    seed: int,
    pool: VoicePool,
    augment: bool = True,
    domain_weights: dict[str, float] | None = None,
    accent_probability: float = 0.0,
    festival_probability: float = 0.0,
    native_probability: float = 0.0,
    shuffle_probability: float = 0.0,
    packaged_probability: float = 0.0,
) -> list[Utterance]:
    """`count` utterance descriptions for `split`, drawn from the voices of `pool`.

    Utterance i depends only on (seed, split, i, domain_weights and the four
    probabilities), so a larger corpus extends a smaller one; an accented one also
    on the installed espeak-ng's English dictionary, which gives the phonemes the accent
    rewrites (the recipe's corpora were made with espeak-ng 1.51). `domain_weights`
    (default `grammar.DOMAIN_WEIGHTS`) skews the mix of command domains, e.g. towards the
    isolated words a model gets wrong most.
    `accent_probability` is the share of espeak utterances spoken with a foreign accent
    (accent.py); the accent draws use their own random stream, so the texts, voices and
    augmentation are those of the same seed without accents. `festival_probability` is the
    share of utterances spoken by festival instead (pools without festival voices: none),
    also drawn from a stream of its own. `native_probability` is the share of accented
    utterances spoken through the first language's own espeak-ng phonemes and language
    ("fr+m1" for "en-us+m1": accent.native_phonemes), again from a stream of its own.
    `shuffle_probability` is the share of utterances whose words are said in random order
    ("spades nine of"), so that the model cannot lean on the grammar's word sequences; from
    a stream of its own too (the same seed's voices, accents and augmentation). Manifests
    mark them (``"shuffled": true``) so that an evaluation can leave them out.
    `packaged_probability` is the share of utterances, in every split, spoken by a voice that
    ships in a Python package (packaged_voices.py; its own stream again, drawn last, so it
    replaces the voice of any other option).

    Raises:
        ValueError: a probability is not in [0, 1].
    """
    probabilities = {
        "accent": accent_probability,
        "festival": festival_probability,
        "native": native_probability,
        "shuffle": shuffle_probability,
        "packaged": packaged_probability,
    }
    for name, p in probabilities.items():
        if not 0 <= p <= 1:
            raise ValueError(f"{name}_probability must be in [0, 1], got {p}")
    espeak, flite, festival, _ = voices(pool)
    utterances = []
    for index in range(count):
        rng = random.Random(f"{seed}:{split}:{index}")
        domain, text = grammar.generate(rng, domain_weights)
        shuffle_rng = random.Random(f"{seed}:{split}:{index}:shuffle")
        shuffled = shuffle_rng.random() < shuffle_probability
        if shuffled:
            words = text.split()
            shuffle_rng.shuffle(words)
            text = " ".join(words)
        if rng.random() < FLITE_PROBABILITY:
            voice = rng.choice(flite)
            rate = rng.uniform(*FLITE_STRETCH)
            pitch = FLITE_F0_HZ[voice.name] * rng.uniform(*FLITE_F0_FACTOR)
        else:
            voice = rng.choice(espeak)
            rate = rng.uniform(*ESPEAK_RATE_WPM)
            pitch = rng.uniform(*ESPEAK_PITCH)
        augmentation = _draw_augmentation(rng) if augment else {"pad": (0.0, 0.0), "gain_db": 0.0}
        festival_rng = random.Random(f"{seed}:{split}:{index}:festival")
        if festival and festival_rng.random() < festival_probability:
            voice = festival_rng.choice(festival)
            rate = festival_rng.uniform(*FESTIVAL_STRETCH)
            pitch = FESTIVAL_F0_HZ[voice.name] * festival_rng.uniform(*FESTIVAL_F0_FACTOR)
        language, strength, phonemes = "", 0.0, ""
        accent_rng = random.Random(f"{seed}:{split}:{index}:accent")
        if voice.engine == "espeak" and accent_rng.random() < accent_probability:
            language, strength = accent.draw_accent(accent_rng)
            native_rng = random.Random(f"{seed}:{split}:{index}:native")
            native = native_rng.random() < native_probability
            phonemes = accent.accented_phonemes(text, language, strength, accent_rng, native)
            if native:
                variant = voice.name.partition("+")[2]
                first = accent.FIRST_LANGUAGE_VOICES[language]
                voice = Voice("espeak", f"{first}+{variant}" if variant else first)
        voice_params: tuple[tuple[str, float], ...] = ()
        packaged_rng = random.Random(f"{seed}:{split}:{index}:packaged")
        if packaged_rng.random() < packaged_probability:
            engine, name, rate, pitch, voice_params = packaged_voices.draw(packaged_rng, pool)
            voice = Voice(engine, name)  # type: ignore[arg-type]
            language, strength, phonemes = "", 0.0, ""  # accents are espeak's
        utterances.append(
            Utterance(
                split=split,
                index=index,
                text=text,
                domain=domain,
                voice=voice,
                rate=round(rate, 2),
                pitch=round(pitch, 2 if voice.engine in packaged_voices.ENGINES else 1),
                seed=rng.getrandbits(32),
                augment=augmentation,
                accent=language,
                accent_strength=strength,
                phonemes=phonemes,
                shuffled=shuffled,
                voice_params=voice_params,
            )
        )
    return utterances


# --- synthesis ------------------------------------------------------------------------------
def speak(utterance: Utterance) -> np.ndarray:
    """Synthesise the text (no augmentation) as float32 mono at SAMPLE_RATE.

    Raises:
        RuntimeError: the synthesiser failed or produced no audio.
    """
    if utterance.voice.engine in packaged_voices.ENGINES:
        audio = _speak_packaged(utterance)
    else:
        audio = _speak_program(utterance)
    if audio.size == 0 or not np.abs(audio).max() > 0:
        raise RuntimeError(f"{utterance.voice.id} produced silence for {utterance.text!r}")
    return audio


def _speak_packaged(utterance: Utterance) -> np.ndarray:
    voice = utterance.voice
    try:
        audio, rate = packaged_voices.speak(
            voice.engine, voice.name, utterance.text, utterance.rate, utterance.pitch,
            utterance.voice_params, utterance.seed,
        )  # fmt: skip
    except Exception as err:  # onnxruntime's, espeak-ng's...: one failure to the caller
        raise RuntimeError(f"{voice.id} failed on {utterance.text!r}: {err}") from err
    return resample(torch.from_numpy(audio), rate, SAMPLE_RATE).numpy()


def _speak_program(utterance: Utterance) -> np.ndarray:
    """espeak-ng, flite or festival's text2wave, run as a program."""
    voice = utterance.voice
    with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
        wav = os.path.join(tmp, "out.wav")
        text = None  # standard input
        if voice.engine == "espeak":
            command = ["espeak-ng", "-v", voice.name, "-s", str(round(utterance.rate))]
            command += ["-p", str(round(utterance.pitch)), "-w", wav]
            command.append(utterance.phonemes or utterance.text)
        elif voice.engine == "flite":
            command = ["flite", "-voice", voice.name]
            command += ["--setf", f"duration_stretch={utterance.rate}"]
            command += ["--setf", f"int_f0_target_mean={utterance.pitch}"]
            command += ["-t", utterance.text, "-o", wav]
        else:
            # The voice sets its intonation parameters; ours go in front, where assoc finds
            # them first.
            pitch = f"(cons (list 'target_f0_mean {utterance.pitch}) int_lr_params)"
            command = ["text2wave", "-eval", f"(voice_{voice.name})"]
            command += ["-eval", f"(set! int_lr_params {pitch})"]
            command += ["-eval", f"(Parameter.set 'Duration_Stretch {utterance.rate})"]
            command += ["-o", wav]
            text = utterance.text  # on stdin: read as text, never as Scheme
        result = subprocess.run(command, input=text, capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"{voice.id} failed on {utterance.text!r}: {result.stderr.strip()}")
        return load_audio(wav)


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `audio` `factor` times faster (tempo and pitch), by resampling."""
    orig, new = round(factor * 100), 100  # factor quantised to 0.01 keeps the filter short
    out = AF.resample(torch.from_numpy(audio), orig_freq=orig, new_freq=new)
    return out.numpy()


def _fft_filter(noise: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(noise.size, d=1 / SAMPLE_RATE)
    return np.fft.irfft(spectrum * gain(freqs), n=noise.size)


def make_noise(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or babble-like noise (sum of syllable-modulated speech noise)."""
    white = rng.standard_normal(num_samples)
    if kind == "white":
        return white
    if kind == "pink":
        return _fft_filter(white, lambda f: 1 / np.sqrt(np.maximum(f, 20.0)))
    if kind == "babble":
        babble = np.zeros(num_samples)
        seconds = num_samples / SAMPLE_RATE
        points = np.arange(0, seconds + 1 / SYLLABLE_RATE_HZ, 1 / SYLLABLE_RATE_HZ)
        t = np.arange(num_samples) / SAMPLE_RATE
        for _ in range(rng.integers(*BABBLE_TALKERS, endpoint=True)):
            # Speech-shaped: flat to 500 Hz, then -6 dB/octave, nothing above 4 kHz.
            talker = _fft_filter(
                rng.standard_normal(num_samples),
                lambda f: np.where(f < 4000, 1 / np.maximum(f, 500.0), 0.0),
            )
            envelope = np.interp(t, points, rng.random(points.size)) ** 2
            babble += talker / (talker.std() + 1e-12) * envelope
        return babble
    raise ValueError(f"unknown noise kind {kind!r} (expected one of {NOISE_KINDS})")


def add_noise(
    audio: np.ndarray, noise: np.ndarray, snr_db: float, speech_power: float
) -> np.ndarray:
    """Mix `noise` into `audio` at `snr_db` relative to `speech_power` (mean square)."""
    noise_power = float(np.mean(noise**2)) + 1e-12
    scale = math.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return audio + scale * noise


def reverberate(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response: a direct path plus exponentially decaying noise.

    The level decays by 60 dB in `rt60` seconds; the output keeps the input's length.
    """
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    response = rng.standard_normal(length) * np.exp(-6.908 * t / rt60)  # ln(1000) = 6.908
    response[0] = 0.0
    response *= 0.5 / (np.sqrt(np.sum(response**2)) + 1e-12)  # reverberant/direct energy ~ 1/4
    response[0] = 1.0
    size = audio.size + length - 1
    n_fft = 1 << (size - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(audio, n_fft) * np.fft.rfft(response, n_fft), n_fft)
    return wet[: audio.size]


def telephone(audio: np.ndarray) -> np.ndarray:
    """Telephone channel: 8 kHz round trip, 300-3400 Hz band-pass, 8-bit mu-law."""
    x = resample(torch.from_numpy(audio).float(), SAMPLE_RATE, TELEPHONE_RATE)
    low, high = TELEPHONE_BAND_HZ
    x = AF.highpass_biquad(x, TELEPHONE_RATE, low)
    x = AF.lowpass_biquad(x, TELEPHONE_RATE, high)
    x = AF.mu_law_decoding(AF.mu_law_encoding(x.clamp(-1, 1), 256), 256)
    return resample(x, TELEPHONE_RATE, SAMPLE_RATE).numpy()


def augment(audio: np.ndarray, utterance: Utterance) -> np.ndarray:
    """Apply the utterance's augmentation: pad, speed, reverb, noise, telephone, gain."""
    a = utterance.augment
    rng = np.random.default_rng(utterance.seed)
    audio = audio.astype(np.float64)
    audio *= REFERENCE_PEAK / np.abs(audio).max()
    if "speed" in a:
        audio = speed_perturb(audio.astype(np.float32), a["speed"]).astype(np.float64)
    speech_power = float(np.mean(audio**2))
    before, after = (round(s * SAMPLE_RATE) for s in a["pad"])
    audio = np.concatenate([np.zeros(before), audio, np.zeros(after)])
    if "rt60" in a:
        audio = reverberate(audio, a["rt60"], rng)
    if "noise" in a:
        audio = add_noise(audio, make_noise(a["noise"], audio.size, rng), a["snr_db"], speech_power)
    if a.get("telephone"):
        audio = telephone(audio.astype(np.float32)).astype(np.float64)
    audio *= 10 ** (a["gain_db"] / 20)
    peak = np.abs(audio).max()
    if peak > MAX_PEAK:
        audio *= MAX_PEAK / peak
    return audio.astype(np.float32)


def wav_path(out: Path, utterance: Utterance) -> Path:
    """Where the utterance's wav file goes: ``out/wav/<split>/<split>_<index>_<digest>.wav``.

    The digest covers the whole description, so a file made with other settings (another seed,
    changed augmentation ranges) is never mistaken for this utterance.
    """
    return (
        out
        / "wav"
        / utterance.split
        / f"{utterance.split}_{utterance.index:06d}_{utterance.digest}.wav"
    )


def synthesize(utterance: Utterance, out: Path) -> Record:
    """Produce one utterance's wav file (unless it exists) and return its manifest record."""
    path = wav_path(out, utterance)
    if not path.exists():
        audio = augment(speak(utterance), utterance)
        # A killed run never leaves a half-written wav behind for the next run to reuse.
        write_atomically(
            path, lambda tmp: sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        )
    frames = sf.info(str(path)).frames
    record = {
        "audio": str(path.absolute()),
        "text": utterance.text,
        "duration": round(frames / SAMPLE_RATE, 4),
        "speaker": utterance.voice.id,
        "domain": utterance.domain,
        "augment": utterance.describe_augmentation(),
    }
    if utterance.accent:
        record |= {"accent": utterance.accent, "accent_strength": utterance.accent_strength}
    if utterance.shuffled:
        record["shuffled"] = True
    return record


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core; no oversubscription


def _synthesize_star(job: tuple[Utterance, Path]) -> Record:
    return synthesize(*job)


def synthesize_all(
    utterances: Sequence[Utterance], out: Path, jobs: int | None = None, desc: str = "tts"
) -> list[Record]:
    """Synthesise `utterances` in `jobs` processes (default: CPU count); records in input order.

    A progress bar is shown when stderr is a terminal.
    """
    jobs = jobs or os.cpu_count() or 1
    work = [(u, out) for u in utterances]
    bar = tqdm(total=len(work), desc=desc, unit="utt", disable=not sys.stderr.isatty())
    records = []
    with bar:
        if jobs == 1:
            for job in work:
                records.append(_synthesize_star(job))
                bar.update()
        else:
            # "spawn": fork is unsafe once torch has started threads in the parent.
            context = multiprocessing.get_context("spawn")
            with context.Pool(jobs, initializer=_init_worker) as pool:
                for record in pool.imap(_synthesize_star, work, chunksize=8):
                    records.append(record)
                    bar.update()
    return records
