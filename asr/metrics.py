"""Word and character error rates, with jiwer doing the alignments."""

from collections.abc import Sequence
from dataclasses import dataclass

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
