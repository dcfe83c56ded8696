from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from asr.audio import SAMPLE_RATE, resample
from asr.data import DurationBatchSampler, SpeechDataset, collate, speed_rate
from asr.features import num_frames
from asr.text import Tokenizer


def durations(n: int = 300, seed: int = 0) -> list[float]:
    return np.random.default_rng(seed).uniform(0.3, 4.0, n).round(3).tolist()


def loaded_frames(seconds: float, factor: float = 1.0, silence: int = 0) -> int:
    """Feature frames of an utterance as the loader makes it: resampled for speed
    perturbation (as `SpeechDataset`), `silence` samples added."""
    samples = torch.zeros(round(seconds * SAMPLE_RATE))
    if factor != 1.0:
        samples = resample(samples, speed_rate(factor), SAMPLE_RATE)
    return num_frames(len(samples) + silence)


def test_the_budget_counts_the_frames_the_features_have():
    """A second of audio has 101 frames (1 + samples // hop), not 100: three seconds fitted
    a budget of 300 and ran 303."""
    assert [len(b) for b in DurationBatchSampler([1.0] * 6, 300, shuffle=False)] == [2, 2, 2]
    # 44,098 samples at 44.1 kHz, as a manifest gives their duration, load as 16,000 at
    # 16 kHz (resampling rounds up): 101 frames, not 100.
    seconds = 44_098 / 44_100
    assert [len(b) for b in DurationBatchSampler([seconds] * 3, 300, shuffle=False)] == [2, 1]


def test_batches_respect_budget_and_cover_everything():
    d = durations()
    sampler = DurationBatchSampler(d, max_frames=3000, shuffle=True, drop_last=False)
    batches = list(sampler)
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(len(d)))
    for batch in batches:
        longest = max(loaded_frames(d[i]) for i in batch)
        assert len(batch) * longest <= 3000
    # Bucketing keeps padding low: padded frames / real frames.
    padded = sum(len(b) * max(d[i] for i in b) for b in batches)
    assert padded / sum(d) < 1.15


def test_epochs_differ_but_are_reproducible():
    d = durations()
    a = DurationBatchSampler(d, max_frames=3000, seed=1)
    b = DurationBatchSampler(d, max_frames=3000, seed=1)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and list(b) == first


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_disjoint_equal_shares(world):
    d = durations()
    shares = [
        list(DurationBatchSampler(d, 3000, seed=5, num_replicas=world, rank=r))
        for r in range(world)
    ]
    assert len({len(s) for s in shares}) == 1  # equal step counts, or DDP would hang
    flat = [i for s in shares for b in s for i in b]
    assert len(flat) == len(set(flat))


@pytest.mark.parametrize(("items", "world"), [(31, 4), (3, 2), (2, 2), (5, 8)])
def test_evaluation_sees_every_item_exactly_once(items, world):
    """Repeating batches to even out the ranks counted their utterances twice."""
    d = durations(items)
    if items < world:
        with pytest.raises(ValueError, match=f"{items} utterances to evaluate on {world}"):
            list(DurationBatchSampler(d, 3000, shuffle=False, num_replicas=world, drop_last=False))
        return
    shares = [
        list(
            DurationBatchSampler(
                d, 3000, shuffle=False, num_replicas=world, rank=r, drop_last=False
            )
        )
        for r in range(world)
    ]
    assert all(shares)  # a rank without a batch would skip evaluation and hang the others
    flat = sorted(i for s in shares for b in s for i in b)
    assert flat == list(range(items))


def test_budget_smaller_than_an_utterance_is_refused():
    with pytest.raises(ValueError, match="max_frames"):
        DurationBatchSampler([1.0, 9.0], max_frames=500)


def test_dataset_and_collate(tiny_corpus):
    from asr.manifest import read_manifest

    records = read_manifest(tiny_corpus / "manifest.jsonl")
    ds = SpeechDataset(records, Tokenizer())
    batch = collate([ds[0], ds[3]])
    assert batch["audio"].shape[0] == 2 and batch["audio"].dtype == torch.float32
    assert batch["audio_lengths"].dtype == torch.long
    assert batch["texts"] == [records[0]["text"], records[3]["text"]]
    n = batch["token_lengths"][0]
    assert Tokenizer().decode(batch["tokens"][0, :n].tolist()) == records[0]["text"]
    plain = ds[0]["audio"]
    for factor in (0.9, 1.1):
        sped = ds[0, factor]["audio"]
        assert abs(len(sped) * factor / len(plain) - 1) < 0.01  # plays `factor` times faster


def test_speed_factors_drawn_before_bucketing():
    """Batches hold (index, factor) pairs grouped by perturbed duration, little padding."""
    rng = torch.Generator().manual_seed(0)
    d = (1.0 + torch.rand(600, generator=rng)).tolist()
    sampler = DurationBatchSampler(d, max_frames=2000, speed_factors=[0.8, 1.0, 1.25], seed=3)
    batches = list(sampler)
    items = [item for batch in batches for item in batch]
    assert sorted(i for i, _ in items) == list(range(600))
    assert {f for _, f in items} == {0.8, 1.0, 1.25}
    padded = real = 0
    for batch in batches:
        frames = [loaded_frames(d[i], f) for i, f in batch]
        assert len(batch) * max(frames) <= 2000
        padded += len(batch) * max(frames)
        real += sum(frames)
    assert padded / real < 1.08  # the ±5 % jitter alone allows ~5 %
    assert list(sampler) == batches  # same epoch, same draw
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(ValueError, match="max_frames"):  # a 0.8x copy of 1.9 s needs 238
        DurationBatchSampler([1.9], max_frames=200, speed_factors=[0.8, 1.0])


def test_silence_drawn_before_bucketing_keeps_batches_full_of_speech():
    """Batches hold (index, factor, before, after); buckets and budget count the silence."""
    rng = torch.Generator().manual_seed(0)
    d = (1.0 + torch.rand(600, generator=rng)).tolist()
    most = 16_000  # samples: 1 s at each end at most
    sampler = DurationBatchSampler(
        d, max_frames=4000, speed_factors=[0.8, 1.0, 1.25], seed=3, silence=(most, 0.9)
    )
    batches = list(sampler)
    items = [item for batch in batches for item in batch]
    assert sorted(item[0] for item in items) == list(range(600))
    silences = [(before, after) for _, _, before, after in items]
    assert all(0 <= s <= most for pair in silences for s in pair)
    assert 0.85 < sum(pair != (0, 0) for pair in silences) / 600 < 0.95
    inside = total = 0
    for batch in batches:
        frames = [loaded_frames(d[i], f, b + a) for i, f, b, a in batch]
        assert len(batch) * max(frames) <= 4000
        total += len(batch) * max(frames)
        inside += sum(frames)
    assert inside / total > 0.9  # silence drawn in the training step left 0.74 here
    assert list(sampler) == batches  # same epoch, same draw
    with pytest.raises(ValueError, match="silence padding included"):
        DurationBatchSampler([1.0], max_frames=250, silence=(most, 0.9))


def test_items_carry_their_silence_into_the_batch(tmp_path):
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(8_000, np.float32), 16_000)
    ds = SpeechDataset([{"audio": str(path), "text": "a"}] * 2, Tokenizer())
    batch = collate([ds[0, 1.0, 100, 200], ds[1, 1.0, 0, 0]])
    assert batch["silence"].tolist() == [[100, 0], [200, 0]]  # (2, B): before, after
    assert "silence" not in collate([ds[0], ds[1]])


@pytest.mark.parametrize("workers", [0, 1])
def test_data_module_augments_training_batches_in_the_loader(tmp_path, workers):
    """Silence (drawn by the sampler), noise and edge cuts are applied by the loader, in its
    worker processes when it has some; validation batches come as recorded."""
    import soundfile as sf

    from asr.datamodule import SpeechDataModule

    torch.manual_seed(0)  # the loader draws its workers' seeds from it
    tone = 0.1 * np.sin(np.arange(8_000) * 0.3).astype(np.float32)  # 0.5 s
    lines = []
    for i in range(6):
        sf.write(tmp_path / f"{i}.wav", tone, 16_000, subtype="FLOAT")  # read back exactly
        lines.append(f'{{"audio": "{i}.wav", "text": "a", "duration": 0.5}}')
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    manifest = str(tmp_path / "m.jsonl")
    data = SpeechDataModule(
        manifest, manifest, max_frames=1000, num_workers=workers, pad_silence=0.2,
        pad_probability=1.0, noise_snr_db=(0.0, 0.0),
    )  # fmt: skip
    train = next(iter(data.train_dataloader()))
    assert train["augmented"] == asdict(data._waveform_augment()) and "silence" not in train
    lengths = train["audio_lengths"]  # every utterance padded (probability 1)
    assert ((lengths > 8_000) & (lengths <= 8_000 + 2 * 3_200)).all()
    # Noise at 0 dB SNR on about half of them: as much energy again as the tone's.
    energy = train["audio"].square().sum(1) / float(np.square(tone).sum())  # (B,)
    assert all(abs(e - 1) < 1e-4 or e > 1.5 for e in energy.tolist())
    assert 0 < int((energy > 1.5).sum()) < len(lengths)
    val = next(iter(data.val_dataloader()))
    assert "augmented" not in val and "silence" not in val
    assert torch.equal(val["audio"][0], torch.from_numpy(tone))


def test_every_training_epoch_has_the_first_epochs_number_of_batches():
    """Lightning counts an epoch's batches once and validates after that many: an epoch
    with fewer batches would go unvalidated and unsaved."""
    d = durations(600, seed=1)
    sampler = DurationBatchSampler(d, max_frames=2000, speed_factors=[0.8, 1.0, 1.25], seed=3)
    first = len(sampler)
    natural = set()
    for epoch in range(12):
        sampler.set_epoch(epoch)
        natural.add(len(sampler._all_batches(epoch)))
        batches = list(sampler)
        assert len(batches) == len(sampler) == first
        seen = {i for batch in batches for i, _ in batch}
        assert len(seen) >= 0.95 * len(d)  # at most a batch or two left out
    assert len(natural) > 1  # the bucketing alone would give epochs of different lengths


class IndexOf(Dataset):
    """The utterance index of a sampler's item, (index, speed factor)."""

    def __getitem__(self, item: tuple[int, float]) -> int:
        return item[0]


def test_a_resumed_sampler_yields_the_rest_of_its_epoch_through_a_loader_with_workers():
    def sampler() -> DurationBatchSampler:
        return DurationBatchSampler(
            durations(300, seed=2), max_frames=2000, speed_factors=[0.9, 1.1], seed=4
        )

    uninterrupted = sampler()
    uninterrupted.set_epoch(2)
    epoch_2 = list(uninterrupted)
    resumed = sampler()  # a new process: it has seen no epoch before
    resumed.resume(2, 3)
    assert len(resumed) == len(epoch_2)  # an epoch's length, as Lightning counts it
    assert list(resumed) == epoch_2[3:]
    # A loader with workers iterates its batch sampler twice before the first batch.
    loader = DataLoader(IndexOf(), batch_sampler=resumed, num_workers=1, collate_fn=list)
    assert list(loader) == [[i for i, _ in batch] for batch in epoch_2[3:]]
    resumed.set_epoch(3)
    uninterrupted.set_epoch(3)
    assert list(resumed) == list(uninterrupted)  # the next epoch is whole


def test_the_data_module_saves_where_training_is_and_resumes_there(tiny_corpus):
    from types import SimpleNamespace

    from asr.datamodule import SpeechDataModule

    manifest = str(tiny_corpus / "manifest.jsonl")

    def data_module(epoch: int, processed: int = 0) -> SpeechDataModule:
        data = SpeechDataModule(manifest, manifest, max_frames=250, num_workers=0)
        progress = SimpleNamespace(current=SimpleNamespace(processed=processed))
        fit_loop = SimpleNamespace(
            epoch_loop=SimpleNamespace(batch_progress=progress),
            epoch_progress=SimpleNamespace(current=SimpleNamespace(started=epoch + 1)),
        )
        data.trainer = SimpleNamespace(
            current_epoch=epoch, fit_loop=fit_loop, global_rank=0, world_size=1
        )
        return data

    data = data_module(3, processed=1)
    assert data.state_dict() == {}  # no training loader yet: nothing to resume
    batches = len(data.train_dataloader())
    data.trainer.num_training_batches = batches
    assert data.state_dict() == {"epoch": 3, "batches_done": 1}
    data.trainer.fit_loop.epoch_loop.batch_progress.current.processed = batches
    assert data.state_dict() == {"epoch": 4, "batches_done": 0}  # the next epoch, whole
    data.trainer.current_epoch = 4  # saved once Lightning has counted the epoch complete
    assert data.state_dict() == {"epoch": 4, "batches_done": 0}
    data.teardown("fit")
    assert data.state_dict() == {}  # a later fit starts from its own state

    def epoch(number: int) -> list:
        sampler = data_module(number).train_dataloader().batch_sampler
        return list(sampler)

    # Lightning restores the state before it restores current_epoch (0 then) and makes the
    # first loader; a reload in the resumed epoch resumes too; a later epoch's does not.
    resumed = data_module(0)
    resumed.load_state_dict({"epoch": 3, "batches_done": 1})
    assert list(resumed.train_dataloader().batch_sampler) == epoch(3)[1:]
    resumed.trainer.current_epoch = 3
    assert list(resumed.train_dataloader().batch_sampler) == epoch(3)[1:]
    resumed.trainer.current_epoch = 4
    assert list(resumed.train_dataloader().batch_sampler) == epoch(4)
