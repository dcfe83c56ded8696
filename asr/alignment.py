"""Word timestamps and confidences by CTC forced alignment of decoded text.

The decoded text is aligned to the emissions with :func:`torchaudio.functional.forced_align`
(per utterance, valid frames only). Token spans are grouped into words at the space token.

Times. A bidirectional model is free to emit a word's letters anywhere it likes, and the
bundled one often spells the first word in the silence before it ("goo" in the first 0.12 s
of a recording whose speech starts at 1.4 s). Given which frames sound (`asr.segment`), the
times come from a second alignment that keeps letters to sounding frames.

Confidence. Each frame gets the posterior ``exp(log p_t(label))`` of the label the alignment put
there (a character or the blank). A word owns the frames from the end of the preceding space (or
the utterance start) to the start of the following space (or the utterance end). Those frames
form runs of one label: the word's characters and the blank stretches around and between them.
The word confidence is the mean over runs of the run's mean posterior, so each character and
each blank stretch counts once however long it lasts (long silences do not swamp the word). It
lies in [0, 1] and drops when another token competes at a character's frames (an ambiguous or
substituted character) and when a character the text lacks is strongly present at frames the
alignment had to call blank (a deleted character). The utterance confidence is the mean of its
word confidences; for empty text it is the mean blank posterior over the valid frames (how sure
the model is that nothing was said), and 0 for an utterance with no frames.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torchaudio.functional as AF

from asr.features import valid_mask
from asr.text import Tokenizer

SPACE = " "
# Subtracted from the log-probabilities of letters at silent frames: large enough that a path
# with a letter there never wins while one without exists, finite so that one always does.
SILENT_PENALTY = 1e4


@dataclass
class Word:
    """One aligned word.

    Attributes:
        word: the word's text.
        start: start time in seconds (first frame of its first character * frame shift).
        end: end time in seconds (frame after its last character's last frame * frame shift).
        confidence: in [0, 1], see the module docstring.
    """

    word: str
    start: float
    end: float
    confidence: float


@dataclass
class UtteranceAlignment:
    """Aligned words of one utterance and its overall confidence in [0, 1]."""

    words: list[Word] = field(default_factory=list)
    confidence: float = 0.0

    @property
    def text(self) -> str:
        """The words joined by single spaces."""
        return " ".join(w.word for w in self.words)


def ctc_frames_needed(ids: Sequence[int]) -> int:
    """Fewest CTC frames that can emit `ids`: one per label, plus a blank between each pair
    of equal neighbours (else CTC would merge them). Labels "aa" need 3 frames, "ab" 2.

    An utterance fits its transcript (a CTC alignment exists, the loss is finite) exactly
    when its output frames are at least this; `ctc_frames_needed_batch` for padded batches.
    """
    return len(ids) + sum(1 for a, b in itertools.pairwise(ids) if a == b)


def ctc_frames_needed_batch(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`ctc_frames_needed` of each label sequence of a padded batch.

    Args:
        tokens: (B, L) padded label ids; lengths: (B,) int64 valid labels.

    Returns:
        (B,) int64 frames needed.
    """
    # (B, L - 1), column j for the labels j and j + 1: equal, and both valid labels.
    repeats = tokens[:, 1:] == tokens[:, :-1]
    both_valid = valid_mask(lengths, tokens.shape[1])[:, 1:]  # label j + 1 valid, so j is too
    return lengths + (repeats & both_valid).sum(dim=1)


def _run_mean(labels: torch.Tensor, posteriors: torch.Tensor) -> float:
    """Mean over runs of equal consecutive labels of the run's mean posterior.

    Args:
        labels: (N,) aligned labels of a word's frames.
        posteriors: (N,) posterior of each frame's aligned label.
    """
    _, counts = torch.unique_consecutive(labels, return_counts=True)
    run_ids = torch.repeat_interleave(torch.arange(len(counts)), counts)
    sums = torch.zeros(len(counts)).index_add_(0, run_ids, posteriors)
    return float((sums / counts).mean())


def _word_spans(
    labels: torch.Tensor, posteriors: torch.Tensor, tokenizer: Tokenizer
) -> tuple[list[list[AF.TokenSpan]], list[tuple[int, int]]]:
    """Split an alignment's token spans into words at the space spans.

    Args:
        labels: (T,) aligned labels; posteriors: (T,) their posteriors.

    Returns:
        Each word's character spans, and the frames [lo, hi) it owns: from the end of the
        space before it (or 0) to the start of the space after it (or T).
    """
    space_id = tokenizer.vocabulary.index(SPACE)
    groups: list[list[AF.TokenSpan]] = [[]]
    bounds = [0]
    for span in AF.merge_tokens(labels, posteriors, blank=tokenizer.blank_id):
        if span.token == space_id:
            bounds += [span.start, span.end]
            groups.append([])
        else:
            groups[-1].append(span)
    bounds.append(len(labels))
    return groups, list(zip(bounds[::2], bounds[1::2], strict=True))


def align_words(
    log_probs: torch.Tensor,
    text: str,
    tokenizer: Tokenizer,
    frame_shift: float,
    sounding: torch.Tensor | None = None,
) -> UtteranceAlignment:
    """Force-align ``text`` to one utterance's emissions and return word timings.

    Args:
        log_probs: (T, V) CTC log-probabilities of the valid frames only.
        text: normalised text (extra whitespace is squeezed).
        tokenizer: the model's tokenizer (blank id 0, space as word separator).
        frame_shift: seconds per output frame (0.01 x subsampling factor).
        sounding: (T,) bool, the frames where the audio sounds, or None. A CTC model may
            emit a word's letters in the silence before or after it (nothing in its
            training asks where): the word times then come from an alignment that puts
            letters (not blanks or spaces) at sounding frames wherever the text fits there.

    Returns:
        The aligned words and the utterance confidence.

    Raises:
        ValueError: the text does not fit in ``T`` frames, or has characters outside the
            vocabulary.
    """
    log_probs = log_probs.detach().to("cpu", torch.float32)
    frames = log_probs.shape[0]
    words = text.split()
    if not words:
        if frames == 0:
            return UtteranceAlignment([], 0.0)
        blank = log_probs[:, tokenizer.blank_id].exp().mean()
        return UtteranceAlignment([], float(blank))
    ids = tokenizer.encode(" ".join(words))
    if ctc_frames_needed(ids) > frames:
        raise ValueError(f"{text!r} needs more than the {frames} frames available")
    ids_tensor = torch.tensor([ids], dtype=torch.int32)
    aligned, scores = AF.forced_align(log_probs[None], ids_tensor, blank=tokenizer.blank_id)
    labels, posteriors = aligned[0], scores[0].exp()
    spans, bounds = _word_spans(labels, posteriors, tokenizer)
    confidences = [_run_mean(labels[lo:hi], posteriors[lo:hi]) for lo, hi in bounds]
    if sounding is not None and bool(sounding.any()):
        # The times from a second alignment with letters kept to sounding frames; the
        # confidences stay those of the model's own best alignment.
        letters = torch.ones(len(tokenizer), dtype=torch.bool)  # (V,): all but blank and space
        letters[[tokenizer.blank_id, tokenizer.vocabulary.index(SPACE)]] = False
        emissions = log_probs.clone()
        emissions[~sounding.cpu()[:, None] & letters] -= SILENT_PENALTY
        aligned, _ = AF.forced_align(emissions[None], ids_tensor, blank=tokenizer.blank_id)
        spans, _ = _word_spans(aligned[0], posteriors, tokenizer)
    out = [
        Word(word, group[0].start * frame_shift, group[-1].end * frame_shift, confidence)
        for word, group, confidence in zip(words, spans, confidences, strict=True)
    ]
    return UtteranceAlignment(out, sum(w.confidence for w in out) / len(out))


def token_confidence(log_probs: torch.Tensor, ids: Sequence[int], blank: int = 0) -> float:
    """Mean posterior of `ids`' tokens along their forced alignment, blanks left out: each
    token's frames averaged, then the tokens (how surely the model hears each of them).

    Args:
        log_probs: (T, V) CTC log-probabilities of the valid frames only.
        ids: token ids (no blank) that fit in T frames (`ctc_frames_needed`).
        blank: the blank's id.

    Returns:
        A confidence in [0, 1]; 0 for no tokens.
    """
    if not ids:
        return 0.0
    log_probs = log_probs.detach().to("cpu", torch.float32)
    targets = torch.tensor([list(ids)], dtype=torch.int32)
    aligned, scores = AF.forced_align(log_probs[None], targets, blank=blank)
    spans = AF.merge_tokens(aligned[0], scores[0].exp(), blank=blank)
    return sum(span.score for span in spans) / len(spans)


def align_batch(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    texts: Sequence[str],
    tokenizer: Tokenizer,
    frame_shift: float,
    sounding: Sequence[torch.Tensor | None] | None = None,
) -> list[UtteranceAlignment]:
    """:func:`align_words` for each utterance of a batch.

    Args:
        log_probs: (B, T, V) CTC log-probabilities.
        lengths: (B,) valid frames per utterance.
        texts: B decoded texts.
        tokenizer: the model's tokenizer.
        frame_shift: seconds per output frame.
        sounding: B (T_b,) bool masks of each utterance's sounding frames, or Nones
            (see `align_words`); None: none known.

    Returns:
        B alignments in batch order.
    """
    if len(texts) != log_probs.shape[0]:
        raise ValueError(f"{len(texts)} texts for a batch of {log_probs.shape[0]}")
    log_probs = log_probs.detach().to("cpu", torch.float32)
    sounding = sounding or [None] * len(texts)
    return [
        align_words(log_probs[b, : int(n)], text, tokenizer, frame_shift, mask)
        for b, (n, text, mask) in enumerate(zip(lengths.tolist(), texts, sounding, strict=True))
    ]
