"""Crash-safe Lightning checkpoints: atomic writes, weights-only loads, automatic resume.

Lightning writes checkpoints through fsspec, whose local "transaction" stages the bytes in
the system temp folder and then moves them; when that folder is on another disk, the move
is a copy into the final path, so a crash can leave a truncated `last.ckpt` in place of a
good one. `AtomicCheckpointIO` writes next to the target, fsyncs, then renames.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from asr.files import write_atomically

LAST_CHECKPOINT = "last.ckpt"  # asr.train.LatestCheckpoint keeps this file current


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that never leaves a partial file and never unpickles code on load."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to a temp file beside `path`, fsync it, then rename over `path`."""
        write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(
        self,
        path: str | Path,
        map_location: Callable | str | None = "cpu",
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Load with `weights_only=True` whatever the caller asks: a checkpoint is data."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: checkpoint file not found")
        return torch.load(path, map_location=map_location, weights_only=True)


def resume_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The checkpoint an interrupted run should resume from: `checkpoint_dir/last.ckpt`."""
    last = Path(checkpoint_dir) / LAST_CHECKPOINT
    return last if last.is_file() else None
