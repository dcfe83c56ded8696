"""Tests for recipes/asterisk/prepare.py on a tiny fixture in the Debian packages' layout."""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
RATE = 8000  # Hz, as the real prompts

spec = importlib.util.spec_from_file_location(
    "asterisk_prepare", REPO / "recipes/asterisk/prepare.py"
)
asterisk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(asterisk)

TRANSCRIPTS = """; comment: not a prompt
digits/0: zero
digits/1: one
digits/2: two
digits/3: three
digits/4: four
digits/5: five
digits/6: six
digits/7: seven
digits/8: eight
digits/9: nine
digits/20: twenty
digits/30: thirty
digits/40: forty
digits/50: fifty
digits/60: sixty
digits/70: seventy
digits/80: eighty
digits/90: ninety
digits/oh: oh
digits/a-m: A.M.
letters/a: a
for: for
minutes: Minutes.
vm-goodbye: Goodbye!
missing: seven
spy-nbs: N B S
ascending-2tone: [ascending tones]
vm-press: Press 1, or 2.
silence/1: (1 second of silence)
vm-leave: Leave a message. (tone plays)
"""


def tone(seconds: float, frequency: float) -> np.ndarray:
    """A tone of `seconds` between 0.1 s of near-silence on each side."""
    t = np.arange(int(seconds * RATE)) / RATE
    quiet = np.full(int(0.1 * RATE), 1e-4, np.float32)
    return np.concatenate([quiet, 0.5 * np.sin(2 * np.pi * frequency * t), quiet])


def make_prompts(root: Path) -> tuple[Path, Path]:
    sounds = root / "sounds"
    for i, line in enumerate(TRANSCRIPTS.splitlines()):
        name = line.partition(":")[0]
        if line.startswith(";") or name == "missing":
            continue
        (sounds / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(sounds / f"{name}.wav", tone(0.3 + 0.01 * i, 200 + 20 * i), RATE, "PCM_16")
    transcripts = root / "core-sounds-en.txt.gz"
    with gzip.open(transcripts, "wt") as f:
        f.write(TRANSCRIPTS)
    return sounds, transcripts


def test_prompts_are_the_fair_command_words(tmp_path, caplog):
    sounds, transcripts = make_prompts(tmp_path)
    records = asterisk.prepare(sounds, transcripts, tmp_path / "out", strings=0)
    assert "missing.wav: cannot read audio (no such file)" in caplog.text
    texts = sorted(r["text"] for r in read_manifest(tmp_path / "out/prompts.jsonl"))
    # kept: the digits, tens, oh and minutes; left out: the letter a, "for" (four), words
    # outside the grammar (goodbye, a m) and a prompt whose audio is missing (a warning)
    words = "eight fifty five forty four minutes nine ninety oh one seven seventy six sixty"
    assert texts == sorted([*words.split(), "eighty", "thirty", "three", "twenty", "two", "zero"])
    assert all(r["speaker"] == "allison" for r in records["prompts"])
    assert records["strings"] == []


def test_training_prompts_are_every_other_plain_prompt(tmp_path):
    sounds, transcripts = make_prompts(tmp_path)
    records = asterisk.prepare(sounds, transcripts, tmp_path / "out", strings=0)
    # not the test prompts nor anything in digits/ or letters/ (the strings' source), not a
    # sound description or spelt-out letters, and a transcriber's (note) is not what she says;
    # "for" is fine to train on, only ambiguous alone
    texts = sorted(r["text"] for r in records["train"])
    assert texts == ["for", "goodbye", "leave a message", "press one or two"]
    audio = {Path(r["audio"]).name for r in read_manifest(tmp_path / "out/train.jsonl")}
    assert audio == {"for.wav", "vm-goodbye.wav", "vm-leave.wav", "vm-press.wav"}


def test_strings_join_her_prompts_deterministically(tmp_path):
    sounds, transcripts = make_prompts(tmp_path)
    records = asterisk.prepare(sounds, transcripts, tmp_path / "a", strings=60, seed=3)["strings"]
    again = asterisk.prepare(sounds, transcripts, tmp_path / "b", strings=60, seed=3)["strings"]
    assert [r["text"] for r in records] == [r["text"] for r in again]
    first = tmp_path / "a/wav/string_0000.wav"
    assert first.read_bytes() == (tmp_path / "b/wav/string_0000.wav").read_bytes()
    lengths = {len(r["text"].split()) for r in records}
    assert {1, 2, 3, 5} <= lengths and max(lengths) <= 5  # numbers 21-99, 3-5 digit strings
    for record in read_manifest(tmp_path / "a/strings.jsonl"):
        names = record["prompts"].split()
        audio, rate = sf.read(record["audio"])
        assert rate == RATE
        # each prompt cut to its tone (+ 2 x 30 ms), plus the silences between and around
        tones = sum(
            sf.info(sounds / f"{n}.wav").frames - 2 * 0.1 * RATE + 0.06 * RATE for n in names
        )
        silences = (
            (2 * 0.1 + (len(names) - 1) * 0.05) * RATE,
            (2 * 0.3 + (len(names) - 1) * 0.25) * RATE,
        )
        assert tones + silences[0] - 2 * 80 <= len(audio) <= tones + silences[1] + 2 * 80
        said = dict(line.split(": ") for line in TRANSCRIPTS.splitlines()[1:])
        assert record["text"] == " ".join(said[n] for n in names)  # "twenty one": 20 + 1


def test_speech_part_cuts_the_quiet_edges():
    audio = tone(0.5, 300).astype(np.float32)
    cut = asterisk.speech_part(audio, RATE)
    assert abs(len(cut) - (0.5 + 0.06) * RATE) <= 80  # the tone and 30 ms margins, +- a frame
    with pytest.raises(ValueError, match="shorter than 10 ms"):
        asterisk.speech_part(audio[:79], RATE)


def test_a_broken_prompt_skips_only_the_strings_that_need_it(tmp_path, caplog):
    sounds, transcripts = make_prompts(tmp_path)
    whole = asterisk.prepare(sounds, transcripts, tmp_path / "out", strings=40)["strings"]
    (sounds / "digits/7.wav").write_bytes(b"not a wav file")
    kept = asterisk.prepare(sounds, transcripts, tmp_path / "out", strings=40)["strings"]
    assert "digits/7.wav" in caplog.text and "skipping the strings" in caplog.text
    assert [r["text"] for r in kept] == [
        r["text"] for r in whole if "digits/7" not in r["prompts"].split()
    ]
    assert len(kept) < len(whole)
    on_disk = sorted(p.name for p in (tmp_path / "out/wav").glob("*.wav"))
    assert on_disk == sorted(Path(r["audio"]).name for r in kept)  # no stale string left
    asterisk.prepare(sounds, transcripts, tmp_path / "out", strings=5)
    assert len(list((tmp_path / "out/wav").glob("*.wav"))) <= 5  # a smaller run removes the rest
    (sounds / "digits/8.wav").unlink()
    asterisk.prepare(sounds, transcripts, tmp_path / "out", strings=40)
    assert "digits/8.wav: cannot read audio (no such file)" in caplog.text


def test_bad_transcripts_and_rates_are_named(tmp_path):
    sounds, transcripts = make_prompts(tmp_path)
    twice = tmp_path / "twice.txt"
    twice.write_text("digits/1: one\ndigits/1: one\n")
    with pytest.raises(ValueError, match=r"twice.txt:2: prompt 'digits/1' is listed twice"):
        asterisk.read_transcripts(twice)
    sf.write(sounds / "digits/20.wav", tone(0.3, 300), 16000, "PCM_16")  # not 8 kHz
    with pytest.raises(ValueError, match="differ in sample rate"):
        asterisk.prepare(sounds, transcripts, tmp_path / "out", strings=100)


def test_missing_package_names_the_packages(tmp_path):
    with pytest.raises(FileNotFoundError, match="asterisk-core-sounds-en-wav"):
        asterisk.prepare(tmp_path / "nowhere", tmp_path / "none.txt.gz", tmp_path / "out")
    assert asterisk.main(["--sounds", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 1


@pytest.mark.skipif(
    not (asterisk.DEFAULT_SOUNDS.is_dir() and asterisk.DEFAULT_TRANSCRIPTS.is_file()),
    reason="Debian's prompts or their transcripts are not installed",
)
def test_the_installed_prompts(tmp_path):
    records = asterisk.prepare(
        asterisk.DEFAULT_SOUNDS, asterisk.DEFAULT_TRANSCRIPTS, tmp_path, strings=5
    )
    texts = {r["text"] for r in records["prompts"]}
    assert {"zero", "nine", "ninety", "hundred", "minutes"} <= texts and "for" not in texts
    tested = {r["audio"] for r in records["prompts"]}
    train = records["train"]
    assert len(train) > 300 and not tested & {r["audio"] for r in train}
    assert not any("/digits/" in r["audio"] for r in train)
