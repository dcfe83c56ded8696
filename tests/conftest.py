"""Shared fixtures: a tiny spoken corpus made with espeak-ng (installed by setup.sh)."""

import json
import subprocess
import sys
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


@pytest.fixture(scope="session")
def trained_model(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on `tiny_corpus` through `asr fit` (once per session: slow)."""
    out = tmp_path_factory.mktemp("fit")
    manifest = str(tiny_corpus / "manifest.jsonl")
    model = out / "model.safetensors"
    command = ["fit", "--config", "recipes/tiny/config.yaml"]
    command += ["--data.train_manifest", manifest, "--data.val_manifest", manifest]
    command += ["--trainer.default_root_dir", str(out), "--trainer.enable_progress_bar", "false"]
    done = subprocess.run(
        [sys.executable, "-m", "asr.cli", *command, "--export", str(model)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    (out / "fit.log").write_text(done.stdout)  # for the tests of what `asr fit` prints
    return model
