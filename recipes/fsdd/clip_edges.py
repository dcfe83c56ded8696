"""How tightly a corpus's recordings are trimmed, and copies of them trimmed into the word.

FSDD's unseen test speaker (nicolas) differs from the three training speakers in how his
recordings were cut: his first and last 20 ms sit 13 and 18 dB below the loudest 20 ms
(medians), theirs 19 to 45 and 27 to 48 dB, so his words start and stop more abruptly,
with less of their first and last sounds. `--report` prints those levels per speaker;
otherwise the script writes copies of a manifest's recordings with both edges cut where
the 10 ms frame energy first (last) comes within D dB of the loudest frame, D drawn per
edge from `--range`, so that training sees words cut the way his are.

    python recipes/fsdd/clip_edges.py data/fsdd/train.jsonl --report
    python recipes/fsdd/clip_edges.py data/fsdd/train.jsonl --out data/fsdd_clipped --copies 3

Writes `OUT/wav/<copy>_<name>.wav` (the source's rate, 16-bit) and `OUT/<stem><copy>.jsonl`
(`train0.jsonl`… for `train.jsonl`); the same seed gives the same files.
"""

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.augment import edge_span, frame_energy_db
from asr.manifest import ManifestError, Record, read_manifest

FRAME_S = 0.010  # energy frame for finding the edges, seconds
EDGE_S = 0.020  # what --report measures at each end, seconds
DEFAULT_RANGE_DB = (-30.0, -10.0)  # cut where the energy first reaches this far below the peak


def clip(audio: np.ndarray, rate: int, start_db: float, end_db: float) -> np.ndarray:
    """Cut both ends where the frame energy first/last comes within `start_db`/`end_db` (both
    negative) of the loudest frame; whole frames only (the cut training applies on the fly,
    `asr.augment.edge_span`, at this recording's rate)."""
    frame = round(FRAME_S * rate)
    first, last = edge_span(
        torch.from_numpy(audio)[None],  # (1, S)
        torch.tensor([len(audio)]),
        torch.tensor([start_db]),
        torch.tensor([end_db]),
        frame,
    )
    return audio[int(first) * frame : int(last) * frame]


def edge_levels(audio: np.ndarray, rate: int) -> tuple[float, float]:
    """dB of the first and of the last EDGE_S relative to the loudest EDGE_S."""
    samples = torch.from_numpy(audio)[None]  # (1, S)
    energy = frame_energy_db(samples, torch.tensor([len(audio)]), round(EDGE_S * rate))[0]
    return float(energy[0] - energy.max()), float(energy[-1] - energy.max())


def read(manifest: Path) -> list[tuple[Record, Path]]:
    """(record, its audio file) of every line of `manifest`; durations are not needed.

    Raises:
        ManifestError: a line is not a valid record (the message names the file and line).
    """
    return [(r, Path(r["audio"])) for r in read_manifest(manifest, need_duration=False)]


def report(manifest: Path) -> str:
    """Per speaker: recordings, median duration and median edge levels, as text."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for record, path in read(manifest):
        audio, rate = sf.read(path, dtype="float32")
        rows.setdefault(record.get("speaker", "-"), []).append(
            (len(audio) / rate, *edge_levels(audio, rate))
        )
    lines = ["speaker  recordings  duration s  first 20 ms dB  last 20 ms dB"]
    for speaker, values in sorted(rows.items()):
        duration, first, last = np.median(np.array(values), axis=0)
        lines.append(f"{speaker:<8} {len(values):10d} {duration:11.2f} {first:15.1f} {last:14.1f}")
    return "\n".join(lines)


def write_copies(
    manifest: Path, out: Path, copies: int, seed: int, range_db: tuple[float, float]
) -> None:
    """`copies` clipped copies of every recording of `manifest`, and a manifest per copy."""
    rng = random.Random(seed)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    entries = read(manifest)
    for copy in range(copies):
        lines = []
        for record, path in entries:
            audio, rate = sf.read(path, dtype="float32")
            start_db, end_db = rng.uniform(*range_db), rng.uniform(*range_db)
            cut = clip(audio, rate, start_db, end_db)
            name = f"{copy}_{path.name}"
            sf.write(out / "wav" / name, cut, rate, subtype="PCM_16")
            duration = round(len(cut) / rate, 4)
            lines.append(json.dumps({**record, "audio": f"wav/{name}", "duration": duration}))
        (out / f"{manifest.stem}{copy}.jsonl").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--report", action="store_true", help="print edge levels per speaker")
    parser.add_argument("--out", type=Path, help="folder for the clipped copies")
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--range", type=float, nargs=2, default=DEFAULT_RANGE_DB, metavar=("LOW_DB", "HIGH_DB")
    )
    args = parser.parse_args(argv)
    if not args.report:
        if args.out is None:
            parser.error("--out is needed unless --report")
        if not all(db < 0 for db in args.range):
            parser.error("--range takes two negative dB values")
    try:
        if args.report:
            print(report(args.manifest))
        else:
            write_copies(args.manifest, args.out, args.copies, args.seed, tuple(args.range))
            print(f"{args.copies} clipped copies in {args.out}")
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
