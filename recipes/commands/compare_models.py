"""Compare model files side by side: WER with each model's own decoding, one column a model.

    python recipes/commands/compare_models.py asr/assets/commands.safetensors \\
        exp/probe/model.safetensors --surround data/fsdd/test.jsonl \\
        --manifests data/commands/test.jsonl data/fsdd/test.jsonl data/asterisk/strings.jsonl

Each manifest is scored as recorded; those also given to ``--surround`` are scored again with
silence around every utterance (decoding_report.SILENCE_CONDITIONS: zeros, and a quiet room
of white noise 30 dB below the speech; the same noise for every model). A model file decodes
as it stores (``asr set-decoding``), so give probe models the bundled model's decoding before
comparing them with it. Prints a Markdown table of WER %.
"""

import argparse
from pathlib import Path

from decoding_report import SILENCE_CONDITIONS, decode, emissions, surround, wer

import asr
from asr.manifest import read_manifest
from asr.text import normalize_text


def conditions(manifest: str, surrounded: set[str]) -> dict[str, tuple[float, float | None]]:
    """Name -> (seconds of silence each side, SNR in dB or None) to score `manifest` under."""
    extra = SILENCE_CONDITIONS if manifest in surrounded else {}
    return {"as recorded": (0.0, None), **extra}


def compare(models: list[str], manifests: list[str], surrounded: set[str]) -> list[list[str]]:
    """Table rows: [manifest, condition, WER of each model...], WERs formatted to 2 places."""
    loaded = [asr.load_model(m) for m in models]
    rows = []
    for manifest in manifests:
        records = read_manifest(manifest)
        refs = [normalize_text(r["text"]) for r in records]
        audio = [asr.audio.load_audio(r["audio"]) for r in records]
        for name, (seconds, snr_db) in conditions(manifest, surrounded).items():
            changed = audio
            if seconds or snr_db is not None:
                changed = [surround(a, seconds, snr_db, seed=i) for i, a in enumerate(audio)]
            row = [manifest, name]
            for model in loaded:
                results = decode(
                    model, emissions(model, records, audio=changed), model.default_options
                )
                row.append(f"{wer(refs, results):.2f}")
            rows.append(row)
            print(" | ".join(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model files")
    parser.add_argument("--manifests", nargs="+", required=True, help="test manifests")
    parser.add_argument(
        "--surround", nargs="*", default=[], help="manifests also scored with silence around"
    )
    args = parser.parse_args()
    rows = compare(args.models, args.manifests, set(args.surround))
    names = [f"{Path(m).parent.name}/{Path(m).stem}" for m in args.models]  # e.g. probe/model
    print("\n| manifest | condition | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
