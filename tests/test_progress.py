"""Progress bars: on stderr with rate and ETA for many files; off for pipes and --quiet."""

import sys
from pathlib import Path

import pytest
import torch

import asr
from asr.cli import main
from asr.model import AcousticModel, ModelConfig
from asr.model_file import save_model_file
from asr.text import Tokenizer

CONFIG = ModelConfig(subsampling=4, conv_channels=8, hidden_size=4, num_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    save_model_file(path, AcousticModel(CONFIG), Tokenizer(), "utterance")
    return path


def test_api_progress_bar_counts_files(model_path, tiny_corpus, capsys):
    files = sorted((tiny_corpus / "wav").glob("*.wav"))
    asr.load_model(model_path).transcribe(files, batch_size=3, progress=True)
    err = capsys.readouterr().err
    assert "8/8" in err and "file/s" in err  # count, rate
    assert "<00:00" in err  # tqdm's elapsed<remaining (ETA) field


def test_api_is_silent_by_default(model_path, tiny_corpus, capsys):
    asr.load_model(model_path).transcribe(sorted((tiny_corpus / "wav").glob("*.wav")))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("tty", "quiet", "shown"), [(True, False, True), (True, True, False), (False, False, False)]
)
def test_cli_progress_only_on_a_terminal(
    model_path, tiny_corpus, capsys, monkeypatch, tty, quiet, shown
):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    args = ["transcribe", "--model", str(model_path), str(tiny_corpus / "wav")]
    assert main(args + (["--quiet"] if quiet else [])) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 8  # results on stdout, never mixed with the bar
    assert ("8/8" in err) == shown
