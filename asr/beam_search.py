"""CTC beam-search decoding through torchaudio's flashlight decoder.

Two modes:

* lexicon-free: any character sequence can come out (like greedy decoding, but searching);
* lexicon-constrained: only words of a lexicon can come out; each word is spelled in characters
  followed by the word separator, so misspellings are pulled towards lexicon words. An optional
  word n-gram LM (KenLM ARPA or binary file, e.g. from :func:`asr.ngram.write_arpa`) rescoring
  the words is supported in this mode.

Our vocabulary uses ``" "`` (id 1) as the word separator; flashlight needs a named silence token,
so the token list handed to the decoder spells it :data:`SEPARATOR_TOKEN` (``"|"``). Token ids
are unchanged, so hypothesis tokens are tokenizer ids.

Example:
    >>> decoder = BeamSearchDecoder(Tokenizer(), lexicon=["turn", "on", "off"], beam_size=32)
    >>> texts = decoder(log_probs, lengths)  # log_probs (B, T, V), lengths (B,)
"""

import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torchaudio.models.decoder import ctc_decoder

from asr.features import valid_mask
from asr.text import BLANK, Tokenizer, normalize_text

SEPARATOR_TOKEN = "|"
SPACE = " "
UNK_WORD = "<unk>"
DEFAULT_BEAM_SIZE = 32
DEFAULT_BEAM_THRESHOLD = 20.0  # log-prob margin; flashlight's 50 gave the same dev WER, 1.2x slower
# LM weight (natural-log units) of every path: `asr transcribe`/`asr evaluate` and the Python
# API (`DecodingOptions`), `asr set-decoding`, and this decoder.
DEFAULT_LM_WEIGHT = 0.5
# Log-probability of every non-separator token in the frame appended to each utterance in
# lexicon mode (finite: flashlight's pruning arithmetic does not like -inf).
_NEG_LOG_PROB = -1.0e5

Lexicon = dict[str, list[str]]


@dataclass
class BeamHypothesis:
    """Best beam-search result for one utterance.

    Attributes:
        text: decoded text, words joined by single spaces ("" when nothing was recognised).
        tokens: tokenizer ids of the hypothesis, blanks and repeats removed, leading and
            trailing word separators dropped. Shape-wise a list of length L.
        timesteps: output-frame index (0-based) at which each token of ``tokens`` starts;
            length L. Multiply by the frame shift for seconds (see :meth:`token_times`).
        score: total decoder score (acoustic log-probability + weighted LM + insertion terms;
            for an utterance no kept word fits, the blank path's log-probability).
        words: decoded words (lexicon mode: as in the lexicon; lexicon-free: ``text.split()``).
    """

    text: str
    tokens: list[int]
    timesteps: list[int]
    score: float
    words: list[str]

    def token_times(self, frame_shift: float) -> list[float]:
        """Start time in seconds of each token, ``timesteps * frame_shift``."""
        return [t * frame_shift for t in self.timesteps]


def read_word_list(path: str | Path) -> list[str]:
    """Read a user's word file: whitespace-separated words, any layout, normalised.

    Returns:
        Distinct normalised words in first-seen order ("15" becomes "fifteen").
    """
    words = normalize_text(Path(path).read_text(encoding="utf-8")).split()
    return list(dict.fromkeys(words))


def lexicon_words_from_transcripts(transcripts: Iterable[str]) -> list[str]:
    """Distinct normalised words of training transcripts, most frequent first.

    Args:
        transcripts: raw or normalised transcripts.

    Returns:
        Word list suitable for :func:`build_lexicon`.
    """
    counts: dict[str, int] = {}
    for transcript in transcripts:
        for word in normalize_text(transcript).split():
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))


def build_lexicon(words: Iterable[str], tokenizer: Tokenizer) -> Lexicon:
    """Spell each word in tokens followed by the word separator.

    Args:
        words: words (normalised here; an entry normalising to several words adds each).
        tokenizer: defines the characters a word may use.

    Returns:
        ``{word: [c1, c2, ..., SEPARATOR_TOKEN]}`` in first-seen order.

    Raises:
        ValueError: a word has a character outside the tokenizer's vocabulary, or no words.
    """
    lexicon: Lexicon = {}
    for entry in words:
        for word in normalize_text(entry).split():
            if word not in lexicon:
                tokenizer.encode(word)  # raises on characters outside the vocabulary
                lexicon[word] = [*word, SEPARATOR_TOKEN]
    if not lexicon:
        raise ValueError("the lexicon is empty")
    return lexicon


def write_lexicon(lexicon: Mapping[str, Sequence[str]], path: str | Path) -> Path:
    """Write a lexicon in flashlight's format: ``word<TAB>t1 t2 ... |`` per line."""
    path = Path(path)
    lines = [f"{word}\t{' '.join(spelling)}\n" for word, spelling in lexicon.items()]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def decoder_tokens(tokenizer: Tokenizer) -> list[str]:
    """The tokenizer's vocabulary with the space spelled :data:`SEPARATOR_TOKEN`."""
    if SEPARATOR_TOKEN in tokenizer.vocabulary:
        raise ValueError(f"{SEPARATOR_TOKEN!r} is already in the vocabulary")
    if SPACE not in tokenizer.vocabulary:
        raise ValueError("the vocabulary has no space (word separator) token")
    return [SEPARATOR_TOKEN if t == SPACE else t for t in tokenizer.vocabulary]


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Discard what C++ code writes to file descriptor 2 while inside.

    KenLM prints a tip and a progress bar each time it reads an ARPA file: noise in
    `asr transcribe`'s output. Its errors still arrive, as exceptions.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class BeamSearchDecoder:
    """Flashlight CTC beam search, built once and applied to batches.

    Args:
        tokenizer: the model's tokenizer (blank id 0, a space token as word separator).
        lexicon: ``None`` for lexicon-free decoding; otherwise words (an iterable of strings,
            e.g. from :func:`read_word_list` or :func:`lexicon_words_from_transcripts`) or a
            ready lexicon from :func:`build_lexicon`.
        lm_path: KenLM ARPA or binary word LM (lexicon mode only), e.g. from
            :func:`asr.ngram.write_arpa`.
        beam_size: hypotheses kept after each frame.
        beam_size_token: tokens considered per frame (``None``: all).
        beam_threshold: prune hypotheses scoring this far below the best.
        lm_weight: weight of the LM log-probability (natural-log units, as KenLM's are scaled).
        word_score: score added per emitted word (positive favours more words). In lexicon-free
            mode it is applied to each emitted word separator.
        unk_score: score of an out-of-lexicon word in lexicon mode (``-inf`` forbids them).

    Raises:
        ValueError: an LM without a lexicon, or a bad lexicon.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        lexicon: Iterable[str] | Mapping[str, Sequence[str]] | None = None,
        lm_path: str | Path | None = None,
        beam_size: int = DEFAULT_BEAM_SIZE,
        beam_size_token: int | None = None,
        beam_threshold: float = DEFAULT_BEAM_THRESHOLD,
        lm_weight: float = DEFAULT_LM_WEIGHT,
        word_score: float = 0.0,
        unk_score: float = -math.inf,
    ) -> None:
        if lm_path is not None and lexicon is None:
            raise ValueError("a word LM needs a lexicon (lexicon-free decoding has no words)")
        self.tokenizer = tokenizer
        self.separator_id = tokenizer.vocabulary.index(SPACE)
        tokens = decoder_tokens(tokenizer)
        self.uses_lexicon = lexicon is not None
        if lexicon is not None and not isinstance(lexicon, Mapping):
            lexicon = build_lexicon(lexicon, tokenizer)
        self.lexicon: Lexicon | None = (
            {w: list(s) for w, s in lexicon.items()} if lexicon is not None else None
        )
        options = {
            "tokens": tokens,
            "lm": str(lm_path) if lm_path is not None else None,
            "beam_size": beam_size,
            "beam_size_token": beam_size_token,
            "beam_threshold": beam_threshold,
            "lm_weight": lm_weight,
            "blank_token": BLANK,
            "sil_token": SEPARATOR_TOKEN,
            "unk_word": UNK_WORD,
        }
        if self.lexicon is None:
            self._decoder = ctc_decoder(None, sil_score=word_score, **options)
        else:
            with tempfile.TemporaryDirectory() as tmp, _native_stderr_silenced():
                path = write_lexicon(self.lexicon, Path(tmp) / "lexicon.txt")
                try:
                    self._decoder = ctc_decoder(
                        str(path), word_score=word_score, unk_score=unk_score, **options
                    )
                except RuntimeError as err:
                    raise RuntimeError(f"{lm_path}: {err}") from None

    def _prepare(
        self, log_probs: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CPU float32 contiguous emissions; in lexicon mode one certain separator frame is
        appended after each utterance's last valid frame so that its last word is completed.

        Returns:
            Emissions (B, T or T + 1, V) and lengths (B,) int64 on CPU.
        """
        log_probs = log_probs.detach().to("cpu", torch.float32)
        lengths = lengths.detach().to("cpu", torch.int64).clamp(0, log_probs.shape[1])
        if not self.uses_lexicon:
            return log_probs.contiguous(), lengths
        batch, frames, vocab = log_probs.shape
        padded = log_probs.new_full((batch, frames + 1, vocab), _NEG_LOG_PROB)
        padded[:, :frames] = log_probs
        separator_frame = torch.full((vocab,), _NEG_LOG_PROB)
        separator_frame[self.separator_id] = 0.0
        padded[torch.arange(batch), lengths] = separator_frame
        return padded, lengths + 1

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[BeamHypothesis]:
        """Best hypothesis per utterance.

        Args:
            log_probs: (B, T, V) CTC log-probabilities (any device; copied to CPU).
            lengths: (B,) valid frames per utterance.

        Returns:
            B hypotheses, in batch order.

        Raises:
            ValueError: the log-probs are not (B, T, V), or hold NaN in a valid frame.
        """
        if log_probs.ndim != 3 or log_probs.shape[-1] != len(self.tokenizer):
            raise ValueError(
                f"log_probs must be (B, T, {len(self.tokenizer)}), got {tuple(log_probs.shape)}"
            )
        original_lengths = lengths.detach().to("cpu", torch.int64).clamp(0, log_probs.shape[1])
        emissions, decode_lengths = self._prepare(log_probs, lengths)
        valid = valid_mask(original_lengths, emissions.shape[1])  # (B, T)
        nan = (torch.isnan(emissions).any(-1) & valid).any(-1)  # (B,)
        if nan.any():  # flashlight would return no hypothesis at all for them
            raise ValueError(f"log_probs hold NaN (utterances {nan.nonzero()[:, 0].tolist()})")
        results = []
        for b in range(emissions.shape[0]):
            n_frames = int(original_lengths[b])
            if n_frames == 0:
                results.append(BeamHypothesis("", [], [], 0.0, []))
                continue
            hypothesis = self._decoder(emissions[b : b + 1], decode_lengths[b : b + 1])[0][0]
            if self.uses_lexicon and self._spends_appended_frame(hypothesis, n_frames):
                # No word the beam kept fits the utterance (too short for them, the silent
                # path pruned): the best survivor's last word is unfinished, closed only by
                # flashlight's end-of-utterance separator.
                silent = float(emissions[b, :n_frames, self.tokenizer.blank_id].sum())
                results.append(BeamHypothesis("", [], [], silent, []))
                continue
            results.append(self._convert(hypothesis, n_frames))
        return results

    def _spends_appended_frame(self, hypothesis, n_frames: int) -> bool:
        """Whether the hypothesis's last word is still being spelled at frame `n_frames`, the
        separator frame `_prepare` appends: a word that fits ends with a separator emitted
        at or before it (flashlight's timesteps are one ahead of our frames)."""
        tokens = hypothesis.tokens.tolist()
        frames = [int(t) - 1 for t in hypothesis.timesteps.tolist()]
        spelled = [i for i, token in enumerate(tokens) if token != self.separator_id]
        if not spelled:
            return False
        after = spelled[-1] + 1
        return after == len(tokens) or frames[after] > n_frames

    def _convert(self, hypothesis, n_frames: int) -> BeamHypothesis:
        """Flashlight hypothesis -> :class:`BeamHypothesis` (flashlight's paths start with an
        extra initial step, so its timesteps are one ahead of our frames)."""
        tokens = hypothesis.tokens.tolist()
        steps = [min(max(int(t) - 1, 0), n_frames - 1) for t in hypothesis.timesteps.tolist()]
        start, end = 0, len(tokens)
        while start < end and tokens[start] == self.separator_id:
            start += 1
        while end > start and tokens[end - 1] == self.separator_id:
            end -= 1
        tokens, steps = tokens[start:end], steps[start:end]
        # The text comes from the tokens in both modes, so an out-of-lexicon word (finite
        # unk_score) is spelled out rather than shown as "<unk>".
        text = " ".join(self.tokenizer.decode(tokens).split())
        words = list(hypothesis.words) if self.uses_lexicon else text.split()
        return BeamHypothesis(text, tokens, steps, float(hypothesis.score), words)

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Decoded text per utterance; see :meth:`decode` for shapes."""
        return [h.text for h in self.decode(log_probs, lengths)]
