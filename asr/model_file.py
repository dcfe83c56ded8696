"""Self-contained model files: safetensors weights + a JSON header of every setting.

A model file is one `.safetensors` file. Its metadata entry "asr" holds JSON with the
model hyperparameters, the feature settings and the tokenizer vocabulary, so the file
rebuilds the whole recogniser without unpickling anything. It may also hold the model's
default decoding (`set_decoding`): a word list and an ARPA language model for beam search.
"""

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from asr.files import write_atomically
from asr.model import AcousticModel, ModelConfig
from asr.text import Tokenizer

FORMAT_VERSION = 1
METADATA_KEY = "asr"
BUNDLED_MODEL = Path(__file__).parent / "assets" / "commands.safetensors"
BUNDLED = "bundled"  # stands for BUNDLED_MODEL in --model, --copy-from and init_from


def model_path(path: str | Path | None) -> Path:
    """The file a model argument names: None or "bundled" is the model bundled with asr.

    Raises:
        FileNotFoundError: the bundled model is asked for and not installed.
    """
    if path is not None and str(path) != BUNDLED:
        return Path(path)
    if not BUNDLED_MODEL.exists():
        raise FileNotFoundError(f"no bundled model at {BUNDLED_MODEL}: pass a model file")
    return BUNDLED_MODEL


class ModelFileError(Exception):
    """A model file that cannot be loaded; the message names the file and the reason."""


def save_model_file(
    path: str | Path,
    model: AcousticModel,
    tokenizer: Tokenizer,
    normalization: str,
    info: dict[str, Any] | None = None,
    *,
    half: bool = False,
    dynamic_range_db: float | None = None,
    std_floor: float | None = None,
) -> None:
    """Write the model atomically: a crash mid-write never leaves a truncated file behind.

    Args:
        info: free-form provenance (data, epochs, scores) stored alongside the settings.
        half: store floating-point weights as float16 (half the size; loading casts back
            to float32).
        dynamic_range_db, std_floor: the features' dynamic range and normalisation floor
            (see `asr.features.LogMel`).
    """
    header = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "features": {"normalization": normalization, "dynamic_range_db": dynamic_range_db},
        "tokenizer": {"vocabulary": list(tokenizer.vocabulary)},
        "info": info or {},
    }
    if std_floor is not None:  # absent when off, so asr versions before the option read the file
        header["features"]["std_floor"] = std_floor
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    _write(path, weights, header)


def _write(path: str | Path, weights: dict[str, torch.Tensor], header: dict[str, Any]) -> None:
    """Weights and the JSON header as one safetensors file, written atomically."""
    meta = json.dumps(header)
    write_atomically(path, lambda tmp: save_file(weights, tmp, metadata={METADATA_KEY: meta}))


def set_decoding(
    path: str | Path,
    output: str | Path,
    words: list[str] | None,
    lm_arpa: str | None = None,
    beam_size: int | None = None,
    lm_weight: float | None = None,
    word_score: float = 0.0,
) -> None:
    """Copy a model file, storing (or, with `words=None`, removing) its default decoding.

    Args:
        words: the lexicon: beam search will only spell these words.
        lm_arpa: the text of an ARPA word n-gram model over those words, or None.
        beam_size, lm_weight, word_score: beam-search settings (see
            `asr.beam_search.BeamSearchDecoder`); beam_size and lm_weight None: its
            DEFAULT_BEAM_SIZE and DEFAULT_LM_WEIGHT.
    """
    header = read_header(path)
    header.pop("decoding", None)
    if words is not None:
        # Imports the decoder: only here.
        from asr.beam_search import DEFAULT_BEAM_SIZE, DEFAULT_LM_WEIGHT

        beam_size = DEFAULT_BEAM_SIZE if beam_size is None else beam_size
        lm_weight = DEFAULT_LM_WEIGHT if lm_weight is None else lm_weight
        header["decoding"] = {
            "beam_size": beam_size,
            "lexicon": list(words),
            "lm_arpa": lm_arpa,
            "lm_weight": lm_weight,
            "word_score": word_score,
        }
    elif lm_arpa is not None:
        raise ValueError("a language model needs a word list")
    try:
        weights = load_file(str(path))
    except SafetensorError as err:
        raise ModelFileError(f"{path}: unreadable weights ({err})") from None
    _write(output, weights, header)


def copy_decoding(
    source: str | Path, path: str | Path, output: str | Path, **changes: Any
) -> dict[str, Any]:
    """Store `source`'s default decoding in a copy of `path`, e.g. a fine-tune of `source`.

    Args:
        changes: settings to change on the way (beam_size, lm_weight, word_score).

    Returns:
        The decoding now stored in `output`.

    Raises:
        ValueError: `source` stores no decoding, or the models' vocabularies differ (its
            word list would be spelled with other characters).
    """
    theirs = read_header(source)
    if not theirs.get("decoding"):
        raise ValueError(f"{source} stores no decoding")
    if read_header(path)["tokenizer"] != theirs["tokenizer"]:
        raise ValueError(f"{source} and {path} have different vocabularies")
    decoding = {**theirs["decoding"], **changes}
    store_decoding(path, output, decoding)
    return decoding


def store_decoding(path: str | Path, output: str | Path, decoding: dict[str, Any]) -> None:
    """`set_decoding` with the settings of a header's "decoding" entry."""
    set_decoding(
        path,
        output,
        decoding["lexicon"],
        decoding["lm_arpa"],
        decoding["beam_size"],
        decoding["lm_weight"],
        decoding["word_score"],
    )


def feature_settings(header: dict[str, Any]) -> dict[str, Any]:
    """A header's `asr.features.LogMel` arguments. Files written before the dynamic range
    or the std floor option have no entry for it: none was applied."""
    return {"dynamic_range_db": None, "std_floor": None, **header["features"]}


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON settings of a model file, without loading its weights."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        hint = ""
        if Path(path).is_file() and zipfile.is_zipfile(path):  # torch.save's format
            hint = "; a checkpoint? `asr export CKPT -o model.safetensors` makes a model file"
        raise ModelFileError(f"{path}: not a readable model file ({err}){hint}") from None
    if METADATA_KEY not in metadata:
        raise ModelFileError(f"{path}: safetensors file without asr settings")
    try:
        header = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: corrupt asr settings ({err})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: corrupt asr settings (not a JSON object)")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported format version {header.get('format_version')}")
    return header


def load_model_file(path: str | Path) -> tuple[AcousticModel, Tokenizer, dict[str, Any]]:
    """Rebuild the model, its tokenizer and its header from a model file.

    Raises:
        ModelFileError: missing, truncated, corrupt or foreign file.
    """
    header = read_header(path)
    try:
        config = ModelConfig(**header["model"])
        tokenizer = Tokenizer(header["tokenizer"]["vocabulary"])
    except (KeyError, TypeError, ValueError) as err:  # written by another version of asr?
        raise ModelFileError(f"{path}: settings this asr cannot read ({err!r})") from None
    model = AcousticModel(config)
    try:
        weights = load_file(str(path))
        model.load_state_dict(weights)  # copies into float32 parameters, whatever was stored
    except (SafetensorError, RuntimeError) as err:
        raise ModelFileError(f"{path}: weights do not match the settings ({err})") from None
    model.eval()
    return model, tokenizer, header


def load_weights_only_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint without executing pickled code (weights_only=True).

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: the file is not a checkpoint (a model file, a manifest...).
    """
    try:
        with warnings.catch_warnings():
            # torch's note on a plain pickle (not its zip format), which is no checkpoint
            # anyway: the error below says so in one line.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except IsADirectoryError:
        raise ModelFileError(f"{path}: not a Lightning checkpoint (a folder)") from None
    except OSError:  # missing, unreadable: the disk's reason
        raise
    except Exception:  # torch.load of any other file: UnpicklingError, IndexError, EOFError...
        # torch's own message suggests weights_only=False, which would run the file's code.
        raise ModelFileError(
            f"{path}: not a Lightning checkpoint (unreadable, or not a torch.save file of "
            "tensors and plain data; `asr fit` writes them under <default_root_dir>/checkpoints/)"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ModelFileError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint
