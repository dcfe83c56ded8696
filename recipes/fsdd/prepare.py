"""Free Spoken Digit Dataset -> data/fsdd/{train,dev,test}.jsonl, split by speaker.

Recordings are named ``{digit}_{speaker}_{index}.wav`` (8 kHz; the loader resamples, so the
manifests point at the files where they are). The split keeps speakers apart:

- test: every recording of the held-out speaker (--test-speaker), never trained on (with
  --adapt, only his indices 0-24);
- dev: upstream test indices 0-4 of the other speakers;
- train: upstream train indices 5-49 of the other speakers.

With ``--adapt K`` (1-25) the held-out speaker's recordings are split too, to measure
adapting a model to a new speaker: indices 25 to 25 + K - 1 of each digit go to
``adapt.jsonl`` (K per digit), and the test keeps indices 0-24, whatever K, so runs with
different K are scored on the same 250 recordings.

The default held-out speaker is nicolas: his Belgian French accent is shared by no other
speaker, so the test measures a genuinely unseen voice and accent. Holding out a US speaker
(jackson or lucas) would leave a same-accent voice in training and give an optimistic number.

Usage::

    python recipes/fsdd/prepare.py                      # source ../shared/data/fsdd
    python recipes/fsdd/prepare.py --source DIR --out data/fsdd --test-speaker george
    python recipes/fsdd/prepare.py --download URL [--sha256 HEX]
    python recipes/fsdd/prepare.py --out data/fsdd_adapt --adapt 5
"""

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from asr.download import DownloadError, UnsafeArchiveError, fetch_archive
from asr.manifest import Record, collect_records, write_manifest
from asr.text import number_to_words

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "fsdd"
DEFAULT_OUT = REPO_ROOT / "data" / "fsdd"
DEFAULT_TEST_SPEAKER = "nicolas"
DEV_INDICES = range(0, 5)  # upstream's test indices; used as dev for the training speakers
SPLITS = ("train", "dev", "test")
ADAPT_FROM = 25  # the held-out speaker's indices from here on may go to adapt.jsonl
MOST_ADAPT = 25  # per digit: FSDD has 50 recordings per digit and speaker
STAMP = ".prepared.json"  # records the options the outputs were made with

logger = logging.getLogger("fsdd")


def parse_name(path: Path) -> tuple[int, str, int] | None:
    """(digit, speaker, index) from ``{digit}_{speaker}_{index}.wav``, or None if not that form."""
    parts = path.stem.split("_")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[0]), parts[1], int(parts[2])


def find_recordings(source: Path) -> Path:
    """The folder holding the .wav files: ``source/recordings``, `source`, or one found below.

    Raises:
        FileNotFoundError: no folder with FSDD-named wav files.
    """
    candidates = [source / "recordings", source, *sorted(source.rglob("recordings"))]
    for folder in candidates:
        if folder.is_dir() and any(parse_name(p) for p in folder.glob("*.wav")):
            return folder
    raise FileNotFoundError(f"{source}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav)")


def output_splits(adapt: int) -> tuple[str, ...]:
    """The manifests written: SPLITS, and "adapt" when `adapt` recordings per digit are asked."""
    return (*SPLITS, "adapt") if adapt else SPLITS


def split_records(recordings: Path, test_speaker: str, adapt: int = 0) -> dict[str, list[Record]]:
    """Manifest records of the recordings, assigned to train/dev/test by speaker and index.

    With `adapt` > 0 there is also an "adapt" split: the held-out speaker's indices
    ADAPT_FROM to ADAPT_FROM + adapt - 1; his test then keeps the indices below ADAPT_FROM.

    Raises:
        ValueError: `test_speaker` does not occur, or no other speaker is left for training,
            or `adapt` is outside 0-MOST_ADAPT.
    """
    if not 0 <= adapt <= MOST_ADAPT:
        raise ValueError(f"adapt must be 0-{MOST_ADAPT} recordings per digit, got {adapt}")
    parsed = {p: name for p in sorted(recordings.glob("*.wav")) if (name := parse_name(p))}
    speakers = sorted({speaker for _, speaker, _ in parsed.values()})
    if test_speaker not in speakers:
        raise ValueError(f"test speaker {test_speaker!r} not among {speakers}")
    if len(speakers) < 2:
        raise ValueError(f"only one speaker ({test_speaker}); nothing left to train on")
    items: dict[str, list[tuple[Path, str, dict[str, str]]]] = {
        name: [] for name in output_splits(adapt)
    }
    for path, (digit, speaker, index) in parsed.items():
        if speaker != test_speaker:
            split = "dev" if index in DEV_INDICES else "train"
        elif not adapt or index < ADAPT_FROM:
            split = "test"
        elif index < ADAPT_FROM + adapt:
            split = "adapt"
        else:
            continue  # neither adapted on nor tested: the test stays the same for every K
        items[split].append((path, number_to_words(digit), {"speaker": speaker}))
    return {split: collect_records(pairs, f"fsdd {split}") for split, pairs in items.items()}


def is_up_to_date(out: Path, recordings: Path, options: dict[str, str | int]) -> bool:
    """True when all outputs exist, were made with `options`, and are newer than the audio."""
    outputs = [out / f"{split}.jsonl" for split in output_splits(int(options.get("adapt", 0)))]
    stamp = out / STAMP
    if not all(p.is_file() for p in [*outputs, stamp]):
        return False
    try:
        if json.loads(stamp.read_text()) != options:
            return False
    except ValueError:
        return False
    newest_input = max(
        [recordings.stat().st_mtime] + [p.stat().st_mtime for p in recordings.glob("*.wav")]
    )
    return min(p.stat().st_mtime for p in outputs) >= newest_input


def fetch(url: str, out: Path, sha256: str | None) -> Path:
    """Download and safely extract the upstream archive under ``out/upstream``."""
    name = Path(urlparse(url).path).name or "fsdd-archive"
    return fetch_archive(url, out / "downloads" / name, out / "upstream", sha256)


def prepare(
    source: Path,
    out: Path,
    test_speaker: str = DEFAULT_TEST_SPEAKER,
    force: bool = False,
    adapt: int = 0,
) -> dict[str, Counter[str]] | None:
    """Write ``out/{train,dev,test}.jsonl`` (and ``out/adapt.jsonl`` with `adapt`).

    Args:
        source: FSDD folder (its ``recordings`` or a folder below holding them).
        out: output folder.
        test_speaker: the held-out speaker.
        force: rewrite even when the outputs are up to date.
        adapt: recordings per digit of `test_speaker` for ``adapt.jsonl`` (0: none; see
            `split_records`).

    Returns:
        Per split, the number of utterances per speaker; None when the outputs were up to date.
    """
    recordings = find_recordings(source)
    options: dict[str, str | int] = {
        "recordings": str(recordings.resolve()),
        "test_speaker": test_speaker,
    }
    if adapt:  # only then, so stamps of earlier runs stay valid
        options["adapt"] = adapt
    if not force and is_up_to_date(out, recordings, options):
        return None
    splits = split_records(recordings, test_speaker, adapt)
    train_speakers = {r["speaker"] for r in splits["train"] + splits["dev"]}
    if test_speaker in train_speakers:  # not an assert: `python -O` would skip it
        raise ValueError(f"held-out speaker {test_speaker} leaked into train/dev")
    # No stamp while writing: a run that dies half-way must not look up to date later.
    (out / STAMP).unlink(missing_ok=True)
    for split, records in splits.items():
        write_manifest(out / f"{split}.jsonl", records)
    if not adapt:  # an earlier run's adapt split would now overlap the test
        (out / "adapt.jsonl").unlink(missing_ok=True)
    (out / STAMP).write_text(json.dumps(options))
    return {split: Counter(r["speaker"] for r in records) for split, records in splits.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="FSDD folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--test-speaker", default=DEFAULT_TEST_SPEAKER, help="held-out speaker for the test set"
    )
    parser.add_argument("--download", metavar="URL", help="fetch the upstream archive (tar/zip)")
    parser.add_argument("--sha256", help="expected sha256 of the --download archive")
    parser.add_argument(
        "--adapt",
        type=int,
        default=0,
        metavar="K",
        help="also write adapt.jsonl: K recordings per digit of the test speaker (1-25, his "
        "indices 25 to 25+K-1); the test then keeps only his indices 0-24",
    )
    parser.add_argument("--force", action="store_true", help="rewrite even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        source = fetch(args.download, args.out, args.sha256) if args.download else args.source
        counts = prepare(source, args.out, args.test_speaker, args.force, args.adapt)
    except (OSError, ValueError, DownloadError, UnsafeArchiveError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if counts is None:
        print(f"{args.out}: up to date (use --force to rewrite)")
        return 0
    for split, per_speaker in counts.items():
        detail = ", ".join(f"{s} {n}" for s, n in sorted(per_speaker.items()))
        print(f"{args.out / split}.jsonl: {sum(per_speaker.values())} utterances ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
