"""Lightning data module: manifests -> bucketed, distributed-aware dataloaders."""

import os
import warnings
from collections.abc import Sequence
from functools import partial

import lightning as L
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader

from asr.audio import SAMPLE_RATE
from asr.augment import WaveformAugment
from asr.data import DurationBatchSampler, SpeechDataset, collate
from asr.manifest import read_manifest
from asr.text import Tokenizer


class SpeechDataModule(L.LightningDataModule):
    """Loads JSONL manifests ({"audio", "text", "duration"} per line).

    Args:
        train_manifest, val_manifest, test_manifest: manifest path, or a list of them whose
            utterances are pooled (test optional).
        max_frames: padded feature frames (10 ms) per batch, silence padding included; the
            batch-size knob.
        num_workers: dataloader worker processes (audio reading and resampling).
        speed_factors: speed perturbation factors for training audio, e.g. [0.9, 1.0, 1.1].
        seed: shuffling seed (the epoch is added each epoch).
        pad_silence, pad_probability: silence padding of training utterances (seconds at
            most at each end, share padded), drawn by the batch sampler so that batches
            group padded lengths.
        edge_cut_db, edge_cut_probability, noise_snr_db: edge cuts and noise.
            Training batches get these, and the silence, in the loader's worker processes
            (`asr.augment.WaveformAugment`), and the training step adds none of its own.
            `asr fit` links all five to `CTCModule`'s arguments of the same names, which
            document them.
    """

    def __init__(
        self,
        train_manifest: str | list[str],
        val_manifest: str | list[str],
        test_manifest: str | list[str] | None = None,
        max_frames: int = 20_000,
        num_workers: int = 2,
        speed_factors: Sequence[float] | None = None,
        seed: int = 0,
        pad_silence: float = 0.0,
        pad_probability: float = 0.5,
        edge_cut_db: tuple[float, float] | None = None,
        edge_cut_probability: float = 0.5,
        noise_snr_db: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = Tokenizer()
        self._train_sampler: DurationBatchSampler | None = None
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches of it done)

    def _loader(self, manifests: str | list[str], train: bool) -> DataLoader:
        if isinstance(manifests, str):
            manifests = [manifests]
        records = [r for m in manifests for r in read_manifest(m)]
        records = present(records, manifests)
        dataset = SpeechDataset(records, self.tokenizer)
        rank = self.trainer.global_rank if self.trainer else 0
        sampler = DurationBatchSampler(
            [r["duration"] for r in records],
            max_frames=self.hparams.max_frames,
            shuffle=train,
            seed=self.hparams.seed,
            num_replicas=self.trainer.world_size if self.trainer else 1,
            rank=rank,
            drop_last=train,
            speed_factors=(self.hparams.speed_factors or ()) if train else (),
            silence=self._silence() if train else None,
        )
        if train:
            self._train_sampler = sampler
        current = self.trainer.current_epoch if self.trainer is not None else 0
        # A resumed run's loader, also when made again in its first epoch (a reload; Lightning
        # makes the first one before it restores current_epoch, which is then 0).
        if train and self._resume_at is not None and self._resume_at[0] >= current:
            sampler.resume(*self._resume_at)
        else:
            sampler.set_epoch(current)
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=partial(collate, augment=self._waveform_augment() if train else None),
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=partial(init_worker, rank=rank),
        )

    def _waveform_augment(self) -> WaveformAugment | None:
        """The training augmentations the loader's workers apply, or None for none."""
        # Silence: the sampler's amounts; its own draw for batches without them.
        augment = WaveformAugment.from_settings(self.hparams)
        return augment if augment.active else None

    def _silence(self) -> tuple[int, float] | None:
        """(samples at most, share) of training silence padding, or None for none."""
        if self.hparams.pad_silence <= 0:
            return None
        return int(self.hparams.pad_silence * SAMPLE_RATE), self.hparams.pad_probability

    def state_dict(self) -> dict[str, int]:
        """Where training is, for a run resumed from a checkpoint that holds it: the epoch
        and how many of its batches have been trained on. Lightning saves it with each
        checkpoint (after a step, which counts) and restores it before any loader is made:
        so the resumed epoch goes on with the rest of its batches, not with the batches of
        epoch 0 (Lightning's own current_epoch is restored only later) nor from its start
        (Lightning would need a stateful loader, which it then does not restore when
        `configure_optimizers` asks for `estimated_stepping_batches`:
        Lightning-AI/pytorch-lightning#20550)."""
        if self.trainer is None or self._train_sampler is None:
            return {}
        loop = self.trainer.fit_loop
        done = loop.epoch_loop.batch_progress.current.processed
        if done >= self.trainer.num_training_batches:
            # Saved at the epoch's end, before or after Lightning counts it complete (and
            # moves current_epoch on): the next epoch is the number of epochs started.
            return {"epoch": loop.epoch_progress.current.started, "batches_done": 0}
        return {"epoch": self.trainer.current_epoch, "batches_done": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not state:
            return
        if self._train_sampler is not None:
            # Restored after the training loader was made and iterated (strategies that
            # restore after setup, e.g. FSDP): it starts the epoch over, as Lightning warns.
            return
        self._resume_at = (state["epoch"], state["batches_done"])
        # Lightning warns that a loader without a state starts a resumed epoch over; this one
        # does not.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended")

    def teardown(self, stage: str) -> None:
        if stage == "fit":  # a later fit with this data module resumes only from its own state
            self._train_sampler, self._resume_at = None, None

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.train_manifest, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.val_manifest, train=False)

    def test_dataloader(self) -> DataLoader:
        if not self.hparams.test_manifest:
            raise ValueError("no test_manifest was given to the data module")
        return self._loader(self.hparams.test_manifest, train=False)


def init_worker(worker_id: int, rank: int) -> None:
    """Start a loader worker: out of the trainer's process group, then seeded as Lightning
    seeds workers (which it does only for a loader without a `worker_init_fn`).

    `timeout`, `kill -- -PGID` and Ctrl-C signal the whole group: a worker killed by SIGTERM
    failed the trainer with a traceback before Lightning could stop at a step's end and
    save. The trainer still ends its workers itself, and a worker exits by itself when the
    trainer is gone. (Ignoring SIGTERM instead hangs the exit: torch ends a slow worker
    with SIGTERM.) A signal sent to every process (a cluster's time limit) still reaches
    the workers.

    Args:
        worker_id: the worker's number on this rank.
        rank: the trainer's global rank, so that ranks draw different augmentations.
    """
    if hasattr(os, "setpgrp"):  # POSIX
        os.setpgrp()
    if int(os.environ.get("PL_SEED_WORKERS", 0)):  # set by seed_everything(workers=True)
        pl_worker_init_function(worker_id, rank)


def present(records: list[dict], manifests: Sequence[str]) -> list[dict]:
    """The records whose audio file exists; a warning names the missing ones (a mistyped
    path or a folder moved since the manifest was made): a run should not stop at the first
    of them hours in.

    Raises:
        FileNotFoundError: none of the audio files exists.
    """
    missing = [r["audio"] for r in records if not os.path.isfile(r["audio"])]
    if not missing:
        return records
    where = ", ".join(manifests)
    if len(missing) == len(records):
        raise FileNotFoundError(f"{where}: none of its {len(records)} audio files exists")
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    warnings.warn(
        f"{where}: {len(missing)} of {len(records)} audio files are missing and left out "
        f"({shown}; `asr check-data` lists them)",
        stacklevel=2,
    )
    gone = set(missing)
    return [r for r in records if r["audio"] not in gone]
