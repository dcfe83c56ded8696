"""Beam search and the ARPA estimator on hand-built CTC emissions."""

import math
import sys
from pathlib import Path

import pytest
import torch

from asr.beam_search import (
    BeamSearchDecoder,
    build_lexicon,
    lexicon_words_from_transcripts,
    read_word_list,
)
from asr.ngram import BOS, EOS, UNK, NGramLM, write_arpa
from asr.text import Tokenizer

TOKENIZER = Tokenizer()
FLOOR = 1e-4  # probability mass spread over the tokens a frame does not name


def frame(probs: dict[str, float]) -> torch.Tensor:
    """Log-probabilities (V,) of one frame; "" is the blank; unnamed tokens share FLOOR."""
    p = torch.full((len(TOKENIZER),), FLOOR)
    for token, prob in probs.items():
        p[0 if token == "" else TOKENIZER.vocabulary.index(token)] = prob
    return (p / p.sum()).log()


def emissions(spec: list[str | dict[str, float]]) -> torch.Tensor:
    """(T, V) log-probs; a str frame is that token with probability 0.9 ("" = blank)."""
    return torch.stack([frame({s: 0.9} if isinstance(s, str) else s) for s in spec])


def frames_for(text: str) -> list[str]:
    """Blank, then each character followed by a blank."""
    out = [""]
    for c in text:
        out += [c, ""]
    return out


def batch(*items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (T_i, V) items into (B, T, V) with garbage after each length, plus lengths (B,)."""
    lengths = torch.tensor([x.shape[0] for x in items])
    out = torch.randn(len(items), int(lengths.max()), len(TOKENIZER)).log_softmax(-1)
    for i, x in enumerate(items):
        out[i, : x.shape[0]] = x
    return out, lengths


def greedy(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Argmax, collapse repeats, drop blanks."""
    texts = []
    for lp, n in zip(log_probs, lengths, strict=True):
        ids = torch.unique_consecutive(lp[:n].argmax(-1)).tolist()
        texts.append(" ".join(TOKENIZER.decode([i for i in ids if i != 0]).split()))
    return texts


def test_beam_size_one_equals_greedy() -> None:
    torch.manual_seed(0)
    # Peaky random emissions: greedy is a real (messy) character string.
    log_probs = (torch.randn(4, 60, len(TOKENIZER)) * 4).log_softmax(-1)
    lengths = torch.tensor([60, 45, 30, 1])
    decoder = BeamSearchDecoder(TOKENIZER, beam_size=1, beam_size_token=1)
    expected = greedy(log_probs, lengths)
    assert any(len(t) > 5 for t in expected)
    assert decoder(log_probs, lengths) == expected


def test_lexicon_free_wide_beam_recovers_text_and_timesteps() -> None:
    lp, lengths = batch(emissions(frames_for("turn on")), emissions(frames_for("off")))
    hyps = BeamSearchDecoder(TOKENIZER, beam_size=16).decode(lp, lengths)
    assert [h.text for h in hyps] == ["turn on", "off"]
    # Characters sit at the odd frames built by frames_for.
    assert hyps[1].timesteps == [1, 3, 5]
    assert hyps[1].token_times(0.04) == pytest.approx([0.04, 0.12, 0.20])
    assert hyps[0].tokens == TOKENIZER.encode("turn on")


def test_lexicon_corrects_misspelling() -> None:
    spec = frames_for("turn on")
    spec[3] = {"a": 0.55, "u": 0.4}  # "tarn": 'a' beats 'u' acoustically
    lp, lengths = batch(emissions(spec))
    assert BeamSearchDecoder(TOKENIZER, beam_size=16)(lp, lengths) == ["tarn on"]
    decoder = BeamSearchDecoder(TOKENIZER, lexicon=["turn", "on", "off"], beam_size=16)
    hyp = decoder.decode(lp, lengths)[0]
    assert hyp.text == "turn on"
    assert hyp.words == ["turn", "on"]


def test_lexicon_last_word_needs_no_trailing_separator() -> None:
    # The model does not emit a space after the last word (the utterance ends on its "n"):
    # the last word must still come out, at no cost beyond the acoustic path.
    lp, lengths = batch(emissions(frames_for("turn on")[:-1]))
    decoder = BeamSearchDecoder(TOKENIZER, lexicon=["turn", "on", "off"], beam_size=16)
    hyp = decoder.decode(lp, lengths)[0]
    assert hyp.text == "turn on"
    assert hyp.score == pytest.approx(lp[0].max(-1).values.sum().item(), abs=1e-3)
    assert hyp.timesteps[-1] == lengths[0] - 1


def test_lexicon_restricts_words_and_handles_empty() -> None:
    lp, lengths = batch(emissions(frames_for("on")), emissions(["", "", ""]))
    decoder = BeamSearchDecoder(TOKENIZER, lexicon=["off", "of"], beam_size=16)
    texts = decoder(lp, lengths)
    assert texts[0] in {"off", "of"}
    assert texts[1] == ""


@pytest.mark.parametrize("lexicon", [None, ["turn", "on"]])
def test_nan_in_a_valid_frame_is_named_not_decoded(lexicon: list[str] | None) -> None:
    # NaN only after an utterance's length is padding and decodes; within it, flashlight
    # returns no hypothesis at all, so the decoder must say which utterance is broken.
    lp, lengths = batch(emissions(frames_for("on")), emissions(frames_for("turn on")))
    lp[0, lengths[0] :] = float("nan")
    decoder = BeamSearchDecoder(TOKENIZER, lexicon=lexicon, beam_size=16)
    assert decoder(lp, lengths) == ["on", "turn on"]
    lp[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN \(utterances \[1\]\)"):
        decoder(lp, lengths)


def _ambiguous_light_night() -> tuple[torch.Tensor, torch.Tensor]:
    spec = frames_for("turn on light")
    first = spec.index("l")
    spec[first] = {"l": 0.45, "n": 0.45}  # acoustically "light" == "night"
    return batch(emissions(spec))


@pytest.mark.parametrize(
    ("transcripts", "expected"),
    [
        (["turn on light"] * 5 + ["good night"] * 5, "turn on light"),
        (["turn on night"] * 5 + ["good light"] * 5, "turn on night"),
    ],
)
@pytest.mark.parametrize("order", [2, 3])
def test_lm_breaks_acoustic_tie(
    tmp_path: Path, transcripts: list[str], expected: str, order: int
) -> None:
    lp, lengths = _ambiguous_light_night()
    words = ["turn", "on", "light", "night", "good"]
    arpa = write_arpa(transcripts, tmp_path / "lm.arpa", order=order)
    decoder = BeamSearchDecoder(TOKENIZER, lexicon=words, lm_path=arpa, beam_size=32, lm_weight=1.0)
    assert decoder(lp, lengths) == [expected]


def test_loading_an_lm_is_quiet_and_a_broken_one_is_named(tmp_path: Path, capfd) -> None:
    arpa = write_arpa(["turn on"], tmp_path / "lm.arpa")
    BeamSearchDecoder(TOKENIZER, lexicon=["turn", "on"], lm_path=arpa)
    assert capfd.readouterr().err == ""  # KenLM's tip and progress bar are discarded
    broken = tmp_path / "broken.arpa"
    broken.write_text("not an ARPA file\n")
    with pytest.raises(RuntimeError, match=r"broken\.arpa"):
        BeamSearchDecoder(TOKENIZER, lexicon=["turn", "on"], lm_path=broken)
    print("stderr works again", file=sys.stderr)
    assert capfd.readouterr().err == "stderr works again\n"


def test_lm_needs_lexicon(tmp_path: Path) -> None:
    arpa = write_arpa(["turn on"], tmp_path / "lm.arpa")
    with pytest.raises(ValueError, match="lexicon"):
        BeamSearchDecoder(TOKENIZER, lm_path=arpa)


def _read_arpa(path: Path) -> dict[int, dict[tuple[str, ...], tuple[float, float]]]:
    """{order: {ngram: (log10 p, log10 backoff)}}."""
    tables: dict[int, dict[tuple[str, ...], tuple[float, float]]] = {}
    order = 0
    for line in path.read_text().splitlines():
        if line.endswith("-grams:"):
            order = int(line[1])
            tables[order] = {}
        elif order and line and not line.startswith("\\"):
            fields = line.split("\t")
            backoff = float(fields[2]) if len(fields) > 2 else 0.0
            tables[order][tuple(fields[1].split())] = (float(fields[0]), backoff)
    return tables


def _arpa_prob(tables, word: str, history: tuple[str, ...]) -> float:
    """Back-off reading of an ARPA table, in plain probability."""
    gram = (*history, word)
    if gram in tables.get(len(gram), {}):
        return 10 ** tables[len(gram)][gram][0]
    backoff = tables.get(len(history), {}).get(history, (0.0, 0.0))[1] if history else 0.0
    return 10**backoff * _arpa_prob(tables, word, history[1:])


@pytest.mark.parametrize("order", [2, 3])
def test_arpa_normalised_per_history(tmp_path: Path, order: int) -> None:
    transcripts = [
        "turn on the light",
        "turn off the light",
        "turn on the light",
        "good night",
        "set a timer for 5 minutes",
        "turn the music on",
    ]
    tables = _read_arpa(write_arpa(transcripts, tmp_path / "lm.arpa", order=order))
    assert sorted(tables) == list(range(1, order + 1))
    vocabulary = [g[0] for g in tables[1] if g[0] != BOS]
    assert {EOS, UNK, "five"} <= set(vocabulary)
    assert tables[1][(BOS,)][0] == -99.0
    histories = [()] + [g for n in range(1, order) for g in tables[n] if g[-1] != EOS]
    histories.append(("unseen",))
    for history in histories:
        total = sum(_arpa_prob(tables, w, history) for w in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-5), history
    # Seen continuations beat unseen ones.
    assert _arpa_prob(tables, "on", ("turn",)) > _arpa_prob(tables, "night", ("turn",))


def test_ngram_model_matches_its_arpa(tmp_path: Path) -> None:
    transcripts = ["a b c", "a b d", "b c", "c"]
    lm = NGramLM(transcripts, order=3)
    tables = _read_arpa(write_arpa(transcripts, tmp_path / "lm.arpa", order=3))
    for history in [(), ("a",), ("a", "b"), ("c", "b"), (BOS, "a")]:
        for w in lm.vocabulary:
            assert _arpa_prob(tables, w, history) == pytest.approx(lm.prob(w, history), rel=1e-5)
    assert math.isclose(sum(lm.prob(w, ("x", "y")) for w in lm.vocabulary), 1.0)
    with pytest.raises(ValueError, match="order"):
        NGramLM(transcripts, order=1)


def test_word_lists(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("Turn\nON off\n15 on\n")
    assert read_word_list(path) == ["turn", "on", "off", "fifteen"]
    assert lexicon_words_from_transcripts(["turn on", "Turn off"]) == ["turn", "off", "on"]
    lexicon = build_lexicon(["don't"], TOKENIZER)
    assert lexicon == {"don't": ["d", "o", "n", "'", "t", "|"]}
    with pytest.raises(ValueError):
        build_lexicon([""], TOKENIZER)


@pytest.mark.parametrize("word_score", [0.0, 1.0])
def test_no_lexicon_word_fits_too_few_frames(word_score: float) -> None:
    """Two frames cannot spell a three-letter word: the decoder says nothing rather than
    a word it could only reach through the appended separator frame. (A narrow beam drops
    the silent hypothesis early, as a full beam of likelier prefixes does in real use.)"""
    decoder = BeamSearchDecoder(
        TOKENIZER, lexicon=["six", "set"], beam_size=2, word_score=word_score
    )
    short, lengths = batch(emissions(["s", {"i": 0.5, "e": 0.4}]), emissions(frames_for("six")))
    hypotheses = decoder.decode(short, lengths)
    assert [h.text for h in hypotheses] == ["", "six"]
    assert hypotheses[0].tokens == [] and hypotheses[0].words == []


def test_long_unsure_utterance_keeps_its_word() -> None:
    """A word that fits is kept however low the whole path's score: 20,000 frames of an
    unsure blank (probability 0.06) put the best path near -56,000 nats, beyond half the
    appended frame's penalty, which an earlier score threshold took for a misfit."""
    unsure = torch.full((len(TOKENIZER),), 0.94 / (len(TOKENIZER) - 1))
    unsure[TOKENIZER.blank_id] = 0.06
    filler = unsure.log().expand(20_000, -1)
    log_probs, lengths = batch(torch.cat([emissions(frames_for("six")), filler]))
    decoder = BeamSearchDecoder(TOKENIZER, lexicon=["six", "set"], beam_size=4)
    hypothesis = decoder.decode(log_probs, lengths)[0]
    assert hypothesis.score < -50_000
    assert hypothesis.text == "six"


def test_one_default_lm_weight_for_the_decoder_and_the_transcribe_options() -> None:
    import inspect

    from asr.beam_search import DEFAULT_LM_WEIGHT
    from asr.transcribe import DecodingOptions

    decoder_default = inspect.signature(BeamSearchDecoder).parameters["lm_weight"].default
    assert decoder_default == DecodingOptions().lm_weight == DEFAULT_LM_WEIGHT
