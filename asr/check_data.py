"""`asr check-data`: find the utterances of a manifest that would spoil a training run.

Checks each line of a JSONL manifest and prints one line per problem, then a summary:

- ``bad-record``: not JSON, or a record without valid audio/text/duration;
- ``unreadable``: the audio file is missing or not readable audio (header only; with
  ``--read-audio`` every sample is decoded, which also finds NaN/inf samples);
- ``duration``: the manifest's duration differs from the file's by more than a tolerance;
- ``text``: letters normalisation drops (another script's: the words are lost); digits,
  punctuation, capitals and accents are fine, normalisation spells or drops them;
- ``empty-text``: nothing left after normalisation;
- ``too-short``: fewer model output frames than CTC needs for the transcript (label length
  plus one blank between each pair of equal neighbours), so the loss would be infinite;
- ``duplicate``: an audio file listed more than once.

The exit status is 1 when any problem is found, or the manifest holds no record, so a
script can stop before training.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.alignment import ctc_frames_needed
from asr.audio import SAMPLE_RATE, AudioError, audio_info, load_audio
from asr.features import HOP_LENGTH, num_frames
from asr.manifest import _check_record
from asr.model import subsampled_length
from asr.text import Tokenizer, normalize_text

DURATION_TOLERANCE_S = 0.1  # seconds of disagreement between manifest and file allowed
# The time subsampling of every corpus recipe's model; the strict choice: data checked for
# 2 passes utterances too short for a model that subsamples by 4.
DEFAULT_SUBSAMPLING = 4


@dataclass
class Problem:
    """One problem: its kind (see the module docstring), manifest line, audio and details."""

    kind: str
    line: int
    audio: str
    detail: str

    def __str__(self) -> str:
        # json.dumps: paths and transcripts are data, printed escaped on one line.
        return f"{self.kind}\tline {self.line}\t{json.dumps(self.audio)}\t{self.detail}"


def output_frames(num_samples: int, subsampling: int) -> int:
    """Model output frames for `num_samples` of SAMPLE_RATE audio with this subsampling factor."""
    return int(subsampled_length(num_frames(num_samples), subsampling))


def check_manifest(
    path: str | Path,
    subsampling: int = DEFAULT_SUBSAMPLING,
    tolerance: float = DURATION_TOLERANCE_S,
    read_audio: bool = False,
) -> tuple[list[Problem], int]:
    """Check every line of a manifest.

    Args:
        subsampling: the model's time subsampling factor (1, 2 or 4).
        tolerance: allowed duration mismatch, seconds.
        read_audio: decode every sample (slow; finds NaN/inf and corrupt data too).

    Returns:
        The problems found, and the number of records read.
    """
    path = Path(path)
    tokenizer = Tokenizer()
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    count = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            count += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(Problem("bad-record", number, "", f"not valid JSON ({err.msg})"))
                continue
            reason = _check_record(record)
            if reason:
                problems.append(Problem("bad-record", number, "", reason))
                continue
            audio = os.path.abspath(os.path.join(path.parent, record["audio"]))
            problems += _check_one(number, audio, record, tokenizer, subsampling, tolerance)
            if audio in seen:
                problems.append(
                    Problem("duplicate", number, audio, f"also listed on line {seen[audio]}")
                )
            seen.setdefault(audio, number)
            unreadable = any(p.line == number and p.kind == "unreadable" for p in problems)
            if read_audio and not unreadable:
                try:
                    load_audio(audio)
                except AudioError as err:
                    problems.append(Problem("unreadable", number, audio, err.reason))
    return problems, count


def _check_one(
    number: int, audio: str, record: dict, tokenizer: Tokenizer, subsampling: int, tolerance: float
) -> list[Problem]:
    problems = []
    text = record["text"]
    normalized = normalize_text(text)
    # Training normalises the text ("Yes, 2!" -> "yes two"): only letters it has to drop
    # (another script's, spelled in no a-z) lose words.
    lost = sorted({c for c in text if c.isalpha() and not normalize_text(c)})
    if lost:
        detail = f"letters normalisation drops {lost}; normalised: {json.dumps(normalized)}"
        problems.append(Problem("text", number, audio, detail))
    if not normalized:
        problems.append(Problem("empty-text", number, audio, "no text after normalisation"))
    try:
        info = audio_info(audio)
    except AudioError as err:
        problems.append(Problem("unreadable", number, audio, err.reason))
        return problems
    actual = info.duration
    if abs(actual - record["duration"]) > tolerance:
        detail = f"manifest says {record['duration']:.3f} s, the file holds {actual:.3f} s"
        problems.append(Problem("duration", number, audio, detail))
    samples = round(actual * SAMPLE_RATE)  # as loading resamples to SAMPLE_RATE
    frames = output_frames(samples, subsampling)
    needed = ctc_frames_needed(tokenizer.encode(normalized))
    if frames < needed:
        detail = (
            f"{frames} output frames ({actual:.3f} s, hop {HOP_LENGTH} samples, subsampling "
            f"{subsampling}) but CTC needs {needed} for {json.dumps(normalized)}"
        )
        problems.append(Problem("too-short", number, audio, detail))
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 1 when problems were found."""
    parser = argparse.ArgumentParser(
        prog="asr check-data", description="Validate a JSONL manifest before training."
    )
    parser.add_argument("manifest", help="JSONL manifest to check")
    parser.add_argument(
        "--subsampling",
        type=int,
        default=DEFAULT_SUBSAMPLING,
        choices=(1, 2, 4),
        help=f"the model's time subsampling (default: {DEFAULT_SUBSAMPLING}, as in every "
        "corpus recipe's config)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DURATION_TOLERANCE_S,
        help="allowed duration mismatch, seconds",
    )
    parser.add_argument(
        "--read-audio", action="store_true", help="decode every sample (finds NaN/inf; slow)"
    )
    args = parser.parse_args(argv)
    try:
        problems, count = check_manifest(
            args.manifest, args.subsampling, args.tolerance, args.read_audio
        )
    except (OSError, UnicodeDecodeError) as err:
        print(f"asr check-data: {args.manifest}: cannot read the manifest ({err})", file=sys.stderr)
        return 1
    if count == 0:
        print(f"asr check-data: {args.manifest}: no records to train on", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem)
    kinds: dict[str, int] = {}
    for problem in problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no problems"
    print(f"{args.manifest}: {count} records checked: {summary}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
