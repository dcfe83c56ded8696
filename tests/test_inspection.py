"""`asr inspect` (figure and JSON) on a small random model, and `asr plot-training`."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import asr
from asr.audio import load_audio
from asr.cli import main
from asr.features import N_MELS, num_frames
from asr.inspection import inspect_audio
from asr.model import AcousticModel, ModelConfig
from asr.model_file import save_model_file
from asr.text import Tokenizer

CONFIG = ModelConfig(subsampling=4, conv_channels=16, hidden_size=8, num_layers=2, dropout=0.0)
MIN_FIGURE_BYTES = 20_000  # a blank or one-panel figure is far smaller
METRICS_CSV = """\
epoch,step,train_loss,val_cer,val_loss,val_wer
0,4,9.5,,,
0,9,4.25,,,
0,9,,0.9,3.5,1.0
1,14,2.0,,,
1,19,1.0,,,
1,19,,0.2,1.5,0.4
"""


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    save_model_file(path, AcousticModel(CONFIG), Tokenizer(), "utterance")
    return path


@pytest.fixture
def wav(tiny_corpus: Path) -> Path:
    return tiny_corpus / "wav" / "en-us_go_left.wav"


def test_json_arrays_share_the_models_time_axis(random_model, wav, tmp_path, capsys):
    assert main(["inspect", str(wav), "--model", str(random_model), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    samples = len(load_audio(wav))
    feature_frames = int(num_frames(samples))
    frames = int(AcousticModel(CONFIG).output_lengths(torch.tensor([feature_frames]))[0])
    assert out["num_frames"] == frames and out["frame_shift"] == 0.04
    assert np.array(out["features"]).shape == (feature_frames, N_MELS)
    posteriors = np.array(out["posteriors"])
    assert posteriors.shape == (frames, len(out["vocabulary"]))
    np.testing.assert_allclose(posteriors.sum(axis=1), 1.0, atol=1e-3)
    assert [(g["layer"], g["direction"]) for g in out["gates"]] == [
        (0, "forward"),
        (0, "backward"),
        (1, "forward"),
        (1, "backward"),
    ]
    for entry in out["gates"]:
        for gate in ("input", "forget", "output"):
            values = np.array(entry[gate])
            assert values.shape == (frames,) and ((values > 0) & (values < 1)).all()
    assert out["duration"] == pytest.approx(samples / 16_000, abs=1e-3)
    # The recomputed network transcribes exactly as the model does.
    assert out["text"] == asr.load_model(random_model).transcribe(wav)[0].text
    assert " ".join(w["word"] for w in out["words"]) == out["text"]


def test_figure_is_written(random_model, wav, tmp_path):
    out = tmp_path / "inspect.png"
    assert main(["inspect", str(wav), "--model", str(random_model), "-o", str(out)]) == 0
    assert out.stat().st_size > MIN_FIGURE_BYTES
    image = imread(out)
    assert image.shape[0] > image.shape[1] / 2  # a tall stack of panels, not one strip
    assert image[..., :3].std() > 0.05  # something was drawn


def test_gate_means_differ_between_directions(random_model, wav):
    inspection = inspect_audio(asr.load_model(random_model), wav)
    layers, directions, gates, frames = inspection.gates.shape
    assert (layers, directions, gates) == (2, 2, 3) and frames == len(inspection.log_probs)
    # Forward and backward are separate weights: identical curves would mean one was reused.
    assert not np.allclose(inspection.gates[:, 0], inspection.gates[:, 1])


def test_unreadable_audio_fails_cleanly(random_model, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    assert main(["inspect", str(bad), "--model", str(random_model)]) == 1
    assert "bad.wav" in capsys.readouterr().err


def test_plot_training_from_metrics_csv(tmp_path):
    run = tmp_path / "run" / "csv" / "version_0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(METRICS_CSV)
    out = tmp_path / "curves.png"
    assert main(["plot-training", str(tmp_path / "run"), "-o", str(out)]) == 0
    assert out.stat().st_size > MIN_FIGURE_BYTES / 2
    assert imread(out)[..., :3].std() > 0.05


def test_read_metrics_skips_empty_cells(tmp_path):
    from asr.plots import read_metrics

    path = tmp_path / "metrics.csv"
    path.write_text(METRICS_CSV)
    metrics = read_metrics(path)
    np.testing.assert_array_equal(metrics["train_loss"][0], [4, 9, 14, 19])
    np.testing.assert_array_equal(metrics["val_wer"][1], [1.0, 0.4])
    assert set(metrics) == {"train_loss", "val_loss", "val_wer", "val_cer"}


def test_a_file_that_is_no_metrics_csv_is_named(tmp_path):
    """A wav given to plot-training was "'utf-8' codec can't decode byte 0xc0"."""
    from asr.plots import read_metrics

    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF\xc0\xff\x00WAVE")
    with pytest.raises(ValueError, match=r"a\.wav: not a metrics\.csv \(not UTF-8 text\)"):
        read_metrics(path)


def test_resumed_run_curves_are_merged_in_step_order(tmp_path):
    from asr.plots import find_metrics, read_metrics

    header = "epoch,step,train_loss,val_wer\n"
    first, second = tmp_path / "csv/version_0", tmp_path / "csv/version_1"
    first.mkdir(parents=True), second.mkdir(parents=True)
    (first / "metrics.csv").write_text(header + "0,9,5.0,\n0,9,,0.9\n")
    (second / "metrics.csv").write_text(header + "1,19,3.0,\n1,19,,0.5\n2,29,2.0,\n")
    os.utime(first / "metrics.csv", (1, 1))  # older
    paths = find_metrics(tmp_path)
    assert paths == [first / "metrics.csv", second / "metrics.csv"]
    metrics = read_metrics(paths)
    np.testing.assert_array_equal(metrics["train_loss"][0], [9, 19, 29])
    np.testing.assert_array_equal(metrics["train_loss"][1], [5.0, 3.0, 2.0])
    np.testing.assert_array_equal(metrics["val_wer"][1], [0.9, 0.5])


def test_steps_trained_again_after_a_resume_replace_the_killed_ones(tmp_path):
    """Killed at step 24 with last.ckpt at step 10: steps 10-24 are trained again, and the
    killed run's rows for them are not curves of this training."""
    from asr.plots import read_metrics

    header = "epoch,step,train_loss,val_wer\n"
    killed, resumed = tmp_path / "a.csv", tmp_path / "b.csv"
    killed.write_text(header + "0,9,5.0,\n0,9,,0.9\n1,14,4.0,\n1,19,3.9,\n1,19,,0.8\n2,24,3.5,\n")
    resumed.write_text(header + "1,14,4.2,\n1,19,3.7,\n1,19,,0.7\n")
    metrics = read_metrics([killed, resumed])
    np.testing.assert_array_equal(metrics["train_loss"][0], [9, 14, 19])
    np.testing.assert_array_equal(metrics["train_loss"][1], [5.0, 4.2, 3.7])
    np.testing.assert_array_equal(metrics["val_wer"][1], [0.9, 0.7])
    # `asr validate` into the same folder logs at step 0 and trains nothing: no resume.
    validated = tmp_path / "c.csv"
    validated.write_text(header + "0,0,,0.65\n")
    metrics = read_metrics([killed, resumed, validated])
    np.testing.assert_array_equal(metrics["train_loss"][0], [9, 14, 19])
    np.testing.assert_array_equal(metrics["val_wer"][1], [0.65, 0.9, 0.7])


def test_plot_training_without_metrics_fails_cleanly(tmp_path, capsys):
    assert main(["plot-training", str(tmp_path), "-o", str(tmp_path / "c.png")]) == 1
    assert "metrics.csv" in capsys.readouterr().err
