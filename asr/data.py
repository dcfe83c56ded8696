"""Datasets, collation and duration-bucketed, distributed-aware batching."""

import dataclasses
import itertools
import math
import random
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from asr.audio import SAMPLE_RATE, AudioError, load_audio, resample
from asr.augment import WaveformAugment
from asr.features import HOP_LENGTH, num_frames
from asr.manifest import ManifestError
from asr.text import Tokenizer, normalize_text

SPEED_RATE_STEP = 100  # Hz; speed perturbation resamples from a multiple of this rate
JITTER = 0.05  # relative noise on durations before sorting: batches differ between epochs


class SpeechDataset(Dataset):
    """Manifest records -> (waveform, token ids) pairs.

    Items are read by index, or by `(index, speed_factor)` or `(index, speed_factor,
    silence_before, silence_after)` (what `DurationBatchSampler` yields when it perturbs
    speed or draws silence): the audio is then resampled to play that many times faster
    (speed perturbation, pitch included), and the silence amounts (samples) travel with the
    item into the batch (`collate`), which adds them (`asr.augment.WaveformAugment`).

    A file that cannot be read (damaged since the manifest was made) gives a warning naming
    it and an item marked unreadable (a frame of silence), which the step leaves out of its
    loss and scores: one bad file does not end a long run.

    Args:
        records: dicts with "audio" (absolute path) and "text".
        tokenizer: maps normalised text to ids.
    """

    def __init__(self, records: Sequence[dict], tokenizer: Tokenizer) -> None:
        self.records = records
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple) -> dict:
        index, factor, *silence = key if isinstance(key, tuple) else (key, 1.0)
        record = self.records[index]
        readable = True
        try:
            audio = torch.from_numpy(load_audio(record["audio"]))
        except AudioError as err:
            warnings.warn(f"{err}; left out of this step", stacklevel=2)
            audio, factor, readable = torch.zeros(HOP_LENGTH), 1.0, False
        if factor != 1.0:
            # Playing `factor` times faster = treating the audio as recorded at rate*factor.
            audio = resample(audio, speed_rate(factor), SAMPLE_RATE)
        text = normalize_text(record["text"])
        tokens = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)
        item = {"index": index, "audio": audio, "tokens": tokens, "text": text}
        if not readable:
            item["unreadable"] = True
        if silence:
            item["silence"] = tuple(silence)
        return item


def collate(items: list[dict], augment: WaveformAugment | None = None) -> dict:
    """Pad a list of dataset items into a batch, and augment it (training).

    Args:
        items: `SpeechDataset` items.
        augment: the waveform augmentations to apply here (with the items' silence), in the
            DataLoader's worker processes when it has some; `functools.partial` binds it.

    Returns:
        dict with audio (B, S) float32, audio_lengths (B,) int64, tokens (B, L) int64,
        token_lengths (B,) int64, texts list[str], indices (B,) int64, readable (B,) bool
        (False for a file that could not be read: leave it out); without `augment`,
        when the items carry silence to add, silence (2, B) int64 samples before and after
        each; with it, augmented: `augment`'s settings as a dict (a plain value that
        Lightning's transfer to the device leaves alone; the training step then applies none).
    """
    audio_lengths = torch.tensor([len(it["audio"]) for it in items], dtype=torch.long)
    token_lengths = torch.tensor([len(it["tokens"]) for it in items], dtype=torch.long)
    audio = torch.zeros(len(items), int(audio_lengths.max()))
    tokens = torch.zeros(len(items), max(1, int(token_lengths.max())), dtype=torch.long)
    for i, item in enumerate(items):
        audio[i, : len(item["audio"])] = item["audio"]
        tokens[i, : len(item["tokens"])] = item["tokens"]
    batch = {
        "audio": audio,
        "audio_lengths": audio_lengths,
        "tokens": tokens,
        "token_lengths": token_lengths,
        "texts": [it["text"] for it in items],
        "indices": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "readable": torch.tensor([not it.get("unreadable") for it in items]),
    }
    if any("silence" in it for it in items):
        silence = [it.get("silence", (0, 0)) for it in items]
        batch["silence"] = torch.tensor(silence, dtype=torch.long).T  # (2, B)
    if augment is not None:
        batch["audio"], batch["audio_lengths"] = augment(
            audio, audio_lengths, batch.pop("silence", None)
        )
        batch["augmented"] = dataclasses.asdict(augment)
    return batch


class DurationBatchSampler(Sampler[list]):
    """Batches of similar duration under a padded-frames budget, split across ranks.

    Each epoch, utterances are sorted by a jittered duration (±JITTER, so batches differ
    between epochs), packed greedily while `batch_size * longest_frames <= max_frames`, the batch
    order is shuffled, and rank r takes batches r, r + world_size, ... . Every rank builds
    the same batches from the same seed and epoch, so ranks get disjoint data and the
    same number of batches (DDP needs equal step counts).

    With speed factors, each utterance draws its factor here, before bucketing, and batches
    hold `(index, factor)` pairs: buckets then group the durations the model will really see
    (drawn later, a 0.8x and a 1.2x copy of equal clips pad each other by 50 %). Silence
    padding (`silence`) is drawn here for the same reason, and batches then hold `(index,
    factor, before, after)`, bucketed and budgeted by the padded length (drawn in the
    training step instead, up to 1 s at each end left a quarter of a batch's frames past the
    ends of its utterances: benchmarks/README.md).

    Args:
        durations: seconds per utterance.
        max_frames: budget of padded feature frames (10 ms each) per batch, silence
            padding included.
        shuffle: jitter and shuffle (training); otherwise batches are sorted by duration.
        seed: base seed; the epoch is added to it (see `set_epoch`).
        num_replicas, rank: the distributed world; default: a single process.
        drop_last: drop the batches that do not divide evenly across ranks (training: every
            rank must take the same number of steps); otherwise every item is in exactly one
            rank's batches, some ranks having one batch more (evaluation: its scores are
            summed over ranks at the epoch's end, so a repeated item would count twice).
        speed_factors: speed perturbation factors to draw from (training); none: indices only.
        silence: (most, probability): that share of the utterances gets 0 to `most` samples
            of silence at each end, drawn uniformly (training); None: none.
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_frames: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = True,
        speed_factors: Sequence[float] = (),
        silence: tuple[int, float] | None = None,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside world size {num_replicas}")
        # At 16 kHz, rounded up as resampling from another rate rounds its length.
        self.samples = [math.ceil(d * SAMPLE_RATE) for d in durations]
        self.frames = [num_frames(n) for n in self.samples]
        self.speed_factors = tuple(speed_factors)
        self.silence = silence
        slowest = min(self.speed_factors, default=1.0)
        most_silence = 2 * silence[0] if silence else 0  # samples
        longest = feature_frames(max(self.samples, default=0), slowest, most_silence)
        if longest > max_frames:
            raise ValueError(
                f"max_frames={max_frames} is smaller than the longest utterance "
                f"({longest} frames, silence padding included): raise max_frames"
            )
        self.max_frames = max_frames
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self._cache: tuple[int, list[list]] | None = None  # (epoch, this rank's batches)
        self._batches_per_epoch: int | None = None  # fixed by the first epoch asked for
        self._resumed: tuple[int, int] | None = None  # (epoch, batches done): see `resume`

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (by `CTCModule.on_train_epoch_start` in training)."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int) -> None:
        """Go on from epoch `epoch`'s batch `batches_done`: iterations yield that epoch's
        batches after its first `batches_done` (those a stopped run trained on) for as long
        as the epoch is `epoch` (a loader with workers iterates its batch sampler twice)."""
        self.set_epoch(epoch)
        self._resumed = (epoch, batches_done)

    def _all_batches(self, epoch: int) -> list[list]:
        rng = random.Random(self.seed + epoch)
        order = list(range(len(self.frames)))
        frames = self.frames
        factors = [1.0] * len(order)
        if self.speed_factors:
            factors = [rng.choice(self.speed_factors) for _ in order]
            frames = [feature_frames(n, f) for n, f in zip(self.samples, factors, strict=True)]
        padded = frames  # what the model will run: speech and silence
        if self.silence:
            most, probability = self.silence
            chosen = [rng.random() < probability for _ in order]
            silence = [
                (rng.randint(0, most), rng.randint(0, most)) if c else (0, 0) for c in chosen
            ]
            padded = [
                feature_frames(n, f, sum(pair))
                for n, f, pair in zip(self.samples, factors, silence, strict=True)
            ]
        if self.shuffle:
            jitter = [rng.uniform(1 - JITTER, 1 + JITTER) for _ in order]
            order.sort(key=lambda i: padded[i] * jitter[i])
        else:
            order.sort(key=lambda i: padded[i])
        batches: list[list] = []
        batch: list = []
        longest = 0
        for i in order:
            new_longest = max(longest, padded[i])
            if batch and (len(batch) + 1) * new_longest > self.max_frames:
                batches.append(batch)
                batch, new_longest = [], padded[i]
            if self.silence:
                batch.append((i, factors[i], *silence[i]))
            else:
                batch.append((i, factors[i]) if self.speed_factors else i)
            longest = new_longest
        if batch:
            batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _rank_batches(self) -> list[list]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]  # Lightning asks len() often; an epoch's batches are fixed
        batches = self._all_batches(self.epoch)
        if self.shuffle:
            # Speed factors and jitter change the bucketing, so the count of batches varies
            # a little between epochs; but Lightning counts them once and validates after
            # that many, so an epoch with fewer would never be validated (nor checkpointed).
            # Each epoch is cut or extended to epoch 0's length (a resumed run's too): a few
            # batches (random ones: they are shuffled) are left out of it, or seen twice.
            if self._batches_per_epoch is None:
                first = batches if self.epoch == 0 else self._all_batches(0)
                self._batches_per_epoch = len(first)
            batches = list(itertools.islice(itertools.cycle(batches), self._batches_per_epoch))
        if self.drop_last:
            per_rank = len(batches) // self.num_replicas
            mine = batches[self.rank : per_rank * self.num_replicas : self.num_replicas]
        else:
            mine = split_for_ranks(batches, self.num_replicas)[self.rank :: self.num_replicas]
        self._cache = (self.epoch, mine)
        return mine

    def __iter__(self) -> Iterator[list]:
        resumed, done = self._resumed or (None, 0)
        return iter(self._rank_batches()[done if resumed == self.epoch else 0 :])

    def __len__(self) -> int:
        return len(self._rank_batches())


def split_for_ranks(batches: list[list], num_replicas: int) -> list[list]:
    """`batches`, the largest halved until every rank has one: a rank without a batch would
    skip evaluation and the others would wait for it at the epoch's end.

    Raises:
        asr.manifest.ManifestError: fewer items than ranks.
    """
    batches = list(batches)
    while len(batches) < num_replicas:
        largest = max(range(len(batches)), key=lambda i: len(batches[i]), default=None)
        if largest is None or len(batches[largest]) < 2:
            items = sum(len(b) for b in batches)
            raise ManifestError(f"{items} utterances to evaluate on {num_replicas} processes")
        batch = batches.pop(largest)
        batches += [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
    return batches


def speed_rate(factor: float) -> int:
    """The rate (Hz) 16 kHz audio is taken to have to play `factor` times faster."""
    return round(SAMPLE_RATE * factor / SPEED_RATE_STEP) * SPEED_RATE_STEP


def feature_frames(samples: int, factor: float = 1.0, silence: int = 0) -> int:
    """Feature frames of `samples` at 16 kHz played `factor` times faster, with `silence`
    samples added: what the batch sampler budgets, as the loader will make them."""
    if factor != 1.0:  # torchaudio's resampling gives ceil(length * new / old) samples
        samples = math.ceil(samples * SAMPLE_RATE / speed_rate(factor))
    return num_frames(samples + silence)
