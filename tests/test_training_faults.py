"""Faults during training: SIGKILL mid-epoch then resume; atomic, weights-only checkpoints."""

import json
import os
import pickle
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from asr.checkpointing import AtomicCheckpointIO
from asr.files import remove_leftovers
from asr.model_file import ModelFileError, load_weights_only_checkpoint

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 12  # 4 epochs of 3 batches on the tiny corpus
STEPS_PER_EPOCH = 3


def fit_command(manifest: Path, root: Path) -> list[str]:
    """A small, fast `asr fit`: a last.ckpt every 2 steps, so some land mid-epoch.

    Validation runs every epoch because ModelCheckpoint defers saving (last.ckpt included)
    until its monitored metric, val_wer, exists.
    """
    return [
        sys.executable,
        "-m",
        "asr.cli",
        "fit",
        "--config",
        "recipes/tiny/config.yaml",
        "--data.train_manifest",
        str(manifest),
        "--data.val_manifest",
        str(manifest),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.max_steps",
        str(MAX_STEPS),
        "--trainer.check_val_every_n_epoch",
        "1",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--checkpoint.every_n_train_steps",
        "2",
        "--model.conv_channels",
        "16",
        "--model.hidden_size",
        "16",
        "--model.num_layers",
        "1",
        "--export",
        str(root / "model.safetensors"),
    ]


# tests/ on the path, so that `asr fit` can load the callbacks of tests/fault_callbacks.py.
WITH_FAULT_CALLBACKS = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
    ),
}


def signal_at_step(step: int, name: str) -> list[str]:
    """`asr fit` arguments adding fault_callbacks.SignalAtStep(step, name)."""
    return [
        "--trainer.callbacks+=fault_callbacks.SignalAtStep",
        f"--trainer.callbacks.step={step}",
        f"--trainer.callbacks.name={name}",
    ]


def recording_batches(path: Path) -> list[str]:
    """`asr fit` arguments adding fault_callbacks.RecordBatches(path)."""
    return [
        "--trainer.callbacks+=fault_callbacks.RecordBatches",
        f"--trainer.callbacks.path={path}",
    ]


def batches_in(path: Path) -> list[list[int]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_alone(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `command` (from the repo, fault callbacks importable) in a process group of its
    own, which a signal callback may target; a run still going after `timeout` s is killed
    with every process of its group (DDP ranks, loader workers), then the test fails."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=WITH_FAULT_CALLBACKS,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def run_fit(manifest: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_alone([*fit_command(manifest, root), *extra])


def weights(checkpoint: Path) -> torch.Tensor:
    state = load_weights_only_checkpoint(checkpoint)["state_dict"]
    return torch.cat([v.flatten().float() for v in state.values()])


def test_last_checkpoint_follows_every_epoch_when_validation_does_not_improve(
    tiny_corpus, tmp_path
):
    """Lightning 2.6's save_last writes last.ckpt only when a best checkpoint is written: a
    run whose val_wer stays at 100 % (a tiny model, as any model's first epochs) kept
    last.ckpt at epoch 0, and a re-run retrained every later epoch (a walkthrough lost three
    of four epochs of the FSDD recipe that way)."""
    manifest = tiny_corpus / "manifest.jsonl"
    root = tmp_path / "plateau"
    command = fit_command(manifest, root)
    # Saves at steps 3 (epoch end), 4 (every 4 steps) and 6 (epoch end): a ModelCheckpoint
    # given every_n_train_steps stopped at 4.
    command[command.index("--checkpoint.every_n_train_steps") + 1] = "4"
    at_max = command.index("--trainer.max_steps") + 1
    command[at_max] = str(2 * STEPS_PER_EPOCH)
    first = run_alone(command)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoints = root / "checkpoints"
    last = load_weights_only_checkpoint(checkpoints / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (1, 2 * STEPS_PER_EPOCH)
    (best,) = checkpoints.glob("best-*.ckpt")
    assert load_weights_only_checkpoint(best)["global_step"] <= 2 * STEPS_PER_EPOCH

    command[at_max] = str(3 * STEPS_PER_EPOCH)  # one more epoch: only that one is trained
    again = run_alone(command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {checkpoints / 'last.ckpt'}" in again.stdout
    last = load_weights_only_checkpoint(checkpoints / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 3 * STEPS_PER_EPOCH)
    assert not list(checkpoints.glob("last-v*.ckpt"))


def test_sigkill_mid_epoch_then_same_command_resumes_and_finishes(tiny_corpus, tmp_path):
    manifest = tiny_corpus / "manifest.jsonl"
    root = tmp_path / "killed"
    last = root / "checkpoints" / "last.ckpt"
    trained = tmp_path / "batches.jsonl"
    # Killed before step 6, after step 4's last.ckpt (every 2 steps): mid-epoch 2 of 4.
    killed = run_fit(manifest, root, *signal_at_step(5, "SIGKILL"), *recording_batches(trained))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert load_weights_only_checkpoint(last)["global_step"] == 4
    before = batches_in(trained)[:4]  # the fifth batch was trained after the checkpoint
    trained.unlink()

    # With loader workers, which iterate the batch sampler twice before the first batch.
    workers = ("--data.num_workers", "2")
    resumed = run_fit(manifest, root, *workers, *recording_batches(trained))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stdout
    assert "ended before the epoch ended" not in resumed.stderr  # Lightning's warning
    assert load_weights_only_checkpoint(last)["global_step"] == MAX_STEPS
    assert (root / "model.safetensors").is_file()
    assert not list(last.parent.glob("*.tmp"))

    reference_batches = tmp_path / "reference_batches.jsonl"
    reference = run_fit(
        manifest, tmp_path / "reference", *workers, *recording_batches(reference_batches)
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert "resuming" not in reference.stdout
    # The resumed run trains the rest of the stopped epoch, not the whole epoch again.
    assert before + batches_in(trained) == batches_in(reference_batches)
    a, b = weights(last), weights(tmp_path / "reference" / "checkpoints" / "last.ckpt")
    # The tiny recipe draws nothing at random (no dropout, noise or SpecAugment), so the
    # same batches give the same model: measured 0.0 (0.8 % when the resumed epoch took
    # epoch 0's batches); a recipe with random augmentation would differ in its draws.
    distance = float((a - b).norm() / b.norm())
    assert distance < 1e-6, distance


def test_sigterm_to_the_process_group_stops_cleanly_and_saves_the_step(tiny_corpus, tmp_path):
    """`timeout` and `kill -- -PGID` signal loader workers too: a worker dying at once
    failed the trainer with a 100-line traceback before Lightning could stop."""
    root = tmp_path / "terminated"
    last = root / "checkpoints" / "last.ckpt"
    command = [
        *fit_command(tiny_corpus / "manifest.jsonl", root),
        *("--data.num_workers", "2"),
        *signal_at_step(4, "SIGTERM"),  # mid-epoch 2, the workers running
    ]
    command[command.index("--trainer.max_steps") + 1] = "100000"
    result = run_alone(command)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "killed by signal" not in result.stderr
    # Lightning finishes the step under way (the fifth), then the run stops and saves it.
    assert load_weights_only_checkpoint(last)["global_step"] == 5
    assert f"step 5: {last} saved; the same command resumes" in result.stdout


@pytest.mark.parametrize("signalled", ["every rank", "rank 0", "every rank, validating"])
def test_sigterm_stops_every_ddp_rank_at_the_same_step_and_saves_it(
    tiny_corpus, tmp_path, signalled
):
    """A SIGTERM to every rank (a cluster's preemption) hung a 2-process run: Lightning's
    handler broadcasts from inside the signal handler (asr.train.AgreedSigterm)."""
    root = tmp_path / "ddp"
    last = root / "checkpoints" / "last.ckpt"
    command = [
        *fit_command(tiny_corpus / "manifest.jsonl", root),
        *("--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"),
        *signal_at_step(3, "SIGTERM"),
    ]
    step = 4  # the ranks agree at the end of the step under way (the fourth) and stop there
    if signalled == "rank 0":
        command.append("--trainer.callbacks.only_rank=0")
    elif signalled == "every rank, validating":  # at step 3, the first epoch's end
        command.append("--trainer.callbacks.in_validation=true")
        step = 3  # they agree when validation ends, and stop before another step
    command[command.index("--trainer.max_steps") + 1] = "100000"
    result = run_alone(command, timeout=120)  # it hung before AgreedSigterm
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"step {step}: {last} saved; the same command resumes" in result.stdout
    assert load_weights_only_checkpoint(last)["global_step"] == step


def test_atomic_checkpoint_io_keeps_the_old_file_when_saving_fails(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")  # stands in for a crash in the middle of writing

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"global_step": 2, "bad": Unpicklable()}, path)
    assert io.load_checkpoint(path)["global_step"] == 1  # the good file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


def test_leftovers_of_a_write_killed_mid_way_are_removed(tmp_path):
    """SIGKILL inside write_atomically leaves its temp file; remove_leftovers takes it away."""
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, tmp_path / "last.ckpt")
    code = (
        "import os, signal, sys\n"
        "from asr.files import write_atomically\n"
        "def die(tmp):\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_atomically(sys.argv[1], die)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "last.ckpt")], cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    (leftover,) = [p for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert remove_leftovers(tmp_path) == [leftover]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert AtomicCheckpointIO().load_checkpoint(tmp_path / "last.ckpt")["global_step"] == 1


def refused_export(path: Path, output: Path, capsys: pytest.CaptureFixture) -> str:
    """`asr export path -o output` (in this process), which must refuse the file in one line,
    exit status 2; returns what it printed to stderr."""
    from asr.cli import main as cli_main

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        assert cli_main(["export", str(path), "-o", str(output)]) == 2
    assert not warned, [str(w.message) for w in warned]  # they would print before the line
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and f"{path}: not a Lightning checkpoint" in stderr
    assert not output.exists()
    return stderr


def test_export_refusal_from_the_command_line_is_one_line_without_traceback(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save({"weights": torch.zeros(2)}, path)  # a dict, but no checkpoint
    command = [sys.executable, "-m", "asr.cli", "export", str(path), "-o", str(tmp_path / "m")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and f"{path}: not a Lightning checkpoint" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_checkpoint_with_pickled_code_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        AtomicCheckpointIO().load_checkpoint(path)
    with pytest.raises(ModelFileError, match="not a Lightning checkpoint"):
        load_weights_only_checkpoint(path)
    assert "weights_only` set to `False" not in refused_export(path, tmp_path / "m", capsys)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.safetensors", "manifest.jsonl", "checkpoints"])
def test_export_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path, name, capsys):
    path = tmp_path / name
    if name == "checkpoints":
        path.mkdir()
    else:
        path.write_bytes(b'{"audio": "a.wav", "text": "stop", "duration": 1.0}\n')
    if name.endswith(".safetensors"):
        torch.save({"weights": torch.zeros(2)}, path)  # a dict, but no checkpoint
    refused_export(path, tmp_path / "m", capsys)


def test_loader_workers_are_seeded_per_rank_as_lightning_seeds_them(monkeypatch):
    """Our worker_init_fn replaced Lightning's, which seeds workers per rank only when a
    loader has none: worker k drew the same augmentations on every rank."""
    import random

    import numpy as np

    from asr.datamodule import init_worker

    groups = []
    monkeypatch.setattr(os, "setpgrp", lambda: groups.append("new group"), raising=False)
    monkeypatch.setenv("PL_SEED_WORKERS", "1")
    draws = []
    # init_worker seeds this process's generators, as it would a worker's: put them back after.
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()
    try:
        for rank in (0, 1):
            torch.manual_seed(0)  # as every rank's trainer is seeded alike
            init_worker(0, rank=rank)
            draws.append((torch.rand(1).item(), random.random()))
    finally:
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]
    assert groups == ["new group", "new group"]


def test_an_error_raised_after_a_sigterm_is_known_by_its_note():
    """Torch fails the trainer wherever it is when a worker dies of the same SIGTERM (as
    "killed by signal" or "exited unexpectedly", during teardown again); `asr fit` then
    says it was stopped, without a traceback, from the note LatestCheckpoint adds."""
    from asr.train import STOPPED_BY_SIGTERM, _after_sigterm

    first = RuntimeError("DataLoader worker (pid(s) 8850) exited unexpectedly")
    first.add_note(STOPPED_BY_SIGTERM)
    try:
        try:
            raise first
        except RuntimeError:
            raise RuntimeError("DataLoader worker (pid 8851) is killed by signal") from None
    except RuntimeError as during_teardown:
        assert _after_sigterm(during_teardown)
    assert not _after_sigterm(RuntimeError("DataLoader worker (pid 1) exited unexpectedly"))
