"""Tests for recipes/fsdd/prepare.py: speaker-disjoint splits, idempotence, download."""

import importlib.util
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
SHARED_FSDD = REPO.parent / "shared" / "data" / "fsdd"


def load_recipe():
    spec = importlib.util.spec_from_file_location("fsdd_prepare", REPO / "recipes/fsdd/prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fsdd = load_recipe()

SPEAKERS = ("anna", "bert", "carl")
DIGITS = (0, 1, 2)
INDICES = range(7)


def make_fsdd(root: Path, indices: Iterable[int] = INDICES) -> Path:
    recordings = root / "recordings"
    recordings.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for speaker in SPEAKERS:
        for digit in DIGITS:
            for index in indices:
                audio = 0.1 * rng.standard_normal(800 + 80 * digit)  # 8 kHz, 0.1 s + 10 ms/digit
                sf.write(recordings / f"{digit}_{speaker}_{index}.wav", audio, 8000)
    (recordings / "notes.wav").write_bytes(b"")  # not FSDD-named: ignored
    return root


def test_split_by_speaker(tmp_path):
    source = make_fsdd(tmp_path / "fsdd")
    out = tmp_path / "out"
    counts = fsdd.prepare(source, out, test_speaker="carl")
    manifests = {split: read_manifest(out / f"{split}.jsonl") for split in fsdd.SPLITS}

    assert {split: len(records) for split, records in manifests.items()} == {
        "train": 2 * 3 * 2,  # two speakers, three digits, indices 5 and 6
        "dev": 2 * 3 * 5,  # indices 0-4
        "test": 3 * 7,  # everything carl said
    }
    assert {r["speaker"] for r in manifests["test"]} == {"carl"}
    assert {r["speaker"] for r in manifests["train"] + manifests["dev"]} == {"anna", "bert"}
    assert sum(counts["test"].values()) == 21
    for record in manifests["dev"]:
        digit, _, index = Path(record["audio"]).stem.split("_")
        assert int(index) < 5
        assert record["text"] == ["zero", "one", "two"][int(digit)]
        assert record["duration"] == pytest.approx((800 + 80 * int(digit)) / 8000)
        assert Path(record["audio"]).is_file()
    raw = (out / "dev.jsonl").read_text().splitlines()[0]
    assert '"audio": "../fsdd/recordings/' in raw  # stored relative to the manifest


def test_adapt_split_takes_the_test_speaker_from_index_25_and_keeps_his_test_fixed(tmp_path):
    source = make_fsdd(tmp_path / "fsdd", indices=(0, 5, 24, 25, 26, 40))

    def splits(out, adapt):
        fsdd.prepare(source, out, test_speaker="carl", adapt=adapt)
        names = [*fsdd.SPLITS, "adapt"] if adapt else fsdd.SPLITS
        return {
            n: {Path(r["audio"]).stem for r in read_manifest(out / f"{n}.jsonl")} for n in names
        }

    two, one = splits(tmp_path / "two", 2), splits(tmp_path / "one", 1)
    assert two["adapt"] == {f"{d}_carl_{i}" for d in DIGITS for i in (25, 26)}
    assert one["adapt"] == {f"{d}_carl_25" for d in DIGITS}
    assert two["test"] == one["test"] == {f"{d}_carl_{i}" for d in DIGITS for i in (0, 5, 24)}
    assert two["train"] == one["train"] and not any("carl" in u for u in two["train"])

    plain = splits(tmp_path / "two", 0)  # the same folder without --adapt: no stale adapt split
    assert not (tmp_path / "two" / "adapt.jsonl").exists()
    assert len(plain["test"]) == 3 * 6
    with pytest.raises(ValueError, match="adapt must be"):
        fsdd.prepare(source, tmp_path / "bad", test_speaker="carl", adapt=26)
    assert not two["adapt"] & two["test"]


def test_adapt_split_is_rewritten_when_k_changes_or_a_file_is_missing(tmp_path, capsys):
    source = make_fsdd(tmp_path / "fsdd", indices=(0, 25, 26))
    out = tmp_path / "out"
    argv = ["--source", str(source), "--out", str(out), "--test-speaker", "carl"]
    assert fsdd.main([*argv, "--adapt", "2"]) == 0
    assert len(read_manifest(out / "adapt.jsonl")) == 6
    assert fsdd.prepare(source, out, test_speaker="carl", adapt=2) is None  # up to date
    assert fsdd.main([*argv, "--adapt", "1"]) == 0
    assert len(read_manifest(out / "adapt.jsonl")) == 3
    (out / "adapt.jsonl").unlink()
    assert fsdd.prepare(source, out, test_speaker="carl", adapt=1) is not None
    assert len(read_manifest(out / "adapt.jsonl")) == 3
    capsys.readouterr()
    for bad in ("26", "-1"):
        assert fsdd.main([*argv, "--adapt", bad]) == 1
        assert "adapt must be 0-25" in capsys.readouterr().err


def test_idempotent_unless_changed_or_forced(tmp_path):
    source = make_fsdd(tmp_path / "fsdd")
    out = tmp_path / "out"
    assert fsdd.prepare(source, out, test_speaker="carl") is not None
    assert fsdd.prepare(source, out, test_speaker="carl") is None  # up to date
    assert fsdd.prepare(source, out, test_speaker="carl", force=True) is not None
    assert fsdd.prepare(source, out, test_speaker="anna") is not None  # other options
    assert {r["speaker"] for r in read_manifest(out / "test.jsonl")} == {"anna"}
    assert fsdd.prepare(source, out, test_speaker="anna") is None
    newer = (out / "test.jsonl").stat().st_mtime + 10
    os.utime(source / "recordings" / "0_anna_0.wav", (newer, newer))  # audio changed
    assert fsdd.prepare(source, out, test_speaker="anna") is not None


def test_unknown_test_speaker_is_an_error(tmp_path):
    source = make_fsdd(tmp_path / "fsdd")
    with pytest.raises(ValueError, match="zoe"):
        fsdd.prepare(source, tmp_path / "out", test_speaker="zoe")
    assert (
        fsdd.main(["--source", str(source), "--out", str(tmp_path / "o"), "--test-speaker", "zoe"])
        == 1
    )


def test_download_option_fetches_and_extracts(tmp_path):
    source = make_fsdd(tmp_path / "fsdd")
    archive = tmp_path / "upstream.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "recordings", arcname="free-spoken-digit-dataset-1.0/recordings")
    out = tmp_path / "out"
    code = fsdd.main(["--download", archive.as_uri(), "--out", str(out), "--test-speaker", "bert"])
    assert code == 0
    assert len(read_manifest(out / "test.jsonl")) == 21
    bad = fsdd.main(
        ["--download", archive.as_uri(), "--sha256", "0" * 64, "--out", str(tmp_path / "o2")]
    )
    assert bad == 1


def test_unsafe_download_is_refused(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.wav")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"RIFF"))
    assert fsdd.main(["--download", archive.as_uri(), "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out" / "escaped.wav").exists()


@pytest.mark.skipif(not SHARED_FSDD.is_dir(), reason="shared FSDD copy not present")
def test_real_fsdd_counts(tmp_path):
    counts = fsdd.prepare(SHARED_FSDD, tmp_path, test_speaker="nicolas")
    assert {split: sum(c.values()) for split, c in counts.items()} == {
        "train": 1350,
        "dev": 150,
        "test": 500,
    }
    assert set(counts["test"]) == {"nicolas"}
    assert set(counts["train"]) == set(counts["dev"]) == {"george", "jackson", "lucas"}


def test_clip_edges_names_a_bad_manifest_line(tmp_path, capsys):
    path = REPO / "recipes/fsdd/clip_edges.py"
    spec = importlib.util.spec_from_file_location("clip_edges", path)
    clip_edges = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(clip_edges)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text('{"audio": "a.wav", "text": "one"}\n{"text": "two"}\n', encoding="utf-8")
    for options in (["--report"], ["--out", str(tmp_path / "out")]):
        assert clip_edges.main([str(manifest), *options]) == 1
        assert "train.jsonl:2: missing key(s) audio" in capsys.readouterr().err
