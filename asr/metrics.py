"""Word and character error rates, with jiwer doing the alignments."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import jiwer


@dataclass
class ErrorCounts:
    """Edit counts of hypotheses against references (words or characters)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors per reference unit; an empty reference with errors counts as 100%."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_length

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )

    def summary(self, name: str = "WER") -> str:
        """Kaldi-style line: `WER 12.50% [5 / 40, 1 ins, 2 del, 2 sub]`."""
        return (
            f"{name} {100 * self.rate:.2f}% [{self.errors} / {self.reference_length}, "
            f"{self.insertions} ins, {self.deletions} del, {self.substitutions} sub]"
        )


def _count(refs: Sequence[str], hyps: Sequence[str], chars: bool) -> ErrorCounts:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    counts = ErrorCounts()
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r.strip()]
    # jiwer refuses empty references: everything said against silence is an insertion.
    for ref, hyp in zip(refs, hyps, strict=True):
        if not ref.strip():
            counts.insertions += len(hyp) if chars else len(hyp.split())
    if pairs:
        ref_list, hyp_list = zip(*pairs, strict=True)
        process = jiwer.process_characters if chars else jiwer.process_words
        out = process(list(ref_list), list(hyp_list))
        counts += ErrorCounts(
            out.substitutions,
            out.deletions,
            out.insertions,
            out.hits + out.substitutions + out.deletions,
        )
    return counts


def word_errors(refs: Sequence[str], hyps: Sequence[str]) -> ErrorCounts:
    """Word-level edit counts over a corpus (WER = .rate)."""
    return _count(refs, hyps, chars=False)


def char_errors(refs: Sequence[str], hyps: Sequence[str]) -> ErrorCounts:
    """Character-level edit counts over a corpus (CER = .rate); spaces count as characters."""
    return _count(refs, hyps, chars=True)


@dataclass
class WordErrorTypes:
    """How often each word was substituted (ref -> hyp), deleted or inserted."""

    substitutions: Counter[tuple[str, str]] = field(default_factory=Counter)
    deletions: Counter[str] = field(default_factory=Counter)
    insertions: Counter[str] = field(default_factory=Counter)


def word_error_types(refs: Sequence[str], hyps: Sequence[str]) -> WordErrorTypes:
    """Count each word's substitutions, deletions and insertions over a corpus.

    Uses jiwer's alignment chunks and counts per word: a chunk of 2 substituted words gives
    two (ref, hyp) pairs, so "turn on" -> "tell me" counts turn->tell and on->me.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    types = WordErrorTypes()
    pairs = []
    for ref, hyp in zip(refs, hyps, strict=True):
        if ref.strip():
            pairs.append((ref, hyp))
        else:  # jiwer refuses empty references: every hypothesis word is an insertion
            types.insertions.update(hyp.split())
    if not pairs:
        return types
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    for ref, hyp, chunks in zip(out.references, out.hypotheses, out.alignments, strict=True):
        for c in chunks:
            ref_words = ref[c.ref_start_idx : c.ref_end_idx]
            hyp_words = hyp[c.hyp_start_idx : c.hyp_end_idx]
            if c.type == "substitute":
                types.substitutions.update(zip(ref_words, hyp_words, strict=True))
            elif c.type == "delete":
                types.deletions.update(ref_words)
            elif c.type == "insert":
                types.insertions.update(hyp_words)
    return types
