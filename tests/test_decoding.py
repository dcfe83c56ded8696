import torch

from asr.decoding import greedy_decode, greedy_texts
from asr.text import Tokenizer

TOK = Tokenizer()


def frames(path: list[str], peak: float = 0.9) -> torch.Tensor:
    """Hand-built (T, V) log-probs whose best token per frame follows `path` ("-" = blank)."""
    ids = [0 if c == "-" else TOK.vocabulary.index(c) for c in path]
    probs = torch.full((len(ids), len(TOK)), (1 - peak) / (len(TOK) - 1))
    probs[torch.arange(len(ids)), ids] = peak
    return probs.log()


def test_greedy_merges_repeats_and_drops_blanks():
    lp = frames(list("--hh-e-ll-ll--oo-"))
    assert greedy_texts(lp[None], torch.tensor([lp.shape[0]]), TOK) == ["hello"]


def test_greedy_text_has_one_space_between_words():
    """A blank between two spaces keeps both; the text scored one insertion too many."""
    lp = frames(list("--a- - -b--  c- "))
    assert greedy_texts(lp[None], torch.tensor([lp.shape[0]]), TOK) == ["a b c"]


def test_greedy_respects_lengths_in_a_batch():
    a, b = frames(list("gg--oo")), frames(list("n-o-------"))
    batch = torch.full((2, 10, len(TOK)), -1e4)
    batch[0, :6], batch[1] = a, b
    batch[0, 6:, TOK.vocabulary.index("x")] = 0  # garbage in the padding must be ignored
    assert greedy_texts(batch, torch.tensor([6, 10]), TOK) == ["go", "no"]


def test_greedy_empty_and_all_blank():
    lp = frames(list("-----"))
    assert greedy_decode(lp[None], torch.tensor([5])) == [[]]
    assert greedy_decode(lp[None], torch.tensor([0])) == [[]]
