"""Scoring a model on a manifest: `recogs`, `errs` and `analysis` files plus a WER summary."""

import os
from collections import Counter
from pathlib import Path

import jiwer

from asr.manifest import ManifestError, read_manifest
from asr.metrics import ErrorCounts, char_errors, word_error_types, word_errors
from asr.segment import MIN_PAUSE_SECONDS
from asr.text import normalize_text
from asr.transcribe import DecodingOptions, Recognizer

TOP_ERRORS = 20  # most frequent substitutions, deletions and insertions listed in `analysis`
# Manifest fields that group utterances into WER tables in `analysis` (the commands recipe
# writes all three: the TTS voice, the grammar's domain, and the foreign accent if any).
GROUP_KEYS = ("speaker", "domain", "accent")


def evaluate(
    recognizer: Recognizer,
    manifest: str | Path,
    out_dir: str | Path,
    batch_size: int = 16,
    options: DecodingOptions | None = None,
    progress: bool = False,
    min_pause: float | None = MIN_PAUSE_SECONDS,
) -> tuple[ErrorCounts, ErrorCounts, int]:
    """Decode every utterance of `manifest` and score it.

    Writes `out_dir/recogs` (one `id<TAB>ref=...<TAB>hyp=...` line per utterance) and
    `out_dir/errs` (the summary, then each utterance with errors and its word alignment).
    An unreadable audio file counts as an empty hypothesis and is listed in `errs`.
    Also writes `out_dir/analysis`: the most frequent word substitutions, deletions and
    insertions and, for each GROUP_KEYS field the manifest's records carry ("speaker",
    "domain", "accent"), a table of WER per value of that field.

    Args:
        progress: show a progress bar (files, rate, ETA) on stderr while decoding.
        min_pause: cut inputs inside pauses this long (seconds; `Recognizer.transcribe`).

    Returns:
        Word and character error counts, and the number of unreadable audio files.

    Raises:
        asr.manifest.ManifestError: the manifest is broken or lists no utterance.
    """
    records = read_manifest(manifest, need_duration=False)
    if not records:
        raise ManifestError(f"{manifest}: no utterances to score")
    audio = [r["audio"] for r in records]
    results = recognizer.transcribe(
        audio, batch_size=batch_size, options=options, progress=progress, min_pause=min_pause
    )
    refs = [normalize_text(r["text"]) for r in records]
    hyps = [res.text for res in results]
    wer, cer = word_errors(refs, hyps), char_errors(refs, hyps)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = utterance_ids(records)
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
    with open(out_dir / "analysis", "w") as f:
        f.write(error_analysis(refs, hyps))
        for key in GROUP_KEYS:
            groups = [r.get(key) for r in records]
            if any(g is not None for g in groups):
                f.write("\n" + group_table(refs, hyps, groups, key))
    return wer, cer, sum(bool(res.error) for res in results)


def words_outside(refs: list[str], lexicon: list[str]) -> Counter[str]:
    """How often each reference word that `lexicon` lacks occurs: a lexicon-constrained
    search cannot spell them, so each is an error whatever the model hears."""
    known = set(lexicon)
    return Counter(w for ref in refs for w in ref.split() if w not in known)


def utterance_ids(records: list[dict]) -> list[str]:
    """Each record's "id", else its audio file's name without the suffix; when names repeat
    (a/utt00.wav, b/utt00.wav), the paths below the folder all the audio shares."""
    ids = [Path(r["audio"]).stem for r in records]
    if len(set(ids)) < len(ids):
        common = Path(os.path.commonpath([str(Path(r["audio"]).parent) for r in records]))
        ids = [str(Path(r["audio"]).relative_to(common).with_suffix("")) for r in records]
    return [r.get("id") or uid for r, uid in zip(records, ids, strict=True)]


def error_analysis(refs: list[str], hyps: list[str], top: int = TOP_ERRORS) -> str:
    """The `top` most frequent word substitutions, deletions and insertions, as text."""
    types = word_error_types(refs, hyps)
    sections = (
        ("substitutions (ref -> hyp)", types.substitutions, lambda k: f"{k[0]} -> {k[1]}"),
        ("deletions", types.deletions, str),
        ("insertions", types.insertions, str),
    )
    lines = []
    for title, counter, show in sections:
        lines.append(f"{title}: {sum(counter.values())}")
        lines += [f"{n:6d}  {show(k)}" for k, n in counter.most_common(top)]
        lines.append("")
    return "\n".join(lines)


def group_table(
    refs: list[str], hyps: list[str], labels: list[str | None], name: str = "speaker"
) -> str:
    """WER per label, e.g. per speaker (records without one grouped as "-"), worst first.

    Args:
        labels: one per utterance; `name` heads their column.
    """
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault("-" if label is None else str(label), []).append(i)
    rows = []
    for label, idx in groups.items():
        counts = word_errors([refs[i] for i in idx], [hyps[i] for i in idx])
        rows.append((label, len(idx), counts))
    rows.sort(key=lambda row: (-row[2].rate, row[0]))
    width = max(len(name), *(len(r[0]) for r in rows))
    lines = [f"{name:<{width}}  {'utts':>5}  {'words':>6}  {'WER':>7}  ins  del  sub"]
    for label, n, c in rows:
        lines.append(
            f"{label:<{width}}  {n:5d}  {c.reference_length:6d}  {100 * c.rate:6.2f}%"
            f"  {c.insertions:3d}  {c.deletions:3d}  {c.substitutions:3d}"
        )
    return "\n".join(lines) + "\n"


def _alignment(ref: str, hyp: str) -> str:
    if not ref:
        return f"REF: \nHYP: {hyp}\n"
    shown = jiwer.visualize_alignment(jiwer.process_words(ref, hyp), show_measures=False)
    # jiwer heads each alignment "=== SENTENCE 1 ===": the utterance id heads it here.
    return shown.split("\n", 1)[1].strip() if shown.startswith("=== SENTENCE") else shown.strip()
