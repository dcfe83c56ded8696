"""`asr transcribe` / `asr evaluate` options that cannot work are refused up front (exit 2,
the reason named), and a folder without audio is said so; found by a new-user walkthrough."""

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.cli import main


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "tone.wav"
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SAMPLE_RATE)
    return path


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--batch-size", "0"], "--batch-size: 0: must be at least 1"),
        (["--beam-size", "-2"], "--beam-size: -2: must be at least 1"),
        (["--threshold", "2"], "--threshold: 2: must lie in [0, 1]"),
        (["--min-pause", "-1"], "--min-pause: -1: must be >= 0 seconds"),
    ],
)
def test_out_of_range_values_are_refused(wav, capsys, options, reason):
    for command in ("transcribe", "evaluate"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, str(wav), *options])
        assert exit_info.value.code == 2
        assert reason in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--lm", "lm.arpa"], "--lm needs --lexicon"),
        (["--greedy", "--beam-size", "4"], "--greedy cannot be combined"),
        (["--commands", "COMMANDS", "--min-pause", "0.3"], "--min-pause does not go with"),
        (["--commands", "EMPTY"], "no phrases in the command list"),
        # Were silently ignored (found by a walkthrough of the other commands).
        (["--threshold", "0.3"], "--threshold is the rejection threshold of --commands"),
        (["--commands", "COMMANDS", "--greedy"], "--commands scores its phrases exactly"),
        (["--commands", "COMMANDS", "--lm-weight", "1"], "--commands scores its phrases exactly"),
    ],
)
def test_options_that_do_not_go_together_exit_2(wav, tmp_path, capsys, options, reason):
    (tmp_path / "COMMANDS").write_text("turn on the light\n")
    (tmp_path / "EMPTY").write_text("\n")
    options = [str(tmp_path / o) if o in ("COMMANDS", "EMPTY") else o for o in options]
    assert main(["transcribe", str(wav), *options]) == 2
    err = capsys.readouterr().err
    assert "asr transcribe: error: " in err and reason in err
    assert "Traceback" not in err


def test_a_command_list_decodes_whole_with_min_pause_0(wav, tmp_path, monkeypatch):
    from asr.transcribe import Recognizer

    seen = {}
    transcribe = Recognizer.transcribe

    def spy(self, inputs, **kwargs):
        seen.update(kwargs)
        return transcribe(self, inputs, **kwargs)

    monkeypatch.setattr(Recognizer, "transcribe", spy)
    (tmp_path / "COMMANDS").write_text("turn on the light\n")
    argv = ["transcribe", str(wav), "--commands", str(tmp_path / "COMMANDS"), "--min-pause", "0"]
    assert main(argv) == 0
    assert seen["min_pause"] == 0 and seen["options"].commands == ("turn on the light",)


def test_a_folder_without_audio_is_named(wav, tmp_path, capsys):
    empty = tmp_path / "nothing here"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio\n")
    assert main(["transcribe", str(wav), str(empty), "--greedy", "-q"]) == 0
    captured = capsys.readouterr()
    assert f"warning: no audio files in {empty}" in captured.err
    assert str(wav) in captured.out


def test_fit_with_a_missing_manifest_is_one_line(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the recipe's relative paths
    missing = tmp_path / "nowhere.jsonl"
    argv = ["fit", "--config", "recipes/tiny/config.yaml", "--data.train_manifest", str(missing)]
    argv += ["--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.logger", "false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "asr fit: error:" in err and str(missing) in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_a_mistyped_training_option_is_named_without_the_usage(tmp_path, capsys, where):
    """jsonargparse printed the whole usage (90 lines) before the error."""
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "recipes/tiny/config.yaml"
    if where == "command line":
        argv = ["fit", "--config", str(config), "--model.hiden_size", "8"]
    else:
        typo = tmp_path / "typo.yaml"
        typo.write_text(config.read_text().replace("hidden_size:", "hiden_size:"))
        argv = ["fit", "--config", str(typo)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("asr fit: error:") and "hiden_size" in err[0]
    assert err[1:] == ["(options: asr fit --help)"]


def test_set_decoding_names_a_missing_lm(tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("yes\nno\n")
    missing = tmp_path / "lm.arpa"
    argv = ["set-decoding", "bundled", "-o", str(tmp_path / "m.safetensors")]
    assert main([*argv, "--lexicon", str(words), "--lm", str(missing)]) == 2
    assert f"asr set-decoding: error: {missing}: no such LM file" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_set_decoding_usage_errors_and_a_file_that_is_no_lm(tmp_path, capsys):
    """Usage mistakes exited 1 through SystemExit; a text file given as the LM printed
    KenLM's message with its build path over two lines."""
    words = tmp_path / "words.txt"
    words.write_text("yes\nno\n")
    out = ["-o", str(tmp_path / "m.safetensors")]
    usage = [
        (["bundled", "--lm-weight", "0.4"], "the bundled model is not changed in place"),
        (["bundled", *out, "--lm", str(words)], "--lm needs --lexicon"),
        (["bundled", *out, "--none", "--lexicon", str(words)], "--none stores no decoding"),
    ]
    for argv, reason in usage:
        assert main(["set-decoding", *argv]) == 2, argv
        assert f"asr set-decoding: error: {reason}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["set-decoding", "bundled", *out, "--lexicon", str(words), "--lm", str(words)])
    assert str(exit_info.value) == f"asr set-decoding: {words}: not a usable ARPA LM " + (
        "(FormatLoadException)"
    )
    assert not (tmp_path / "m.safetensors").exists()


def test_paths_of_the_wrong_kind_are_one_line(wav, tmp_path, capsys):
    """A folder given for a file and a file for a folder were IsADirectoryError and
    FileExistsError tracebacks; a text file given to export an IndexError."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"audio": "{wav}", "text": "go"}}\n')
    runs = [
        (["evaluate", str(tmp_path)], f"{tmp_path}: is a directory"),
        (["evaluate", str(manifest), "--out-dir", str(wav)], f"{wav}: file exists"),
        (["transcribe", str(wav), "--commands", str(tmp_path)], f"{tmp_path}: is a directory"),
        (["export", str(manifest), "-o", str(tmp_path / "x.safetensors")], "not a Lightning"),
    ]
    for argv, reason in runs:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"asr {argv[0]}: error: ") and reason in err, err
        assert "Traceback" not in err


def test_a_checkpoint_given_as_a_model_says_how_to_make_one(wav, tmp_path, capsys):
    import torch

    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, checkpoint)
    assert main(["transcribe", "--model", str(checkpoint), str(wav)]) == 2
    assert "asr export CKPT -o model.safetensors" in capsys.readouterr().err


def test_build_lm_order_below_2_is_a_usage_error(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": "a.wav", "text": "go"}\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["build-lm", str(manifest), "-o", str(tmp_path / "lm.arpa"), "--order", "1"])
    assert exit_info.value.code == 2
    assert "--order: 1: must be at least 2" in capsys.readouterr().err


def test_figures_go_into_folders_that_do_not_exist_yet(wav, tmp_path):
    figure = tmp_path / "new" / "folder" / "inspect.png"
    assert main(["inspect", str(wav), "-o", str(figure)]) == 0
    assert figure.stat().st_size > 0


def test_a_file_that_fails_goes_to_stderr_and_the_others_are_transcribed(wav, tmp_path, capsys):
    import asr

    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n")
    expected = asr.load_model().transcribe(wav)[0].text
    assert main(["transcribe", str(bad), str(wav), "-q"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{wav}\t{expected}"]  # the bad file is not printed as text
    assert f"asr transcribe: error: {bad}: " in err
    assert "1 of 2 files failed" in err and "Traceback" not in err


def cli_decoding_options(options, default):
    """The DecodingOptions `asr transcribe` would use with these options."""
    from asr.cli import _decoding_options, build_parser

    return _decoding_options(build_parser().parse_args(["transcribe", "a.wav", *options]), default)


def test_lm_weight_and_word_score_adjust_the_models_own_decoding():
    from dataclasses import replace

    from asr.transcribe import DecodingOptions

    own = DecodingOptions(beam_size=8, lexicon="own.txt", lm="own.arpa", lm_weight=0.2)
    options = cli_decoding_options(["--lm-weight", "0.9", "--word-score", "-1.5"], own)
    assert options == replace(own, lm_weight=0.9, word_score=-1.5)


@pytest.mark.parametrize(
    ("search", "beam_size"),
    [
        (["--lexicon", "words.txt"], "default"),
        (["--lexicon", "words.txt", "--lm", "lm.arpa"], "default"),
        (["--lexicon", "words.txt", "--beam-size", "4"], 4),
    ],
)
def test_a_lexicon_replaces_the_models_decoding_with_the_default_beam(search, beam_size):
    from asr.beam_search import DEFAULT_BEAM_SIZE
    from asr.transcribe import DecodingOptions

    own = DecodingOptions(beam_size=8, lexicon="own.txt", lm="own.arpa")
    options = cli_decoding_options([*search, "--lm-weight", "0.9", "--word-score", "-1.5"], own)
    assert options.beam_size == (DEFAULT_BEAM_SIZE if beam_size == "default" else beam_size)
    assert options.lexicon == "words.txt"
    assert options.lm == ("lm.arpa" if "--lm" in search else None)  # not the model's own
    assert (options.lm_weight, options.word_score) == (0.9, -1.5)


def test_paths_without_any_audio_exit_1(tmp_path, capsys):
    empty = tmp_path / "nothing here"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio\n")
    assert main(["transcribe", str(empty), "-q"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["asr transcribe: no audio files found in the given paths"]


def test_export_of_a_checkpoint_without_settings_is_one_line(tmp_path, capsys):
    import torch

    checkpoint, output = tmp_path / "last.ckpt", tmp_path / "m.safetensors"
    torch.save({"state_dict": {}}, checkpoint)  # no "hyper_parameters"
    assert main(["export", str(checkpoint), "-o", str(output)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"asr export: error: {checkpoint}: ")
    assert "without the model's settings" in err[0]
    assert not output.exists()


@pytest.mark.parametrize("problem", ["missing", "not UTF-8"])
def test_check_data_names_a_manifest_it_cannot_read(tmp_path, capsys, problem):
    manifest = tmp_path / "m.jsonl"
    if problem == "not UTF-8":
        manifest.write_bytes('{"audio": "a.wav", "text": "café"}\n'.encode("latin-1"))
    assert main(["check-data", str(manifest)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"asr check-data: {manifest}: cannot read the manifest")
    assert len(err.splitlines()) == 1
