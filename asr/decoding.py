"""Greedy CTC decoding (beam search lives in `asr.beam_search`)."""

import torch

from asr.features import valid_mask
from asr.text import Tokenizer


def token_frames(best: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """The frames of a best path that become tokens: the first of each run, not blank.

    Args:
        best: (B, T) label per frame (the argmax path).
        lengths: (B,) int64 valid frames per item.

    Returns:
        (B, T) bool, False at padding.
    """
    starts = torch.ones_like(best, dtype=torch.bool)
    starts[:, 1:] = best[:, 1:] != best[:, :-1]  # first frame of each run
    return starts & (best != blank) & valid_mask(lengths, best.shape[1])


def greedy_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0
) -> list[list[int]]:
    """Best path per frame, repeats merged, blanks removed; batched.

    Args:
        log_probs: (B, T, V) CTC log-probabilities (any monotonic scores work).
        lengths: (B,) int64 valid frames per item.

    Returns:
        B lists of token ids.
    """
    best = log_probs.argmax(dim=-1)  # (B, T)
    keep = token_frames(best, lengths, blank).cpu()
    best = best.cpu()
    return [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]


def greedy_texts(log_probs: torch.Tensor, lengths: torch.Tensor, tokenizer: Tokenizer) -> list[str]:
    """`greedy_decode` mapped to text."""
    return [tokenizer.decode(ids) for ids in greedy_decode(log_probs, lengths, tokenizer.blank_id)]
