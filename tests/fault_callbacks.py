"""A callback that test_training_faults.py adds to `asr fit` runs (importable as
`fault_callbacks` with tests/ on PYTHONPATH): a signal at a step chosen in advance, so the
tests do not race the run."""

import os
import signal

import lightning as L


class SignalAtStep(L.Callback):
    """Send `name` (e.g. "SIGKILL") to the run's process group when the training step with
    index `step` is about to start, i.e. after `step` optimiser steps and their checkpoints."""

    def __init__(self, step: int, name: str) -> None:
        self.step = step
        self.signal = signal.Signals[name]

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.killpg(os.getpgid(0), self.signal)
