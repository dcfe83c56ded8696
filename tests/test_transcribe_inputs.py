"""What `Recognizer.transcribe` and `DecodingOptions` accept: arrays at any rate, tensors,
iterables, inputs of other types (an error each, the rest transcribed), and the options
it refuses up front."""

import dataclasses
import gc
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import asr
from asr.audio import SAMPLE_RATE, resample
from asr.model_file import BUNDLED_MODEL
from asr.transcribe import SORT_WINDOW

COMMAND = "turn on the kitchen light"
# Said one after another in one recording: its pieces' word times are offset by sums.
SEVERAL = ("yes", "volume up", "go forward three meters", "set a timer for five minutes")
VOICE = "en-us+f4"  # a voice the bundled model never heard
SILENCE_S = 0.3  # around each recording, as a recorder gives
GAP_S = 1.0  # between the commands of one recording: a pause that cuts
# Single words the bundled model gets right in VOICE; 18 of them, so that a list cycling
# through them does not repeat with the read-ahead windows (multiples of SORT_WINDOW).
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WORDS += ("yes", "no", "stop", "go", "up", "down", "left", "right")

pytestmark = pytest.mark.skipif(not BUNDLED_MODEL.exists(), reason="no bundled model")


def espeak(text: str, folder: Path) -> tuple[np.ndarray, int]:
    """(num_samples,) float32 of espeak-ng saying `text`, at espeak-ng's own rate, Hz."""
    path = folder / f"{text.replace(' ', '_')}.raw.wav"
    subprocess.run(["espeak-ng", "-v", VOICE, "-w", str(path), text], check=True)
    audio, rate = sf.read(path, dtype="float32")
    return audio, rate


@pytest.fixture(scope="module")
def recognizer() -> asr.Recognizer:
    return asr.load_model()


@pytest.fixture(scope="module")
def command(tmp_path_factory) -> tuple[Path, np.ndarray, int]:
    """COMMAND at espeak-ng's rate (22.05 kHz), with silence around it: a float wav file,
    the same samples as an array, and their rate."""
    folder = tmp_path_factory.mktemp("inputs")
    speech, rate = espeak(COMMAND, folder)
    silence = np.zeros(int(SILENCE_S * rate), np.float32)
    samples = np.concatenate([silence, speech, silence])
    path = folder / "command.wav"
    sf.write(path, samples, rate, subtype="FLOAT")  # float: the file holds these very samples
    return path, samples, rate


@pytest.fixture(scope="module")
def several(tmp_path_factory) -> np.ndarray:
    """SEVERAL at 16 kHz, GAP_S of silence before, between and after them."""
    folder = tmp_path_factory.mktemp("several")
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    parts = [gap]
    for text in SEVERAL:
        speech, rate = espeak(text, folder)
        parts += [resample(torch.from_numpy(speech), rate).numpy(), gap]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> dict[str, np.ndarray]:
    """Each of WORDS said alone, at 16 kHz."""
    folder = tmp_path_factory.mktemp("words")
    said = {word: espeak(word, folder) for word in WORDS}
    return {w: resample(torch.from_numpy(x), rate).numpy() for w, (x, rate) in said.items()}


def test_an_array_at_another_rate_is_resampled(recognizer, command):
    path, samples, rate = command
    assert rate != SAMPLE_RATE
    from_file = recognizer.transcribe(path)[0]
    from_array = recognizer.transcribe(samples, sample_rate=rate)[0]
    assert from_array.text == from_file.text == COMMAND
    assert from_array.words == from_file.words  # the same samples, resampled the same way


@pytest.mark.parametrize("rate", [0, -16_000, 16_000.0, "16000"])
def test_sample_rate_must_be_a_positive_whole_number(recognizer, rate):
    with pytest.raises(ValueError, match="sample_rate"):
        recognizer.transcribe(np.zeros(SAMPLE_RATE, np.float32), sample_rate=rate)


def test_tensors_are_transcribed_like_arrays(recognizer, command):
    path, samples, rate = command
    at_16k = resample(torch.from_numpy(samples), rate)  # (num_samples,) float32 tensor
    assert recognizer.transcribe(at_16k)[0].text == COMMAND
    results = recognizer.transcribe(
        [torch.from_numpy(samples).double(), at_16k[None], path], sample_rate=rate
    )
    assert results[0].text == COMMAND and results[0].path is None
    assert "1-D" in results[1].error  # (channels, samples), refused as for an array
    assert results[2].text == COMMAND


def test_inputs_of_other_types_get_an_error_and_the_rest_are_transcribed(recognizer, command):
    path = command[0]
    odd = [None, b"RIFF", [0.0] * SAMPLE_RATE, 16_000]
    results = recognizer.transcribe([*odd, path])
    for item, result in zip(odd, results[:-1], strict=True):
        assert result.text == "" and result.path is None
        assert f"unsupported input of type {type(item).__name__}" in result.error
    assert results[-1].text == COMMAND and results[-1].error is None


def test_a_generator_of_inputs(recognizer, command):
    path = command[0]
    results = recognizer.transcribe(p for p in (path, str(path)))
    assert [r.text for r in results] == [COMMAND, COMMAND]


@pytest.mark.parametrize("commands", ["turn on the light", "cmds.txt"])
def test_commands_are_phrases_not_one_string(commands):
    with pytest.raises(TypeError, match=r"sequence of phrases.*read_text\(\).splitlines\(\)"):
        asr.DecodingOptions(commands=commands)


@pytest.mark.parametrize("missing", ["lexicon", "lm"])
def test_a_missing_lexicon_or_lm_file_is_named(recognizer, command, tmp_path, missing):
    words = tmp_path / "words.txt"
    words.write_text(COMMAND + "\n")
    files = {"lexicon": str(words), "lm": recognizer.default_options.lm}
    files[missing] = str(tmp_path / "nope.arpa")
    options = asr.DecodingOptions(beam_size=8, **files)
    what = {"lexicon": "lexicon", "lm": "LM"}[missing]
    with pytest.raises(FileNotFoundError, match=f"nope.arpa: no such {what} file"):
        recognizer.transcribe(command[0], options=options)


@pytest.mark.parametrize("beam_size", [0, -1])
def test_beam_size_below_one_is_refused(beam_size):
    with pytest.raises(ValueError, match="beam_size"):
        asr.DecodingOptions(beam_size=beam_size)


def test_word_times_are_whole_milliseconds(recognizer, several):
    result = recognizer.transcribe(several)[0]
    assert result.text == " ".join(SEVERAL)
    # Pieces' times are offsets plus frame times: float sums such as 6.779999999999999.
    times = [t for w in result.words for t in (w.start, w.end)]
    assert times == [round(t, 3) for t in times]


def test_default_options_outlive_their_recognizer():
    options = dataclasses.replace(asr.load_model().default_options, lm_weight=0.5)
    gc.collect()  # the Recognizer is gone; its decoding files must not be
    assert Path(options.lexicon).is_file() and Path(options.lm).is_file()
    assert options.decoder is not None


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_below_one_is_refused(recognizer, batch_size):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        recognizer.transcribe(np.zeros(SAMPLE_RATE, np.float32), batch_size=batch_size)


@pytest.mark.parametrize(
    "empty",
    [np.zeros(0, np.float32), torch.zeros(0)],
    ids=["array", "tensor"],
)
def test_an_empty_input_gets_an_error_and_the_rest_are_transcribed(recognizer, command, empty):
    results = recognizer.transcribe([empty, command[0]])
    assert results[0].text == "" and results[0].words == [] and results[0].path is None
    assert "non-empty 1-D array" in results[0].error and "(0,)" in results[0].error
    assert results[1].text == COMMAND and results[1].error is None


def test_inputs_over_several_read_ahead_windows_come_back_complete_in_order(recognizer, words):
    batch_size = 2
    count = 2 * batch_size * SORT_WINDOW + 3  # two whole windows and part of a third
    spoken = [WORDS[i % len(WORDS)] for i in range(count)]
    inputs = [words[word] for word in spoken]  # of different lengths: each window is sorted
    results = recognizer.transcribe(inputs, batch_size=batch_size)
    assert [r.text for r in results] == spoken
