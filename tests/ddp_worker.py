"""Run by test_ddp.py: 2-process DDP training on CPU (gloo), recording what each rank saw.

Usage: python tests/ddp_worker.py MANIFEST VAL_MANIFEST OUT_DIR
Lightning's launcher re-runs this script for rank 1; each rank writes OUT_DIR/rank{r}.json.
"""

import json
import sys
from pathlib import Path

import lightning as L
import torch

from asr.datamodule import SpeechDataModule
from asr.lightning_module import CTCModule


class Recorder(L.Callback):
    def __init__(self) -> None:
        self.indices: dict[int, list[int]] = {}
        self.losses: list[float] = []
        self.validated: list[int] = []  # the last validation's utterances

    def on_validation_epoch_start(self, trainer, module) -> None:
        self.validated = []

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.validated.extend(batch["indices"].tolist())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.indices.setdefault(trainer.current_epoch, []).extend(batch["indices"].tolist())
        self.losses.append(float(outputs["loss"]))


def main(manifest: str, val_manifest: str, out_dir: str) -> None:
    L.seed_everything(0)
    recorder = Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=12,
        callbacks=[recorder],
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=6,
    )
    module = CTCModule(
        conv_channels=32, hidden_size=48, num_layers=1, spec_augment=0, lr=5e-3, warmup_steps=5
    )
    data = SpeechDataModule(manifest, val_manifest, max_frames=150, num_workers=0)
    trainer.fit(module, data)
    checksum = float(sum(p.double().sum() for p in module.parameters()))
    result = {
        "indices": recorder.indices,
        "losses": recorder.losses,
        "checksum": checksum,
        "validated": recorder.validated,
        "val_wer": float(trainer.callback_metrics["val_wer"]),
        "world_size": trainer.world_size,
        "backend": torch.distributed.get_backend(),
    }
    Path(out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
