"""`asr fit`: training through LightningCLI, then export of the best model file."""

import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from asr.datamodule import SpeechDataModule
from asr.lightning_module import CTCModule
from asr.model_file import load_weights_only_checkpoint

ROOT_DIR_PLACEHOLDER = "${trainer.default_root_dir}"  # a logger save_dir that follows the run


class TrainCLI(LightningCLI):
    """LightningCLI with a checkpoint callback configured by plain keys and an export step.

    Config keys beyond Lightning's own:
        checkpoint.*: `ModelCheckpoint` arguments (default: keep the best by val_wer + last).
        export: where to write the model file of the best checkpoint once fit ends.

    A logger in `trainer.logger` whose `save_dir` is the text "${trainer.default_root_dir}"
    writes under the run's `trainer.default_root_dir` (after command-line overrides), so
    overriding that one key moves the whole run, logs included.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_wer",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch}-{val_wer:.4f}",
                # Our batch sampler splits data across ranks itself (equal, disjoint shares).
                "trainer.use_distributed_sampler": False,
                # A progress bar only where someone watches: log files get no \r-redrawn bars.
                "trainer.enable_progress_bar": sys.stderr.isatty(),
            }
        )
        parser.add_argument("--export", type=str | None, default=None, help="model file to write")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        loggers = config.trainer.logger
        if not isinstance(loggers, list):
            return
        for logger in loggers:
            init_args = getattr(logger, "init_args", None)
            if init_args is not None and init_args.get("save_dir") == ROOT_DIR_PLACEHOLDER:
                init_args.save_dir = config.trainer.default_root_dir or "."

    def after_fit(self) -> None:
        export = self.config[self.subcommand].get("export")
        if not export or not self.trainer.is_global_zero:
            return
        best = self.trainer.checkpoint_callback.best_model_path
        if best:
            state = load_weights_only_checkpoint(best)["state_dict"]
            self.model.load_state_dict(state)
        info = {
            "checkpoint": str(best),
            "epochs": self.trainer.current_epoch,
            "steps": self.trainer.global_step,
            "best_val_wer": _as_float(self.trainer.checkpoint_callback.best_model_score),
            "train_manifest": self.datamodule.hparams.train_manifest,
        }
        self.model.export(export, info)
        print(f"model file written: {Path(export).resolve()}")


def _as_float(value: torch.Tensor | float | None) -> float | None:
    return None if value is None else float(value)


def main(args: list[str] | None = None) -> None:
    """Run LightningCLI on `args`, or on sys.argv (subcommand first: fit, validate or test)."""
    TrainCLI(
        CTCModule,
        SpeechDataModule,
        args=args,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
    )
