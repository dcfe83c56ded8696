"""LibriSpeech (already extracted) -> data/librispeech/<subset>.jsonl, one manifest per subset.

Layout read: ``ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with the
transcripts of a chapter in ``<speaker>-<chapter>.trans.txt`` (one ``ID TEXT`` line each).

Usage::

    python recipes/librispeech/prepare.py --root /path/to/LibriSpeech
    python recipes/librispeech/prepare.py --root /path/to/LibriSpeech --subsets dev-clean test-clean
"""

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from asr.manifest import Record, collect_records, write_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "data" / "librispeech"
AUDIO_SUFFIX = ".flac"
TRANSCRIPT_PATTERN = "*/*/*.trans.txt"  # relative to a subset folder

logger = logging.getLogger("librispeech")


def find_subsets(root: Path) -> list[str]:
    """Names of the folders under `root` laid out as LibriSpeech subsets."""
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and next(p.glob(TRANSCRIPT_PATTERN), None)
    )


def subset_items(subset: Path) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(audio, text, {"speaker", "chapter"}) for every transcript line of a subset."""
    for transcript in sorted(subset.glob(TRANSCRIPT_PATTERN)):
        lines = transcript.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            # Any whitespace separates the id from the text: an edited file may use a tab.
            utterance, *words = line.split()
            text = " ".join(words)
            parts = utterance.split("-")
            if len(parts) != 3:
                raise ValueError(f"{transcript}:{number}: bad utterance id {utterance!r}")
            speaker, chapter, _ = parts
            audio = transcript.parent / f"{utterance}{AUDIO_SUFFIX}"
            yield audio, text, {"speaker": speaker, "chapter": chapter}


def newest_change(subset: Path) -> float:
    """The latest modification time of the subset's folders and transcripts: an edited
    trans.txt, an added or removed flac (which changes its chapter folder) or chapter
    (its speaker folder) is newer."""
    paths = [subset, *subset.glob("*"), *subset.glob("*/*"), *subset.glob("*/*/*.trans.txt")]
    return max(p.stat().st_mtime for p in paths)


def prepare(
    root: Path, out: Path, subsets: Sequence[str] | None = None, force: bool = False
) -> dict[str, list[Record] | None]:
    """Write ``out/<subset>.jsonl`` for each subset (default: all found under `root`).

    A manifest newer than its subset folder is kept unless `force`.

    Returns:
        Per subset, the records written, or None when the manifest was up to date.

    Raises:
        FileNotFoundError: `root` or a requested subset does not exist.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    names = list(subsets) if subsets else find_subsets(root)
    if not names:
        raise FileNotFoundError(f"{root}: no LibriSpeech subsets (<subset>/{TRANSCRIPT_PATTERN})")
    results: dict[str, list[Record] | None] = {}
    for name in names:
        subset = root / name
        if not subset.is_dir():
            raise FileNotFoundError(f"{subset}: no such subset")
        manifest = out / f"{name}.jsonl"
        if not force and manifest.exists() and manifest.stat().st_mtime >= newest_change(subset):
            results[name] = None
            continue
        records = collect_records(subset_items(subset), f"librispeech {name}")
        write_manifest(manifest, records)
        results[name] = records
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the LibriSpeech folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--subsets", nargs="+", help="subset names (default: all found)")
    parser.add_argument("--force", action="store_true", help="rewrite even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        results = prepare(args.root, args.out, args.subsets, args.force)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, records in results.items():
        if records is None:
            print(f"{args.out / name}.jsonl: up to date")
        else:
            hours = sum(r["duration"] for r in records) / 3600
            speakers = len({r["speaker"] for r in records})
            print(
                f"{args.out / name}.jsonl: {len(records)} utterances, {hours:.2f} h, "
                f"{speakers} speakers"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
