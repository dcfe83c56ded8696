"""An 8 kHz copy of a test manifest: how the model does on narrowband audio.

Telephone calls and many real recordings (FSDD's) are sampled at 8 kHz and hold nothing
above 4 kHz, while most of the synthetic corpus is full-band 16 kHz. Each utterance is
resampled to 8 kHz and written as 16-bit wav; the recogniser resamples it back when it
reads it. Utterances the corpus already sent through its telephone channel are left out,
so the copy and its source differ in bandwidth only; `<name>_source.jsonl` lists the same
utterances at full band, to compare with. Existing wav files are reused.

Usage::

    python recipes/commands/narrowband.py data/commands/test.jsonl --out data/commands_nb
"""

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import load_audio
from asr.files import write_atomically
from asr.manifest import read_manifest, write_manifest

NARROWBAND_RATE = 8_000  # Hz


def narrowband_copy(manifest: Path, out: Path) -> int:
    """Write `out`/wav/*.wav, `out`/`manifest`'s name and its `_source` twin (the same
    utterances, original audio); returns the number of utterances kept.

    Raises:
        ValueError: two source files share a name (their copies would overwrite each other).
    """
    records = [r for r in read_manifest(manifest) if "telephone" not in r.get("augment", "")]
    names = [Path(r["audio"]).stem for r in records]
    if len(set(names)) < len(names):
        raise ValueError(f"{manifest}: audio file names repeat; copies would collide")
    copies = []
    for record in records:
        target = out / "wav" / Path(record["audio"]).with_suffix(".wav").name
        if not target.exists():
            # Resampling can overshoot full scale; 16-bit samples past it would wrap around.
            narrow = np.clip(load_audio(record["audio"], NARROWBAND_RATE), -1.0, 1.0)
            # A killed run never leaves a half-written file behind.
            write_wav = partial(
                sf.write, data=narrow, samplerate=NARROWBAND_RATE, subtype="PCM_16", format="WAV"
            )
            write_atomically(target, write_wav)
        copies.append({**record, "audio": str(target)})
    write_manifest(out / manifest.name, copies)
    write_manifest(out / f"{manifest.stem}_source.jsonl", records)
    return len(copies)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="JSONL manifest of the source corpus")
    parser.add_argument("--out", type=Path, required=True, help="folder for wav/ and the copy")
    args = parser.parse_args(argv)
    kept = narrowband_copy(args.manifest, args.out)
    print(f"{kept} utterances at {NARROWBAND_RATE} Hz -> {args.out / args.manifest.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
