"""Scoring a model on a manifest: `recogs` and `errs` files plus a WER summary line."""

from pathlib import Path

import jiwer

from asr.manifest import read_manifest
from asr.metrics import ErrorCounts, char_errors, word_errors
from asr.text import normalize_text
from asr.transcribe import DecodingOptions, Recognizer


def evaluate(
    recognizer: Recognizer,
    manifest: str | Path,
    out_dir: str | Path,
    batch_size: int = 16,
    options: DecodingOptions | None = None,
) -> tuple[ErrorCounts, ErrorCounts]:
    """Decode every utterance of `manifest` and score it.

    Writes `out_dir/recogs` (one `id<TAB>ref=...<TAB>hyp=...` line per utterance) and
    `out_dir/errs` (the summary, then each utterance with errors and its word alignment).
    An unreadable audio file counts as an empty hypothesis and is listed in `errs`.

    Returns:
        Word and character error counts.
    """
    records = read_manifest(manifest)
    audio = [r["audio"] for r in records]
    results = recognizer.transcribe(audio, batch_size=batch_size, options=options)
    refs = [normalize_text(r["text"]) for r in records]
    hyps = [res.text for res in results]
    wer, cer = word_errors(refs, hyps), char_errors(refs, hyps)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = [r.get("id") or Path(r["audio"]).stem for r in records]
    with open(out_dir / "recogs", "w") as f:
        for uid, ref, hyp in zip(ids, refs, hyps, strict=True):
            f.write(f"{uid}\tref={ref}\thyp={hyp}\n")
    with open(out_dir / "errs", "w") as f:
        f.write(f"{wer.summary('WER')}\n{cer.summary('CER')}\n\n")
        for uid, ref, hyp, res in zip(ids, refs, hyps, results, strict=True):
            if res.error:
                f.write(f"{uid}\tERROR {res.error}\n")
            elif ref != hyp:
                f.write(f"{uid}\n{_alignment(ref, hyp)}\n")
    return wer, cer


def _alignment(ref: str, hyp: str) -> str:
    if not ref:
        return f"REF: \nHYP: {hyp}\n"
    return jiwer.visualize_alignment(jiwer.process_words(ref, hyp), show_measures=False).strip()
