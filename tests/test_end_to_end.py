"""Train a tiny model through `asr fit`, export it, transcribe through the CLI and the API."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import asr
from asr.audio import load_audio
from asr.model_file import BUNDLED_MODEL, load_weights_only_checkpoint

REPO = Path(__file__).resolve().parents[1]


def asr_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asr.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=check,
    )


def asr_in_process(capsys, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`asr_cli` in this process: the same `main`, without a Python start-up (seconds) each."""
    from asr.cli import main

    message = ""
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's usage errors, sys.exit("message")
        code = exit_.code or 0
        if isinstance(code, str):  # Python prints it and exits with status 1
            message, code = code + "\n", 1
    captured = capsys.readouterr()
    if check:
        assert code == 0, captured.err + message
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err + message)


def test_cli_transcribes_training_utterances(trained_model, tiny_corpus):
    result = asr_cli(
        "transcribe", "--model", str(trained_model), "--format", "jsonl", str(tiny_corpus / "wav")
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    expected = {
        json.loads(line)["audio"]: json.loads(line)["text"]
        for line in (tiny_corpus / "manifest.jsonl").read_text().splitlines()
    }
    assert len(records) == len(expected) == 8
    got = {str(Path(r["path"]).relative_to(tiny_corpus)): r["text"] for r in records}
    assert got == expected


def test_cli_evaluate_writes_recogs_errs_and_summary(trained_model, tiny_corpus, tmp_path):
    result = asr_cli(
        "evaluate",
        str(tiny_corpus / "manifest.jsonl"),
        "--model",
        str(trained_model),
        "--out-dir",
        str(tmp_path),
    )
    assert "WER 0.00% [0 / 10, 0 ins, 0 del, 0 sub]" in result.stdout
    assert len((tmp_path / "recogs").read_text().splitlines()) == 8
    assert (tmp_path / "errs").read_text().startswith("WER 0.00%")


def test_bad_file_does_not_stop_the_batch(trained_model, tiny_corpus, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....not really a wav")
    good = tiny_corpus / "wav" / "en-us_yes.wav"
    result = asr_cli(
        "transcribe",
        "--model",
        str(trained_model),
        "--format",
        "jsonl",
        str(bad),
        str(good),
        check=False,
    )
    assert result.returncode == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["path"] == str(bad) and "broken.wav" in first["error"] and first["text"] == ""
    assert (second["path"], second["text"], "error" in second) == (str(good), "yes", False)
    assert "broken.wav" in result.stderr


def test_python_api(trained_model, tiny_corpus):
    model = asr.load_model(trained_model)
    wav = tiny_corpus / "wav" / "en-gb_go_left.wav"
    array = load_audio(tiny_corpus / "wav" / "en-gb_stop.wav")
    results = model.transcribe([wav, array, str(wav)], batch_size=2)
    assert [r.text for r in results] == ["go left", "stop", "go left"]
    assert results[0].path == str(wav) and results[1].path is None
    # A batch of one and a batch of several agree: padding does not change the result.
    assert model.transcribe(wav)[0].text == "go left"
    bad = model.transcribe([np.array([np.nan, 0.0], dtype=np.float32)])[0]
    assert bad.text == "" and "NaN" in bad.error


def test_export_from_checkpoint(trained_model, tmp_path):
    checkpoints = sorted(trained_model.parent.rglob("last.ckpt"))
    assert checkpoints, "fit should keep a last.ckpt for resuming"
    out = tmp_path / "again.safetensors"
    asr_cli("export", str(checkpoints[0]), "-o", str(out))
    exported = asr.load_model(out)
    assert exported.header["model"] == asr.load_model(trained_model).header["model"]
    # The file holds the checkpoint's trained weights, not freshly initialised ones.
    state = load_weights_only_checkpoint(checkpoints[0])["state_dict"]
    trained = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    weights = exported.model.state_dict()
    assert weights.keys() == trained.keys()
    for name, value in weights.items():
        torch.testing.assert_close(value, trained[name])


def test_cli_beam_search_and_word_timestamps(trained_model, tiny_corpus):
    wav = tiny_corpus / "wav" / "en-gb_go_left.wav"
    result = asr_cli(
        "transcribe",
        "--model",
        str(trained_model),
        "--format",
        "jsonl",
        "--beam-size",
        "8",
        str(wav),
    )
    record = json.loads(result.stdout)
    assert record["text"] == "go left"
    assert [w["word"] for w in record["words"]] == ["go", "left"]
    first, second = record["words"]
    assert 0 <= first["start"] <= first["end"] <= second["start"] <= second["end"]
    assert second["end"] <= len(load_audio(wav)) / 16_000 + 0.05
    assert all(0 <= w["confidence"] <= 1 for w in record["words"])


def test_cli_closed_set_commands_reject_out_of_list_speech(trained_model, tiny_corpus, tmp_path):
    commands = tmp_path / "commands.txt"
    commands.write_text("Go left\nstop\nturn on the kitchen light\n")
    result = asr_cli(
        "transcribe",
        "--model",
        str(trained_model),
        "--format",
        "jsonl",
        "--commands",
        str(commands),
        str(tiny_corpus / "wav"),
    )
    records = {Path(r["path"]).stem: r for r in map(json.loads, result.stdout.splitlines())}
    for voice in ("en-us", "en-gb"):
        assert records[f"{voice}_go_left"]["text"] == "go left"
        assert records[f"{voice}_stop"]["rejected"] is False
        for outside in ("yes", "no"):  # spoken, but not in the list
            record = records[f"{voice}_{outside}"]
            assert (record["rejected"], record["text"], record["words"]) == (True, "", [])


def test_fit_logs_tensorboard_and_csv_under_the_root_dir(trained_model, tmp_path):
    root = trained_model.parent  # the run's --trainer.default_root_dir
    assert list((root / "lightning_logs").rglob("events.out.tfevents.*"))
    (metrics,) = (root / "csv").rglob("metrics.csv")
    header = metrics.read_text().splitlines()[0].split(",")
    assert {"step", "train_loss", "val_loss", "val_wer"} <= set(header)
    curves = tmp_path / "curves.png"
    asr_cli("plot-training", str(root), "-o", str(curves))
    assert curves.stat().st_size > 10_000


def test_fit_without_a_terminal_prints_a_line_per_validated_epoch(trained_model):
    log = (trained_model.parent / "fit.log").read_text()
    lines = [line for line in log.splitlines() if line.startswith("epoch ")]
    # recipes/tiny/config.yaml: 160 epochs, validation every 40.
    assert [line.split(",")[0] for line in lines] == [f"epoch {e}/160" for e in (40, 80, 120, 160)]
    assert all("val_wer" in line and "s an epoch" in line for line in lines)
    assert " to go" in lines[0] and " to go" not in lines[-1]


def test_cli_missing_or_corrupt_model_is_a_clear_error(tiny_corpus, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 100)
    wav = str(next((tiny_corpus / "wav").iterdir()))
    for model in (tmp_path / "missing.safetensors", corrupt):
        result = asr_cli("transcribe", "--model", str(model), wav, check=False)
        assert result.returncode == 2
        assert f"asr transcribe: error: {model}" in result.stderr
        assert "Traceback" not in result.stderr


def test_set_decoding_stores_a_default_lexicon_beam_search(
    trained_model, tiny_corpus, tmp_path, capsys
):
    words = tmp_path / "words.txt"
    words.write_text("go\nleft\nstop\nyes\n")  # "no" is spoken in the corpus but left out
    lm = tmp_path / "lm.arpa"
    asr_in_process(capsys, "build-lm", str(tiny_corpus / "manifest.jsonl"), "-o", str(lm))
    model = tmp_path / "with_decoding.safetensors"
    result = asr_in_process(
        capsys, "set-decoding", str(trained_model), "-o", str(model), "--lexicon", str(words),
        "--lm", str(lm), "--lm-weight", "0.3",
    )  # fmt: skip
    assert "beam search (beam 32) over 4 words and a 0 KiB LM by default" in result.stdout
    recognizer = asr.load_model(model)
    options = recognizer.default_options
    assert (options.beam_size, options.lm_weight, options.word_score) == (32, 0.3, 0.0)
    assert Path(options.lexicon).read_text().split() == ["go", "left", "stop", "yes"]
    assert Path(options.lm).read_text() == lm.read_text()
    said_no = tiny_corpus / "wav" / "en-us_no.wav"
    by_default = recognizer.transcribe([said_no, tiny_corpus / "wav" / "en-us_go_left.wav"])
    assert by_default[0].text != "no" and set(by_default[0].text.split()) <= {
        "go",
        "left",
        "stop",
        "yes",
    }
    assert by_default[1].text == "go left"
    assert asr_in_process(
        capsys, "transcribe", "--model", str(model), "--greedy", str(said_no)
    ).stdout.endswith("\tno\n")
    # Same weights; the original file is untouched and still greedy.
    assert asr.load_model(trained_model).default_options.lexicon is None
    for ours, theirs in zip(
        recognizer.model.state_dict().values(),
        asr.load_model(trained_model).model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(ours, theirs)
    asr_in_process(capsys, "set-decoding", str(model), "--none")
    assert asr.load_model(model).default_options.lexicon is None


def test_set_decoding_copies_another_models_decoding(trained_model, tiny_corpus, tmp_path, capsys):
    """A fine-tune of a model gets the same word list and LM with --copy-from."""
    words, lm = tmp_path / "words.txt", tmp_path / "lm.arpa"
    words.write_text("go\nleft\nstop\n")
    asr_in_process(capsys, "build-lm", str(tiny_corpus / "manifest.jsonl"), "-o", str(lm))
    source, copy = tmp_path / "source.safetensors", tmp_path / "copy.safetensors"
    asr_in_process(capsys, "set-decoding", str(trained_model), "-o", str(source),
                   "--lexicon", str(words), "--lm", str(lm), "--lm-weight", "0.3",
                   "--word-score", "-1")  # fmt: skip
    result = asr_in_process(capsys, "set-decoding", str(trained_model), "-o", str(copy),
                            "--copy-from", str(source), "--word-score", "2")  # fmt: skip
    assert "beam search over 3 words by default" in result.stdout
    recognizer = asr.load_model(copy)  # its decoding files live as long as it does
    options = recognizer.default_options
    assert (options.beam_size, options.lm_weight, options.word_score) == (32, 0.3, 2.0)
    assert Path(options.lexicon).read_text().split() == ["go", "left", "stop"]
    assert Path(options.lm).read_text() == lm.read_text()
    greedy = asr_in_process(capsys, "set-decoding", str(trained_model), "--copy-from",
                            str(trained_model), check=False)  # fmt: skip
    assert greedy.returncode != 0 and "stores no decoding" in greedy.stderr
    both = asr_in_process(capsys, "set-decoding", str(copy), "--copy-from", str(source),
                          "--lexicon", str(words), check=False)  # fmt: skip
    assert both.returncode != 0 and "--copy-from brings its own" in both.stderr
    none = asr_in_process(
        capsys, "set-decoding", str(copy), "--none", "--copy-from", str(source), check=False
    )
    assert none.returncode != 0 and "--none stores no decoding" in none.stderr


@pytest.mark.skipif(not BUNDLED_MODEL.exists(), reason="no bundled model")
def test_set_decoding_changes_settings_only_and_copies_the_bundled_model(
    trained_model, tmp_path, capsys
):
    """Settings alone keep the stored word list and LM; 'bundled' is copied, never changed."""
    before = BUNDLED_MODEL.read_bytes()
    in_place = asr_in_process(capsys, "set-decoding", "bundled", "--lm-weight", "1.5", check=False)
    assert in_place.returncode != 0 and "give -o" in in_place.stderr
    assert BUNDLED_MODEL.read_bytes() == before
    copy = tmp_path / "bundled_lm1.5.safetensors"
    asr_in_process(capsys, "set-decoding", "bundled", "-o", str(copy), "--lm-weight", "1.5")
    # A recogniser's decoding files live as long as it does.
    copied, bundled = asr.load_model(copy), asr.load_model()
    ours, theirs = copied.default_options, bundled.default_options
    assert ours.lm_weight == 1.5 != theirs.lm_weight
    assert (ours.beam_size, ours.word_score) == (theirs.beam_size, theirs.word_score)
    assert Path(ours.lexicon).read_text() == Path(theirs.lexicon).read_text()
    assert Path(ours.lm).read_text() == Path(theirs.lm).read_text()
    asr_in_process(
        capsys, "set-decoding", str(copy), "--word-score", "-2"
    )  # in place: a file of one's own
    recognizer = asr.load_model(copy)
    changed = recognizer.default_options
    assert (changed.lm_weight, changed.word_score) == (1.5, -2.0)
    assert Path(changed.lm).read_text() == Path(theirs.lm).read_text()
    greedy = asr_in_process(
        capsys, "set-decoding", str(trained_model), "--lm-weight", "1", check=False
    )
    assert greedy.returncode != 0 and "stores no decoding" in greedy.stderr
    nothing = asr_in_process(capsys, "set-decoding", str(copy), check=False)
    assert nothing.returncode != 0 and "settings to change" in nothing.stderr


def test_set_decoding_refuses_a_broken_lm_and_leaves_the_file(
    trained_model, tiny_corpus, tmp_path, capsys
):
    words, lm = tmp_path / "words.txt", tmp_path / "lm.arpa"
    words.write_text("go\nleft\n")
    lm.write_text("this is not an ARPA file\n")
    model = tmp_path / "model.safetensors"
    model.write_bytes(trained_model.read_bytes())
    result = asr_in_process(
        capsys, "set-decoding", str(model), "--lexicon", str(words), "--lm", str(lm), check=False
    )
    assert result.returncode != 0 and "lm.arpa" in result.stderr
    assert model.read_bytes() == trained_model.read_bytes()
    conflicting = asr_in_process(capsys, "transcribe", "--model", str(model), "--greedy",
                                 "--beam-size", "4", str(tiny_corpus / "wav"),
                                 check=False)  # fmt: skip
    assert conflicting.returncode != 0 and "--greedy cannot be combined" in conflicting.stderr


def test_a_closed_pipe_ends_the_command_quietly():
    """`asr transcribe dir | head`: the reader leaves early; no traceback, status 141."""
    code = (
        "import sys, asr.cli as cli, asr.manifest\n"
        "def write_forever(argv):\n"
        "    while True:\n"
        "        print('line ' * 1000, flush=True)\n"
        "asr.manifest.main = write_forever\n"
        "sys.exit(cli.main(['manifest']))\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    ) as process:
        process.stdout.readline()
        process.stdout.close()  # the reader goes away
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141, stderr
    assert stderr == ""
