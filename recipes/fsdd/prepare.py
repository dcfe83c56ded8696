"""Free Spoken Digit Dataset -> data/fsdd/{train,dev,test}.jsonl, split by speaker.

Recordings are named ``{digit}_{speaker}_{index}.wav`` (8 kHz; the loader resamples, so the
manifests point at the files where they are). The split keeps speakers apart:

- test: every recording of the held-out speaker (--test-speaker), never trained on;
- dev: upstream test indices 0-4 of the other speakers;
- train: upstream train indices 5-49 of the other speakers.

The default held-out speaker is nicolas: his Belgian French accent is shared by no other
speaker, so the test measures a genuinely unseen voice and accent. Holding out a US speaker
(jackson or lucas) would leave a same-accent voice in training and give an optimistic number.

Usage::

    python recipes/fsdd/prepare.py                      # source ../shared/data/fsdd
    python recipes/fsdd/prepare.py --source DIR --out data/fsdd --test-speaker george
    python recipes/fsdd/prepare.py --download URL [--sha256 HEX]
"""

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from asr.download import DownloadError, UnsafeArchiveError, download, safe_extract
from asr.manifest import Record, collect_records, write_manifest
from asr.text import number_to_words

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "fsdd"
DEFAULT_OUT = REPO_ROOT / "data" / "fsdd"
DEFAULT_TEST_SPEAKER = "nicolas"
DEV_INDICES = range(0, 5)  # upstream's test indices; used as dev for the training speakers
SPLITS = ("train", "dev", "test")
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


def split_records(recordings: Path, test_speaker: str) -> dict[str, list[Record]]:
    """Manifest records of every recording, assigned to train/dev/test by speaker and index.

    Raises:
        ValueError: `test_speaker` does not occur, or no other speaker is left for training.
    """
    parsed = {p: name for p in sorted(recordings.glob("*.wav")) if (name := parse_name(p))}
    speakers = sorted({speaker for _, speaker, _ in parsed.values()})
    if test_speaker not in speakers:
        raise ValueError(f"test speaker {test_speaker!r} not among {speakers}")
    if len(speakers) < 2:
        raise ValueError(f"only one speaker ({test_speaker}); nothing left to train on")
    items: dict[str, list[tuple[Path, str, dict[str, str]]]] = {name: [] for name in SPLITS}
    for path, (digit, speaker, index) in parsed.items():
        split = "test" if speaker == test_speaker else "dev" if index in DEV_INDICES else "train"
        items[split].append((path, number_to_words(digit), {"speaker": speaker}))
    return {split: collect_records(pairs, f"fsdd {split}") for split, pairs in items.items()}


def is_up_to_date(out: Path, recordings: Path, options: dict[str, str]) -> bool:
    """True when all outputs exist, were made with `options`, and are newer than the audio."""
    outputs = [out / f"{split}.jsonl" for split in SPLITS]
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
    archive = download(url, out / "downloads" / name, sha256=sha256)
    return safe_extract(archive, out / "upstream")


def prepare(
    source: Path, out: Path, test_speaker: str = DEFAULT_TEST_SPEAKER, force: bool = False
) -> dict[str, Counter[str]] | None:
    """Write ``out/{train,dev,test}.jsonl``.

    Returns:
        Per split, the number of utterances per speaker; None when the outputs were up to date.
    """
    recordings = find_recordings(source)
    options = {"recordings": str(recordings.resolve()), "test_speaker": test_speaker}
    if not force and is_up_to_date(out, recordings, options):
        return None
    splits = split_records(recordings, test_speaker)
    train_speakers = {r["speaker"] for r in splits["train"] + splits["dev"]}
    assert test_speaker not in train_speakers, "held-out speaker leaked into train/dev"
    for split, records in splits.items():
        write_manifest(out / f"{split}.jsonl", records)
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
    parser.add_argument("--force", action="store_true", help="rewrite even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        source = fetch(args.download, args.out, args.sha256) if args.download else args.source
        counts = prepare(source, args.out, args.test_speaker, args.force)
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
