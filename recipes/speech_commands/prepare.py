"""Google Speech Commands v2 -> data/speech_commands/{train,dev,test,noise}.jsonl.

Downloads the official archive (resuming an interrupted download, verifying its sha256),
extracts it safely, and splits it with the official lists: validation_list.txt -> dev,
testing_list.txt -> test, every other word recording -> train. The text is the word; the
speaker is the hash before ``_nohash_`` in the file name (the official lists already keep
speakers apart). noise.jsonl lists the ``_background_noise_`` recordings (empty text) for
noise augmentation.

Usage::

    python recipes/speech_commands/prepare.py                    # download (2.3 GB) + prepare
    python recipes/speech_commands/prepare.py --source DIR       # an already extracted copy
"""

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from asr.download import DownloadError, UnsafeArchiveError, fetch_archive
from asr.manifest import Record, collect_records, write_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "data" / "speech_commands"
URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"  # as in torchaudio
DEV_LIST = "validation_list.txt"
TEST_LIST = "testing_list.txt"
NOISE_FOLDER = "_background_noise_"
SPEAKER_SEPARATOR = "_nohash_"
COMPLETE_MARKER = ".extracted"  # written into the extraction folder once extraction finished
SOURCE_STAMP = ".source"  # beside the manifests: the extracted folder they were made from
OUTPUTS = ("train", "dev", "test", "noise")

logger = logging.getLogger("speech_commands")


def fetch(url: str, out: Path, sha256: str | None) -> Path:
    """Download (resumably) and extract the archive; returns the extraction folder ``out/raw``.

    Extraction is skipped when a previous run completed it from the same URL and checksum;
    another archive is refused there (its files would mix with the first one's).
    """
    raw = out / "raw"
    marker = raw / COMPLETE_MARKER
    origin = {"url": url, "sha256": sha256.lower() if sha256 else None}
    if marker.exists():
        made_from = json.loads(marker.read_text() or "{}")  # empty: an earlier asr version's
        sums = made_from.get("sha256"), origin["sha256"]
        if made_from.get("url", url) != url or (all(sums) and sums[0] != sums[1]):
            raise DownloadError(
                f"{raw} holds an archive extracted from {made_from}, not {origin}; "
                "give another --out, or delete that folder"
            )
        return raw
    name = Path(urlparse(url).path).name or "speech_commands.tar.gz"
    logger.info("downloading %s and extracting it", url)
    fetch_archive(url, out / "downloads" / name, raw, sha256)
    marker.write_text(json.dumps(origin))
    return raw


def _read_list(path: Path) -> set[str]:
    """Relative paths (``word/file.wav``) listed in an official split file."""
    return {
        line.strip().removeprefix("./") for line in path.read_text().splitlines() if line.strip()
    }


def split_items(root: Path) -> dict[str, list[tuple[Path, str, dict[str, Any]]]]:
    """(audio, word, {"speaker": ...}) items of every word recording, per split.

    Raises:
        FileNotFoundError: `root` lacks the official list files.
    """
    for name in (DEV_LIST, TEST_LIST):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root}: no {name}; is this an extracted Speech Commands v2?")
    dev, test = _read_list(root / DEV_LIST), _read_list(root / TEST_LIST)
    items: dict[str, list[tuple[Path, str, dict[str, Any]]]] = {"train": [], "dev": [], "test": []}
    words = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    for word in words:
        for audio in sorted(word.glob("*.wav")):
            relative = f"{word.name}/{audio.name}"
            split = "dev" if relative in dev else "test" if relative in test else "train"
            speaker = audio.name.split(SPEAKER_SEPARATOR)[0]
            items[split].append((audio, word.name, {"speaker": speaker}))
    return items


def build_manifests(root: Path) -> dict[str, list[Record]]:
    """Records for train, dev, test (word recordings) and noise (background noise files)."""
    manifests = {
        split: collect_records(items, f"speech commands {split}")
        for split, items in split_items(root).items()
    }
    noise = [(p, "", {}) for p in sorted((root / NOISE_FOLDER).glob("*.wav"))]
    manifests["noise"] = collect_records(noise, "speech commands noise", allow_empty_text=True)
    return manifests


def is_up_to_date(out: Path, root: Path) -> bool:
    """True when every manifest exists, was made from `root`, and is newer than its list files."""
    outputs = [out / f"{name}.jsonl" for name in OUTPUTS]
    stamp = out / SOURCE_STAMP
    if not all(p.is_file() for p in [*outputs, stamp]):
        return False
    if stamp.read_text() != str(root.resolve()):
        return False
    inputs = [root / DEV_LIST, root / TEST_LIST, root / COMPLETE_MARKER]
    newest = max(p.stat().st_mtime for p in inputs if p.exists())
    return min(p.stat().st_mtime for p in outputs) >= newest


def prepare(root: Path, out: Path, force: bool = False) -> dict[str, list[Record]] | None:
    """Write the four manifests from an extracted copy; None when they were up to date."""
    if not force and is_up_to_date(out, root):
        return None
    manifests = build_manifests(root)
    (out / SOURCE_STAMP).unlink(missing_ok=True)  # a run that dies half-way is not up to date
    for name, records in manifests.items():
        write_manifest(out / f"{name}.jsonl", records)
    (out / SOURCE_STAMP).write_text(str(root.resolve()))
    return manifests


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--source", type=Path, help="already extracted copy (skips download)")
    parser.add_argument("--url", default=URL, help="archive URL")
    parser.add_argument(
        "--sha256", default=SHA256, help="expected archive sha256 ('' skips the check)"
    )
    parser.add_argument("--force", action="store_true", help="rewrite even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        root = args.source or fetch(args.url, args.out, args.sha256 or None)
        manifests = prepare(root, args.out, args.force)
    except (OSError, ValueError, DownloadError, UnsafeArchiveError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if manifests is None:
        print(f"{args.out}: up to date (use --force to rewrite)")
        return 0
    for name, records in manifests.items():
        hours = sum(r["duration"] for r in records) / 3600
        print(f"{args.out / name}.jsonl: {len(records)} files, {hours:.2f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
