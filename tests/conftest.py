"""Shared fixtures: a tiny spoken corpus made with espeak-ng (installed by setup.sh)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE, load_audio

TINY_TEXTS = ("yes", "no", "go left", "stop")
TINY_VOICES = ("en-us", "en-gb")


def speak(text: str, voice: str, path: Path) -> None:
    """espeak-ng -> 16 kHz mono wav at `path`."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    sf.write(path, load_audio(raw), SAMPLE_RATE, subtype="PCM_16")
    raw.unlink()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 utterances (4 texts x 2 voices) and manifest.jsonl listing them, relative paths."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "wav").mkdir()
    lines = []
    for voice in TINY_VOICES:
        for text in TINY_TEXTS:
            name = f"wav/{voice}_{text.replace(' ', '_')}.wav"
            speak(text, voice, root / name)
            duration = sf.info(root / name).duration
            lines.append(json.dumps({"audio": name, "text": text, "duration": duration}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
