"""Training: the acoustic model wrapped in a LightningModule with CTC loss."""

import math
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import torchaudio

from asr.alignment import ctc_frames_needed_batch
from asr.augment import WaveformAugment, check_range_db
from asr.decoding import greedy_texts
from asr.features import DEFAULT_DYNAMIC_RANGE_DB, N_MELS, LogMel
from asr.metrics import ErrorCounts, char_errors, word_errors
from asr.model import AcousticModel, ModelConfig
from asr.model_file import feature_settings, load_model_file, model_path, save_model_file
from asr.text import Tokenizer

# The cosine learning-rate decay is sized by the run's number of steps.
UNSIZED_SCHEDULE = (
    "trainer.max_epochs -1 (no epoch limit) needs trainer.max_steps: the learning rate "
    "decays over the run's steps"
)


class CTCModule(L.LightningModule):
    """Log-mel features -> `AcousticModel` -> CTC loss; greedy WER/CER on validation.

    Bad training data never turns into NaN or infinite updates (the policy: skip and count):

    - an utterance too short for its transcript under CTC (fewer output frames than labels
      plus repeats; `asr check-data` lists them beforehand, except those that `edge_cut_db`
      cuts too short during training) is left out of the loss, counted in
      `skipped_utterances` and logged as `train_skipped_utterances`;
    - a step whose gradient is NaN or infinite anywhere is skipped (gradients dropped before
      clipping and the optimizer), counted in `skipped_steps`, logged as
      `train_skipped_steps`, with a warning. With DDP the gradients are already all-reduced
      at that point, so every rank sees the same verdict and skips the same step.

    Args:
        subsampling, conv_channels, hidden_size, num_layers, dropout, bidirectional:
            see `asr.model.ModelConfig`.
        normalization, dynamic_range_db, std_floor: feature settings, see
            `asr.features.LogMel`.
        lr: peak AdamW learning rate, reached after `warmup_steps`, then cosine decay to
            `final_lr_ratio * lr` at the last step.
        weight_decay: AdamW weight decay.
        spec_augment: number of time and frequency masks applied to training features.
        freq_mask: widest frequency mask (mel bins).
        time_mask: widest time mask (frames), capped at 20% of each batch's length.
        pad_silence: a share `pad_probability` of the training utterances get digital
            silence, up to this many seconds, before and after them (recordings that are
            padded with zeros or start with a muted microphone; 0: off). Without it a model
            can learn that tightly trimmed audio (as FSDD's) means one kind of speech.
            Under `asr fit` the batch sampler draws the amounts (`SpeechDataModule`), so
            batches group padded lengths; with another loader this module draws them. A
            batch that carries silence amounts gets them whatever this setting says.
            Under `asr fit` the loader's workers apply this, `noise_snr_db` and
            `edge_cut_db` (`asr.augment.WaveformAugment`); batches that come augmented
            ("augmented" in the batch) get none of the three here, whatever they say.
        pad_probability: the share of training utterances that `pad_silence` pads.
        vtlp: vocal tract length perturbation of training audio: each utterance's spectrum
            is warped by a factor drawn uniformly from [1 - vtlp, 1 + vtlp] (0: off; see
            `asr.features.warp_frequencies`).
        noise_snr_db: (low, high): half of the training utterances get Gaussian noise, from
            white to brown (a random spectral slope), at an SNR drawn uniformly from this
            range, over the padded silence too (None: off). The three waveform augmentations
            are in `asr.augment`.
        edge_cut_db: (low, high), both <= 0: a share `edge_cut_probability` of the training
            utterances are cut into their first and last sounds, where their 10 ms energy
            first (last) comes within D dB of their loudest frame, D drawn uniformly from
            this range for each end (None: off). Recordings trimmed tightly into the word,
            as some of FSDD's speakers' are, are otherwise unlike anything in training.
            Applied before `pad_silence` and `noise_snr_db`. Transcripts are not cut: a few
            utterances become too short for theirs and are skipped (stage 16 of the commands
            recipe: about 50 of 38,100 per epoch; see `asr.augment.cut_edges`).
        edge_cut_probability: the share of training utterances that `edge_cut_db` cuts.
        init_from: a model file (`asr.model_file`; "bundled": the bundled model) whose
            weights start the training, to fine-tune it on new data; its architecture and
            tokenizer must be these (dropout may differ; other feature settings are
            allowed, with a warning, to adapt it).
    """

    def __init__(
        self,
        subsampling: int = 2,
        conv_channels: int = 256,
        hidden_size: int = 256,
        num_layers: int = 3,
        dropout: float = 0.2,
        bidirectional: bool = True,
        normalization: str = "utterance",
        dynamic_range_db: float | None = DEFAULT_DYNAMIC_RANGE_DB,
        std_floor: float | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-2,
        warmup_steps: int = 200,
        final_lr_ratio: float = 0.05,
        spec_augment: int = 2,
        freq_mask: int = 15,
        time_mask: int = 40,
        pad_silence: float = 0.0,
        pad_probability: float = 0.5,
        vtlp: float = 0.0,
        noise_snr_db: tuple[float, float] | None = None,
        edge_cut_db: tuple[float, float] | None = None,
        edge_cut_probability: float = 0.5,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        for name, share in [("pad", pad_probability), ("edge_cut", edge_cut_probability)]:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name}_probability must be in [0, 1], got {share}")
        if edge_cut_db is not None:
            check_range_db(edge_cut_db, "edge_cut_db")
        self.save_hyperparameters()
        self.tokenizer = Tokenizer()
        self.waveform_augment = WaveformAugment.from_settings(self.hparams)
        self.features = LogMel(normalization, dynamic_range_db, std_floor)
        self.model = AcousticModel(
            ModelConfig(
                n_mels=N_MELS,
                vocab_size=len(self.tokenizer),
                subsampling=subsampling,
                conv_channels=conv_channels,
                hidden_size=hidden_size,
                num_layers=num_layers,
                dropout=dropout,
                bidirectional=bidirectional,
            )
        )
        if init_from:
            self._load_weights(init_from)
        self._errors = {"wer": ErrorCounts(), "cer": ErrorCounts()}
        self.skipped_utterances = 0  # CTC-infeasible training utterances left out of the loss
        self.skipped_steps = 0  # optimizer steps skipped for a non-finite gradient
        self._warned_augment = False  # told that the loader's augmentation is not ours
        self._start_scoring()  # validation/test loss sum and count, this epoch
        self._warned_unscorable = False

    def _load_weights(self, path: str) -> None:
        pretrained, tokenizer, header = load_model_file(model_path(path))
        ours = replace(self.model.config, dropout=pretrained.config.dropout)
        if (pretrained.config, tokenizer.vocabulary) != (ours, self.tokenizer.vocabulary):
            raise ValueError(
                f"{path}: cannot fine-tune: the file's model {pretrained.config} with "
                f"vocabulary {tokenizer.vocabulary} is not this one {ours} with "
                f"{self.tokenizer.vocabulary}"
            )
        ours_features = {
            "normalization": self.hparams.normalization,
            "dynamic_range_db": self.hparams.dynamic_range_db,
            "std_floor": self.hparams.std_floor,
        }
        theirs_features = feature_settings(header)
        if theirs_features != ours_features:
            warnings.warn(
                f"{path} was trained on features {theirs_features}; fine-tuning it on "
                f"{ours_features}",
                stacklevel=3,  # the code that built the module
            )
        self.model.load_state_dict(pretrained.state_dict())

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) audio, (B,) samples -> (B, T', V) log-probs, (B,) frames."""
        feats, frame_lengths = self.features(audio, audio_lengths)
        return self.model(feats, frame_lengths)

    def _augment(self, feats: torch.Tensor) -> torch.Tensor:
        """SpecAugment on (B, T, F) features; masks are independent per utterance."""
        n = self.hparams.spec_augment
        if n == 0:
            return feats
        specaug = torchaudio.transforms.SpecAugment(
            n_time_masks=n,
            time_mask_param=min(self.hparams.time_mask, feats.shape[1] // 5),
            n_freq_masks=n,
            freq_mask_param=self.hparams.freq_mask,
            iid_masks=True,
            zero_masking=True,  # features are mean-normalised: 0 is the average value
        )
        return specaug(feats.transpose(1, 2)).transpose(1, 2)  # (B, F, T) for torchaudio

    def _waveform_augment(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch's (B, S) audio and (B,) lengths after the waveform augmentations:
        this module's, unless the loader applied its own (`asr.data.collate`)."""
        audio, lengths, done = batch["audio"], batch["audio_lengths"], batch.get("augmented")
        if done is None:
            return self.waveform_augment(audio, lengths, batch.get("silence"))
        if done != asdict(self.waveform_augment) and not self._warned_augment:
            self._warned_augment = True
            warnings.warn(
                f"training batches come augmented by the loader with {done}, not with this "
                f"module's settings {self.waveform_augment}; the loader's apply",
                stacklevel=2,
            )
        return audio, lengths

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        audio, audio_lengths, warp = batch["audio"], batch["audio_lengths"], None
        hp = self.hparams
        if stage == "train":
            audio, audio_lengths = self._waveform_augment(batch)
        if stage == "train" and hp.vtlp > 0:
            draw = torch.rand(audio.shape[0], device=self.device)  # (B,) in [0, 1)
            warp = 1.0 + hp.vtlp * (2.0 * draw - 1.0)
        feats, frame_lengths = self.features(audio, audio_lengths, warp)
        if stage == "train":
            feats = self._augment(feats)
        log_probs, out_lengths = self.model(feats, frame_lengths)
        # CTC in fp32 even under mixed precision: its log-space sums underflow in 16 bits.
        with torch.autocast(log_probs.device.type, enabled=False):
            losses = F.ctc_loss(
                log_probs.float().transpose(0, 1),  # (T, B, V): the layout ctc_loss expects
                batch["tokens"],
                out_lengths,
                batch["token_lengths"],
                blank=self.tokenizer.blank_id,
                reduction="none",
                # Infeasible items (inf loss) become 0 so the mask below can drop them.
                zero_infinity=True,
            )
        feasible = out_lengths >= ctc_frames_needed_batch(batch["tokens"], batch["token_lengths"])
        readable = batch.get("readable", torch.ones_like(feasible))  # (B,) bool
        unscorable = int((~feasible & readable).sum())  # too short for their transcripts
        feasible &= readable
        if stage == "train":
            self.skipped_utterances += int((~feasible).sum())
            self.log("train_skipped_utterances", float(self.skipped_utterances), batch_size=1)
            # Multiplying by the mask (not indexing) keeps the graph when every item is skipped.
            loss = (losses * feasible).sum() / feasible.sum().clamp_min(1)
            self.log("train_loss", loss, batch_size=len(batch["texts"]), prog_bar=True)
        else:  # summed over the utterances CTC can score; logged at the epoch's end
            loss = losses[feasible].mean()  # NaN when none can be
            self._scored += torch.stack([losses[feasible].sum(), feasible.sum()]).double()
            self._unscorable += unscorable
        if stage != "train":
            hyps = greedy_texts(log_probs, out_lengths, self.tokenizer)
            keep = readable.tolist()
            refs = [t for t, k in zip(batch["texts"], keep, strict=True) if k]
            hyps = [h for h, k in zip(hyps, keep, strict=True) if k]
            self._errors["wer"] += word_errors(refs, hyps)
            self._errors["cer"] += char_errors(refs, hyps)
        return loss

    def on_train_epoch_start(self) -> None:
        # Lightning tells a plain sampler or a BatchSampler's `.sampler` the epoch, not a batch
        # sampler of its own; without this every epoch would get epoch 0's batches and speed
        # factors. Runs before the epoch's iterator is made, for later epochs; the first
        # epoch's sampler is told at creation (`SpeechDataModule._loader`), as is that of an
        # epoch resumed mid-way, for which Lightning does not run this hook.
        batch_sampler = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if hasattr(batch_sampler, "set_epoch"):
            batch_sampler.set_epoch(self.current_epoch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the step when any gradient is NaN or infinite (called before clipping)."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        # One norm over all gradients is finite exactly when every gradient is (bar a norm
        # overflowing float32, a step worth skipping too), and costs one pass, not one per tensor.
        if not grads or torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            return
        # AdamW leaves a parameter without a gradient untouched (weights and moments alike).
        optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        warnings.warn(
            f"step {self.global_step}: non-finite gradient, optimizer step skipped "
            f"({self.skipped_steps} so far)",
            RuntimeWarning,
            stacklevel=1,
        )
        self.log("train_skipped_steps", float(self.skipped_steps), batch_size=1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def _log_error_rates(self, stage: str) -> None:
        # Sum raw counts over ranks before dividing: a mean of per-rank rates would be wrong.
        for name, counts in self._errors.items():
            totals = torch.tensor(
                [counts.errors, counts.reference_length], dtype=torch.float64, device=self.device
            )
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
            rate = (totals[0] / totals[1].clamp_min(1)).item()
            # The same on every rank already: sync_dist (a mean of equal values) only stops
            # Lightning advising it.
            self.log(f"{stage}_{name}", rate, prog_bar=name == "wer", sync_dist=True)
        self._errors = {"wer": ErrorCounts(), "cer": ErrorCounts()}

    def on_validation_epoch_start(self) -> None:
        self._start_scoring()

    def on_test_epoch_start(self) -> None:
        self._start_scoring()

    def on_validation_epoch_end(self) -> None:
        self._log_error_rates("val")
        self._log_loss("val")

    def on_test_epoch_end(self) -> None:
        self._log_error_rates("test")
        self._log_loss("test")

    def _start_scoring(self) -> None:
        self._scored = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss sum, count
        self._unscorable = 0

    def _log_loss(self, stage: str) -> None:
        """The epoch's mean CTC loss over the utterances it can score, summed over ranks
        (every rank takes part, whatever it scored; NaN when no rank scored any)."""
        totals = torch.cat([self._scored, self._scored.new_tensor([self._unscorable])])
        loss_sum, scored, unscorable = self.trainer.strategy.reduce(totals, reduce_op="sum")
        self.log(f"{stage}_loss", (loss_sum / scored).item(), prog_bar=True, sync_dist=True)
        if unscorable and not self.trainer.sanity_checking and not self._warned_unscorable:
            self._warned_unscorable = True
            warnings.warn(
                f"{int(unscorable)} {stage} utterances are too short for their transcripts "
                f"under CTC (`asr check-data` lists them): {stage}_loss leaves them out, "
                "WER and CER count them",
                stacklevel=2,
            )

    def configure_optimizers(self):
        # Not fused: Lightning refuses gradient clipping with a fused optimizer under mixed
        # precision, and the fused step saves only ~1 % of a CPU step.
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if math.isinf(self.trainer.estimated_stepping_batches):  # max_epochs=-1, no max_steps
            raise ValueError(UNSIZED_SCHEDULE)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.hparams.warmup_steps, total // 2)
        floor = self.hparams.final_lr_ratio

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def export(self, path: str | Path, info: dict | None = None, half: bool = False) -> None:
        """Write a self-contained model file (see `asr.model_file`)."""
        save_model_file(
            path,
            self.model,
            self.tokenizer,
            self.hparams.normalization,
            info,
            half=half,
            dynamic_range_db=self.hparams.dynamic_range_db,
            std_floor=self.hparams.std_floor,
        )
