"""Tests for recipes/saytime/prepare.py on a fixture in saytime's layout (headerless mu-law)."""

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
RATE = 8000  # Hz, as saytime's clips

spec = importlib.util.spec_from_file_location("saytime", REPO / "recipes/saytime/prepare.py")
saytime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(saytime)


def mu_law_bytes(x: np.ndarray) -> bytes:
    raw = io.BytesIO()
    sf.write(raw, x, RATE, format="RAW", subtype="ULAW")
    return raw.getvalue()


def make_clips(root: Path) -> dict[str, np.ndarray]:
    """Every clip saytime ships, a distinct tone each, headerless like the package's."""
    clips = {}
    for i, name in enumerate(saytime.clip_texts()):
        t = np.arange(int((0.3 + 0.01 * i) * RATE)) / RATE
        clips[name] = (0.5 * np.sin(2 * np.pi * (200 + 20 * i) * t)).astype(np.float32)
        (root / f"{name}.au").write_bytes(mu_law_bytes(clips[name]))
    return clips


def test_words_are_the_grammar_words_read_from_the_first_sample(tmp_path):
    clips = make_clips(tmp_path)
    records = saytime.prepare(tmp_path, tmp_path / "out", digit_strings=0)
    texts = [r["text"] for r in read_manifest(tmp_path / "out/words.jsonl")]
    words = "zero one two three four five six seven eight nine ten eleven twelve thirteen"
    words += " fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty"
    words += " oh minute minutes seconds hour hours o'clock"
    # left out: second, and, exactly, a m, p m, the time is (not the grammar's words)
    assert texts == words.split()
    assert all(r["speaker"] == "saytime" for r in records["words"])
    audio, rate = sf.read(tmp_path / "out/wav/7.wav", dtype="float32")
    assert rate == RATE and len(audio) == len(clips["7"])  # every sample, none invented
    assert np.abs(audio - clips["7"]).max() < 0.05  # mu-law's coarsest step: 1/32


def test_strings_are_the_numbers_21_to_59_and_seeded_digit_strings(tmp_path):
    make_clips(tmp_path)
    records = saytime.prepare(tmp_path, tmp_path / "a", digit_strings=30, seed=3)["strings"]
    again = saytime.prepare(tmp_path, tmp_path / "b", digit_strings=30, seed=3)["strings"]
    assert [r["text"] for r in records] == [r["text"] for r in again]
    for name in ("string_0000.wav", "string_0050.wav"):
        assert (tmp_path / "a/wav" / name).read_bytes() == (tmp_path / "b/wav" / name).read_bytes()
    numbers = [r["text"] for r in records[:36]]
    assert numbers[:2] == ["twenty one", "twenty two"] and numbers[-1] == "fifty nine"
    assert "thirty" not in numbers  # a tens word has a clip of its own: in words.jsonl
    texts = saytime.clip_texts()
    for record in read_manifest(tmp_path / "a/strings.jsonl"):
        assert record["text"] == " ".join(texts[name] for name in record["clips"].split())
    lengths = {len(r["text"].split()) for r in records[36:]}
    assert lengths <= {3, 4, 5} and len(records) == 66


def test_a_broken_clip_skips_only_what_needs_it(tmp_path, caplog):
    make_clips(tmp_path)
    whole = saytime.prepare(tmp_path, tmp_path / "out", digit_strings=30)
    (tmp_path / "7.au").write_bytes(b"")
    (tmp_path / "out/wav/someone_elses.wav").write_bytes(b"RIFF")
    kept = saytime.prepare(tmp_path, tmp_path / "out", digit_strings=30)
    assert (tmp_path / "out/wav/someone_elses.wav").exists()  # only its own files are replaced
    assert "7.au" in caplog.text and "no audio samples" in caplog.text
    assert [r["text"] for r in kept["words"]] == [
        r["text"] for r in whole["words"] if r["text"] != "seven"
    ]
    assert [r["text"] for r in kept["strings"]] == [
        r["text"] for r in whole["strings"] if "7" not in r["clips"].split()
    ]
    assert not (tmp_path / "out/wav/7.wav").exists()  # the earlier run's copy is gone


def test_missing_folder_names_the_package(tmp_path, capsys):
    assert saytime.main(["--sounds", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 1
    assert "apt-get install saytime" in capsys.readouterr().err


@pytest.mark.skipif(not saytime.DEFAULT_SOUNDS.is_dir(), reason="Debian's saytime not installed")
def test_the_installed_package(tmp_path):
    records = saytime.prepare(saytime.DEFAULT_SOUNDS, tmp_path, digit_strings=5)
    assert len(records["words"]) == 31 and len(records["strings"]) == 36 + 5
    # the clips are cut tight around the word: no silence to speak of at either end
    audio, _ = sf.read(tmp_path / "wav/1.wav", dtype="float32")
    assert 0.2 < len(audio) / RATE < 0.5
    assert np.abs(audio[:80]).max() > 0.01 and np.abs(audio[-80:]).max() > 0.001
