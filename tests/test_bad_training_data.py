"""Training never turns bad data into NaN/inf updates: bad items and steps are skipped."""

import math

import lightning as L
import pytest
import torch

from asr.alignment import ctc_frames_needed as frames_needed_list
from asr.alignment import ctc_frames_needed_batch as ctc_frames_needed
from asr.datamodule import SpeechDataModule
from asr.lightning_module import CTCModule


def small_module(**kwargs) -> CTCModule:
    torch.manual_seed(0)
    return CTCModule(conv_channels=16, hidden_size=16, num_layers=1, spec_augment=0, **kwargs)


def test_tensor_and_list_frame_counts_agree():
    labels = [[3, 3, 4], [5, 6, 6, 6], [7]]
    tokens = torch.zeros(3, 4, dtype=torch.long)
    for i, row in enumerate(labels):
        tokens[i, : len(row)] = torch.tensor(row)
    needed = ctc_frames_needed(tokens, torch.tensor([3, 4, 1]))
    assert needed.tolist() == [frames_needed_list(row) for row in labels] == [4, 6, 1]


def test_infeasible_utterance_is_left_out_of_the_loss_and_counted(monkeypatch):
    module = small_module()
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **k: logged.__setitem__(name, value))
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(2, 8_000, generator=g)
    tokens = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10], [3, 4, 0, 0, 0, 0, 0, 0]])
    full = {
        "audio": audio,
        "audio_lengths": torch.tensor([320, 8_000]),  # item 0: 0.02 s, 2 output frames for 8
        "tokens": tokens,
        "token_lengths": torch.tensor([8, 2]),
        "texts": ["abcdefgh", "ab"],
    }
    only_good = {
        "audio": audio[1:],
        "audio_lengths": full["audio_lengths"][1:],
        "tokens": tokens[1:, :2],
        "token_lengths": full["token_lengths"][1:],
        "texts": ["ab"],
    }
    loss = module._shared_step(full, "train")
    assert torch.isfinite(loss) and loss > 0
    assert module.skipped_utterances == 1 and logged["train_skipped_utterances"] == 1.0
    # Same as the good item alone (up to the padding's small effect on the STFT's last frame).
    torch.testing.assert_close(loss, module._shared_step(only_good, "train"), rtol=1e-2, atol=0)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


def test_validation_loss_leaves_out_what_ctc_cannot_score_and_says_so(monkeypatch):
    """Such utterances counted as a loss of 0 (zero_infinity): an all-too-short dev set
    showed val_loss 0.000, as if perfect. The loss is summed over the scored utterances and
    logged once at the epoch's end, after a reduction every rank takes part in."""
    from types import SimpleNamespace

    module = small_module()
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **k: logged.__setitem__(name, value))
    strategy = SimpleNamespace(reduce=lambda tensor, reduce_op: tensor)  # one rank
    module._trainer = SimpleNamespace(sanity_checking=False, strategy=strategy)
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(2, 8_000, generator=g)
    tokens = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10], [3, 4, 0, 0, 0, 0, 0, 0]])
    batch = {
        "audio": audio,
        "audio_lengths": torch.tensor([320, 8_000]),  # item 0: 2 output frames for 8 labels
        "tokens": tokens,
        "token_lengths": torch.tensor([8, 2]),
        "texts": ["abcdefgh", "ab"],
    }
    short = {k: v[:1] for k, v in batch.items()}
    good = {k: v[1:] for k, v in batch.items()}
    with torch.no_grad():
        module.on_validation_epoch_start()
        alone = float(module._shared_step(good, "val"))
        module._log_loss("val")
        assert logged["val_loss"] == pytest.approx(alone)
        module.on_validation_epoch_start()
        assert torch.isnan(module._shared_step(short, "val"))  # nothing to score: not 0
        module._shared_step(batch, "val")
        with pytest.warns(UserWarning, match="2 val utterances are too short"):
            module._log_loss("val")
    assert logged["val_loss"] == pytest.approx(alone, rel=1e-2)  # the good one's alone
    module.on_validation_epoch_start()
    with torch.no_grad():
        module._shared_step(short, "val")
    module._log_loss("val")  # warned once per run; a loss of none is NaN, not 0
    assert logged["val_loss"] != logged["val_loss"]


class NaNOnSecondStep(CTCModule):
    """Its second training step's loss is NaN, as a corrupt batch would make it."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == 1 else loss


class Snapshots(L.Callback):
    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.params.append(torch.cat([p.detach().flatten() for p in module.parameters()]))


def test_non_finite_step_is_skipped_with_a_warning_and_counted(tiny_corpus):
    torch.manual_seed(0)
    module = NaNOnSecondStep(conv_channels=16, hidden_size=16, num_layers=1, spec_augment=0)
    snapshots = Snapshots()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        gradient_clip_val=5.0,  # clipping sees no gradient on the skipped step
        callbacks=[snapshots],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    manifest = str(tiny_corpus / "manifest.jsonl")
    data = SpeechDataModule(manifest, manifest, max_frames=250, num_workers=0)
    with pytest.warns(RuntimeWarning, match="non-finite gradient, optimizer step skipped"):
        trainer.fit(module, data)
    first, second, third = snapshots.params
    assert torch.equal(first, second)  # the NaN step changed nothing
    assert not torch.equal(second, third)  # and training went on
    assert all(torch.isfinite(p).all() for p in snapshots.params)
    assert module.skipped_steps == 1
    assert trainer.callback_metrics["train_skipped_steps"] == 1.0


def test_missing_and_unreadable_audio_are_left_out_and_named(tiny_corpus, tmp_path):
    """A missing file in a manifest crashed `asr fit` at its first batch (a 72-line
    traceback), a file damaged since the manifest was made wherever it came up."""
    import json

    lines = (tiny_corpus / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for r in records:
        r["audio"] = str(tiny_corpus / r["audio"])
    damaged = tmp_path / "damaged.wav"
    damaged.write_text("not audio any more")
    missing = tmp_path / "moved.wav"
    records += [
        {"audio": str(damaged), "text": "go", "duration": 0.6},
        {"audio": str(missing), "text": "stop", "duration": 0.6},
    ]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    torch.manual_seed(0)
    module = small_module()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    data = SpeechDataModule(str(manifest), str(manifest), max_frames=250, num_workers=0)
    with pytest.warns(UserWarning) as caught:
        trainer.fit(module, data)
    messages = [str(w.message) for w in caught]
    assert any(f"1 of 10 audio files are missing and left out ({missing}" in m for m in messages)
    assert any(str(damaged) in m and "left out of this step" in m for m in messages)
    assert module.skipped_utterances == 2  # the damaged file, once an epoch
    # Validation leaves it out too: not counted as too short for its transcript.
    assert not any("too short" in m for m in messages)
    assert math.isfinite(float(trainer.callback_metrics["val_loss"]))


def test_a_manifest_whose_audio_is_all_gone_is_one_error(tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text('{"audio": "gone.wav", "text": "go", "duration": 0.5}\n')
    data = SpeechDataModule(str(manifest), str(manifest), max_frames=250, num_workers=0)
    with pytest.raises(FileNotFoundError, match="none of its 1 audio files exists"):
        data.train_dataloader()
