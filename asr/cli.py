"""The `asr` command: transcribe, evaluate, fit/validate/test, export, set-decoding, manifest,
check-data, inspect, plot-training."""

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from asr import __version__
from asr.audio import find_audio_files
from asr.commands import DEFAULT_REJECTION_THRESHOLD
from asr.segment import MIN_PAUSE_SECONDS

if TYPE_CHECKING:
    from asr.transcribe import DecodingOptions, Transcription

TRAINING_COMMANDS = ("fit", "validate", "test")


class UsageError(Exception):
    """Options that do not go together, found after parsing: exit status 2, as argparse's."""


def _decoding_options(args: argparse.Namespace, default: "DecodingOptions") -> "DecodingOptions":
    """The decoding the options ask for. With none of --greedy, --beam-size, --lexicon,
    --lm, the model's own (`default`, e.g. lexicon beam search with its LM) is kept, and
    --lm-weight/--word-score adjust it; any of them replaces it entirely."""
    from dataclasses import replace

    from asr.beam_search import DEFAULT_BEAM_SIZE
    from asr.text import normalize_text
    from asr.transcribe import DecodingOptions

    search = {"beam_size": args.beam_size, "lexicon": args.lexicon, "lm": args.lm}
    tuning = {"lm_weight": args.lm_weight, "word_score": args.word_score}
    if args.commands:
        with open(args.commands, encoding="utf-8") as f:
            commands = tuple(p for p in (normalize_text(line) for line in f) if p)
        if not commands:
            raise UsageError(f"{args.commands}: no phrases in the command list")
        if args.min_pause:
            raise UsageError(
                "--min-pause does not go with --commands, which answers one phrase or none "
                "per file (nothing is cut)"
            )
        if args.greedy or any(v is not None for v in (*search.values(), *tuning.values())):
            raise UsageError(
                "--commands scores its phrases exactly: no --greedy, --beam-size, --lexicon, "
                "--lm, --lm-weight or --word-score with it"
            )
        threshold = DEFAULT_REJECTION_THRESHOLD if args.threshold is None else args.threshold
        return DecodingOptions(commands=commands, rejection_threshold=threshold)
    if args.threshold is not None:
        raise UsageError("--threshold is the rejection threshold of --commands: give both")
    if args.greedy and any(v is not None for v in search.values()):
        raise UsageError("--greedy cannot be combined with --beam-size, --lexicon or --lm")
    if args.lm and not args.lexicon:
        raise UsageError("--lm needs --lexicon (the LM scores the lexicon's words)")
    if (args.lexicon or args.lm) and args.beam_size is None:
        search["beam_size"] = DEFAULT_BEAM_SIZE
    if args.greedy or any(v is not None for v in search.values()):
        options = DecodingOptions(**{k: v for k, v in search.items() if v is not None})
    else:
        options = default
    return replace(options, **{k: v for k, v in tuning.items() if v is not None})


def _show_progress(args: argparse.Namespace) -> bool:
    """Progress bars go to stderr, and only to a terminal: logs and pipes stay clean."""
    return not args.quiet and sys.stderr.isatty()


def _record(given: str, result: "Transcription") -> dict:
    """The JSON object printed for one file; text is data, escaped by json.dumps."""
    record: dict = {"path": given, "text": result.text}
    if result.error:
        record["error"] = result.error
        return record
    record["confidence"] = round(result.confidence, 4)
    record["words"] = [
        {
            "word": w.word,
            "start": round(w.start, 3),
            "end": round(w.end, 3),
            "confidence": round(w.confidence, 4),
        }
        for w in result.words
    ]
    if result.rejected is not None:
        record["rejected"] = result.rejected
        record["command_score"] = round(result.command_score, 4)
    return record


def _transcribe(args: argparse.Namespace) -> int:
    from asr.transcribe import load_model

    files = find_audio_files(args.inputs)
    if not files:
        print("asr transcribe: no audio files found in the given paths", file=sys.stderr)
        return 1
    for folder in map(Path, args.inputs):
        if folder.is_dir() and not any(f.is_relative_to(folder) for f in files):
            print(f"asr transcribe: warning: no audio files in {folder}", file=sys.stderr)
    recognizer = load_model(args.model)
    options = _decoding_options(args, recognizer.default_options)
    progress = _show_progress(args) and len(files) > 1
    results = recognizer.transcribe(
        files,
        batch_size=args.batch_size,
        options=options,
        progress=progress,
        min_pause=_min_pause(args),
    )
    failed = 0
    for given, result in zip(files, results, strict=True):
        if result.error:
            failed += 1
            print(f"asr transcribe: error: {result.error}", file=sys.stderr)
        if args.format == "jsonl":
            print(json.dumps(_record(str(given), result), ensure_ascii=False))
        elif not result.error:
            print(f"{given}\t{result.text}")
    if failed:
        print(f"asr transcribe: {failed} of {len(files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _evaluate(args: argparse.Namespace) -> int:
    from asr.evaluate import evaluate
    from asr.transcribe import load_model

    recognizer = load_model(args.model)
    options = _decoding_options(args, recognizer.default_options)
    wer, cer, failed = evaluate(
        recognizer,
        args.manifest,
        args.out_dir,
        args.batch_size,
        options,
        _show_progress(args),
        _min_pause(args),
    )
    print(wer.summary("WER"))
    print(cer.summary("CER"))
    print(f"recogs, errs and analysis written to {args.out_dir}")
    if options.lexicon and not options.commands:
        _warn_words_outside(args.manifest, options.lexicon)
    if failed:
        print(
            f"asr evaluate: {failed} audio file(s) could not be read and count as empty "
            f"hypotheses; {args.out_dir}/errs names each and why",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _warn_words_outside(manifest: str, lexicon: str) -> None:
    """Name the reference words the decoding's lexicon lacks (the bundled model's is its
    113 command words): its search cannot spell them."""
    from asr.beam_search import read_word_list
    from asr.evaluate import words_outside
    from asr.manifest import read_manifest
    from asr.text import normalize_text

    refs = [normalize_text(r["text"]) for r in read_manifest(manifest, need_duration=False)]
    outside = words_outside(refs, read_word_list(lexicon))
    if outside:
        shown = ", ".join(w for w, _ in outside.most_common(10))
        more = ", ..." if len(outside) > 10 else ""
        print(
            f"asr evaluate: {sum(outside.values())} reference words ({len(outside)} kinds: "
            f"{shown}{more}) are not in the decoding's lexicon, so each is an error; "
            "--greedy or --beam-size N spell any word",
            file=sys.stderr,
        )


def _export(args: argparse.Namespace) -> int:
    from asr.lightning_module import CTCModule
    from asr.model_file import ModelFileError, load_weights_only_checkpoint

    checkpoint = load_weights_only_checkpoint(args.checkpoint)
    if "hyper_parameters" not in checkpoint:
        raise ModelFileError(f"{args.checkpoint}: a checkpoint without the model's settings")
    # LightningCLI stores bookkeeping keys (e.g. "_instantiator") beside the init arguments.
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    hparams.pop("init_from", None)  # the checkpoint holds the weights; the file may be gone
    module = CTCModule(**hparams)
    module.load_state_dict(checkpoint["state_dict"])
    info = {
        "checkpoint": str(args.checkpoint),
        "epochs": checkpoint.get("epoch"),
        "steps": checkpoint.get("global_step"),
    }
    module.export(args.output, info, half=args.half)
    print(f"model file written: {args.output}")
    return 0


def _build_lm(args: argparse.Namespace) -> int:
    from asr.beam_search import lexicon_words_from_transcripts
    from asr.manifest import read_manifest
    from asr.ngram import write_arpa

    texts = [r["text"] for m in args.manifests for r in read_manifest(m)]
    words = lexicon_words_from_transcripts(texts)
    write_arpa(texts, args.output, order=args.order)
    print(f"{args.output}: {args.order}-gram LM from {len(texts)} transcripts")
    if args.words:
        with open(args.words, "w", encoding="utf-8") as f:
            f.write("\n".join(words) + "\n")
        print(f"{args.words}: {len(words)} words")
    return 0


def _set_decoding(args: argparse.Namespace) -> int:
    from asr.beam_search import DEFAULT_BEAM_SIZE, BeamSearchDecoder, read_word_list
    from asr.model_file import BUNDLED, copy_decoding, model_path, read_header, set_decoding
    from asr.text import Tokenizer

    if args.model == BUNDLED and not args.output:
        # Changing the installed package's file in place would change every user's default.
        raise UsageError("the bundled model is not changed in place; give -o")
    model = model_path(args.model)
    output = args.output or model
    if args.none and (args.copy_from or args.lexicon or args.lm):
        raise UsageError("--none stores no decoding; drop the others")
    if args.none:
        set_decoding(model, output, None)
        print(f"{output}: no stored decoding (greedy by default)")
        return 0
    # Only the settings given: the rest are set_decoding's defaults or --copy-from's own.
    changes = {
        key: value
        for key in ("beam_size", "lm_weight", "word_score")
        if (value := getattr(args, key)) is not None
    }
    # Settings alone keep the model's own word list and LM.
    keep_own = changes and not (args.lexicon or args.lm)
    copy_from = args.copy_from or (args.model if keep_own else None)
    if copy_from:
        if args.lexicon or args.lm:
            raise UsageError("--copy-from brings its own word list and LM")
        try:
            decoding = copy_decoding(model_path(copy_from), model, output, **changes)
        except ValueError as err:  # e.g. no stored decoding to keep or copy
            raise UsageError(str(err)) from None
        print(
            f"{output}: beam search over {len(decoding['lexicon'])} words by default, "
            f"{copy_from}'s word list and LM (LM weight {decoding['lm_weight']}, word score "
            f"{decoding['word_score']})"
        )
        return 0
    if args.lm and not args.lexicon:
        raise UsageError("--lm needs --lexicon (the LM scores the lexicon's words)")
    if not args.lexicon:
        raise UsageError("give --lexicon, --copy-from, --none, or settings to change")
    if args.lm and not Path(args.lm).is_file():  # flashlight's own message is KenLM's errno
        raise FileNotFoundError(f"{args.lm}: no such LM file")
    words = read_word_list(args.lexicon)
    tokenizer = Tokenizer(read_header(model)["tokenizer"]["vocabulary"])
    try:  # the words and the LM must make a decoder before they go into the file
        BeamSearchDecoder(tokenizer, lexicon=words, lm_path=args.lm)
    except ValueError as err:
        raise SystemExit(f"asr set-decoding: {args.lexicon}: {err}") from None
    except RuntimeError as err:  # KenLM's, with its build path: name the file and the kind
        kind = re.search(r"threw (\w+)", str(err))
        reason = kind.group(1) if kind else str(err).splitlines()[0]
        raise SystemExit(f"asr set-decoding: {args.lm}: not a usable ARPA LM ({reason})") from None
    lm_arpa = Path(args.lm).read_text(encoding="utf-8") if args.lm else None
    set_decoding(model, output, words, lm_arpa, **changes)
    lm_note = f" and a {len(lm_arpa) // 1024} KiB LM" if lm_arpa else ""
    beam = changes.get("beam_size", DEFAULT_BEAM_SIZE)
    print(f"{output}: beam search (beam {beam}) over {len(words)} words{lm_note} by default")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from asr.audio import AudioError
    from asr.inspection import inspect_audio, to_json
    from asr.transcribe import load_model

    recognizer = load_model(args.model)
    try:
        inspection = inspect_audio(recognizer, args.audio)
    except AudioError as err:
        print(f"asr inspect: error: {err}", file=sys.stderr)
        return 1
    if args.format == "json":
        text = json.dumps(to_json(inspection), ensure_ascii=False)
        if args.output in (None, "-"):
            print(text)
        else:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return 0
    from asr.plots import plot_inspection

    output = args.output or "inspect.png"
    plot_inspection(inspection, output)
    print(f"{output}: {inspection.text!r}", file=sys.stderr)
    return 0


def _plot_training(args: argparse.Namespace) -> int:
    from asr.plots import find_metrics, plot_training, read_metrics

    try:
        paths = find_metrics(args.logdir)
        plot_training(read_metrics(paths), args.output)
    except (FileNotFoundError, ValueError) as err:
        print(f"asr plot-training: error: {err}", file=sys.stderr)
        return 1
    print(f"{args.output}: curves from {', '.join(map(str, paths))}", file=sys.stderr)
    return 0


def _manifest(rest: list[str]) -> int:
    from asr.manifest import main as manifest_main

    return manifest_main(rest) or 0


def _check_data(rest: list[str]) -> int:
    from asr.check_data import main as check_data_main

    return check_data_main(rest)


# Commands with a parser of their own: everything after the name goes to it unparsed.
OWN_PARSER_COMMANDS = {"manifest": _manifest, "check-data": _check_data}


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0 seconds")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer of `minimum` or more."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text}: must be at least {minimum}")
        return value

    parse.__name__ = "int"  # argparse names it in "invalid int value: 'x'"
    return parse


_positive_int = _int_at_least(1)


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: must lie in [0, 1]")
    return value


def _min_pause(args: argparse.Namespace) -> float:
    """--min-pause as given (None when not), or the default."""
    return MIN_PAUSE_SECONDS if args.min_pause is None else args.min_pause


def _add_pause_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-pause",
        type=_seconds,
        metavar="SECONDS",
        help="decode the stretches between pauses this long separately, so that a recording "
        f"of several commands gives them all (default: {MIN_PAUSE_SECONDS}; 0: no cuts at pauses, "
        "only within stretches over 30 s; not "
        "with --commands, which answers one phrase or nothing per file)",
    )


def _add_decoding_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "decoding (default: the model's own; the bundled model's is lexicon beam search with "
        "a language model; a model without one decodes greedily)"
    )
    g.add_argument("--greedy", action="store_true", help="greedy decoding (fastest)")
    g.add_argument(
        "--beam-size",
        type=_positive_int,
        help="beam search with this beam (default with --lexicon: 32)",
    )
    g.add_argument("--lexicon", help="word list (one per line): beam search spells only these")
    g.add_argument("--lm", help="ARPA word n-gram LM for beam search (needs --lexicon)")
    g.add_argument("--lm-weight", type=float, help="LM weight (default: the model's, or 0.5)")
    g.add_argument("--word-score", type=float, help="per-word bonus (default: the model's, or 0)")
    g.add_argument("--commands", help="file of allowed phrases, one per line")
    g.add_argument(
        "--threshold",
        type=_share,
        help=f"with --commands: reject below this score in [0, 1] (default: "
        f"{DEFAULT_REJECTION_THRESHOLD})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr", description="Spoken-command recognition with a BiLSTM-CTC model."
    )
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transcribe", help="transcribe audio files or folders")
    p.add_argument("inputs", nargs="+", help="audio files, or folders searched for audio")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="inputs per model run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_pause_argument(p)
    _add_decoding_arguments(p)
    p.set_defaults(func=_transcribe)

    p = sub.add_parser("evaluate", help="decode a manifest; write recogs/errs and WER")
    p.add_argument("manifest", help="JSONL manifest with audio and reference text")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument(
        "--out-dir",
        default="exp/evaluate",
        help="where recogs, errs and analysis go (default: exp/evaluate)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=16, help="inputs per model run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_pause_argument(p)
    _add_decoding_arguments(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("export", help="turn a Lightning checkpoint into a model file")
    p.add_argument("checkpoint", help="a .ckpt file written by `asr fit`")
    p.add_argument("-o", "--output", required=True, help="model file to write")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half size)")
    p.set_defaults(func=_export)

    p = sub.add_parser("build-lm", help="word n-gram LM (ARPA) and word list from manifests")
    p.add_argument("manifests", nargs="+", help="JSONL manifests whose text trains the LM")
    p.add_argument("-o", "--output", required=True, help="ARPA file to write")
    p.add_argument("--order", type=_int_at_least(2), default=3, help="n-gram order (default: 3)")
    p.add_argument("--words", help="also write the word list (a lexicon for --lexicon)")
    p.set_defaults(func=_build_lm)

    p = sub.add_parser(
        "set-decoding", help="store a default decoding (word list, LM) in a model file"
    )
    p.add_argument("model", help="model file to change ('bundled' with -o: a copy of it)")
    p.add_argument("-o", "--output", help="write here instead of changing the model file")
    p.add_argument("--lexicon", help="word list: beam search spells only these words")
    p.add_argument("--lm", help="ARPA word n-gram LM over those words (`asr build-lm`)")
    # Without --lexicon, the settings change a stored decoding (the model's own, or
    # --copy-from's) and keep its word list and LM.
    p.add_argument("--beam-size", type=_positive_int, help="default: 32, or the stored one")
    p.add_argument("--lm-weight", type=float, help="default: 0.5, or the stored one")
    p.add_argument("--word-score", type=float, help="default: 0, or the stored one")
    p.add_argument(
        "--copy-from",
        metavar="MODEL",
        help="store this model file's decoding instead ('bundled': the bundled model's), "
        "e.g. on a model fine-tuned from it",
    )
    p.add_argument("--none", action="store_true", help="remove the stored decoding")
    p.set_defaults(func=_set_decoding)

    p = sub.add_parser(
        "inspect", help="plot what the model does with one recording (gates included)"
    )
    p.add_argument("audio", help="an audio file")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("-o", "--output", help="file to write (default: inspect.png; for json: stdout)")
    p.add_argument(
        "--format",
        choices=("png", "json"),
        default="png",
        help="png: the figure (any suffix matplotlib knows); json: the numbers",
    )
    p.set_defaults(func=_inspect)

    p = sub.add_parser("plot-training", help="loss and WER curves from a run's metrics.csv")
    p.add_argument("logdir", help="a run's folder (searched for CSVLogger's metrics.csv)")
    p.add_argument("-o", "--output", default="curves.png", help="image file to write")
    p.set_defaults(func=_plot_training)

    # Listed for the help only: main() hands their arguments to their own parsers.
    sub.add_parser("manifest", help="build a JSONL manifest from a folder or a table")
    sub.add_parser("check-data", help="validate a manifest before training (exit 1 if not ok)")

    for name in TRAINING_COMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} (see `asr {name} --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_given = argv
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TRAINING_COMMANDS:
        from asr.train import main as train_main

        # None lets LightningCLI read sys.argv itself (it warns when handed the same list).
        command, run = argv[0], lambda: train_main(args_given) or 0
    elif argv and argv[0] in OWN_PARSER_COMMANDS:
        command, run = argv[0], lambda: OWN_PARSER_COMMANDS[argv[0]](list(argv[1:]))
    else:
        args = build_parser().parse_args(argv)
        command, run = args.command, lambda: args.func(args)
    from asr.manifest import ManifestError
    from asr.model_file import ModelFileError

    try:
        return run()
    # A bad --model path, a missing list, a broken manifest line: the message says it all.
    except (ModelFileError, FileNotFoundError, ManifestError, UsageError) as err:
        print(f"asr {command}: error: {err}", file=sys.stderr)
        return 2
    except (IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError) as err:
        # A folder where a file belongs (or the reverse), an --out-dir that is a file.
        reason = err.strerror.lower() if err.strerror else str(err)
        where = f"{err.filename}: " if err.filename else ""
        print(f"asr {command}: error: {where}{reason}", file=sys.stderr)
        return 2
    except argparse.ArgumentError as err:  # LightningCLI's: an unknown key, a bad value
        print(f"asr {command}: error: {err}\n(options: asr {command} --help)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `asr transcribe dir | head`: the reader has all it wanted
        # Python would complain again while flushing stdout at exit; point it at nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


if __name__ == "__main__":
    sys.exit(main())
