"""Tune decoding on dev, then report it on test: beam/LM WER, confidence, command rejection.

    python recipes/commands/decoding_report.py --model exp/commands/model.safetensors \\
        --lexicon exp/lm/words.txt --lm exp/lm/commands.arpa

1. WER of greedy, lexicon beam search and lexicon + LM beam search; LM weight and word
   score chosen on the dev manifests only, then applied to every test manifest.
2. Confidence: mean word confidence of correct vs wrong greedy words on dev, and the AUROC
   of confidence as a correct/wrong detector (0.5 = useless, 1 = perfect).
3. Closed-set commands: the allowed list is every distinct dev text of the smart-home,
   media and timer domains; utterances of other domains (and FSDD digits) are out of the
   list. For each threshold: accuracy on in-list utterances and false accepts on the rest.
4. Silence: WER on the test manifests with silence added before and after each utterance
   (SILENCE_CONDITIONS): digital silence (zeros), as a recorder that starts muted or a
   trimmed and re-padded file gives, and a quiet room (white noise over the whole clip),
   greedy and with the tuned lexicon + LM search.
"""

import argparse
import itertools
import json
from pathlib import Path

import jiwer
import numpy as np
import torch

import asr
from asr.manifest import read_manifest
from asr.metrics import word_errors
from asr.text import normalize_text
from asr.transcribe import DecodingOptions, Recognizer

IN_LIST_DOMAINS = ("smart_home", "media", "timers")
LM_WEIGHTS = (0.25, 0.5, 1.0, 2.0)
WORD_SCORES = (-1.0, 0.0, 1.0)
# name -> (seconds of silence at each end, SNR in dB of white noise over the whole clip
# relative to the speech, or None for digital silence)
SILENCE_CONDITIONS = {
    "0.3 s zeros": (0.3, None),
    "1 s zeros": (1.0, None),
    "0.5 s, noise at 30 dB": (0.5, 30.0),
}
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def in_list_phrases(records: list[dict]) -> list[str]:
    """The closed set: the distinct normalised texts of `records` in IN_LIST_DOMAINS."""
    inside = [r for r in records if r.get("domain") in IN_LIST_DOMAINS]
    return sorted({normalize_text(r["text"]) for r in inside})


def surround(audio: np.ndarray, seconds: float, snr_db: float | None, seed: int) -> np.ndarray:
    """`seconds` of zeros at each end of (S,) audio, then white noise at `snr_db` (if any)."""
    zeros = np.zeros(int(seconds * asr.audio.SAMPLE_RATE), np.float32)
    out = np.concatenate([zeros, audio, zeros])
    if snr_db is not None:
        rms = np.sqrt(np.mean(np.square(audio)))
        noise = np.random.default_rng(seed).standard_normal(len(out))
        out = out + (rms * 10 ** (-snr_db / 20) * noise).astype(np.float32)
    return out


def emissions(
    model: Recognizer,
    records: list[dict],
    batch_size: int = 32,
    audio: list[np.ndarray] | None = None,
) -> list[tuple]:
    """Log-probs of every record, computed once: [(log_probs (B,T,V), lengths (B,)), ...].

    `audio`: the records' audio, already read (and changed); None reads it."""
    if audio is None:
        audio = [asr.audio.load_audio(r["audio"]) for r in records]
    return [model.log_probs(audio[i : i + batch_size]) for i in range(0, len(audio), batch_size)]


def decode(model: Recognizer, cached: list[tuple], options: DecodingOptions) -> list:
    return [r for lp, n in cached for r in model.decode(lp, n, options)]


def wer(refs: list[str], results: list) -> float:
    return 100 * word_errors(refs, [r.text for r in results]).rate


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random correct word has higher confidence than a wrong one."""
    if not positives or not negatives:
        return float("nan")
    p, n = torch.tensor(positives), torch.tensor(negatives)
    return ((p[:, None] > n[None, :]).float() + 0.5 * (p[:, None] == n[None, :]).float()).mean()


def word_correctness(refs: list[str], results: list) -> tuple[list[float], list[float]]:
    """Confidences of hypothesis words that match the reference, and of those that do not."""
    good, bad = [], []
    for ref, result in zip(refs, results, strict=True):
        if not result.words:
            continue
        if not ref:
            bad += [w.confidence for w in result.words]
            continue
        alignment = jiwer.process_words(ref, result.text).alignments[0]
        correct = set()
        for chunk in alignment:
            if chunk.type == "equal":
                correct.update(range(chunk.hyp_start_idx, chunk.hyp_end_idx))
        for i, w in enumerate(result.words):
            (good if i in correct else bad).append(w.confidence)
    return good, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model file (default: bundled)")
    parser.add_argument("--lexicon", required=True)
    parser.add_argument("--lm", required=True)
    parser.add_argument(
        "--dev", nargs="+", default=["data/commands/dev.jsonl", "data/fsdd/dev.jsonl"]
    )
    parser.add_argument(
        "--test", nargs="+", default=["data/commands/test.jsonl", "data/fsdd/test.jsonl"]
    )
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()

    model = asr.load_model(args.model)
    dev = [r for m in args.dev for r in read_manifest(m)]
    dev_refs = [normalize_text(r["text"]) for r in dev]
    dev_cache = emissions(model, dev)

    # 1. Tune on dev.
    greedy = DecodingOptions()
    lexicon = DecodingOptions(beam_size=32, lexicon=args.lexicon, lm_weight=0.0)
    grid = {
        (w, s): DecodingOptions(
            beam_size=32, lexicon=args.lexicon, lm=args.lm, lm_weight=w, word_score=s
        )
        for w, s in itertools.product(LM_WEIGHTS, WORD_SCORES)
    }
    dev_wer = {key: wer(dev_refs, decode(model, dev_cache, opt)) for key, opt in grid.items()}
    best = min(dev_wer, key=dev_wer.get)
    print("dev WER% of lexicon+LM beam search, by (lm_weight, word_score):")
    for key, value in sorted(dev_wer.items()):
        print(f"  {key}: {value:.2f}{'  <- best' if key == best else ''}")
    methods = {"greedy": greedy, "lexicon beam": lexicon, f"lexicon+LM beam {best}": grid[best]}

    figures: dict = {"best_lm": {"lm_weight": best[0], "word_score": best[1]}, "wer": {}}
    print("\n| split | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
    for name in [*args.dev, *args.test]:
        records = read_manifest(name)
        refs = [normalize_text(r["text"]) for r in records]
        cache = dev_cache if name in args.dev and len(args.dev) == 1 else emissions(model, records)
        row = {m: wer(refs, decode(model, cache, opt)) for m, opt in methods.items()}
        figures["wer"][name] = row
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |")

    # 2. Confidence on dev (greedy words).
    good, bad = word_correctness(dev_refs, decode(model, dev_cache, greedy))
    mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
    area = float(auroc(good, bad))
    print(
        f"\nconfidence on dev: correct words {mean(good):.3f} (n={len(good)}), "
        f"wrong words {mean(bad):.3f} (n={len(bad)}), AUROC {area:.3f}"
    )
    figures["confidence"] = {
        "correct": mean(good),
        "wrong": mean(bad),
        "n_correct": len(good),
        "n_wrong": len(bad),
        "auroc": area,
    }

    # 3. Closed-set commands with rejection, on dev.
    phrases = in_list_phrases(dev)
    in_list = [r.get("domain") in IN_LIST_DOMAINS for r in dev]
    if not phrases or all(in_list):
        raise SystemExit("closed set needs dev utterances both in and out of the domains")
    results = decode(
        model, dev_cache, DecodingOptions(commands=tuple(phrases), rejection_threshold=0.0)
    )
    print(
        f"\nclosed set: {len(phrases)} phrases; {sum(in_list)} in-list and "
        f"{len(in_list) - sum(in_list)} out-of-list dev utterances"
    )
    print("| threshold | in-list correct % | in-list rejected % | out-of-list false accepts % |")
    print("|---|---|---|---|")
    figures["closed_set"] = []
    for t in THRESHOLDS:
        ok = rej = fa = 0
        for ref, inside, res in zip(dev_refs, in_list, results, strict=True):
            accepted = res.command_score >= t
            if inside:
                ok += accepted and res.text == ref
                rej += not accepted
            else:
                fa += accepted
        n_in, n_out = sum(in_list), len(in_list) - sum(in_list)
        row = (100 * ok / n_in, 100 * rej / n_in, 100 * fa / n_out)
        figures["closed_set"].append(
            {"threshold": t, "correct": row[0], "rejected": row[1], "false_accept": row[2]}
        )
        print(f"| {t:.1f} | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} |")

    # 4. Test manifests with silence around each utterance.
    print("\nwith silence before and after each utterance:")
    methods = {"greedy": greedy, f"lexicon+LM beam {best}": grid[best]}
    print("| split | silence | " + " | ".join(methods) + " |\n|---|---|" + "---|" * len(methods))
    figures["padded"] = {}
    for name in args.test:
        records = read_manifest(name)
        refs = [normalize_text(r["text"]) for r in records]
        audio = [asr.audio.load_audio(r["audio"]) for r in records]
        for condition, silence in SILENCE_CONDITIONS.items():
            around = [surround(a, *silence, seed=i) for i, a in enumerate(audio)]
            cache = emissions(model, records, audio=around)
            row = {m: wer(refs, decode(model, cache, opt)) for m, opt in methods.items()}
            figures["padded"].setdefault(name, {})[condition] = row
            cells = " | ".join(f"{v:.2f}" for v in row.values())
            print(f"| {name} | {condition} | {cells} |")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
