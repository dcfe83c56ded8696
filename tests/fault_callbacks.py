"""Callbacks that test_training_faults.py adds to `asr fit` runs (importable as
`fault_callbacks` with tests/ on PYTHONPATH): a signal at a step chosen in advance, so the
tests do not race the run, and a record of the batches trained on."""

import json
import os
import signal

import lightning as L


class SignalAtStep(L.Callback):
    """Send `name` (e.g. "SIGKILL") to the run's process group when the training step with
    index `step` is about to start, i.e. after `step` optimiser steps and their checkpoints;
    with `only_rank`, to that rank's process alone."""

    def __init__(
        self, step: int, name: str, only_rank: int | None = None, in_validation: bool = False
    ) -> None:
        self.step = step
        self.signal = signal.Signals[name]
        self.only_rank = only_rank
        self.in_validation = in_validation  # at the start of a validation, not of a step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if not self.in_validation:
            self._send(trainer)

    def on_validation_start(self, trainer: L.Trainer, *args: object) -> None:
        if self.in_validation and not trainer.sanity_checking:
            self._send(trainer)

    def _send(self, trainer: L.Trainer) -> None:
        if trainer.global_step != self.step:
            return
        if self.only_rank is None:
            os.killpg(os.getpgid(0), self.signal)
        elif trainer.global_rank == self.only_rank:
            os.kill(os.getpid(), self.signal)


class RecordBatches(L.Callback):
    """Append each trained batch's utterance indices to `path`, a JSON list per line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer: L.Trainer, module, outputs, batch, batch_idx) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(batch["indices"].tolist()) + "\n")
