"""`asr fit`: training through LightningCLI, then export of the best model file."""

import argparse
import logging
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException

from asr.augment import WaveformAugment
from asr.checkpointing import LAST_CHECKPOINT, AtomicCheckpointIO, resume_checkpoint
from asr.datamodule import SpeechDataModule
from asr.files import remove_leftovers
from asr.lightning_module import UNSIZED_SCHEDULE, CTCModule
from asr.model_file import load_weights_only_checkpoint

DDP_TIMEOUT_S = int(os.environ.get("ASR_DDP_TIMEOUT_S", 600))  # collective wait, seconds


class EpochSummary(Callback):
    """A line on stdout after each epoch that validated: where a run stands, for logs.

    Added when there is no progress bar (stderr not a terminal), which would otherwise leave
    a long run silent until it ends. Rank zero only. The time to go counts the epochs left
    (`max_epochs`), not `max_time` or `max_steps`.
    """

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._since = time.monotonic()  # the last line printed, or the start
        self._epochs_since = 0
        self._validated = False
        self._loss_sum, self._batches = 0.0, 0  # a run resumed mid-epoch starts no epoch

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._loss_sum, self._batches = 0.0, 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum = self._loss_sum + loss.detach()  # a tensor: no wait for a GPU
            self._batches += 1

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._validated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epochs_since += 1
        if not (self._validated and trainer.is_global_zero):
            return
        self._validated = False
        per_epoch = (time.monotonic() - self._since) / self._epochs_since  # seconds
        self._since, self._epochs_since = time.monotonic(), 0
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        line = f"epoch {epoch}" + (f"/{total}" if total and total > 0 else "")
        line += f", step {trainer.global_step}"
        if self._batches:
            line += f", train_loss {float(self._loss_sum) / self._batches:.3f} (epoch mean)"
        metrics = trainer.callback_metrics
        if "val_loss" in metrics:
            line += f", val_loss {float(metrics['val_loss']):.3f}"
        for name in ("val_wer", "val_cer"):
            if name in metrics:
                line += f", {name} {float(metrics[name]):.2%}"
        line += f", {_duration(per_epoch)} an epoch"
        if total and total > epoch:
            line += f", about {_duration((total - epoch) * per_epoch)} to go"
        print(line, flush=True)


def _duration(seconds: float) -> str:
    """'0.4 s', '42 s', '3.5 min' or '1.2 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


STOPPED_BY_SIGTERM = "asr: training was stopped by SIGTERM"  # a note on what it raised


class LatestCheckpoint(Callback):
    """Keeps `last.ckpt` (the resume point) current: after every epoch, and every
    `every_n_train_steps` optimizer steps when given, mid-epoch too.

    Lightning 2.6's `ModelCheckpoint(save_last=True)` writes it only when the best checkpoint
    is written too, so a run whose val_wer does not improve kept an old one; and a
    ModelCheckpoint given `every_n_train_steps` saves at no epoch's end.
    """

    def __init__(self, path: str | Path, every_n_train_steps: int | None = None) -> None:
        self.path = Path(path)
        self.every_n_train_steps = every_n_train_steps
        self._saved_step = -1

    def _save(self, trainer: Trainer) -> None:
        # Every rank calls it (the strategy writes on rank zero): the callbacks run alike.
        if trainer.global_step != self._saved_step:
            trainer.save_checkpoint(self.path, weights_only=False)  # Lightning logs when unset
            self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: Trainer, *args) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)  # after the epoch's validation, so the best checkpoint's state too

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)  # stopped mid-epoch (max_steps, max_time)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        if trainer.received_sigterm:  # whatever failed, a SIGTERM came first: `main` says so
            _note_sigterm(exception)
        # Lightning stops at a step's end on SIGTERM (on every rank alike): keep that step.
        if isinstance(exception, SIGTERMException):
            self._save(trainer)
            if trainer.is_global_zero:
                print(
                    f"stopped by SIGTERM at epoch {trainer.current_epoch + 1}, step "
                    f"{trainer.global_step}: {self.path} saved; the same command resumes"
                )


class AgreedSigterm(Callback):
    """With several processes (DDP), a SIGTERM stops every rank at the same step.

    Lightning's own SIGTERM handler broadcasts from inside the signal handler, a collective
    the other ranks do not expect at that moment, and sets a flag on which each rank then
    stops by itself: a SIGTERM to every rank (a cluster's preemption) hung a 2-process run.
    For runs of more than one process this callback takes SIGTERM over as soon as Lightning
    has installed its handlers (the sanity check's start, else training's; Lightning puts
    the original handlers back at the end). Its handler only notes the signal; the ranks
    agree on it where they all are in step, at each training batch's end and each
    validation's end, and only then set Lightning's flag, on every rank at once: Lightning
    then stops them all where it would stop one process, and `LatestCheckpoint` saves.
    """

    def __init__(self) -> None:
        self._signalled = False
        self._active = False

    def _note(self, signum: int, frame: object) -> None:
        self._signalled = True

    def _take_over(self, trainer: Trainer) -> None:
        if self._active or trainer.world_size == 1:
            return
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set a handler; Lightning's stays
        signal.signal(signal.SIGTERM, self._note)
        # A SIGTERM that came before is this callback's to agree on, not Lightning's to act
        # on in one rank alone. (The flag has no public setter.)
        connector = trainer._signal_connector
        self._signalled |= connector.received_sigterm
        connector.received_sigterm = False
        self._active = True

    def _agree(self, trainer: Trainer) -> None:
        if not self._active:
            return
        # An all-reduce of one flag: every rank calls it at the same hook.
        if trainer.strategy.reduce_boolean_decision(self._signalled, all=False):
            trainer._signal_connector.received_sigterm = True

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._take_over(trainer)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._take_over(trainer)

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        self._agree(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._agree(trainer)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        # A noted SIGTERM that also ended a loader worker fails the trainer before the ranks
        # agree (so before Lightning's flag, which LatestCheckpoint reads, is set).
        if self._signalled:
            _note_sigterm(exception)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._active = self._signalled = False  # Lightning has put its handlers back


class TrainCLI(LightningCLI):
    """LightningCLI with a checkpoint callback configured by plain keys and an export step.

    Config keys beyond Lightning's own:
        checkpoint.*: `ModelCheckpoint` arguments of the best checkpoint (default: the best
            by val_wer, ties kept by the earlier, in `<trainer.default_root_dir>/checkpoints`).
            `last.ckpt` beside it comes from a callback of its own (`LatestCheckpoint`):
            written after every epoch, and every `checkpoint.every_n_train_steps` steps
            when that is set (`checkpoint.save_last` is not used).
        export: where to write the model file of the best checkpoint once fit ends.

    Logs: unless `trainer.logger` is set, each run writes TensorBoard event files under
    `<default_root_dir>/lightning_logs/version_N/` and `<default_root_dir>/csv/version_N/
    metrics.csv` (read by `asr plot-training`). Without a terminal (no progress bar), a
    line per validated epoch on stdout (`EpochSummary`).

    Fault tolerance:
        - Automatic resume: `asr fit` without `--ckpt_path` resumes from
          `<checkpoint dir>/last.ckpt` when it exists, so re-running a killed command goes
          on where it stopped. Start afresh with another `trainer.default_root_dir`.
        - Checkpoints are written atomically and loaded with `weights_only=True`
          (`asr.checkpointing.AtomicCheckpointIO`); the temp file of a save that was
          killed mid-way is removed when the next run starts.
        - `trainer.strategy: ddp` gets a collective timeout of DDP_TIMEOUT_S (env
          ASR_DDP_TIMEOUT_S) instead of PyTorch's 30 min, so ranks waiting on a dead peer fail
          with a timeout error; Lightning's launcher also kills the other ranks when one exits
          with an error.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # The waveform augmentations are the model's settings; the batch sampler draws the
        # silence, so batches group the padded lengths the model will run, and the loader's
        # workers apply all three, off the training process (see `SpeechDataModule`).
        for field in fields(WaveformAugment):  # CTCModule's arguments SpeechDataModule takes
            parser.link_arguments(f"model.{field.name}", f"data.{field.name}")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_wer",
                "checkpoint.mode": "min",
                # Lightning 2.6 writes save_last's last.ckpt only when a best checkpoint is
                # written too; `LatestCheckpoint` writes it every epoch instead.
                "checkpoint.save_last": False,
                "checkpoint.filename": "best-{epoch}-{val_wer:.4f}",
                # Our batch sampler splits data across ranks itself (equal, disjoint shares).
                "trainer.use_distributed_sampler": False,
                # A bar redrawn with carriage returns only makes sense on a terminal.
                "trainer.enable_progress_bar": sys.stderr.isatty(),
            }
        )
        parser.add_argument("--export", type=str | None, default=None, help="model file to write")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config  # run=False
        if config.checkpoint.dirpath is None:
            # A fixed folder (not one per logger version) so a re-run finds last.ckpt.
            root = config.trainer.default_root_dir or "."
            config.checkpoint.dirpath = str(Path(root) / "checkpoints")
        trainer = config.trainer
        # Lightning reads max_epochs None as -1 (no limit) when max_time is set.
        no_epoch_limit = trainer.max_epochs == -1 or (
            trainer.max_epochs is None and trainer.max_time is not None
        )
        unlimited = no_epoch_limit and trainer.max_steps in (None, -1)
        if self.subcommand == "fit" and unlimited:
            raise argparse.ArgumentError(None, UNSIZED_SCHEDULE)
        if config.checkpoint.save_last:
            warnings.warn(
                "checkpoint.save_last is not used: LatestCheckpoint writes last.ckpt after "
                "every epoch and every checkpoint.every_n_train_steps steps",
                stacklevel=2,
            )
            config.checkpoint.save_last = False

    def instantiate_trainer(self, **kwargs) -> Trainer:
        if self._get(self.config_init, "trainer", default={}).get("strategy") == "ddp":
            kwargs.setdefault("strategy", DDPStrategy(timeout=timedelta(seconds=DDP_TIMEOUT_S)))
        if self._get(self.config_init, "trainer", default={}).get("logger") in (None, True):
            root = self._get(self.config_init, "trainer")["default_root_dir"] or "."
            kwargs.setdefault(
                "logger",
                [TensorBoardLogger(root, name="lightning_logs"), CSVLogger(root, name="csv")],
            )
        trainer = super().instantiate_trainer(**kwargs)
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if self.subcommand == "fit":
            checkpoint = self.config["fit"].checkpoint
            # Appended after the ModelCheckpoint (Lightning puts those last at init), so the
            # state it saves at an epoch's end holds that epoch's best checkpoint.
            trainer.callbacks.append(
                LatestCheckpoint(
                    Path(checkpoint.dirpath) / LAST_CHECKPOINT, checkpoint.every_n_train_steps
                )
            )
            trainer.callbacks.append(AgreedSigterm())
        if trainer.progress_bar_callback is None:
            trainer.callbacks.append(EpochSummary())
        return trainer

    def before_fit(self) -> None:
        checkpoint_dir = self.config["fit"].checkpoint.dirpath
        if Path(checkpoint_dir).is_dir():  # no checkpoint is being written yet
            remove_leftovers(checkpoint_dir)  # of a run killed while saving
        if self.config_init["fit"].get("ckpt_path") is not None:
            return
        last = resume_checkpoint(checkpoint_dir)
        if last is not None:
            print(f"resuming from {last}")
            self.config_init["fit"]["ckpt_path"] = str(last)

    def after_fit(self) -> None:
        export = self.config[self.subcommand].get("export")
        if not export or not self.trainer.is_global_zero:
            return
        best = self.trainer.checkpoint_callback.best_model_path
        epochs, steps = self.trainer.current_epoch, self.trainer.global_step
        if best:
            state = load_weights_only_checkpoint(best)
            self.model.load_state_dict(state["state_dict"])
            # The best checkpoint's own count: Lightning saves the epoch it was written in.
            epochs, steps = state["epoch"] + 1, state["global_step"]
        info = {
            "checkpoint": str(best),
            "epochs": epochs,
            "steps": steps,
            "best_val_wer": _as_float(self.trainer.checkpoint_callback.best_model_score),
            "train_manifest": self.datamodule.hparams.train_manifest,
        }
        self.model.export(export, info)
        print(
            f"model file written: {Path(export).resolve()} (from {best or 'the last weights'}: "
            f"{epochs} epochs, {steps} steps)"
        )


def _as_float(value: torch.Tensor | float | None) -> float | None:
    return None if value is None else float(value)


def _note_sigterm(exception: BaseException) -> None:
    """Mark `exception` as raised after a SIGTERM (once), for `main` (`_after_sigterm`)."""
    if STOPPED_BY_SIGTERM not in getattr(exception, "__notes__", ()):
        exception.add_note(STOPPED_BY_SIGTERM)


def _after_sigterm(err: BaseException | None) -> bool:
    """Whether `err`, or an exception it was raised while handling, followed a SIGTERM."""
    while err is not None:
        if STOPPED_BY_SIGTERM in getattr(err, "__notes__", ()):
            return True
        err = err.__context__
    return False


def _no_advert(record: logging.LogRecord) -> bool:
    """Lightning's tip to install its cloud logger, in every run's output."""
    return "litlogger" not in record.getMessage()


def main(args: list[str] | None = None) -> int:
    """Run LightningCLI on `args`, or on sys.argv (subcommand first: fit, validate or test).

    Returns:
        The exit status: 0, or 143 (128 + SIGTERM, as a shell reports it) when a SIGTERM
        stopped training (`LatestCheckpoint` saved the step it stopped at).
    """
    # Parse errors raise (`asr` prints them in one line) rather than printing the full usage.
    quiet = {"exit_on_error": False}
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_advert)
    # Lightning 2.6 on torch 2.14 warns about its own use of a torch API in every run.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
    try:
        TrainCLI(
            CTCModule,
            SpeechDataModule,
            args=args,
            parser_kwargs={**quiet, **{command: quiet for command in TrainCLI.subcommands()}},
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
        )
    except SIGTERMException:
        return 128 + signal.SIGTERM
    except Exception as err:
        # A worker started just before the signal can still be in our process group (see
        # `asr.datamodule.init_worker`), or the signal went to every process: torch then
        # fails the trainer wherever it is, so nothing is saved (a step may be half done).
        if not _after_sigterm(err):
            raise
        print(
            "stopped by SIGTERM, which ended a loader worker first: the same command resumes "
            "from the last saved checkpoint",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    return 0
