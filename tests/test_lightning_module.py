import warnings
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from asr.augment import WaveformAugment
from asr.lightning_module import CTCModule
from asr.model_file import load_model_file, read_header


def batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([16_000, 9_000])
    audio = 0.1 * torch.randn(2, 16_000, generator=g)
    audio[1, 9_000:] = 0
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    return {
        "audio": audio,
        "audio_lengths": lengths,
        "tokens": tokens,
        "token_lengths": torch.tensor([4, 2]),
        "texts": ["abcd", "ef"],
    }


def small_module(**kwargs) -> CTCModule:
    return CTCModule(conv_channels=16, hidden_size=16, num_layers=1, **kwargs)


def features_seen(module: CTCModule, monkeypatch) -> list[tuple]:
    """What the module's steps hand their features from now on: (audio, lengths, warp)."""
    seen = []
    real = module.features.forward

    def spy(audio, lengths, warp=None):
        seen.append((audio.clone(), lengths.clone(), warp))
        return real(audio, lengths, warp)

    monkeypatch.setattr(module.features, "forward", spy)
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    return seen


def test_spec_augment_masks_training_features_only():
    module = small_module(spec_augment=2, freq_mask=20, time_mask=30)
    feats = torch.randn(4, 200, 80) + 5  # no zeros before masking
    masked = module._augment(feats)
    zeroed = (masked == 0).float().mean()
    assert 0 < zeroed < 0.6
    assert torch.equal(small_module(spec_augment=0)._augment(feats), feats)


def test_spec_augment_reaches_training_steps_only(monkeypatch):
    module = small_module(spec_augment=2, freq_mask=20, time_mask=30)
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    model_inputs = []
    real = module.model.forward
    monkeypatch.setattr(
        module.model, "forward", lambda f, n: model_inputs.append(f.clone()) or real(f, n)
    )
    module.on_validation_epoch_start()
    module._shared_step(batch(), "val")
    module._shared_step(batch(), "train")
    plain, _ = module.features(batch()["audio"], batch()["audio_lengths"])
    val_feats, train_feats = model_inputs
    assert torch.equal(val_feats, plain)
    masked = train_feats != plain
    assert masked.any() and (train_feats[masked] == 0).all()  # masks, nothing else


def test_ctc_loss_is_fp32_and_finite_under_bf16_autocast(monkeypatch):
    module = small_module(spec_augment=0)
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module._shared_step(batch(), "train")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_warmup_then_cosine_schedule():
    module = small_module(lr=1e-3, warmup_steps=10, final_lr_ratio=0.1)
    module.trainer = SimpleNamespace(estimated_stepping_batches=110)  # type: ignore[assignment]
    config = CTCModule.configure_optimizers(module)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(110):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 1e-4 and max(lrs) == lrs[9] == 1e-3  # linear warmup to the peak
    assert all(a >= b for a, b in pairwise(lrs[9:]))  # then only decays
    assert abs(lrs[-1] - 1e-4) < 1e-5  # to final_lr_ratio * lr


def test_a_run_without_a_length_is_refused_with_a_reason(tmp_path, capsys):
    """max_epochs=-1 with no max_steps made an infinite step count: OverflowError."""
    module = small_module()
    module.trainer = SimpleNamespace(estimated_stepping_batches=float("inf"))  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"needs trainer\.max_steps"):
        CTCModule.configure_optimizers(module)
    from asr.cli import main

    config = Path(__file__).resolve().parents[1] / "recipes/tiny/config.yaml"
    for max_epochs in ("-1", "null"):  # null with max_time: Lightning's -1 too
        argv = ["fit", "--config", str(config), "--trainer.max_epochs", max_epochs]
        argv += ["--trainer.max_time", "00:00:00:05", "--trainer.default_root_dir", str(tmp_path)]
        assert main(argv) == 2
        assert "needs trainer.max_steps" in capsys.readouterr().err


def test_init_from_model_file_starts_from_its_weights(tmp_path):
    source = small_module(dropout=0.0)
    path = tmp_path / "m.safetensors"
    source.export(path)
    tuned = small_module(dropout=0.3, init_from=str(path))  # dropout may differ
    for name, value in source.model.state_dict().items():
        assert torch.equal(tuned.model.state_dict()[name], value), name
    fresh = small_module(dropout=0.3)
    assert not torch.equal(fresh.model.output.weight, tuned.model.output.weight)


def test_init_from_a_different_architecture_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    small_module().export(path)
    with pytest.raises(ValueError, match="cannot fine-tune") as err:
        CTCModule(conv_channels=16, hidden_size=32, num_layers=1, init_from=str(path))
    assert str(path) in str(err.value)


def test_init_from_bundled_starts_from_the_packaged_model(tmp_path, monkeypatch):
    from asr import model_file

    source = small_module()
    source.export(tmp_path / "packaged.safetensors")
    monkeypatch.setattr(model_file, "BUNDLED_MODEL", tmp_path / "packaged.safetensors")
    tuned = small_module(init_from="bundled")
    assert torch.equal(tuned.model.output.weight, source.model.output.weight)


class RecordBatches(CTCModule):
    """Remembers what each training step was given: (epoch, utterance indices, audio lengths)."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen.append((self.current_epoch, batch["indices"].tolist(), batch["audio_lengths"]))
        self.augmented_by.append(batch.get("augmented"))
        return super().training_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self.validated.append(self.current_epoch)
        super().on_validation_epoch_end()


def fit_tiny(
    tiny_corpus, tmp_path, epochs: int, max_frames: int = 500, augment=None, **trainer_args
) -> RecordBatches:
    """Fit on the tiny corpus; `augment`: waveform augmentation settings for the data module
    and the module both (as `asr fit` links them)."""
    import lightning as L

    from asr.datamodule import SpeechDataModule

    manifest = str(tiny_corpus / "manifest.jsonl")
    augment = augment or {}
    data = SpeechDataModule(
        manifest, manifest, max_frames=max_frames, num_workers=0, speed_factors=[0.8, 1.0, 1.25],
        **augment,
    )  # fmt: skip
    module = RecordBatches(
        conv_channels=16, hidden_size=16, num_layers=1, warmup_steps=1, **augment
    )
    module.seen, module.validated, module.augmented_by = [], [], []
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        gradient_clip_val=5.0,
        default_root_dir=tmp_path,
        **trainer_args,
    )
    trainer.fit(module, data)
    return module


def test_each_epoch_gets_new_batches_and_speed_factors(tiny_corpus, tmp_path):
    """The batch sampler learns the epoch from the module: batches and speeds change."""
    module = fit_tiny(tiny_corpus, tmp_path, epochs=3)
    epochs: list[list[tuple[int, int]]] = [[], [], []]
    for epoch, indices, lengths in module.seen:
        epochs[epoch] += zip(indices, lengths.tolist(), strict=True)
    assert all(sorted(i for i, _ in items) == list(range(8)) for items in epochs)
    assert epochs[0] != epochs[1] != epochs[2]  # order or speed (audio length) differs
    assert len({tuple(sorted(items)) for items in epochs}) > 1  # some utterance changed speed


def test_every_epoch_is_validated_though_speed_factors_change_the_bucketing(tiny_corpus, tmp_path):
    # 180 frames: one to three of the tiny utterances per batch, so that the bucketing alone
    # gives some epochs fewer batches than the first.
    module = fit_tiny(tiny_corpus, tmp_path, epochs=8, max_frames=180)
    assert module.validated == list(range(8))


def test_fit_augments_waveforms_in_the_loader_and_not_again_in_the_step(tiny_corpus, tmp_path):
    augment = {"pad_silence": 0.1, "pad_probability": 1.0, "noise_snr_db": (10.0, 20.0)}
    augment |= {"edge_cut_db": (-30.0, -10.0)}
    module = fit_tiny(tiny_corpus, tmp_path, epochs=1, max_frames=1000, augment=augment)
    mine = asdict(module.waveform_augment)
    assert module.augmented_by and all(a == mine for a in module.augmented_by)
    assert not module._warned_augment  # the step took the loader's augmentation as its own


def test_bf16_mixed_training_with_gradient_clipping(tiny_corpus, tmp_path):
    module = fit_tiny(tiny_corpus, tmp_path, epochs=1, precision="bf16-mixed", max_steps=2)
    assert len(module.seen) == 2
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_training_step_adds_the_silence_the_batch_carries(monkeypatch):
    module = small_module(spec_augment=0, pad_silence=1.0, pad_probability=1.0)
    seen = features_seen(module, monkeypatch)
    given = batch()
    module._shared_step({**given, "silence": torch.tensor([[100, 0], [50, 3000]])}, "train")
    audio, lengths, _ = seen[-1]
    assert lengths.tolist() == [16_000 + 150, 9_000 + 3000]
    assert torch.equal(audio[0, 100 : 100 + 16_000], given["audio"][0])
    assert audio[0, :100].abs().sum() == 0 and audio[1, 9_000:].abs().sum() == 0
    module._shared_step(given, "train")  # a batch without silence: the module draws it
    assert (seen[-1][1] > given["audio_lengths"]).all()


def test_training_step_leaves_batches_the_loader_augmented_alone(monkeypatch):
    settings = {"pad_silence": 1.0, "pad_probability": 1.0, "noise_snr_db": (0.0, 0.0)}
    module = small_module(spec_augment=0, edge_cut_db=(-20.0, -10.0), **settings)
    seen = features_seen(module, monkeypatch)
    given = batch()
    module._shared_step({**given, "augmented": asdict(module.waveform_augment)}, "train")
    assert torch.equal(seen[-1][0], given["audio"])
    assert torch.equal(seen[-1][1], given["audio_lengths"])
    with pytest.warns(UserWarning, match="the loader's apply"):  # other settings: said once
        module._shared_step({**given, "augmented": asdict(WaveformAugment())}, "train")
    assert torch.equal(seen[-1][0], given["audio"])
    module._shared_step(given, "train")  # not augmented: the module does it
    assert (seen[-1][1] != given["audio_lengths"]).all()


def test_fit_links_the_models_waveform_augmentation_to_the_data_module(tmp_path):
    from asr.datamodule import SpeechDataModule
    from asr.train import TrainCLI

    config = Path(__file__).resolve().parents[1] / "recipes/tiny/config.yaml"
    args = ["--config", str(config), "--trainer.default_root_dir", str(tmp_path)]
    args += ["--seed_everything", "false"]  # leave this process's random state alone
    args += ["--data.train_manifest", "unread.jsonl", "--data.val_manifest", "unread.jsonl"]
    args += ["--model.pad_silence", "0.5", "--model.pad_probability", "0.7"]
    args += ["--model.edge_cut_db", "[-30, -10]", "--model.edge_cut_probability", "0.4"]
    args += ["--model.noise_snr_db", "[5, 25]"]
    cli = TrainCLI(CTCModule, SpeechDataModule, args=args, run=False)
    assert cli.datamodule.hparams.pad_silence == cli.model.hparams.pad_silence == 0.5
    assert cli.datamodule.hparams.pad_probability == cli.model.hparams.pad_probability == 0.7
    assert cli.datamodule._silence() == (8_000, 0.7)  # samples at most, share
    augment = cli.datamodule._waveform_augment()  # what the loader's workers apply
    assert augment.edge_cut_db == cli.model.waveform_augment.edge_cut_db == (-30, -10)
    assert augment.edge_cut_probability == cli.model.hparams.edge_cut_probability == 0.4
    assert augment.noise_snr_db == cli.model.waveform_augment.noise_snr_db == (5, 25)


def test_vtlp_warps_training_features_only(monkeypatch):
    module = small_module(spec_augment=0, vtlp=0.1)
    seen = features_seen(module, monkeypatch)
    module._shared_step(batch(), "train")
    module._shared_step(batch(), "val")
    (_, _, train_warp), (_, _, val_warp) = seen
    assert train_warp.shape == (2,) and ((train_warp - 1).abs() <= 0.1).all()
    assert not torch.equal(train_warp, torch.ones(2))
    assert val_warp is None


def test_init_from_other_features_warns_and_loads(tmp_path):
    path = tmp_path / "m.safetensors"
    small_module(normalization="utterance").export(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same features: no warning
        small_module(normalization="utterance", init_from=str(path))
    with pytest.warns(UserWarning, match="trained on features"):
        tuned = small_module(normalization="speech", init_from=str(path))
    assert tuned.features.normalization == "speech"
    source, _, _ = load_model_file(path)
    assert torch.equal(tuned.model.output.weight, source.output.weight)


def test_std_floor_is_exported_and_a_file_without_it_fine_tunes_without_warning(tmp_path):
    floored, plain = tmp_path / "floored.safetensors", tmp_path / "plain.safetensors"
    small_module(std_floor=1.0).export(floored)
    small_module().export(plain)
    assert read_header(floored)["features"]["std_floor"] == 1.0
    assert "std_floor" not in read_header(plain)["features"]  # older asr versions read it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_module(init_from=str(plain))
        assert small_module(std_floor=1.0, init_from=str(floored)).features.std_floor == 1.0
    with pytest.warns(UserWarning, match="trained on features"):
        small_module(init_from=str(floored))


def test_edge_cuts_reach_the_features_of_training_batches_only(monkeypatch):
    """0.25 s of silence, 0.25 s of noise, 0.25 s of silence: cut to the noise in training."""
    module = small_module(spec_augment=0, edge_cut_db=(-20.0, -10.0), edge_cut_probability=1)
    noise = 0.1 * torch.randn(2, 4_000, generator=torch.Generator().manual_seed(0))
    audio = torch.nn.functional.pad(noise, (4_000, 4_000))  # (2, 12000)
    seen = features_seen(module, monkeypatch)
    for stage in ("train", "val"):
        module._shared_step(
            {**batch(), "audio": audio, "audio_lengths": torch.tensor([12_000] * 2)}, stage
        )
    (train_audio, train_lengths, _), (val_audio, val_lengths, _) = seen
    assert train_lengths.tolist() == [4_000, 4_000]
    assert torch.equal(train_audio, noise)
    assert val_lengths.tolist() == [12_000, 12_000] and torch.equal(val_audio, audio)


@pytest.mark.parametrize(
    "kwargs",
    [{"edge_cut_db": (-10.0, -20.0)}, {"edge_cut_db": (-10.0, 5.0)}, {"edge_cut_probability": 2}],
)
def test_bad_edge_cut_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="edge_cut"):
        small_module(**kwargs)
