"""Tests for asr.manifest: reading, writing, building manifests from folders and tables."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.manifest import (
    main,
    manifest_from_folder,
    manifest_from_table,
    read_manifest,
    write_manifest,
)


def write_tone(path: Path, seconds: float, rate: int = 16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    return path


def test_write_then_read_round_trip_with_relative_paths(tmp_path):
    audio = write_tone(tmp_path / "audio" / "a.wav", 0.5)
    manifest = tmp_path / "lists" / "all.jsonl"
    records = [{"audio": str(audio), "text": "hello", "duration": 0.5, "speaker": "x"}]
    write_manifest(manifest, records)

    line = json.loads(manifest.read_text().splitlines()[0])
    assert line["audio"] == "../audio/a.wav"  # relative to the manifest's folder
    back = read_manifest(manifest)
    assert back == [{"audio": str(audio), "text": "hello", "duration": 0.5, "speaker": "x"}]
    assert [p.name for p in manifest.parent.iterdir()] == ["all.jsonl"]  # no temp file left


def test_read_manifest_skips_blank_lines(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": "a.wav", "text": "yes", "duration": 1}\n\n  \n')
    records = read_manifest(manifest)
    assert len(records) == 1
    assert records[0]["audio"] == str(tmp_path / "a.wav")
    assert isinstance(records[0]["duration"], float)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('["a.wav", "yes", 1.0]', "expected a JSON object"),
        ('{"audio": "a.wav", "duration": 1.0}', "missing key"),
        ('{"audio": "a.wav", "text": "yes", "duration": -1}', "duration"),
        ('{"audio": "a.wav", "text": 3, "duration": 1}', "'text' must be a string"),
    ],
)
def test_read_manifest_names_file_and_line(tmp_path, bad_line, reason):
    manifest = tmp_path / "bad.jsonl"
    good = '{"audio": "a.wav", "text": "yes", "duration": 1.0}'
    manifest.write_text(f"{good}\n{good}\n{bad_line}\n")
    with pytest.raises(ValueError, match=rf"bad\.jsonl:3: .*{reason}"):
        read_manifest(manifest)


def test_write_manifest_rejects_bad_record_and_keeps_old_file(tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [{"audio": "a.wav", "text": "yes", "duration": 1.0}])
    before = manifest.read_text()
    with pytest.raises(ValueError, match="record 1"):
        write_manifest(
            manifest,
            [{"audio": "a.wav", "text": "yes", "duration": 1.0}, {"audio": "b.wav", "text": "x"}],
        )
    assert manifest.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def make_folder(root: Path) -> Path:
    write_tone(root / "a.wav", 0.5)
    (root / "a.txt").write_text("Hello, World 2!\n")
    write_tone(root / "sub" / "d.flac", 0.25, rate=8000)
    (root / "sub" / "d.txt").write_text("Don't stop")
    write_tone(root / "b.wav", 0.5)  # no transcript
    (root / "c.wav").write_bytes(b"this is not audio")
    (root / "c.txt").write_text("broken")
    write_tone(root / "e.wav", 0.5)
    (root / "e.txt").write_text("?!")  # nothing left after normalisation
    write_tone(root / "f.wav", 0.5)
    (root / "f.txt").write_bytes("café".encode("latin-1"))  # not UTF-8
    return root


def test_manifest_from_folder_pairs_transcripts_and_skips_with_warnings(tmp_path, caplog):
    folder = make_folder(tmp_path / "corpus")
    (folder / "orphan.txt").write_text("its audio was never copied")
    with caplog.at_level(logging.INFO, logger="asr.manifest"):
        records = manifest_from_folder(folder)
    by_name = {Path(r["audio"]).name: r for r in records}
    assert sorted(by_name) == ["a.wav", "d.flac"]
    assert by_name["a.wav"]["text"] == "hello world two"
    assert by_name["a.wav"]["duration"] == pytest.approx(0.5)
    assert by_name["d.flac"]["text"] == "don't stop"
    assert by_name["d.flac"]["duration"] == pytest.approx(0.25)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("b.wav" in w and "no transcript" in w for w in warnings)
    assert any("c.wav" in w and "cannot read audio" in w for w in warnings)
    assert any("e.wav" in w and "empty" in w for w in warnings)
    assert any(f"{folder / 'f.txt'} is not UTF-8 text" in w for w in warnings)
    assert any("2 utterances" in w and "4 skipped" in w for w in warnings)
    assert any(
        f"transcripts without audio beside them: 1 ({folder / 'orphan.txt'})" in w for w in warnings
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.csv", 'path,text\naudio/a.wav,"Turn on, the light"\naudio/b.wav,Go 5\n'),
        ("list.tsv", "audio/a.wav\tTurn on, the light\naudio/b.wav\tGo 5\n"),
        ("excel.csv", '\ufeffpath,text\naudio/a.wav,"Turn on, the light"\naudio/b.wav,Go 5\n'),
    ],
)
def test_manifest_from_table(tmp_path, name, content, caplog):
    write_tone(tmp_path / "audio" / "a.wav", 0.5)
    write_tone(tmp_path / "audio" / "b.wav", 1.0)
    table = tmp_path / name
    table.write_text(content)
    with caplog.at_level(logging.WARNING, logger="asr.manifest"):
        records = manifest_from_table(table)
    assert not caplog.records  # Excel's byte-order mark does not hide the header row
    assert [r["text"] for r in records] == ["turn on the light", "go five"]
    assert [r["duration"] for r in records] == pytest.approx([0.5, 1.0])
    assert records[0]["audio"] == str(tmp_path / "audio" / "a.wav")


def test_manifest_from_table_rejects_unknown_extension(tmp_path):
    table = tmp_path / "list.txt"
    table.write_text("a.wav,yes\n")
    with pytest.raises(ValueError, match="unknown table type"):
        manifest_from_table(table)


def test_main_writes_manifest_and_reports(tmp_path, capsys):
    folder = make_folder(tmp_path / "corpus")
    out = tmp_path / "out" / "all.jsonl"
    assert main([str(folder), "-o", str(out)]) == 0
    assert len(read_manifest(out)) == 2
    assert "wrote 2 utterances" in capsys.readouterr().out


def test_main_fails_on_empty_source_and_has_help(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "-o", str(tmp_path / "x.jsonl")]) == 1
    assert not (tmp_path / "x.jsonl").exists()
    assert main([str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.jsonl")]) == 1
    assert "nowhere: no such file or folder" in capsys.readouterr().err
    make_folder(tmp_path / "corpus")
    assert main([str(tmp_path / "corpus"), "-o", str(tmp_path / "empty")]) == 1
    assert "is a folder; give a .jsonl file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "same-stem .txt" in capsys.readouterr().out


def test_asr_manifest_takes_options_first_and_gives_its_help(tmp_path, capsys):
    """Through the `asr` command: options before the folder, and -h, reach its own parser."""
    from asr.cli import main as cli_main

    folder = make_folder(tmp_path / "corpus")
    out = tmp_path / "all.jsonl"
    assert cli_main(["manifest", "-o", str(out), str(folder)]) == 0
    assert len(read_manifest(out)) == 2
    for flag in ("-h", "--help"):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["manifest", flag])
        assert exit_info.value.code == 0
        assert "usage: asr manifest" in capsys.readouterr().out
