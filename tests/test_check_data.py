"""`asr check-data`: every kind of bad manifest line is reported, and the exit status says so."""

import json

import numpy as np
import pytest
import soundfile as sf

from asr.check_data import check_manifest, main


def write_lines(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_every_problem_is_reported_with_its_line(tiny_corpus, tmp_path, capsys):
    good = str(tiny_corpus / "wav" / "en-us_yes.wav")
    duration = sf.info(good).duration
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(800, dtype=np.float32), 16_000)  # 0.05 s
    fake = tmp_path / "fake.wav"
    fake.write_text("not audio")
    manifest = write_lines(
        tmp_path / "m.jsonl",
        [
            {"audio": good, "text": "yes", "duration": duration},  # 1: fine
            "{not json",  # 2
            {"audio": good, "text": "yes"},  # 3: no duration
            {"audio": str(tmp_path / "missing.wav"), "text": "no", "duration": 1.0},  # 4
            {"audio": str(fake), "text": "no", "duration": 1.0},  # 5
            {"audio": str(short), "text": "stop stop stop", "duration": 0.05},  # 6: too short
            {"audio": good, "text": "Yes, 2 лампы!", "duration": duration},  # 7: text; dup of 1
            {"audio": str(short), "text": "", "duration": 3.0},  # 8: empty, duration, dup
        ],
    )
    problems, count = check_manifest(manifest)
    found = {(p.line, p.kind) for p in problems}
    assert count == 8
    assert found == {
        (2, "bad-record"),
        (3, "bad-record"),
        (4, "unreadable"),
        (5, "unreadable"),
        (6, "too-short"),
        (7, "text"),
        (7, "duplicate"),
        (8, "empty-text"),
        (8, "duration"),
        (8, "duplicate"),
    }
    missing = next(p for p in problems if p.line == 4)
    assert missing.detail == "cannot read audio (no such file)"  # not libsndfile's "System error"
    text = next(p for p in problems if p.kind == "text")
    assert "'л'" in text.detail and '"yes two"' in text.detail  # what normalisation does
    # Text that normalisation only spells or tidies is fine: training normalises it too.
    record = {"audio": good, "text": "Yes, 2!", "duration": duration}
    assert check_manifest(write_lines(tmp_path / "fine.jsonl", [record]))[0] == []
    assert main([str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "missing.wav" in out and "8 records checked" in out and "2 bad-record" in out


def test_subsampling_decides_what_is_too_short(tmp_path):
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(1600, dtype=np.float32), 16_000)  # 0.1 s: 11 feature frames
    # "see" needs 4 CTC frames (s, e, blank, e): 11 frames / 2 = 6 is enough, / 4 = 3 is not.
    manifest = write_lines(
        tmp_path / "m.jsonl", [{"audio": "a.wav", "text": "see", "duration": 0.1}]
    )
    assert check_manifest(manifest, subsampling=2)[0] == []
    assert [p.kind for p in check_manifest(manifest, subsampling=4)[0]] == ["too-short"]
    assert main([str(manifest), "--subsampling", "2"]) == 0
    assert main([str(manifest), "--subsampling", "4"]) == 1
    assert main([str(manifest)]) == 1  # the recipes' 4 by default


def test_read_audio_finds_nan_samples(tmp_path):
    audio = tmp_path / "nan.wav"
    samples = np.zeros(16_000, dtype=np.float32)
    samples[100] = np.nan
    sf.write(audio, samples, 16_000, subtype="FLOAT")
    manifest = write_lines(
        tmp_path / "m.jsonl", [{"audio": "nan.wav", "text": "no", "duration": 1}]
    )
    assert check_manifest(manifest)[0] == []  # the header alone looks fine
    problems = check_manifest(manifest, read_audio=True)[0]
    assert [(p.kind, "NaN" in p.detail) for p in problems] == [("unreadable", True)]


def test_cli_subcommand_exit_status(tiny_corpus, tmp_path):
    from asr.cli import main as cli_main

    assert cli_main(["check-data", str(tiny_corpus / "manifest.jsonl")]) == 0
    # Options before the manifest and -h reach check-data's own parser through `asr`.
    assert cli_main(["check-data", "--read-audio", str(tiny_corpus / "manifest.jsonl")]) == 0
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["check-data", "-h"])
    assert exit_info.value.code == 0
    empty = tmp_path / "empty.jsonl"  # not in the corpus every test shares
    empty.write_text("")
    assert cli_main(["check-data", str(empty)]) == 1  # nothing to train on is a problem
