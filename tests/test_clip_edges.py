"""Tests for recipes/fsdd/clip_edges.py: cutting recordings into the word, edge levels."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("clip_edges", REPO / "recipes/fsdd/clip_edges.py")
clip_edges = importlib.util.module_from_spec(spec)
spec.loader.exec_module(clip_edges)

RATE = 8000


def word(rate: int = RATE) -> np.ndarray:
    """0.2 s at -40 dB, a 0.1 s ramp up 40 dB, 0.2 s at 0 dB, 0.2 s at -40 dB (noise)."""
    rng = np.random.default_rng(0)
    envelope = np.concatenate(
        [
            np.full(int(0.2 * rate), 0.01),
            np.geomspace(0.01, 1.0, int(0.1 * rate)),
            np.ones(int(0.2 * rate)),
            np.full(int(0.2 * rate), 0.01),
        ]
    )
    return (0.5 * envelope * rng.standard_normal(envelope.size)).astype(np.float32)


def test_clip_cuts_where_the_energy_comes_within_the_threshold():
    audio = word()
    loose = clip_edges.clip(audio, RATE, -50.0, -50.0)
    assert loose.size == audio.size  # everything is within 50 dB
    tight = clip_edges.clip(audio, RATE, -20.0, -20.0)
    # The start moves half-way up the 40 dB ramp (0.2 + 0.05 s), the end to the step down.
    assert tight.size / RATE == pytest.approx(0.25, abs=0.02)
    np.testing.assert_array_equal(tight, audio[int(0.25 * RATE) : int(0.5 * RATE)][: tight.size])
    first, last = clip_edges.edge_levels(audio, RATE)
    assert first == pytest.approx(-40, abs=3) and last == pytest.approx(-40, abs=3)
    first, last = clip_edges.edge_levels(tight, RATE)
    assert -22 < first < -15 and last > -3


def test_copies_are_clipped_deterministic_and_listed(tmp_path, capsys):
    source = tmp_path / "src"
    (source / "wav").mkdir(parents=True)
    records = []
    for i in range(4):
        sf.write(source / "wav" / f"{i}.wav", word(), RATE, subtype="PCM_16")
        records.append({"audio": f"wav/{i}.wav", "text": "one", "speaker": "x", "duration": 0.7})
    manifest = source / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    for out in ("a", "b"):
        assert clip_edges.main([str(manifest), "--out", str(tmp_path / out), "--copies", "2"]) == 0
    for copy in range(2):
        lines = (tmp_path / "a" / f"train{copy}.jsonl").read_text().splitlines()
        assert lines == (tmp_path / "b" / f"train{copy}.jsonl").read_text().splitlines()
        for line in lines:
            record = json.loads(line)
            audio, rate = sf.read(tmp_path / "a" / record["audio"])
            assert rate == RATE and record["text"] == "one"
            assert record["duration"] == pytest.approx(audio.size / RATE)
            assert 0.2 < record["duration"] < 0.45  # cut 10-30 dB into a 0.7 s recording
    assert "x" in clip_edges.report(manifest)
    with pytest.raises(SystemExit) as refused:
        clip_edges.main([str(manifest), "--out", str(tmp_path / "c"), "--range", "-30", "5"])
    assert refused.value.code == 2 and "two negative dB values" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
