"""Manifests: JSONL files listing utterances, one per line.

Each line is a JSON object ``{"audio": path, "text": str, "duration": seconds}``; extra keys
(``"speaker"``, ...) are allowed and kept. On disk, audio paths are relative to the manifest's
folder, so a corpus folder can be moved as a whole; in memory (after `read_manifest`) they are
absolute. Text is already normalised with `asr.text.normalize_text`.

Command line (``asr manifest`` / ``python -m asr.manifest``)::

    asr manifest my_recordings/ -o data/mine/all.jsonl       # audio + same-stem .txt files
    asr manifest transcripts.tsv -o data/mine/all.jsonl      # table with columns path, text
"""

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from asr.audio import AudioError, audio_info, find_audio_files
from asr.files import write_atomically
from asr.text import normalize_text

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("audio", "text", "duration")
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}  # file extension -> column delimiter
TABLE_HEADER = ("path", "text")  # column names of a table with a header row

Record = dict[str, Any]


def _check_record(record: Any, need_duration: bool = True) -> str | None:
    """Why `record` is not a valid manifest entry, or None when it is."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    required = REQUIRED_KEYS if need_duration else ("audio", "text")
    missing = [key for key in required if key not in record]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if not isinstance(record["audio"], str) or not record["audio"]:
        return "'audio' must be a non-empty string"
    if not isinstance(record["text"], str):
        return "'text' must be a string"
    duration = record.get("duration", 0.0)
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration >= 0:
        return f"'duration' must be a non-negative number of seconds, got {duration!r}"
    return None


class ManifestError(ValueError):
    """A manifest line that is not valid JSON or not a valid record (names file and line)."""


def read_manifest(path: str | Path, need_duration: bool = True) -> list[Record]:
    """Read a JSONL manifest; audio paths come back absolute.

    Blank lines are ignored.

    Args:
        need_duration: records must carry "duration" (training batches by it; scoring does
            not need it).

    Raises:
        ManifestError: a line is not valid JSON or not a valid record (the message names the
            file and the line number), or the file is not UTF-8 text.
    """
    path = Path(path)
    folder = path.parent
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ManifestError(
                    f"{path}:{number}: not UTF-8 text (a manifest is JSON lines; audio files "
                    "go in its records)"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            problem = _check_record(record, need_duration)
            if problem:
                raise ManifestError(f"{path}:{number}: {problem}")
            record["audio"] = os.path.abspath(os.path.join(folder, record["audio"]))
            if "duration" in record:
                record["duration"] = float(record["duration"])
            records.append(record)
    return records


def _relative_audio(audio: str, folder: Path) -> str:
    """`audio` (absolute, or relative to the working directory) relative to `folder`."""
    try:
        return Path(os.path.relpath(os.path.abspath(audio), folder)).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return os.path.abspath(audio)


def write_manifest(path: str | Path, records: Iterable[Record]) -> Path:
    """Write `records` as a JSONL manifest, atomically (temp file + rename).

    Audio paths may be absolute or relative to the working directory; they are written
    relative to the manifest's folder. Parent folders are created.

    Raises:
        ValueError: a record lacks a required key or has a value of the wrong type.
    """
    path = Path(path)
    folder = path.parent.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, record in enumerate(records):
        problem = _check_record(record)
        if problem:
            raise ValueError(f"record {index} for {path}: {problem}")
        record = {**record, "audio": _relative_audio(str(record["audio"]), folder)}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return write_atomically(path, lambda tmp: tmp.write_text("".join(lines), encoding="utf-8"))


def audio_record(audio: str | Path, text: str, **extra: Any) -> Record:
    """A manifest record for one file: duration from the file header, text normalised.

    Raises:
        AudioError: the file is missing, unreadable, or holds no samples.
    """
    info = audio_info(audio)
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(audio, "the file holds no audio samples")
    return {
        "audio": os.path.abspath(audio),
        "text": normalize_text(text),
        "duration": round(info.frames / info.samplerate, 4),
        **extra,
    }


class UnusableTranscript(ValueError):
    """A transcript that exists but cannot be used; its message is the reason."""


def collect_records(
    items: Iterable[tuple[str | Path, str | UnusableTranscript | None, dict[str, Any]]],
    source: str | Path,
    allow_empty_text: bool = False,
) -> list[Record]:
    """Turn (audio, transcript, extra keys) triples into records; skip unusable ones with a warning.

    A triple is skipped when its transcript is None (missing), an `UnusableTranscript` (its
    reason) or normalises to nothing (unless `allow_empty_text`), or when its audio cannot be
    read. One summary line is logged at the end.

    Args:
        items: (audio path, transcript, extra record keys such as speaker) triples.
        source: what the items come from, for the summary line.
        allow_empty_text: keep records whose text is empty (e.g. noise lists).
    """
    records: list[Record] = []
    skipped = 0
    for audio, text, extra in items:
        reason = None
        if text is None:
            reason = "no transcript"
        elif isinstance(text, UnusableTranscript):
            reason = str(text)
        elif not normalize_text(text) and not allow_empty_text:
            reason = "the transcript is empty after normalisation"
        else:
            try:
                records.append(audio_record(audio, text, **extra))
            except AudioError as err:
                reason = err.reason
        if reason:
            skipped += 1
            logger.warning("skipping %s: %s", audio, reason)
    hours = sum(r["duration"] for r in records) / 3600
    log = logger.warning if skipped else logger.info
    log("%s: %d utterances (%.2f h), %d skipped", source, len(records), hours, skipped)
    return records


def manifest_from_folder(folder: str | Path) -> list[Record]:
    """Records for the audio files under `folder` (recursively) with a same-stem .txt beside them.

    ``a/b/utt1.wav`` is paired with ``a/b/utt1.txt``. Files without a transcript or with
    unreadable audio are skipped with a warning; transcripts without audio are named in one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")

    def items() -> Iterable[tuple[Path, str | UnusableTranscript | None, dict[str, Any]]]:
        for audio in find_audio_files([folder]):
            transcript = audio.with_suffix(".txt")
            if not transcript.is_file():
                yield audio, None, {}
                continue
            try:
                yield audio, transcript.read_text(encoding="utf-8"), {}
            except UnicodeDecodeError as err:
                bad = UnusableTranscript(f"{transcript} is not UTF-8 text ({err.reason})")
                yield audio, bad, {}

    records = collect_records(items(), folder)
    audio_stems = {a.with_suffix("") for a in find_audio_files([folder])}
    orphans = sorted(t for t in folder.rglob("*.txt") if t.with_suffix("") not in audio_stems)
    if orphans:  # a transcript whose audio has another extension, or was never copied
        shown = ", ".join(map(str, orphans[:3])) + (", ..." if len(orphans) > 3 else "")
        logger.warning("transcripts without audio beside them: %d (%s)", len(orphans), shown)
    return records


def _read_table(table: Path) -> list[tuple[Path, str | None, dict[str, Any]]]:
    """(audio path, text) rows of a csv/tsv table; paths are relative to the table's folder."""
    delimiter = TABLE_DELIMITERS.get(table.suffix.lower())
    if delimiter is None:
        raise ValueError(f"{table}: unknown table type (expected {', '.join(TABLE_DELIMITERS)})")
    rows: list[tuple[Path, str | None, dict[str, Any]]] = []
    with open(table, encoding="utf-8-sig", newline="") as f:  # -sig: Excel's byte-order mark
        lines = [row for row in csv.reader(f, delimiter=delimiter) if "".join(row).strip()]
    if lines and tuple(c.strip().lower() for c in lines[0][:2]) == TABLE_HEADER:
        lines = lines[1:]
    for row in lines:
        text = delimiter.join(row[1:]) if len(row) > 1 else None  # None: "no transcript"
        rows.append((table.parent / row[0].strip(), text, {}))
    return rows


def manifest_from_table(table: str | Path) -> list[Record]:
    """Records from a csv or tsv table with columns path, text (header row optional).

    The delimiter follows the extension (.csv: comma, .tsv: tab). Relative audio paths are
    relative to the table's folder. Rows with unreadable audio are skipped with a warning.
    """
    table = Path(table)
    return collect_records(_read_table(table), table)


def build_parser() -> argparse.ArgumentParser:
    """The ``asr manifest`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="asr manifest",
        description=(
            "Write a JSONL manifest from a folder of audio files with same-stem .txt transcripts, "
            "or from a .csv/.tsv table with columns path,text (header optional; relative "
            "paths are relative to the table's folder)."
        ),
    )
    parser.add_argument("source", type=Path, help="folder, or .csv/.tsv table")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="manifest to write (.jsonl)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if not args.source.exists():
        print(f"asr manifest: error: {args.source}: no such file or folder", file=sys.stderr)
        return 1
    if args.output.is_dir():
        print(
            f"asr manifest: error: -o {args.output} is a folder; give a .jsonl file",
            file=sys.stderr,
        )
        return 1
    try:
        if args.source.is_dir():
            records = manifest_from_folder(args.source)
        else:
            records = manifest_from_table(args.source)
    except (OSError, ValueError) as err:
        print(f"asr manifest: error: {err}", file=sys.stderr)
        return 1
    if not records:
        print(f"asr manifest: error: no usable utterances in {args.source}", file=sys.stderr)
        return 1
    write_manifest(args.output, records)
    print(f"wrote {len(records)} utterances to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
