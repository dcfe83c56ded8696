"""A small word n-gram language model estimator that writes ARPA files.

The beam-search decoder (:mod:`asr.beam_search`) reads KenLM ARPA/binary files through
flashlight. Command vocabularies are tiny, so instead of depending on KenLM's ``lmplz`` this
module estimates an interpolated absolute-discounting n-gram model from transcripts in pure
Python and writes it as ARPA.

The model (order ``N``, discount ``D_n`` per order, ``c`` = n-gram counts)::

    p_1(w)    = max(c(w) - D_1, 0) / c(.) + D_1 * types(.) / c(.) * 1 / |V|
    p_n(w|h)  = max(c(h, w) - D_n, 0) / c(h, .) + gamma(h) * p_{n-1}(w | h[1:])
    gamma(h)  = D_n * types(h, .) / c(h, .)

where ``|V|`` counts every word plus ``</s>`` and ``<unk>`` (``<s>`` is never predicted). In
ARPA terms the stored probability of a seen n-gram is ``p_n(w|h)`` and the back-off weight of a
history is ``gamma(h)``, so the back-off reading of the file is exactly the interpolated model
and every conditional distribution sums to one.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from asr.text import normalize_text

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
DEFAULT_ORDER = 3
MIN_ORDER = 2  # KenLM refuses unigram-only models
MIN_DISCOUNT = 0.1
MAX_DISCOUNT = 0.9
LOG10_ZERO = -99.0  # ARPA convention for log10(0), used for <s>

NGram = tuple[str, ...]


def _sentences_to_words(sentences: Iterable[str | Iterable[str]]) -> list[list[str]]:
    """Normalise strings (or take pre-split word lists) into word lists; drop empty ones."""
    out = []
    for sentence in sentences:
        words = normalize_text(sentence).split() if isinstance(sentence, str) else list(sentence)
        if words:
            out.append(words)
    return out


def _discount(counts: Counter[NGram]) -> float:
    """Ney's estimate ``n1 / (n1 + 2 n2)``, clipped to [MIN_DISCOUNT, MAX_DISCOUNT]."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    estimate = n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5
    return min(max(estimate, MIN_DISCOUNT), MAX_DISCOUNT)


class NGramLM:
    """Interpolated absolute-discounting word n-gram model (see the module docstring).

    Args:
        sentences: training transcripts, as strings (normalised with ``normalize_text``) or as
            already-split word sequences.
        order: n-gram order (>= 2).
        discount: a fixed discount in (0, 1] for every order; ``None`` estimates one per order.

    Raises:
        ValueError: ``order`` < 2, a bad discount, or no non-empty sentence.
    """

    def __init__(
        self,
        sentences: Iterable[str | Iterable[str]],
        order: int = DEFAULT_ORDER,
        discount: float | None = None,
    ) -> None:
        if order < MIN_ORDER:
            raise ValueError(f"order must be >= {MIN_ORDER} (KenLM needs a bigram), got {order}")
        if discount is not None and not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        corpus = _sentences_to_words(sentences)
        if not corpus:
            raise ValueError("no non-empty sentence to estimate a language model from")
        self.order = order
        # counts[n - 1][(h..., w)] for n = 1..order; w is never <s>.
        self.counts: list[Counter[NGram]] = [Counter() for _ in range(order)]
        for words in corpus:
            padded = [BOS, *words, EOS]
            for i in range(1, len(padded)):
                for n in range(1, order + 1):
                    if i - n + 1 < 0:
                        break
                    self.counts[n - 1][tuple(padded[i - n + 1 : i + 1])] += 1
        self.vocabulary = sorted({g[0] for g in self.counts[0]} | {EOS, UNK})
        self._vocabulary_set = frozenset(self.vocabulary)
        self.discounts = [discount if discount is not None else _discount(c) for c in self.counts]
        # Per order n >= 1: history -> (total count, number of distinct successors).
        self._history_stats: list[dict[NGram, tuple[int, int]]] = []
        for counts in self.counts:
            totals: dict[NGram, list[int]] = defaultdict(lambda: [0, 0])
            for gram, c in counts.items():
                stats = totals[gram[:-1]]
                stats[0] += c
                stats[1] += 1
            self._history_stats.append({h: (t, k) for h, (t, k) in totals.items()})

    def backoff_weight(self, history: NGram) -> float:
        """``gamma(history)``: the mass left for the lower order; 1.0 for an unseen history."""
        stats = self._history_stats[len(history)].get(history)
        if stats is None:
            return 1.0
        total, types = stats
        return self.discounts[len(history)] * types / total

    def prob(self, word: str, history: NGram = ()) -> float:
        """``p(word | history)`` with the history cut to the last ``order - 1`` words.

        Words outside the vocabulary are scored as ``<unk>``; ``<s>`` has probability 0.
        """
        if word == BOS:
            return 0.0
        if word not in self._vocabulary_set:
            word = UNK
        history = tuple(history)[-(self.order - 1) :]
        n = len(history)
        if n == 0:
            total, types = self._history_stats[0][()]
            discount = self.discounts[0]
            seen = max(self.counts[0].get((word,), 0) - discount, 0.0) / total
            return seen + discount * types / total / len(self.vocabulary)
        lower = self.prob(word, history[1:])
        stats = self._history_stats[n].get(history)
        if stats is None:
            return lower
        total, _ = stats
        seen = max(self.counts[n].get((*history, word), 0) - self.discounts[n], 0.0) / total
        return seen + self.backoff_weight(history) * lower

    def to_arpa(self) -> str:
        """Render the model as ARPA text (log10 probabilities and back-off weights)."""
        sections: list[list[str]] = []
        for n in range(1, self.order + 1):
            if n == 1:
                grams = sorted([(w,) for w in self.vocabulary] + [(BOS,)])
            else:
                grams = sorted(self.counts[n - 1])
            lines = []
            for gram in grams:
                p = self.prob(gram[-1], gram[:-1])
                logp = math.log10(p) if p > 0 else LOG10_ZERO
                line = f"{logp:.7f}\t{' '.join(gram)}"
                if n < self.order and gram in self._history_stats[n]:
                    line += f"\t{math.log10(self.backoff_weight(gram)):.7f}"
                lines.append(line)
            sections.append(lines)
        out = ["", "\\data\\"]
        out += [f"ngram {n}={len(lines)}" for n, lines in enumerate(sections, start=1)]
        for n, lines in enumerate(sections, start=1):
            out += ["", f"\\{n}-grams:", *lines]
        out += ["", "\\end\\", ""]
        return "\n".join(out)


def write_arpa(
    sentences: Iterable[str | Iterable[str]],
    path: str | Path,
    order: int = DEFAULT_ORDER,
    discount: float | None = None,
) -> Path:
    """Estimate an :class:`NGramLM` from transcripts and write it as an ARPA file.

    Args:
        sentences: training transcripts (strings are normalised with ``normalize_text``).
        path: output file; parent folders are created.
        order: n-gram order.
        discount: fixed discount, or ``None`` to estimate one per order.

    Returns:
        The path written, loadable by KenLM / ``torchaudio.models.decoder.ctc_decoder(lm=...)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NGramLM(sentences, order=order, discount=discount).to_arpa(), encoding="utf-8")
    return path
