import pytest

from asr.metrics import ErrorCounts, char_errors, word_errors


def test_word_errors_counts():
    counts = word_errors(["turn on the light", "stop"], ["turn the lights", "stop now"])
    # del "on", sub light->lights, ins "now"
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 1, 1)
    assert counts.reference_length == 5 and counts.rate == pytest.approx(3 / 5)
    assert counts.summary() == "WER 60.00% [3 / 5, 1 ins, 1 del, 1 sub]"


def test_empty_hypothesis_is_all_deletions():
    counts = word_errors(["go left"], [""])
    assert counts.deletions == 2 and counts.rate == 1.0


def test_empty_reference_counts_insertions():
    counts = word_errors(["", "yes"], ["hello there", "yes"])
    assert counts.insertions == 2 and counts.reference_length == 1 and counts.rate == 2.0
    assert word_errors([""], [""]).rate == 0.0


def test_char_errors():
    counts = char_errors(["yes"], ["yet"])
    assert counts.substitutions == 1 and counts.reference_length == 3


def test_error_counts_add():
    total = ErrorCounts(1, 2, 3, 10) + ErrorCounts(1, 0, 0, 5)
    assert total == ErrorCounts(2, 2, 3, 15) and total.errors == 7
