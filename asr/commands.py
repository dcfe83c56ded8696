"""Closed-set command decoding: pick the allowed phrase with the highest CTC likelihood.

Every utterance is scored against every phrase by its exact CTC log-likelihood
``log P(phrase | audio)`` (sum over all alignments), computed in batches with
:func:`torch.nn.functional.ctc_loss` over the (utterance x phrase) grid.

Rejection score. Let ``LL`` be the best phrase's log-likelihood and ``F`` the log-probability of
the unconstrained best CTC path (``sum_t max_v log p_t(v)``, the greedy/Viterbi path over any
text). ``F`` bounds the score of any single alignment of any text, so ``LL - F`` is close to 0
when the phrase is what free decoding hears and very negative when the audio says something
else. We normalise per token, ``N = max(len(phrase), len(free text), 1)`` characters, so the
score does not depend on utterance or phrase length::

    score = exp(min(LL - F, 0) / N)   in [0, 1]

i.e. the geometric-mean, per character, likelihood ratio of the phrase against free decoding
(``LL`` sums over alignments and can exceed ``F`` for a perfect match; that is clipped to 1).
The ratio rejects speech that says something else, but not noise: free decoding of noise
hears a faint short word ("go"), the phrase "go" matches it, and the ratio is 1. So the score
is the ratio times the phrase's confidence, the mean posterior of its characters along its
forced alignment, blanks left out (`asr.alignment.token_confidence`), which is low where the
model hears a word only faintly::

    score = ratio * confidence   in [0, 1]

An utterance is rejected when ``score < threshold``, or when no phrase fits its frames (every
``LL`` is ``-inf``); rejected utterances get the text ``""``.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from asr.alignment import token_confidence
from asr.decoding import token_frames
from asr.features import valid_mask
from asr.text import Tokenizer, normalize_text

DEFAULT_REJECTION_THRESHOLD = 0.5
# Upper bound on elements of the expanded (T, B * phrases, V) log-prob tensor per ctc_loss call
# (16M float32 = 64 MiB).
MAX_GRID_ELEMENTS = 16 * 1024 * 1024


@dataclass
class CommandResult:
    """Closed-set decision for one utterance.

    Attributes:
        text: the chosen phrase, or "" when rejected.
        phrase: the best phrase even when rejected (for logging / tuning the threshold).
        index: position of ``phrase`` in the decoder's phrase list.
        log_likelihood: ``log P(phrase | audio)`` (natural log; ``-inf`` if impossible).
        score: rejection score in [0, 1] (see the module docstring); higher is more confident.
        rejected: ``score < threshold``, or no phrase fits the utterance's frames.
        ratio, confidence: the score's two factors (0 when no phrase fits).
    """

    text: str
    phrase: str
    index: int
    log_likelihood: float
    score: float
    rejected: bool
    ratio: float = 0.0
    confidence: float = 0.0


def free_best_path(
    log_probs: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score and length of the unconstrained best CTC path (per-frame argmax).

    Args:
        log_probs: (B, T, V) CTC log-probabilities, blank id 0.
        lengths: (B,) valid frames.

    Returns:
        ``(scores, n_tokens)``: (B,) float sum of the per-frame max log-probabilities over the
        valid frames, and (B,) int64 number of tokens of the collapsed argmax path.
    """
    valid = valid_mask(lengths, log_probs.shape[1])  # (B, T)
    best, ids = log_probs.max(dim=-1)  # (B, T)
    scores = torch.where(valid, best, torch.zeros_like(best)).sum(dim=1)
    n_tokens = token_frames(ids, lengths).sum(dim=1)  # the tokens greedy decoding gives
    return scores, n_tokens


class CommandDecoder:
    """Scores utterances against a fixed list of phrases.

    Args:
        phrases: allowed phrases, normalised with ``normalize_text``; duplicates after
            normalisation are dropped (first kept).
        tokenizer: the model's tokenizer.
        threshold: rejection threshold on the score in [0, 1]; ``None`` never rejects.
        max_grid_elements: memory bound for the expanded log-probs of one ``ctc_loss`` call.

    Raises:
        ValueError: no phrases, or a phrase that is empty after normalisation.
    """

    def __init__(
        self,
        phrases: Sequence[str],
        tokenizer: Tokenizer,
        threshold: float | None = DEFAULT_REJECTION_THRESHOLD,
        max_grid_elements: int = MAX_GRID_ELEMENTS,
    ) -> None:
        normalised = list(dict.fromkeys(normalize_text(p) for p in phrases))
        if not normalised:
            raise ValueError("no phrases given")
        if "" in normalised:
            raise ValueError("a phrase is empty after normalisation")
        self.phrases = normalised
        self.tokenizer = tokenizer
        self.threshold = threshold
        self.max_grid_elements = max_grid_elements
        encoded = [tokenizer.encode(p) for p in normalised]
        self.target_lengths = torch.tensor([len(e) for e in encoded], dtype=torch.int64)
        self.targets = torch.zeros(len(encoded), int(self.target_lengths.max()), dtype=torch.int64)
        for i, ids in enumerate(encoded):
            self.targets[i, : len(ids)] = torch.tensor(ids)

    def log_likelihoods(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Exact CTC log-likelihood of every phrase for every utterance.

        Args:
            log_probs: (B, T, V) CTC log-probabilities.
            lengths: (B,) valid frames.

        Returns:
            (B, P) float32 ``log P(phrase_p | utterance_b)``; ``-inf`` where the phrase cannot
            fit in the utterance's frames.
        """
        batch, frames, vocab = log_probs.shape
        device = log_probs.device
        lengths = lengths.to(device=device, dtype=torch.int64)
        targets = self.targets.to(device)
        target_lengths = self.target_lengths.to(device)
        n_phrases = targets.shape[0]
        chunk = max(1, self.max_grid_elements // max(1, frames * batch * vocab))
        time_major = log_probs.float().transpose(0, 1)  # (T, B, V)
        out = []
        for start in range(0, n_phrases, chunk):
            stop = min(start + chunk, n_phrases)
            n = stop - start
            # Grid row b * n + j pairs utterance b with phrase start + j.
            grid = (
                time_major.unsqueeze(2).expand(frames, batch, n, vocab).reshape(frames, -1, vocab)
            )
            loss = F.ctc_loss(
                grid,
                targets[start:stop].repeat(batch, 1),
                lengths.repeat_interleave(n),
                target_lengths[start:stop].repeat(batch),
                blank=self.tokenizer.blank_id,
                reduction="none",
                zero_infinity=False,
            )
            out.append(-loss.view(batch, n))
        return torch.cat(out, dim=1)

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[CommandResult]:
        """Best phrase, likelihood, rejection score and decision per utterance.

        Args:
            log_probs: (B, T, V) CTC log-probabilities.
            lengths: (B,) valid frames.

        Returns:
            B results in batch order.
        """
        with torch.no_grad():
            lengths = lengths.to(device=log_probs.device, dtype=torch.int64)
            scores = self.log_likelihoods(log_probs, lengths)
            best_ll, best_index = scores.max(dim=1)
            free_score, free_tokens = free_best_path(log_probs.float(), lengths)
            n_tokens = torch.maximum(
                self.target_lengths.to(log_probs.device)[best_index], free_tokens
            )
            ratio = ((best_ll - free_score).clamp(max=0.0) / n_tokens.clamp(min=1)).exp()
            ratio = torch.nan_to_num(ratio, nan=0.0)  # -inf - (-inf) cannot happen, but be safe
        results = []
        for b, (ll, index, phrase_ratio) in enumerate(
            zip(best_ll.tolist(), best_index.tolist(), ratio.tolist(), strict=True)
        ):
            phrase = self.phrases[index]
            score = confidence = 0.0
            if ll > -math.inf:  # the phrase fits the frames, so it can be aligned
                emissions = log_probs[b, : int(lengths[b])]  # (T_b, V)
                ids = self.targets[index, : self.target_lengths[index]].tolist()
                confidence = token_confidence(emissions, ids, self.tokenizer.blank_id)
                score = phrase_ratio * confidence
            # A phrase that does not fit the frames cannot be the answer, whatever the threshold.
            rejected = ll == -math.inf or (self.threshold is not None and score < self.threshold)
            text = "" if rejected else phrase
            results.append(
                CommandResult(text, phrase, index, ll, score, rejected, phrase_ratio, confidence)
            )
        return results
