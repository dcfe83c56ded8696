"""Recordings of several commands: utterances of a manifest joined with pauses between them.

A test of what `asr transcribe` does with a recording in which a user says two or three
commands, one after another (`asr.segment`). Each recording joins 2-3 utterances drawn
from the manifest (each with its own voice and augmentation, as it was), with
PAUSE_S seconds of digital silence between them; its text is theirs, joined. The same
seed gives the same files; a re-run rewrites them, and removes those beyond a smaller
``--count`` (the joining is ``joining.py``'s, shared with recipes/asterisk).

Usage::

    python recipes/commands/join_commands.py data/commands/test.jsonl --out data/commands_joined
    asr evaluate data/commands_joined/test.jsonl                  # cut at pauses (default)
    asr evaluate data/commands_joined/test.jsonl --min-pause 0    # each recording whole
"""

import argparse
import logging
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import joining

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.manifest import ManifestError, Record, collect_records, read_manifest, write_manifest

PAUSE_S = (0.5, 1.5)  # silence between two commands, seconds (uniform)
COMMANDS_PER_RECORDING = (2, 3)  # inclusive
DEFAULT_COUNT = 300

logger = logging.getLogger("join_commands")


def joined_items(
    records: list[Record], out: Path, count: int, pause: tuple[float, float], seed: int
) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """Write `count` joined recordings under ``out/wav/``; yield (audio, text, extra keys).

    A recording that needs an unreadable utterance is skipped with a warning naming it.
    Recordings left from an earlier run with a larger `count` are removed.
    """

    def draw(index: int, rng: random.Random) -> joining.Joined | None:
        group = rng.sample(records, rng.randint(*COMMANDS_PER_RECORDING))
        gaps = [round(rng.uniform(*pause) * SAMPLE_RATE) for _ in group[1:]]
        try:
            utterances = [load_audio(record["audio"]) for record in group]
        except AudioError as err:
            logger.warning("skipping recording %d: %s", index, err)
            return None
        sources = " ".join(Path(r["audio"]).name for r in group)
        text = " ".join(r["text"] for r in group)
        extra = {"commands": len(group), "from": sources}
        return joining.join(utterances, gaps), SAMPLE_RATE, text, extra

    return joining.write_joined(out / "wav", "joined", count, seed, draw)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="utterances of one command each")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="recordings")
    parser.add_argument(
        "--pause", type=float, nargs=2, default=PAUSE_S, metavar=("MIN", "MAX"), help="seconds"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if not 0 <= args.pause[0] <= args.pause[1]:
        parser.error(f"--pause {args.pause[0]} {args.pause[1]}: need 0 <= MIN <= MAX")
    try:
        records = read_manifest(args.manifest)
        if len(records) < COMMANDS_PER_RECORDING[1]:
            raise ManifestError(f"{args.manifest}: fewer than {COMMANDS_PER_RECORDING[1]} records")
        items = joined_items(records, args.out, args.count, tuple(args.pause), args.seed)
        joined = collect_records(items, f"joined utterances of {args.manifest}")
    except (OSError, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    path = write_manifest(args.out / "test.jsonl", joined)
    words = sum(len(r["text"].split()) for r in joined)
    print(f"{path}: {len(joined)} recordings, {words} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
