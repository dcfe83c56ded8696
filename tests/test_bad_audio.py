"""Bad and unusual audio: valid variants give the original's transcript, broken files a clear
error naming the file and the reason, the rest of a batch goes on, long audio stays bounded."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import asr
from asr.audio import CHUNK_SECONDS, SAMPLE_RATE, AudioError, audio_info, load_audio, resample

REPO = Path(__file__).resolve().parents[1]
TEXT = "go left"


@pytest.fixture(scope="module")
def recognizer(trained_model):
    return asr.load_model(trained_model)


@pytest.fixture(scope="module")
def speech(tiny_corpus) -> np.ndarray:
    return load_audio(tiny_corpus / "wav" / "en-us_go_left.wav")


def at_rate(x: np.ndarray, rate: int) -> np.ndarray:
    return resample(torch.from_numpy(x), SAMPLE_RATE, rate).numpy()


def streamed(path: Path, x: np.ndarray, format: str, sizes: dict[bytes, bytes]) -> None:
    """A file as a writer streaming to a pipe leaves it: chunk sizes it could not know."""
    sf.write(path, x, SAMPLE_RATE, format=format)
    data = bytearray(path.read_bytes())
    for chunk, size in sizes.items():
        at = data.index(chunk) + 4
        data[at : at + 4] = size
    path.write_bytes(bytes(data))


FFMPEG_PIPE_WAV = {b"RIFF": b"\xff" * 4, b"data": b"\xff" * 4}
SOX_PIPE_WAV = {
    b"RIFF": (0x7FFFF024).to_bytes(4, "little"),
    b"data": (0x7FFFF000).to_bytes(4, "little"),
}
SOX_PIPE_AIFF = {b"FORM": (0x7F000030).to_bytes(4, "big"), b"SSND": (0x7F000008).to_bytes(4, "big")}


# name -> (file name, writer of that file from 16 kHz mono float samples)
VALID = {
    "stereo": ("a.wav", lambda p, x: sf.write(p, np.stack([x, 0.5 * x], 1), SAMPLE_RATE)),
    "6-channel": ("a.wav", lambda p, x: sf.write(p, np.stack([x] * 6, 1), SAMPLE_RATE)),
    "22.05 kHz": ("a.wav", lambda p, x: sf.write(p, at_rate(x, 22050), 22050)),
    "44.1 kHz": ("a.wav", lambda p, x: sf.write(p, at_rate(x, 44100), 44100)),
    "48 kHz": ("a.wav", lambda p, x: sf.write(p, at_rate(x, 48000), 48000)),
    "8-bit": ("a.wav", lambda p, x: sf.write(p, x, SAMPLE_RATE, subtype="PCM_U8")),
    "24-bit": ("a.wav", lambda p, x: sf.write(p, x, SAMPLE_RATE, subtype="PCM_24")),
    "32-bit float": ("a.wav", lambda p, x: sf.write(p, x, SAMPLE_RATE, subtype="FLOAT")),
    "flac": ("a.flac", lambda p, x: sf.write(p, x, SAMPLE_RATE)),
    "ogg vorbis": ("a.ogg", lambda p, x: sf.write(p, x, SAMPLE_RATE)),
    "clipped": ("a.wav", lambda p, x: sf.write(p, np.clip(8 * x, -1, 1), SAMPLE_RATE)),
    "wav streamed by ffmpeg, size unknown": (
        "a.wav",
        lambda p, x: streamed(p, x, "WAV", FFMPEG_PIPE_WAV),
    ),
    "wav streamed by sox": ("a.wav", lambda p, x: streamed(p, x, "WAV", SOX_PIPE_WAV)),
    "aiff streamed by sox": ("a.aiff", lambda p, x: streamed(p, x, "AIFF", SOX_PIPE_AIFF)),
    # 16-bit sample values stored as floats without scaling: the features do not care.
    "float at 16-bit scale": ("a.wav", lambda p, x: sf.write(p, 32767 * x, SAMPLE_RATE, "FLOAT")),
}

# Valid, but noisier than the tiny model's training data (8-bit: ~48 dB quantisation noise;
# hard clipping at 8x gain). The tiny model, trained on 8 clean utterances, is no judge of
# noise robustness (the bundled model is: tests/test_bundled_model.py), so for these the
# file must give what the same samples give as an array: reading adds nothing.
DEGRADED = {"8-bit", "clipped"}


@pytest.mark.parametrize("name", VALID)
def test_valid_variant_gives_the_original_transcript(recognizer, speech, tmp_path, name):
    filename, write = VALID[name]
    path = tmp_path / filename
    write(path, speech)
    assert recognizer.transcribe(speech)[0].text == TEXT  # the original
    result = recognizer.transcribe(path)[0]
    assert result.error is None
    if name in DEGRADED:
        samples, rate = sf.read(path, dtype="float32")
        assert rate == SAMPLE_RATE and samples.ndim == 1
        assert result.text == recognizer.transcribe(samples)[0].text
    else:
        assert result.text == TEXT


def test_8khz_file_reads_like_the_band_limited_original(recognizer, speech, tmp_path):
    # 8 kHz audio has nothing above 4 kHz, where this tiny model hears the final "t": the
    # file must give what the same band-limited signal gives as an array (reading and
    # resampling add nothing), not necessarily the wideband transcript.
    path = tmp_path / "a.wav"
    sf.write(path, at_rate(speech, 8000), 8000, subtype="FLOAT")
    narrow = resample(torch.from_numpy(at_rate(speech, 8000)), 8000, SAMPLE_RATE).numpy()
    expected = recognizer.transcribe(narrow)[0].text
    result = recognizer.transcribe(path)[0]
    assert result.error is None and result.text == expected
    assert expected.startswith("go le")  # most of the words survive


def nan_wav(path: Path, value: float) -> None:
    x = np.zeros(SAMPLE_RATE, dtype=np.float32)
    x[123] = value
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")


def good_bytes(tmp_path: Path, format: str = "WAV") -> bytes:
    """A second of silence, 16-bit, in `format`."""
    sf.write(tmp_path / "good", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, format=format)
    return (tmp_path / "good").read_bytes()


def good_wav_bytes(tmp_path: Path) -> bytes:
    return good_bytes(tmp_path)


# name -> (writer, reason expected in the error)
INVALID = {
    "empty file": (lambda p, d: p.write_bytes(b""), "the file is empty"),
    "zero-length audio": (
        lambda p, d: sf.write(p, np.zeros(0, dtype=np.float32), SAMPLE_RATE),
        "no audio samples",
    ),
    "text named .wav": (lambda p, d: p.write_text("hello, I am not audio\n"), "cannot read"),
    "truncated header": (lambda p, d: p.write_bytes(good_wav_bytes(d)[:20]), "cannot read"),
    # libsndfile reads what is there: half a command was transcribed as if whole.
    "wav cut short": (lambda p, d: p.write_bytes(good_wav_bytes(d)[:20_000]), "cut short"),
    "aiff cut short": (lambda p, d: p.write_bytes(good_bytes(d, "AIFF")[:20_000]), "cut short"),
    "NaN sample": (lambda p, d: nan_wav(p, np.nan), "NaN or infinite"),
    "inf sample": (lambda p, d: nan_wav(p, np.inf), "NaN or infinite"),
    "missing file": (lambda p, d: None, "no such file"),
}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_file_gives_an_error_naming_file_and_reason(recognizer, tmp_path, name):
    write, reason = INVALID[name]
    path = tmp_path / "bad.wav"
    write(path, tmp_path)
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    result = recognizer.transcribe(path)[0]
    assert result.text == "" and str(path) in result.error and reason in result.error


def test_a_folder_given_to_the_api_is_named_as_one(recognizer, tmp_path):
    """The CLI searches folders; the Python API takes files and says what it was given."""
    folder = tmp_path / "recordings.wav"
    folder.mkdir()
    result = recognizer.transcribe(folder)[0]
    assert result.text == "" and f"{folder}: cannot read audio (a folder" in result.error


def test_headerless_mu_law_reads_every_sample_from_the_first(tmp_path):
    # libsndfile recognises headerless 8 kHz mu-law (Debian's saytime ships its words so)
    # and leaves the file past the bytes it examined; with fewer samples left than it
    # counts, soundfile's `blocks` filled the rest with whatever memory held.
    x = (0.3 * np.random.default_rng(0).standard_normal(4000)).clip(-1, 1).astype(np.float32)
    raw = io.BytesIO()
    sf.write(raw, x, 8000, format="RAW", subtype="ULAW")
    path = tmp_path / "seven.au"
    path.write_bytes(raw.getvalue())
    assert (sf.info(path).format, sf.info(path).frames) == ("RAW", 4000)  # a guess: no header
    loaded = load_audio(path, sample_rate=8000)
    assert len(loaded) == len(x)
    assert np.abs(loaded - x).max() < 0.05  # mu-law's coarsest step is 1/32 of full scale


def test_raw_samples_are_refused_by_name_and_reason(recognizer, speech, tmp_path):
    path = tmp_path / "a.raw"
    sf.write(path, speech, SAMPLE_RATE, format="RAW", subtype="PCM_16")
    for read in (load_audio, audio_info):
        with pytest.raises(AudioError, match="headerless raw samples") as info:
            read(path)
        assert str(path) in str(info.value)
    results = recognizer.transcribe([path, speech])
    assert results[0].text == "" and str(path) in results[0].error
    assert (results[1].text, results[1].error) == (TEXT, None)


def test_float_audio_too_loud_for_the_features_is_an_error_and_the_batch_goes_on(
    recognizer, speech, tmp_path
):
    # Squared, 1e30 overflows float32: the model's output is NaN, which must not be decoded
    # (flashlight returns no hypothesis for it) or reported as silence (greedy's "").
    loud = tmp_path / "loud.wav"
    sf.write(loud, 1e30 * speech, SAMPLE_RATE, subtype="FLOAT")
    # A long input with one loud piece: its other pieces' words are no result either.
    tail = np.concatenate([np.tile(speech, int(35 * SAMPLE_RATE / len(speech))), 1e30 * speech])
    (tmp_path / "words.txt").write_text("go\nleft\nstop\n")
    decodings = {
        "greedy": asr.DecodingOptions(),
        "beam search": asr.DecodingOptions(beam_size=4),
        "lexicon": asr.DecodingOptions(beam_size=4, lexicon=str(tmp_path / "words.txt")),
        "commands": asr.DecodingOptions(commands=("go left", "stop")),
    }
    for name, options in decodings.items():
        results = recognizer.transcribe([loud, speech, tail], options=options)
        assert results[1].error is None, name
        assert [r.text for r in results] == ["", TEXT, ""]
        assert results[0].error.startswith(f"{loud}: the model's output is not finite")
        assert "e+29; float audio should lie within [-1, 1])" in results[0].error  # its peak
        assert results[2].error.startswith("<array>: the model's output is not finite")


def test_cli_batch_goes_on_past_every_bad_file_and_exits_1(trained_model, speech, tmp_path):
    files = []
    for i, (write, _) in enumerate(INVALID.values()):
        files.append(tmp_path / f"bad{i}.wav")
        write(files[-1], tmp_path)
    for name in ("stereo", "flac"):
        filename, write = VALID[name]
        files.append(tmp_path / f"{name}-{filename}")
        write(files[-1], speech)
    command = [sys.executable, "-m", "asr.cli", "transcribe", "--model", str(trained_model)]
    result = subprocess.run(
        [*command, "--format", "jsonl", *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == list(map(str, files))
    bad, good = records[: len(INVALID)], records[len(INVALID) :]
    assert all(r["text"] == "" and r["path"] in r["error"] for r in bad)
    assert [(r["text"], "error" in r) for r in good] == [(TEXT, False)] * 2
    assert f"{len(INVALID)} of {len(files)} files failed" in result.stderr


def test_pure_silence_gives_empty_text_without_error(recognizer, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(2 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    result = recognizer.transcribe(path)[0]
    assert (result.text, result.error, result.words) == ("", None, [])
    commands = asr.DecodingOptions(commands=("go left", "stop"))
    result = recognizer.transcribe(path, options=commands)[0]
    assert (result.text, result.rejected) == ("", True)


def test_ten_minute_file_is_decoded_in_bounded_chunks(recognizer, speech, tmp_path, monkeypatch):
    # Densely spoken, like the training clips: long stretches of digital silence would shift
    # the per-chunk feature normalisation (see the silence test). A pause every ~1.1 s
    # means the 5 s cut search always finds one.
    gap = np.zeros(SAMPLE_RATE // 4, dtype=np.float32)
    period = len(speech) + len(gap)
    repeats = 600 * SAMPLE_RATE // period
    path = tmp_path / "long.wav"
    sf.write(path, np.tile(np.concatenate([speech, gap]), repeats), SAMPLE_RATE)
    assert sf.info(path).duration > 590
    longest = []
    log_probs = recognizer.log_probs

    def spy(audio):
        longest.append(max(len(a) for a in audio))
        return log_probs(audio)

    monkeypatch.setattr(recognizer, "log_probs", spy)
    result = recognizer.transcribe(path, batch_size=4)[0]
    assert result.error is None
    assert max(longest) <= CHUNK_SECONDS * SAMPLE_RATE  # the model never saw more at once
    assert len(longest) >= 600 / CHUNK_SECONDS / 4  # >= 20 pieces, in batches of 4
    # Word times count from the file's start across pieces: increasing, inside the file.
    # (The text itself is not checked: the tiny model, trained on 1 s clips, does not
    # transcribe 30 s stretches correctly; see docs/reliability.md.)
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and starts[0] >= 0 and result.words[-1].end <= 600.5
    assert starts[-1] > 570  # the last piece's words are placed at the end of the file


def test_transcripts_and_paths_are_data_not_code(trained_model, speech, tmp_path):
    marker = tmp_path / "marker"
    nasty = tmp_path / '{0} $(touch marker) "q".wav'
    sf.write(nasty, speech, SAMPLE_RATE)
    manifest = tmp_path / "m.jsonl"
    text = '"{0} $(rm -rf /) \n"'
    record = {"audio": nasty.name, "text": text, "duration": 1.0, "id": "{0}%s$(x)"}
    manifest.write_text(json.dumps(record) + "\n")
    cli = [sys.executable, "-m", "asr.cli"]
    out = subprocess.run(
        [*cli, "transcribe", "--model", str(trained_model), "--format", "jsonl", str(nasty)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) | {"words": None} == json.loads(out.stdout) | {
        "path": str(nasty),
        "text": TEXT,
        "words": None,
    }
    evaluate = [*cli, "evaluate", str(manifest), "--model", str(trained_model)]
    subprocess.run(
        [*evaluate, "--out-dir", str(tmp_path / "eval")],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    recogs = (tmp_path / "eval" / "recogs").read_text()
    assert recogs == f"{{0}}%s$(x)\tref=zero rm rf\thyp={TEXT}\n"
    assert not marker.exists() and not (REPO / "marker").exists()
