"""Closed-set command scoring on hand-built CTC emissions."""

import math

import pytest
import torch
import torch.nn.functional as F

from asr.commands import CommandDecoder, free_best_path
from asr.decoding import greedy_decode
from asr.text import Tokenizer

TOKENIZER = Tokenizer()
FLOOR = 1e-4
PHRASES = ["turn on", "turn off", "stop", "Play Music!"]


def emissions(text: str, prob: float = 0.9) -> torch.Tensor:
    """(T, V) log-probs: blank, then each character (probability ``prob``) and a blank."""
    rows = []
    for token in ["", *[x for c in text for x in (c, "")]]:
        p = torch.full((len(TOKENIZER),), FLOOR)
        p[0 if token == "" else TOKENIZER.vocabulary.index(token)] = prob
        rows.append(p / p.sum())
    return torch.stack(rows).log()


def batch(*items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([x.shape[0] for x in items])
    out = torch.randn(len(items), int(lengths.max()), len(TOKENIZER)).log_softmax(-1)
    for i, x in enumerate(items):
        out[i, : x.shape[0]] = x
    return out, lengths


def test_picks_the_spoken_phrase() -> None:
    lp, lengths = batch(emissions("turn off"), emissions("stop"), emissions("play music"))
    results = CommandDecoder(PHRASES, TOKENIZER)(lp, lengths)
    assert [r.text for r in results] == ["turn off", "stop", "play music"]
    assert [r.index for r in results] == [1, 2, 3]
    assert all(not r.rejected and r.score > 0.9 for r in results)


def test_near_miss_goes_to_closest_phrase_and_scores_between() -> None:
    # "turn of" (a dropped letter) is closest to "turn off" (not "turn on", one substitution
    # away too) once that phrase list has no "turn on"; its score lies between an exact match
    # and out-of-list speech.
    lp, lengths = batch(emissions("turn of"), emissions("turn off"), emissions("open the door"))
    decoder = CommandDecoder(["turn off", "stop", "play music"], TOKENIZER, threshold=None)
    near, exact, outside = decoder(lp, lengths)
    assert near.phrase == near.text == "turn off"
    assert exact.score > near.score > outside.score


def test_rejects_out_of_list_speech() -> None:
    lp, lengths = batch(emissions("open the door"), emissions("stop"))
    decoder = CommandDecoder(PHRASES, TOKENIZER, threshold=0.5)
    out, kept = decoder(lp, lengths)
    assert out.rejected and out.text == "" and out.score < 0.5
    assert out.phrase in decoder.phrases
    assert not kept.rejected and kept.text == "stop"
    assert 0.0 <= out.score < kept.score <= 1.0
    # Without a threshold nothing is rejected.
    assert not CommandDecoder(PHRASES, TOKENIZER, threshold=None)(lp, lengths)[0].rejected


def faint(text: str, letter: float = 0.3, blank: float = 0.5) -> torch.Tensor:
    """(T, V) log-probs of noise in which the model hears `text` faintly: each character is
    the most likely token of its frame at probability `letter`, the blank between them at
    `blank`, the rest spread over all other tokens."""
    rows = []
    for token in ["", *[x for c in text for x in (c, "")]]:
        peak = blank if token == "" else letter
        p = torch.full((len(TOKENIZER),), (1 - peak) / (len(TOKENIZER) - 1))
        p[0 if token == "" else TOKENIZER.vocabulary.index(token)] = peak
        rows.append(p)
    return torch.stack(rows).log()


def test_a_phrase_heard_only_faintly_is_rejected() -> None:
    """Free decoding of noise hears a faint "go" and the phrase "go" matches it: the
    likelihood ratio alone scored it 1 and accepted it (as 88 % of noise clips, measured
    on the bundled model); the phrase's confidence rejects it."""
    # Sure blanks around faint letters: a confidence that averaged the blanks in (0.69
    # here) passed noise; the letters' own is 0.3.
    lp, lengths = batch(faint("go", letter=0.3, blank=0.95), emissions("go"))
    assert greedy_decode(lp, lengths)[0] == TOKENIZER.encode("go")  # what free decoding hears
    noise, spoken = CommandDecoder(["go", "stop"], TOKENIZER, threshold=0.5)(lp, lengths)
    assert noise.phrase == "go" and noise.rejected and noise.score < 0.5
    assert spoken.text == "go" and spoken.score > 0.8


def test_log_likelihood_is_exact_ctc() -> None:
    lp, lengths = batch(emissions("stop"))
    scores = CommandDecoder(["stop", "top"], TOKENIZER).log_likelihoods(lp, lengths)
    expected = -F.ctc_loss(
        lp[0, : lengths[0]],
        torch.tensor(TOKENIZER.encode("stop")),
        lengths,
        torch.tensor([4]),
        reduction="sum",
    )
    assert scores.shape == (1, 2)
    assert scores[0, 0].item() == pytest.approx(expected.item(), rel=1e-5)
    assert scores[0, 0] > scores[0, 1]


@pytest.mark.parametrize("max_grid_elements", [1, 10**9])
def test_batched_equals_per_utterance(max_grid_elements: int) -> None:
    torch.manual_seed(0)
    items = [
        emissions("turn on"),
        (torch.randn(25, len(TOKENIZER)) * 3).log_softmax(-1),
        emissions("stop"),
        (torch.randn(5, len(TOKENIZER))).log_softmax(-1),  # too short for most phrases
    ]
    lp, lengths = batch(*items)
    decoder = CommandDecoder(PHRASES, TOKENIZER, max_grid_elements=max_grid_elements)
    together = decoder.log_likelihoods(lp, lengths)
    alone = torch.cat([decoder.log_likelihoods(x[None], torch.tensor([x.shape[0]])) for x in items])
    assert torch.isinf(together[3, 3]) and together[3, 3] < 0
    torch.testing.assert_close(together, alone)
    results = decoder(lp, lengths)
    singles = [decoder(x[None], torch.tensor([x.shape[0]]))[0] for x in items]
    assert [r.phrase for r in results] == [r.phrase for r in singles]
    assert [r.score for r in results] == pytest.approx([r.score for r in singles])


def test_free_best_path() -> None:
    lp, lengths = batch(emissions("aab"), emissions("a"))
    scores, n_tokens = free_best_path(lp, lengths)
    assert n_tokens.tolist() == [3, 1]
    assert scores[1].item() == pytest.approx(3 * math.log(0.9 / (0.9 + 28 * FLOOR)), rel=1e-5)


def test_free_best_path_counts_the_tokens_greedy_decoding_gives() -> None:
    lp = torch.randn(3, 20, len(TOKENIZER), generator=torch.Generator().manual_seed(0))
    lp[:, :, 0] += 1.0  # blank runs between the tokens, as in real emissions
    lengths = torch.tensor([20, 7, 0])
    _, n_tokens = free_best_path(lp.log_softmax(-1), lengths)
    assert n_tokens.tolist() == [len(ids) for ids in greedy_decode(lp, lengths)]


def test_bad_phrase_lists() -> None:
    with pytest.raises(ValueError):
        CommandDecoder([], TOKENIZER)
    with pytest.raises(ValueError):
        CommandDecoder(["stop", "!!"], TOKENIZER)
    assert CommandDecoder(["Stop", "stop."], TOKENIZER).phrases == ["stop"]


@pytest.mark.parametrize("threshold", [None, 0.0])
def test_no_phrase_fits_too_few_frames(threshold: float | None) -> None:
    """Two frames hold no phrase of the list: nothing is chosen, even without rejection."""
    lp, lengths = batch(emissions("s")[:2], emissions("stop"))
    short, kept = CommandDecoder(PHRASES, TOKENIZER, threshold=threshold)(lp, lengths)
    assert short.log_likelihood == -math.inf
    assert short.rejected and short.text == ""
    assert not kept.rejected and kept.text == "stop"
