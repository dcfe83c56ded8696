"""Average the weights of model files of one architecture into one model file.

The element-wise mean of models fine-tuned from one another (as icefall averages its last
epochs) costs no training. The first file gives the features' settings and the stored
decoding; the others must have the same architecture and vocabulary.

Usage::

    python recipes/commands/average_models.py -o exp/mean.safetensors --half \\
        exp/stage16_bundled.safetensors exp/probe_allison/decoded.safetensors \\
        exp/probe_allison2/decoded.safetensors
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from asr.model_file import (
    ModelFileError,
    feature_settings,
    load_model_file,
    save_model_file,
    store_decoding,
)


def average_models(
    paths: Sequence[str | Path], output: str | Path, half: bool = False, info: dict | None = None
) -> None:
    """Write the mean of the models in `paths` to `output`.

    Args:
        paths: two or more model files with the same architecture, vocabulary and features.
        output: the file to write (it may be one of `paths`: all are read first).
        half: store float16 weights (half the size).
        info: provenance for the header (default: the files averaged).

    Raises:
        ModelFileError: a file is unreadable, or its architecture, vocabulary or feature
            settings differ from the first's.
    """
    model, tokenizer, header = load_model_file(paths[0])
    features = feature_settings(header)
    total = {k: v.clone() for k, v in model.state_dict().items()}
    for path in paths[1:]:
        other, _, other_header = load_model_file(path)
        if (
            any(other_header[key] != header[key] for key in ("model", "tokenizer"))
            or feature_settings(other_header) != features
        ):
            raise ModelFileError(
                f"{path}: another architecture, vocabulary or features than {paths[0]}"
            )
        for name, value in other.state_dict().items():
            total[name] += value
    model.load_state_dict({name: value / len(paths) for name, value in total.items()})
    save_model_file(
        output,
        model,
        tokenizer,
        features["normalization"],
        info or {"average_of": [str(p) for p in paths]},
        half=half,
        dynamic_range_db=features["dynamic_range_db"],
        std_floor=features["std_floor"],
    )
    if header.get("decoding"):
        store_decoding(output, output, header["decoding"])


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model files (the first gives the settings)")
    parser.add_argument("-o", "--output", required=True, help="the averaged model file")
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    parser.add_argument("--info", type=_json_object, default=None, help="JSON object: provenance")
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("give two or more model files")
    try:
        average_models(args.models, args.output, args.half, args.info)
    except ModelFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.output}: the mean of {len(args.models)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
