"""Tests for recipes/commands/average_models.py on small model files."""

import importlib.util
from pathlib import Path

import pytest
import torch

from asr.model import AcousticModel, ModelConfig
from asr.model_file import (
    ModelFileError,
    load_model_file,
    read_header,
    save_model_file,
    set_decoding,
)
from asr.text import Tokenizer

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "average_models", REPO / "recipes/commands/average_models.py"
)
average = importlib.util.module_from_spec(spec)
spec.loader.exec_module(average)
CONFIG = ModelConfig(conv_channels=16, hidden_size=16, num_layers=1)


def model_file(path: Path, seed: int, config: ModelConfig = CONFIG) -> Path:
    torch.manual_seed(seed)
    save_model_file(path, AcousticModel(config), Tokenizer(), "speech", dynamic_range_db=80.0)
    return path


def test_the_mean_of_the_weights_with_the_first_files_settings_and_decoding(tmp_path):
    first = model_file(tmp_path / "a.safetensors", seed=0)
    set_decoding(first, first, ["go", "left"], None, beam_size=8, lm_weight=0.0)
    paths = [
        first,
        model_file(tmp_path / "b.safetensors", 1),
        model_file(tmp_path / "c.safetensors", 2),
    ]
    out = tmp_path / "mean.safetensors"
    assert average.main([*map(str, paths), "-o", str(out), "--half"]) == 0
    weights = [load_model_file(p)[0].state_dict() for p in paths]
    mean, _, header = load_model_file(out)
    for name, value in mean.state_dict().items():
        expected = sum(w[name] for w in weights) / 3
        torch.testing.assert_close(value, expected, atol=2e-3, rtol=2e-3)  # float16 storage
        assert not torch.equal(value, weights[0][name]) or value.abs().max() == 0
    assert header["features"] == read_header(first)["features"]
    assert header["decoding"]["lexicon"] == ["go", "left"] and header["decoding"]["beam_size"] == 8
    assert header["info"] == {"average_of": list(map(str, paths))}
    assert out.stat().st_size < 0.6 * first.stat().st_size  # float16


def test_the_output_may_replace_the_first_input(tmp_path):
    first = model_file(tmp_path / "a.safetensors", seed=0)
    set_decoding(first, first, ["go", "left"], None, beam_size=8, lm_weight=0.0)
    second = model_file(tmp_path / "b.safetensors", seed=1)
    expected = {
        name: (value + load_model_file(second)[0].state_dict()[name]) / 2
        for name, value in load_model_file(first)[0].state_dict().items()
    }
    average.average_models([first, second], first)
    mean, _, header = load_model_file(first)
    for name, value in mean.state_dict().items():
        torch.testing.assert_close(value, expected[name])
    assert header["decoding"]["lexicon"] == ["go", "left"]


def test_other_features_are_refused(tmp_path):
    first = model_file(tmp_path / "a.safetensors", 0)
    torch.manual_seed(1)
    other = tmp_path / "b.safetensors"
    save_model_file(other, AcousticModel(CONFIG), Tokenizer(), "utterance")
    with pytest.raises(ModelFileError, match="features"):
        average.average_models([first, other], tmp_path / "m.safetensors")


def test_another_architecture_is_refused_by_name(tmp_path, capsys):
    first = model_file(tmp_path / "a.safetensors", 0)
    wider = model_file(
        tmp_path / "b.safetensors", 1, ModelConfig(conv_channels=16, hidden_size=24, num_layers=1)
    )
    assert average.main([str(first), str(wider), "-o", str(tmp_path / "m.safetensors")]) == 1
    assert f"{wider}: another architecture" in capsys.readouterr().err
    with pytest.raises(ModelFileError):
        average.average_models(
            [first, tmp_path / "missing.safetensors"], tmp_path / "m.safetensors"
        )
