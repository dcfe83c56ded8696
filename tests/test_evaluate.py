"""`asr evaluate`'s error analysis: most frequent word errors and the per-speaker WER table."""

import json
from pathlib import Path

from asr.evaluate import error_analysis, evaluate, group_table
from asr.metrics import word_error_types
from asr.segment import MIN_PAUSE_SECONDS
from asr.transcribe import Transcription

REFS = ["turn on the light", "go left", "stop", "turn on the light", ""]
HYPS = ["turn off the light", "go", "stop now", "turn on a lamp", "yes"]


def test_word_error_types_counts_each_word():
    types = word_error_types(REFS, HYPS)
    # "the light" -> "a lamp" is one jiwer chunk but two word substitutions.
    assert types.substitutions == {("on", "off"): 1, ("the", "a"): 1, ("light", "lamp"): 1}
    assert types.deletions == {"left": 1}
    assert types.insertions == {"now": 1, "yes": 1}  # "yes" against an empty reference


def test_error_analysis_lists_most_frequent_first():
    text = error_analysis(["a b", "a b", "a b"], ["c b", "c b", "d b"])
    lines = text.splitlines()
    assert lines[0] == "substitutions (ref -> hyp): 3"
    assert lines[1].split() == ["2", "a", "->", "c"] and lines[2].split() == ["1", "a", "->", "d"]
    assert "deletions: 0" in lines and "insertions: 0" in lines


def test_speaker_table_worst_first():
    table = group_table(["a b", "a b", "c"], ["a b", "a x", "c"], ["anna", "bob", "anna"])
    header, first, second = table.splitlines()
    assert header.split()[:4] == ["speaker", "utts", "words", "WER"]
    assert first.split() == ["bob", "1", "2", "50.00%", "0", "0", "1"]
    assert second.split() == ["anna", "2", "3", "0.00%", "0", "0", "0"]


class FakeRecognizer:
    """Answers with fixed texts per audio path, so the expected analysis is known."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.min_pause = "not called"

    def transcribe(self, audio, batch_size=16, options=None, progress=False, min_pause=None):
        self.min_pause = min_pause
        return [Transcription(self.answers[Path(a).name], str(a)) for a in audio]


def test_evaluate_writes_analysis_with_speakers(tmp_path: Path):
    records = [
        {"audio": "a.wav", "text": "go left", "duration": 1.0, "speaker": "en-us", "domain": "nav"},
        {"audio": "b.wav", "text": "stop", "duration": 1.0, "speaker": "en-gb", "domain": "media"},
        {"audio": "c.wav", "text": "go left", "duration": 1.0, "speaker": "en-gb", "domain": "nav"},
    ]
    records[2]["accent"] = "french"  # the others have none
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    answers = {"a.wav": "go left", "b.wav": "stop it", "c.wav": "go lift"}
    wer, _, failed = evaluate(FakeRecognizer(answers), manifest, tmp_path / "out")
    assert failed == 0
    assert (wer.substitutions, wer.insertions, wer.deletions) == (1, 1, 0)
    analysis = (tmp_path / "out" / "analysis").read_text()
    assert "     1  left -> lift" in analysis and "     1  it" in analysis
    speakers, domains, accents = analysis[analysis.index("speaker") :].split("\n\n")
    assert [line.split()[:4] for line in speakers.splitlines()[1:]] == [
        ["en-gb", "2", "3", "66.67%"],
        ["en-us", "1", "2", "0.00%"],
    ]
    assert domains.splitlines()[0].split()[:2] == ["domain", "utts"]
    assert [line.split()[:4] for line in domains.splitlines()[1:]] == [
        ["media", "1", "1", "100.00%"],
        ["nav", "2", "4", "25.00%"],
    ]
    assert [line.split()[:4] for line in accents.splitlines()[1:]] == [
        ["french", "1", "2", "50.00%"],
        ["-", "2", "3", "33.33%"],
    ]


def test_evaluate_without_speakers_has_no_table(tmp_path: Path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "stop", "duration": 1.0}) + "\n")
    evaluate(FakeRecognizer({"a.wav": "stop"}), manifest, tmp_path / "out")
    analysis = (tmp_path / "out" / "analysis").read_text()
    assert "substitutions (ref -> hyp): 0" in analysis and "speaker" not in analysis


def test_cli_evaluate_reports_unreadable_audio_and_goes_on(tmp_path: Path, capsys):
    import numpy as np
    import soundfile as sf

    from asr.cli import main

    sf.write(tmp_path / "quiet.wav", np.zeros(8000, dtype=np.float32), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    records = [
        {"audio": "quiet.wav", "text": "", "duration": 0.5},
        {"audio": "broken.wav", "text": "stop", "duration": 0.5},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    assert main(["evaluate", str(manifest), "--out-dir", str(out), "--greedy", "-q"]) == 1
    assert "1 audio file(s) could not be read" in capsys.readouterr().err
    recogs = (out / "recogs").read_text().splitlines()
    assert [line.split("\t")[0] for line in recogs] == ["quiet", "broken"]  # both scored
    assert (
        "broken\tERROR" in (out / "errs").read_text() and "broken.wav" in (out / "errs").read_text()
    )


def test_cli_evaluate_names_the_bad_manifest_line(tmp_path: Path, capsys):
    from asr.cli import main

    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": "a.wav", "text": "one"}\n{"audio": "b.wav"}\n')
    assert main(["evaluate", str(manifest), "--out-dir", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{manifest}:2: missing key(s) text" in err and "Traceback" not in err


def test_cli_evaluate_refuses_audio_or_nothing_in_place_of_a_manifest(tmp_path: Path, capsys):
    from asr.cli import main

    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \xef\xbb\xff\xfe")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    for path, reason in [(audio, "a.wav:1: not UTF-8 text"), (empty, "no utterances to score")]:
        assert main(["evaluate", str(path), "--out-dir", str(tmp_path / "out"), "-q"]) == 2
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err


def test_evaluate_needs_no_durations(tmp_path: Path):
    """Training batches by duration; scoring a manifest made by hand does not need it."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "stop"}) + "\n")
    wer, _, failed = evaluate(FakeRecognizer({"a.wav": "stop"}), manifest, tmp_path / "out")
    assert (wer.reference_length, wer.rate, failed) == (1, 0.0, 0)


def test_evaluate_passes_min_pause_on(tmp_path: Path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "stop", "duration": 1.0}) + "\n")
    recognizer = FakeRecognizer({"a.wav": "stop"})
    evaluate(recognizer, manifest, tmp_path / "out")
    assert recognizer.min_pause == MIN_PAUSE_SECONDS
    evaluate(recognizer, manifest, tmp_path / "out", min_pause=0.3)
    assert recognizer.min_pause == 0.3


def test_utterance_ids_tell_files_of_the_same_name_apart():
    from asr.evaluate import utterance_ids

    records = [
        {"audio": "/data/a/utt00.wav"},
        {"audio": "/data/b/utt00.wav"},
        {"audio": "/data/b/utt01.flac", "id": "mine"},
    ]
    assert utterance_ids(records) == ["a/utt00", "b/utt00", "mine"]
    assert utterance_ids(records[1:]) == ["utt00", "mine"]  # no clash: names alone


def test_errs_alignments_have_no_jiwer_sentence_header():
    from asr.evaluate import _alignment

    shown = _alignment("turn on the light", "turn of the light")
    assert shown.startswith("REF: turn on the light") and "SENTENCE" not in shown


def test_words_outside_the_lexicon_are_counted():
    from asr.evaluate import words_outside

    outside = words_outside(["call mom now", "call home", "go"], ["go", "home", "now"])
    assert outside == {"call": 2, "mom": 1}


def test_cli_evaluate_names_reference_words_the_lexicon_cannot_spell(tmp_path, capsys):
    """The bundled model spells only its 113 command words: a user's "call mom" scored 10
    of 17 word errors without a word of why (found by a walkthrough)."""
    import numpy as np
    import soundfile as sf

    from asr.cli import main

    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 16000)
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "Call mom, go!"}\n')
    out = str(tmp_path / "out")
    main(["evaluate", str(tmp_path / "m.jsonl"), "--out-dir", out])  # bundled: a lexicon
    err = capsys.readouterr().err
    assert "2 reference words (2 kinds: call, mom) are not in the decoding's lexicon" in err
    main(["evaluate", str(tmp_path / "m.jsonl"), "--out-dir", out, "--greedy"])
    assert "lexicon" not in capsys.readouterr().err
