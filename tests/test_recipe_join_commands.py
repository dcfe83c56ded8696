"""Tests for recipes/commands/join_commands.py: recordings of several commands."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
COMMANDS_DIR = REPO / "recipes" / "commands"
if str(COMMANDS_DIR) not in sys.path:
    sys.path.insert(0, str(COMMANDS_DIR))  # the recipe's scripts import their siblings
spec = importlib.util.spec_from_file_location("join_commands", COMMANDS_DIR / "join_commands.py")
join_commands = importlib.util.module_from_spec(spec)
spec.loader.exec_module(join_commands)


def utterances(folder: Path, bad: bool = False) -> Path:
    """A manifest of four 0.5 s noise 'utterances' (one unreadable if `bad`)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, text in enumerate(["go", "stop", "turn left", "seven of hearts"]):
        path = folder / f"u{i}.wav"
        if bad and i == 0:
            path.write_bytes(b"not audio")
        else:
            sf.write(path, 0.1 * rng.standard_normal(SAMPLE_RATE // 2), SAMPLE_RATE)
        lines.append(json.dumps({"audio": path.name, "text": text, "duration": 0.5}))
    manifest = folder / "utterances.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_recordings_join_two_or_three_commands_with_pauses_and_repeat(tmp_path):
    manifest = utterances(tmp_path / "in")
    args = [str(manifest), "--count", "6", "--pause", "0.5", "1.0"]
    assert join_commands.main([*args, "--out", str(tmp_path / "a")]) == 0
    records = read_manifest(tmp_path / "a" / "test.jsonl")
    assert len(records) == 6
    names = ["go", "stop", "turn left", "seven of hearts"]
    half = SAMPLE_RATE // 2  # samples of each utterance
    for r in records:
        parts = r["from"].split()
        assert r["commands"] == len(parts) in (2, 3)
        assert r["text"] == " ".join(names[int(p[1])] for p in parts)
        audio, _ = sf.read(tmp_path / "a" / r["audio"], dtype="float32")
        # utterance, zeros of 0.5-1 s, utterance, ...: the first pause starts right after it
        assert np.abs(audio[:half]).min() < np.abs(audio[:half]).max()
        zeros = np.flatnonzero(audio[half:] != 0)[0]
        assert 0.5 * SAMPLE_RATE - 1 <= zeros <= 1.0 * SAMPLE_RATE + 1
        total = r["duration"] - 0.5 * len(parts)  # every pause
        assert 0.5 * (len(parts) - 1) - 0.01 <= total <= 1.0 * (len(parts) - 1) + 0.01
    assert join_commands.main([*args, "--out", str(tmp_path / "b")]) == 0
    for name in ("joined_0000.wav", "joined_0005.wav"):  # the same seed, the same files
        a, b = (tmp_path / d / "wav" / name for d in "ab")
        assert a.read_bytes() == b.read_bytes()


def test_an_unreadable_utterance_skips_only_its_recordings(tmp_path, caplog):
    manifest = utterances(tmp_path / "in", bad=True)
    out = tmp_path / "out"
    assert join_commands.main([str(manifest), "--count", "8", "--out", str(out)]) == 0
    records = read_manifest(out / "test.jsonl")
    assert 0 < len(records) < 8 and all("u0.wav" not in r["from"] for r in records)
    assert "u0.wav" in caplog.text
    assert len(list((out / "wav").glob("*.wav"))) == len(records)


def test_a_smaller_count_removes_the_recordings_beyond_it(tmp_path):
    manifest = utterances(tmp_path / "in")
    out = tmp_path / "out"
    assert join_commands.main([str(manifest), "--count", "6", "--out", str(out)]) == 0
    (out / "wav" / "joined_notes.wav").write_bytes(b"RIFF")  # not a numbered recording
    assert join_commands.main([str(manifest), "--count", "2", "--out", str(out)]) == 0
    on_disk = sorted(p.name for p in (out / "wav").glob("*.wav"))
    assert on_disk == ["joined_0000.wav", "joined_0001.wav", "joined_notes.wav"]
    listed = [Path(r["audio"]).name for r in read_manifest(out / "test.jsonl")]
    assert listed == ["joined_0000.wav", "joined_0001.wav"]
