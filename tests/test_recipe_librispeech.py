"""Tests for recipes/librispeech/prepare.py on a tiny fixture in the LibriSpeech layout."""

import importlib.util
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]


def load_recipe():
    path = REPO / "recipes/librispeech/prepare.py"
    spec = importlib.util.spec_from_file_location("librispeech_prepare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


libri = load_recipe()

# subset -> {utterance id: (transcript, seconds)}
FIXTURE = {
    "dev-clean": {
        "84-121123-0000": ("GO DO YOU HEAR", 0.5),
        "84-121123-0001": ("BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED", 0.75),
        "174-50561-0000": ("FORGOTTEN TOO THE NAME OF GILLIAN THE LOVELY CAPTIVE'S", 0.25),
    },
    "test-clean": {"1089-134686-0000": ("HE HOPED THERE WOULD BE STEW FOR DINNER", 1.0)},
}


def make_librispeech(root: Path) -> Path:
    for subset, utterances in FIXTURE.items():
        chapters: dict[Path, list[str]] = {}
        for utterance, (text, seconds) in utterances.items():
            speaker, chapter, _ = utterance.split("-")
            folder = root / subset / speaker / chapter
            folder.mkdir(parents=True, exist_ok=True)
            audio = 0.05 * np.random.default_rng(0).standard_normal(int(16000 * seconds))
            sf.write(folder / f"{utterance}.flac", audio, 16000, format="FLAC")
            chapters.setdefault(folder, []).append(f"{utterance} {text}")
        for folder, lines in chapters.items():
            speaker, chapter = folder.parent.name, folder.name
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "README.TXT").write_text("not a subset")
    (root / "empty-subset").mkdir()
    return root


def test_one_manifest_per_subset(tmp_path):
    root = make_librispeech(tmp_path / "LibriSpeech")
    out = tmp_path / "out"
    results = libri.prepare(root, out)
    assert sorted(results) == ["dev-clean", "test-clean"]
    dev = read_manifest(out / "dev-clean.jsonl")
    assert len(dev) == 3
    by_id = {Path(r["audio"]).stem: r for r in dev}
    first = by_id["84-121123-0000"]
    assert first["text"] == "go do you hear"
    assert first["speaker"] == "84"
    assert first["chapter"] == "121123"
    assert first["duration"] == pytest.approx(0.5)
    assert by_id["174-50561-0000"]["text"].endswith("lovely captive's")
    assert {r["speaker"] for r in dev} == {"84", "174"}
    test = read_manifest(out / "test-clean.jsonl")
    assert [r["duration"] for r in test] == pytest.approx([1.0])
    assert (out / "test-clean.jsonl").read_text().count('"audio": "../LibriSpeech/test-clean/') == 1


def test_a_tab_or_extra_spaces_separate_the_id_from_the_text(tmp_path):
    root = make_librispeech(tmp_path / "LibriSpeech")
    transcript = root / "test-clean/1089/134686/1089-134686.trans.txt"
    transcript.write_text("1089-134686-0000\tHE  HOPED THERE\tWOULD BE STEW FOR DINNER \n")
    (record,) = libri.prepare(root, tmp_path / "out", ["test-clean"])["test-clean"]
    assert record["text"] == "he hoped there would be stew for dinner"
    assert Path(record["audio"]).name == "1089-134686-0000.flac"


def test_missing_audio_is_skipped_with_a_warning(tmp_path, caplog):
    root = make_librispeech(tmp_path / "LibriSpeech")
    (root / "dev-clean/84/121123/84-121123-0001.flac").unlink()
    with caplog.at_level(logging.WARNING, logger="asr.manifest"):
        results = libri.prepare(root, tmp_path / "out", subsets=["dev-clean"])
    assert len(results["dev-clean"]) == 2
    assert any("84-121123-0001.flac" in r.getMessage() for r in caplog.records)


def test_up_to_date_and_force(tmp_path):
    root = make_librispeech(tmp_path / "LibriSpeech")
    out = tmp_path / "out"
    assert libri.prepare(root, out, ["test-clean"])["test-clean"] is not None
    assert libri.prepare(root, out, ["test-clean"])["test-clean"] is None
    assert libri.prepare(root, out, ["test-clean"], force=True)["test-clean"] is not None


def test_an_edited_transcript_or_a_new_chapter_is_not_up_to_date(tmp_path):
    import os

    root = make_librispeech(tmp_path / "LibriSpeech")
    out = tmp_path / "out"
    libri.prepare(root, out, ["dev-clean"])
    later = (out / "dev-clean.jsonl").stat().st_mtime + 10  # mtimes can be coarse
    transcript = root / "dev-clean/84/121123/84-121123.trans.txt"
    transcript.write_text(transcript.read_text().replace("GO DO YOU HEAR", "GO ON"))
    os.utime(transcript, (later, later))
    records = libri.prepare(root, out, ["dev-clean"])["dev-clean"]
    assert "go on" in [r["text"] for r in records]
    chapter = root / "dev-clean/174/999"
    chapter.mkdir()
    (chapter / "174-999.trans.txt").write_text("174-999-0000 STOP\n")
    sf.write(chapter / "174-999-0000.flac", np.zeros(8000), 16000, format="FLAC")
    os.utime(chapter, (later + 10, later + 10))
    assert len(libri.prepare(root, out, ["dev-clean"])["dev-clean"]) == 4
    shutil.rmtree(root / "dev-clean/84/121123")  # a removed chapter: its speaker folder changes
    speaker = root / "dev-clean/84"
    os.utime(speaker, (later + 20, later + 20))
    assert len(libri.prepare(root, out, ["dev-clean"])["dev-clean"]) == 2


def test_errors(tmp_path):
    root = make_librispeech(tmp_path / "LibriSpeech")
    with pytest.raises(FileNotFoundError, match="no such subset"):
        libri.prepare(root, tmp_path / "out", ["train-clean-100"])
    bad = root / "test-clean/1089/134686/1089-134686.trans.txt"
    bad.write_text("1089-134686 NO UTTERANCE NUMBER\n")
    with pytest.raises(ValueError, match=r"trans\.txt:1: bad utterance id"):
        libri.prepare(root, tmp_path / "out", ["test-clean"])
    assert libri.main(["--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
